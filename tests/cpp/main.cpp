// Catch2 entry point: v2 needs CATCH_CONFIG_MAIN in one translation unit, v3 links Catch2WithMain.
#if !__has_include(<catch2/catch_test_macros.hpp>)
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
#endif
