// Dimension inference and its errors.
#include "catch.hpp"
#include "core/errors.h"
#include "core/parser.h"

using namespace keops;

namespace {
int dim(const std::string& f) {
  return parse_formula(f, parse_aliases({"x = Vi(3)", "y = Vj(2)", "s = Pm(1)", "m = Vi(6)", "q = Pm(9)"}))->dim();
}
std::string error_of(const std::string& f) {
  try {
    dim(f);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("element-wise operations broadcast dim 1") {
  CHECK(dim("x + s") == 3);
  CHECK(dim("s * x") == 3);
  CHECK(dim("Exp(x) / s") == 3);
  CHECK(error_of("x + y").find("Add: dimensions 3 and 2 are incompatible") != std::string::npos);
  CHECK(error_of("x - y").find("Subtract") != std::string::npos);
}

TEST_CASE("vector operations") {
  CHECK(dim("Sum(x)") == 1);
  CHECK(dim("SqNorm2(x)") == 1);
  CHECK(dim("SqDist(x, s)") == 1);
  CHECK(dim("(x | x)") == 1);
  CHECK(error_of("(x | y)").find("Scalprod: both arguments must have the same dimension") != std::string::npos);
  CHECK(dim("Concat(x, y)") == 5);
  CHECK(dim("Extract(x, 1, 2)") == 2);
  CHECK(error_of("Extract(x, 2, 2)").find("out of bounds") != std::string::npos);
  CHECK(error_of("Elem(x, 3)").find("Elem: index 3 is out of range for dimension 3") != std::string::npos);
  CHECK(error_of("Elem(x, -1)").find("out of range") != std::string::npos);
  CHECK(dim("MatVecMult(m, x)") == 2);
  CHECK(dim("VecMatMult(x, m)") == 2);
  CHECK(dim("TensorProd(x, y)") == 6);
  CHECK(dim("WeightedSqNorm(q, x)") == 1);
  CHECK(error_of("WeightedSqNorm(y, x)").find("weight dimension 2") != std::string::npos);
  CHECK(dim("TensorDot(m, x, [2,3], [3], [1], [0])") == 2);
  CHECK(error_of("TensorDot(m, x, [3,2], [3], [1], [0])").find("contracted axes have sizes 2 and 3") != std::string::npos);
  CHECK(error_of("TensorDot(m, x, [2,2], [3], [1], [0])").find("does not multiply") != std::string::npos);
  CHECK(dim("OneHot(s, 4)") == 4);
  CHECK(error_of("OneHot(x, 4)").find("must have dimension 1") != std::string::npos);
  CHECK(dim("Grad(SqNorm2(x), x, s)") == 3);
  CHECK(error_of("Grad(x, s + s, x)").find("must be a variable") != std::string::npos);
}

TEST_CASE("constants and variables") {
  CHECK(dim("Zero(5)") == 5);
  CHECK(dim("IntCst(7)") == 1);
  CHECK(error_of("Zero(0)").find("dimension must be positive") != std::string::npos);
  CHECK(error_of("Var(0, 3, 5)").find("category") != std::string::npos);
  CHECK(error_of("RatCst(1, 0)").find("denominator") != std::string::npos);
  CHECK(error_of("x / Zero(1)").find("division by the constant zero") != std::string::npos);
}
