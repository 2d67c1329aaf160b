// Construction-time simplifications: each rule, and that rewritten formulas keep their dimension.
#include "catch.hpp"
#include "core/node.h"
#include "core/parser.h"
#include "core/printer.h"

using namespace keops;

namespace {
std::string simp(const std::string& f) {
  return print(parse_formula(f, parse_aliases({"x = Vi(3)", "s = Vj(1)"})));
}
}  // namespace

TEST_CASE("simplification rules") {
  CHECK(simp("IntCst(0)") == "Zero(1)");
  CHECK(simp("2 + 3") == "IntCst(5)");
  CHECK(simp("IntCst(2) + IntCst(3)") == "IntCst(5)");
  CHECK(simp("IntCst(2) * IntCst(3)") == "IntCst(6)");
  CHECK(simp("IntCst(2) - IntCst(3)") == "IntCst(-1)");
  CHECK(simp("x + 0") == "Var(0,3,0)");
  CHECK(simp("0 + x") == "Var(0,3,0)");
  CHECK(simp("x - 0") == "Var(0,3,0)");
  CHECK(simp("0 - x") == "Minus(Var(0,3,0))");
  CHECK(simp("0 * x") == "Zero(3)");
  CHECK(simp("x * 0") == "Zero(3)");
  CHECK(simp("1 * x") == "Var(0,3,0)");
  CHECK(simp("x * 1") == "Var(0,3,0)");
  CHECK(simp("-1 * x") == "Minus(Var(0,3,0))");
  CHECK(simp("x * 3") == "(IntCst(3) * Var(0,3,0))");
  CHECK(simp("x * x") == "Square(Var(0,3,0))");
  CHECK(simp("x + x") == "(IntCst(2) * Var(0,3,0))");
  CHECK(simp("x / 1") == "Var(0,3,0)");
  CHECK(simp("0 / x") == "Zero(3)");
  CHECK(simp("-(-x)") == "Var(0,3,0)");
  CHECK(simp("Minus(IntCst(4))") == "IntCst(-4)");
  CHECK(simp("Square(Zero(2))") == "Zero(2)");
  CHECK(simp("Square(IntCst(3))") == "IntCst(9)");
  CHECK(simp("Sum(s)") == "Var(1,1,1)");
  CHECK(simp("Sum(Zero(4))") == "Zero(1)");
  CHECK(simp("Pow(x, 1)") == "Var(0,3,0)");
  CHECK(simp("Pow(x, 2)") == "Square(Var(0,3,0))");
  CHECK(simp("SqNorm2(Zero(3))") == "Zero(1)");
  CHECK(simp("(Zero(3) | Zero(3))") == "Zero(1)");
}

TEST_CASE("rewrites that would change the dimension are not applied") {
  // Zero(3) + s must stay dimension 3: s alone has dimension 1.
  NodeRef f = parse_formula("Zero(3) + s", parse_aliases({"x = Vi(3)", "s = Vj(1)"}));
  CHECK(f->dim() == 3);
  CHECK(print(f) == "(Zero(3) + Var(1,1,1))");
  NodeRef g = parse_formula("IntCst(1) * s", parse_aliases({"s = Vj(1)"}));
  CHECK(g == var(0, 1, 1));
}

TEST_CASE("interning keeps shared subformulas single") {
  auto a = parse_aliases({"x = Vi(3)", "y = Vj(3)"});
  NodeRef k = parse_formula("Exp(-SqDist(x,y))", a);
  NodeRef f = parse_formula("Exp(-SqDist(x,y)) * Exp(-SqDist(x,y)) + Exp(-SqDist(x,y))", a);
  CHECK(f->arg(1) == k);
  CHECK(dag_size(f) == dag_size(k) + 2);  // only Add and Square on top of k's nodes
}
