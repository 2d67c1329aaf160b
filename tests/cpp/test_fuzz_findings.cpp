// Regression tests of the inputs found by the fuzzer (tests/fuzz): each was a crash, a hang or an exhausted memory.
#include "catch.hpp"
#include "core/errors.h"
#include "core/parser.h"
#include "core/reduction.h"

using namespace keops;

TEST_CASE("a large argument position is a user error, not a table of that size") {
  // Var(347483644, 1, 0) used to grow the argument table to 347483645 entries (2.7 GB) before failing.
  auto a = parse_aliases({"x = Vi(3)"});
  Reduction r = parse_reduction("Sum_Reduction(x * Var(347483644,1,0), 0)", a);
  CHECK_THROWS_WITH(argument_table(r, a), "argument 1 is not declared by any alias or variable");
  Reduction top = parse_reduction("Sum_Reduction(x * Var(2147483647,1,0), 0)", a);  // was std::length_error
  CHECK_THROWS_WITH(argument_table(top, a), "argument 1 is not declared by any alias or variable");
  Reduction ok = parse_reduction("Sum_Reduction(x * Var(1,1,0), 0)", a);
  CHECK(argument_table(ok, a).size() == 2);
}
