// Hostile input to parse, dims, simplify, differentiate and lower: deep nesting, huge integers, bad bounds.
#include <algorithm>
#include <string>

#include "catch.hpp"
#include "core/differentiate.h"
#include "core/errors.h"
#include "core/lower.h"
#include "core/parser.h"
#include "core/printer.h"

using namespace keops;

namespace {
std::vector<Alias> x3() { return parse_aliases({"x = Vi(0,3)", "y = Vj(1,1)"}); }

std::string error_of(const std::string& f, const std::vector<Alias>& a = x3()) {
  try {
    if (f.find("_Reduction") != std::string::npos) parse_reduction(f, a);
    else parse_formula(f, a);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

std::string alias_error(const std::string& text) {
  try {
    parse_aliases({text});
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int k = 0; k < n; ++k) out += s;
  return out;
}

using Catch::Matchers::Contains;
}  // namespace

TEST_CASE("deep nesting raises a UserError naming the depth, never overflows the stack") {
  const int within = std::min(100000, kMaxNesting - 8);  // ASan builds nest less deep (core/node.h)
  CHECK_THAT(error_of(repeat("-", within)), Contains("expected a formula"));
  CHECK_THAT(error_of(repeat("[", within)), Contains("expected"));
  CHECK_THAT(error_of(repeat("(", 300000) + "x" + repeat(")", 300000)), Contains("nested more than " + std::to_string(kMaxNesting) + " levels deep"));
  CHECK_THAT(error_of(repeat("Exp(", 300000) + "x" + repeat(")", 300000)), Contains("nested more than " + std::to_string(kMaxNesting) + " levels"));
  CHECK_THAT(error_of(repeat("[", 300000)), Contains("nested more than " + std::to_string(kMaxNesting) + " levels"));
  // Within the limit, deep formulas work: 5000 nested Exp and Concat.
  const int deep = std::min(5000, kMaxNesting - 8);  // ASan builds nest less deep (core/node.h)
  CHECK(parse_formula(repeat("Exp(", deep) + "x" + repeat(")", deep), x3())->dim() == 3);
  CHECK(parse_formula(repeat("Concat(", deep) + "y" + repeat(",y)", deep), x3())->dim() == deep + 1);
}

TEST_CASE("a flat sum of 1e5 terms goes through print, argument table, differentiation and lowering") {
  const int n = 100000;
  const int n_nested = std::min(n, kMaxNesting - 8);  // as a LazyTensor sum; ASan builds nest less deep
  std::string flat = "Elem(x,0)", nested = repeat("(", n_nested - 1) + "Elem(x,0)";
  for (int k = 1; k < n; ++k) {
    const std::string t = k % 2 ? "Elem(x," + std::to_string(k % 3) + ")" : "Sin(y)";
    flat += "+" + t;
    if (k < n_nested) nested += " + " + t + ")";
  }
  for (const auto& [text, terms] : {std::pair{flat, n}, std::pair{nested, n_nested}}) {
    Reduction red = parse_reduction("Sum_Reduction(" + text + ",0)", x3());
    CHECK(dag_size(red.formula) > static_cast<size_t>(terms / 2));
    CHECK(print(red).size() > text.size() / 2);
    Program p = lower(red, argument_table(red, x3()));
    CHECK(p.code.size() > 3);
    NodeRef g = grad(red.formula, var(1, 1, 1), int_cst(1));
    CHECK(g->dim() == 1);
    CHECK(depends_on(g, var(1, 1, 1)));
    CHECK(substitute(red.formula, var(1, 1, 1), zero(1))->dim() == 1);
  }
}

TEST_CASE("integer literals and arithmetic never wrap") {
  CHECK_THAT(error_of("IntCst(18446744073709551616)"), Contains("integer 18446744073709551616 does not fit in 64 bits"));
  CHECK_THAT(error_of("IntCst(2**64)"), Contains("integer overflow: 2 ** 64 does not fit in 64 bits"));
  CHECK_THAT(error_of("IntCst(2**63)"), Contains("2 ** 63 does not fit"));
  CHECK_THAT(error_of("Extract(x, 2**64+1, 2)"), Contains("2 ** 64 does not fit"));
  CHECK_THAT(error_of("x*(9223372036854775807+1)"), Contains("9223372036854775807 + 1 does not fit"));
  CHECK_THAT(error_of("x*(3037000500*3037000500)"), Contains("3037000500 * 3037000500 does not fit"));
  CHECK_THAT(error_of("x*-(-9223372036854775807-1)"), Contains("does not fit"));
  CHECK(print(parse_formula("IntCst(2**62)")) == "IntCst(4611686018427387904)");
  CHECK(print(parse_formula("IntCst(3**39)")) == "IntCst(4052555153018976267)");
  // Folding that would overflow is left undone: the operation then runs in floating point.
  CHECK(print(parse_formula("IntCst(4611686018427387904)*IntCst(4)")) == "(IntCst(4611686018427387904) * IntCst(4))");
  CHECK(print(parse_formula("IntCst(4611686018427387904)+IntCst(4611686018427387905)")) ==
        "(IntCst(4611686018427387904) + IntCst(4611686018427387905))");
  CHECK(print(parse_formula("-IntCst(-9223372036854775807-1)")) == "Minus(IntCst(-9223372036854775808))");
}

TEST_CASE("integer powers by squaring: instant, overflow is an error") {
  CHECK_THAT(error_of("IntCst(2**100000000000)"), Contains("2 ** 100000000000 does not fit"));
  CHECK_THAT(error_of("IntCst(9**007199254740992)"), Contains("9 ** 7199254740992 does not fit"));
  CHECK(print(parse_formula("IntCst(1**9223372036854775807)")) == "IntCst(1)");
  CHECK(print(parse_formula("IntCst((-1)**9223372036854775807)")) == "IntCst(-1)");
  CHECK(print(parse_formula("IntCst((-2)**63)")) == "IntCst(-9223372036854775808)");
  CHECK(print(parse_formula("IntCst(0**9223372036854775807)")) == "Zero(1)");
}

TEST_CASE("alias integers are range-checked before they become ints") {
  CHECK_THAT(alias_error("x = Vi(4294967299)"), Contains("dimension 4294967299 exceeds the limit 1048576"));
  CHECK_THAT(alias_error("x = Vi(4294967296, 3)"), Contains("position 4294967296 exceeds the limit 1048575"));
  CHECK_THAT(alias_error("x = Vi(99999999999999999999)"), Contains("integer 99999999999999999999 does not fit in 64 bits"));
  CHECK_THAT(alias_error("x = Var(0,3,4294967296)"), Contains("category must be 0, 1 or 2"));
  CHECK(parse_aliases({"x = Vj(1048575, 1048576)"})[0].pos == 1048575);
}

TEST_CASE("bound checks do not overflow") {
  CHECK_THAT(error_of("Extract(x, 9223372036854775807, 2)"), Contains("out of bounds for dimension 3"));
  CHECK_THAT(error_of("Extract(x, 9223372036854775806, 3)"), Contains("out of bounds for dimension 3"));
  CHECK_THAT(error_of("Extract(x, 1, 9223372036854775807)"), Contains("out of bounds"));
  CHECK_THAT(error_of("ExtractT(x, 9223372036854775807, 4)"), Contains("does not fit in dimension 4"));
  CHECK_THAT(error_of("ExtractT(x, 1, 4294967299)"), Contains("exceeds the limit"));
  CHECK_THAT(error_of("ElemT(y, 4294967296, 1)"), Contains("exceeds the limit"));
  CHECK_THAT(error_of("OneHot(y, 4294967298)"), Contains("exceeds the limit"));
  CHECK_THAT(error_of("SumT(y, 4294967298)"), Contains("exceeds the limit"));
  CHECK_THAT(error_of("ComplexSumT(Concat(y,y), 4294967298)"), Contains("exceeds the limit"));
  CHECK_THAT(error_of("BSpline(x, y, 4294967296)"), Contains("needs more knots than order + 1"));
  CHECK_THAT(error_of("TensorDot(x, x, [3], [-1,-3], [], [])"), Contains("positive sizes"));
  CHECK_THAT(error_of("TensorDot(x, x, [3], [4294967296,4294967296,3], [], [])"), Contains("positive sizes"));
  CHECK_THAT(error_of("TensorDot(Concat(x,Concat(x,x)), Concat(x,Concat(x,x)), [3,3], [3,3], [0,0], [0,1])"),
             Contains("contraction axis 0 is repeated"));
  CHECK_THAT(error_of("Kron(x, x, [-1,-3], [3,1])"), Contains("positive sizes"));
  CHECK_THAT(error_of("Pow(x, -9223372036854775807-1)"), Contains("exponent -9223372036854775808 is out of range"));
  CHECK_THAT(error_of("Pow(x, 4294967296)"), Contains("is out of range"));
  CHECK(parse_formula("Pow(x, 2147483648)", x3())->dim() == 3);
}

TEST_CASE("positions, dimensions and K stay within int32 with room for products") {
  CHECK_THAT(error_of("x*Var(2147483648,3,1)"), Contains("position 2147483648 exceeds the limit 1048575"));
  CHECK_THAT(error_of("x*Vi(0,4294967299)"), Contains("dimension 4294967299 exceeds"));
  CHECK_THAT(error_of("Sum_Reduction(x, 4294967296)"), Contains("the tag must be 0"));
  CHECK_THAT(error_of("Zero_Reduction(4294967297, 0)"), Contains("dimension must be in [1, 1048576]"));
  CHECK_THAT(error_of("KMin_Reduction(x, 1099511627776, 0)"), Contains("K = 1099511627776 times the formula's dimension 3"));
  CHECK_THAT(error_of("KMin_Reduction(x, 715827883, 0)"), Contains("exceeds the limit 1048576"));
  CHECK(parse_reduction("KMin_Reduction(x, 349525, 0)", x3()).dim_out() == 1048575);
  auto big = parse_aliases({"a = Vi(0,1048576)", "b = Vj(1,1048576)"});
  for (const char* f : {"TensorProd(a,b)", "Concat(a,b)", "GradMatrix(a,a)", "Real2Complex(a)", "Kron(a,b,[1048576],[1048576])"})
    CHECK_THAT(error_of(f, big), Contains("exceeds the limit 1048576"));
  CHECK_THAT(error_of("SymSqNorm(a,b)", big), Contains("does not match vector dimension"));
  // A sparse position is an undeclared argument, not a huge table.
  Reduction r = parse_reduction("Sum_Reduction(x*Var(1048575,3,1),0)", x3());
  CHECK_THROWS_WITH(argument_table(r, x3()), Contains("argument 2 is not declared"));
}

TEST_CASE("non-ASCII characters are reported whole, with their code point") {
  CHECK_THAT(error_of("x + \xC3\xA9"), Contains("unexpected character '\xC3\xA9' (U+00E9)"));
  CHECK_THAT(error_of("x \xE2\x82\xAC"), Contains("'\xE2\x82\xAC' (U+20AC)"));
  CHECK_THAT(error_of("x \xF0\x9F\x98\x80"), Contains("'\xF0\x9F\x98\x80' (U+1F600)"));
  CHECK_THAT(error_of("x \xC3"), Contains("byte 0xC3 (not UTF-8)"));
  CHECK_THAT(error_of("x \xED\xA0\x80"), Contains("byte 0xED (not UTF-8)"));  // a surrogate
  CHECK_THAT(error_of("x \x01"), Contains("byte 0x01"));
  CHECK_THAT(alias_error("x = Vi(\xCE\xBB)"), Contains("'\xCE\xBB' (U+03BB)"));
}
