// Regression tests of the inputs found by the fuzzer (tests/fuzz): each was a crash, a hang or an exhausted memory.
#include "catch.hpp"
#include "core/errors.h"
#include "core/parser.h"
#include "core/reduction.h"

using namespace keops;

TEST_CASE("a large argument position is a user error, not a table of that size") {
  // Var(347483644, 1, 0) used to grow the argument table to 347483645 entries (2.7 GB) before failing; positions
  // are now limited by the parser, and one below the limit still never sizes the table.
  auto a = parse_aliases({"x = Vi(3)"});
  CHECK_THROWS_WITH(parse_reduction("Sum_Reduction(x * Var(347483644,1,0), 0)", a),
                    Catch::Contains("position 347483644 exceeds the limit"));
  Reduction r = parse_reduction("Sum_Reduction(x * Var(1048575,1,0), 0)", a);
  CHECK_THROWS_WITH(argument_table(r, a), "argument 1 is not declared by any alias or variable");
  Reduction ok = parse_reduction("Sum_Reduction(x * Var(1,1,0), 0)", a);
  CHECK(argument_table(ok, a).size() == 2);
}
