// Parser, aliases, printer round-trip and interning.
#include <string>

#include "catch.hpp"
#include "core/errors.h"
#include "core/op_table.h"
#include "core/parser.h"
#include "core/printer.h"

using namespace keops;

namespace {
std::vector<Alias> xyb() { return parse_aliases({"x = Vi(3)", "y = Vj(3)", "b = Vj(1)"}); }

std::string error_of(const std::string& f, const std::vector<Alias>& a = xyb()) {
  try {
    parse_formula(f, a);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("aliases in every KeOps form") {
  auto a = parse_aliases({"x = Vi(3)", "y=Vj(2,4)", "Pm(1,1)", "v = Var(3,5,1)", "w = Vx(2)"});
  REQUIRE(a.size() == 5);
  CHECK((a[0].pos == 0 && a[0].dim == 3 && a[0].cat == 0 && a[0].name == "x"));
  CHECK((a[1].pos == 2 && a[1].dim == 4 && a[1].cat == 1));
  CHECK((a[2].pos == 1 && a[2].dim == 1 && a[2].cat == 2 && a[2].name.empty()));
  CHECK((a[3].pos == 3 && a[3].dim == 5 && a[3].cat == 1));
  CHECK((a[4].pos == 4 && a[4].cat == 0));
  CHECK_THROWS_AS(parse_aliases({"x = Vk(3)"}), UserError);
  CHECK_THROWS_AS(parse_aliases({"x = Vi(0)"}), UserError);
  CHECK_THROWS_AS(parse_aliases({"x = Vi(3)", "x = Vj(3)"}), UserError);
  CHECK_THROWS_AS(parse_aliases({"x = Var(1,2)"}), UserError);
}

TEST_CASE("equal formulas are the same node") {
  auto a = xyb();
  NodeRef f = parse_formula("Exp(-SqDist(x,y))*b", a);
  NodeRef g = parse_formula("Exp( - SqDist( x , y ) ) * b", a);
  CHECK(f == g);
  CHECK(f == parse_formula("Exp(-SqDist(Var(0,3,0),Vj(1,3)))*Var(2,1,1)"));
  CHECK(f != parse_formula("Exp(-SqDist(y,x))*b", a));
  CHECK(f->dim() == 1);
}

TEST_CASE("operator precedence follows Python") {
  auto a = xyb();
  CHECK(parse_formula("x - y * b", a) == make("Subtract", {var(0, 3, 0), make("Mult", {var(1, 3, 1), var(2, 1, 1)})}));
  CHECK(parse_formula("-x**2", a) == make("Minus", {make("Square", {var(0, 3, 0)})}));
  CHECK(parse_formula("x**3", a) == make("Pow", {var(0, 3, 0)}, {3}));
  CHECK(parse_formula("x**-1", a) == make("Pow", {var(0, 3, 0)}, {-1}));
  CHECK(parse_formula("(x|y)", a) == make("Scalprod", {var(0, 3, 0), var(1, 3, 1)}));
  CHECK(parse_formula("x | y + y", a) == make("Scalprod", {var(0, 3, 0), make("Mult", {int_cst(2), var(1, 3, 1)})}));
  CHECK(parse_formula("b < 2", a) == make("LessThan", {var(2, 1, 1), int_cst(2)}));
  CHECK(parse_formula("b > 2", a) == make("LessThan", {int_cst(2), var(2, 1, 1)}));
  CHECK(parse_formula("b >= 2", a) == make("LessOrEqual", {int_cst(2), var(2, 1, 1)}));
  CHECK(parse_formula("2*3 + b", a) == make("Add", {int_cst(6), var(2, 1, 1)}));
}

TEST_CASE("syntax errors name the column and what was expected") {
  CHECK(error_of("Exp(x") == "formula: column 6: expected ')', found the end of the formula");
  CHECK(error_of("x + * y").find("column 5") != std::string::npos);
  CHECK(error_of("x + 0.5").find("column 5: float literal 0.5") != std::string::npos);
  CHECK(error_of("x + z").find("unknown name 'z'") != std::string::npos);
  CHECK(error_of("Foo(x)").find("unknown operation 'Foo'") != std::string::npos);
  CHECK(error_of("x $ y").find("unexpected character '$'") != std::string::npos);
  CHECK(error_of("x == y").find("Equal(f, g)") != std::string::npos);
  CHECK(error_of("x ** b").find("exponent") != std::string::npos);
  CHECK(error_of("Exp").find("needs arguments") != std::string::npos);
  CHECK(error_of("Pow(x)").find("too few arguments") != std::string::npos);
  CHECK(error_of("Exp(x, y)").find("too many arguments") != std::string::npos);
  CHECK(error_of("Pow(x, y)").find("must be an integer") != std::string::npos);
  CHECK(error_of("x y").find("expected an operator") != std::string::npos);
}

TEST_CASE("every operation of the table parses from its printed form") {
  // Build one instance of each operation from generic arguments matching its signature.
  for (const OpInfo& op : all_ops()) {
    std::string name(op.name);
    std::string text;
    if (name == "Var") text = "Var(0,4,1)";
    else if (name == "IntCst") text = "IntCst(3)";
    else if (name == "RatCst") text = "RatCst(1,3)";
    else if (name == "IntInv") text = "IntInv(3)";
    else if (name == "Zero") text = "Zero(4)";
    else if (name == "RowIndex") text = "RowIndex(1)";
    else if (name == "TensorDot") text = "TensorDot(a,a,[2,2],[2,2],[1],[0])";
    else if (name == "Kron") text = "Kron(a,a,[2,2],[2,2])";
    else if (name == "BSpline") text = "BSpline(a,s,1)";
    else if (name == "ElemT" || name == "SumT" || name == "OneHot") text = name + (name == "ElemT" ? "(s,4,1)" : "(s,4)");
    else if (name == "ExtractT") text = "ExtractT(a,1,6)";
    else if (name == "Extract" || name == "ClampInt" || name == "DiffClampInt") text = name + "(a,1,2)";
    else if (name == "Elem" || name == "Pow" || name == "Round") text = name + "(a,2)";
    else if (name == "ComplexSumT") text = "ComplexSumT(c,4)";
    else if (name == "ComplexRealScal") text = "ComplexRealScal(s,a)";
    else if (name == "SoftDTW_SqDist" || name == "GradSoftDTW_SqDist") text = name + "(a,a,s)";
    else if (name == "SymSqNorm") text = "SymSqNorm(q,a)";
    else if (name == "SqNormIso" || name == "SqNormDiag" || name == "WeightedSqNorm") text = name + "(s,a)";
    else if (name == "Laplacian") text = "Laplacian(s,v)";
    else if (name == "Grad" || name == "Diff") text = name + "(a,v,a)";
    else if (name == "AdjointOperator") text = "AdjointOperator(v,v,a)";  // needs a formula linear in v
    else if (op.signature == "F") text = name + "(a)";
    else if (op.signature == "FF" || op.signature == "FF?F" || op.signature == "FF?FF") text = name + "(a,a)";
    else if (op.signature == "FFF") text = name + "(a,a,a)";
    INFO(name);
    REQUIRE(!text.empty());
    auto aliases = parse_aliases({"a = Vi(4)", "s = Vj(1)", "v = Vj(4)", "q = Pm(16)", "c = Vi(2)"});
    NodeRef f = parse_formula(text, aliases);
    CHECK(parse_formula(print(f)) == f);
  }
}

TEST_CASE("reductions parse and print") {
  auto a = xyb();
  Reduction r = parse_reduction("Sum_Reduction(Exp(-SqDist(x,y))*b, 0)", a);
  CHECK(r.info->kind == ReductionKind::Sum);
  CHECK(r.tag == 0);
  CHECK(print(r) == "Sum_Reduction((Exp(Minus(SqDist(Var(0,3,0),Var(1,3,1)))) * Var(2,1,1)),0)");
  Reduction k = parse_reduction("ArgKMin_Reduction(SqDist(x,y),5,1)", a);
  CHECK((k.opt == 5 && k.tag == 1 && k.dim_out() == 5));
  Reduction m = parse_reduction("Max_SumShiftExpWeight_Reduction(-SqDist(x,y),0,y)", a);
  CHECK(m.dim_out() == 4);
  CHECK(parse_reduction(print(m)).formula2 == m.formula2);
  CHECK(parse_reduction("Zero_Reduction(3,1)").dim_out() == 3);
  CHECK_THROWS_AS(parse_reduction("Sum_Reduction(x, 2)", a), UserError);
  CHECK_THROWS_AS(parse_reduction("Sum_Reduction(x)", a), UserError);
  CHECK_THROWS_AS(parse_reduction("x + y", a), UserError);
  CHECK_THROWS_AS(parse_reduction("KMin_Reduction(x, 0, 0)", a), UserError);
  CHECK_THROWS_AS(parse_reduction("Max_SumShiftExp_Reduction(x, 0)", a), UserError);  // formula must be scalar
}

TEST_CASE("argument table from aliases and Vars") {
  auto a = parse_aliases({"x = Vi(3)", "b = Vj(2,1)"});
  Reduction r = parse_reduction("Sum_Reduction(x*b + Var(1,1,2), 0)", a);
  auto t = argument_table(r, a);
  REQUIRE(t.size() == 3);
  CHECK((t[1].cat == 2 && t[2].cat == 1));
  Reduction bad = parse_reduction("Sum_Reduction(x*Var(2,3,1), 0)", a);
  CHECK_THROWS_AS(argument_table(bad, a), UserError);
  Reduction gap = parse_reduction("Sum_Reduction(Var(2,1,1), 0)");
  CHECK_THROWS_WITH(argument_table(gap, {}), "argument 0 is not declared by any alias or variable");
}
