// Reroll pass: long sums become loops of one term, with the same values; short or irregular sums stay straight.
#include <random>

#include "catch.hpp"
#include "core/lower.h"
#include "core/parser.h"
#include "core/reroll.h"
#include "program_eval.h"

using namespace keops;

namespace {
using test::lowered;

int count(const Program& p, Prim op) {
  int n = 0;
  for (const Instr& in : p.code) n += in.op == op;
  return n;
}

// The invariants of program.h's Loops: contiguous bodies before their LoopSum, no nesting, body values used only
// inside their body (or as the term), body levels those of the LoopSum.
void check_loops(const Program& p) {
  std::vector<int> owner(p.code.size(), -1);
  for (size_t id = 0; id < p.code.size(); ++id) {
    const Instr& in = p.code[id];
    if (in.op != Prim::LoopSum) continue;
    REQUIRE(in.b >= 0);
    REQUIRE(in.b <= in.a);
    REQUIRE(in.a < static_cast<int>(id));
    REQUIRE(in.imm >= 1);
    for (int x = in.b; x < static_cast<int>(id); ++x) {
      REQUIRE(owner[x] == -1);
      REQUIRE(p.code[x].op != Prim::LoopSum);
      REQUIRE(p.level[x] == p.level[id]);
      owner[x] = static_cast<int>(id);
    }
  }
  for (size_t id = 0; id < p.code.size(); ++id) {
    const Instr& in = p.code[id];
    for (int x : {in.a, in.op == Prim::LoopSum ? -1 : in.b, in.c}) {
      if (x < 0 || owner[x] < 0) continue;
      const bool same_body = owner[id] == owner[x];
      const bool is_term = in.op == Prim::LoopSum && static_cast<int>(id) == owner[x] && x == in.a;
      REQUIRE((same_body || is_term));
    }
  }
  for (int x : p.out) REQUIRE(owner[x] == -1);
}

// Random data for every argument, and the rerolled program's values against the straight one's at a few pairs.
void check_same_values(const Program& straight, const Program& looped) {
  std::mt19937 gen(7);
  std::normal_distribution<double> normal;
  std::vector<std::vector<double>> args;
  for (const ArgInfo& a : straight.args) {
    args.emplace_back(static_cast<size_t>(a.dim) * 3);
    for (double& v : args.back()) v = normal(gen);
  }
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      auto s = test::eval_pair(straight, args, i, j), l = test::eval_pair(looped, args, i, j);
      REQUIRE(s.size() == l.size());
      for (size_t k = 0; k < s.size(); ++k) CHECK(l[k] == Approx(s[k]).epsilon(1e-12).margin(1e-12));
    }
}
}  // namespace

TEST_CASE("a high-dimensional squared distance becomes one loop over its components") {
  Program p = lowered("ArgKMin_Reduction(SqDist(x,y), 10, 0)", {"x = Vi(784)", "y = Vj(784)"});
  Program r = reroll(p);
  check_loops(r);
  REQUIRE(count(r, Prim::LoopSum) == 1);
  CHECK(count(r, Prim::Load) == 2);
  CHECK(r.code.size() <= 8);  // two loads, a difference, a square: the body, and its loop
  for (const Instr& in : r.code)
    if (in.op == Prim::LoopSum) CHECK(in.imm == 784);
  check_same_values(p, r);
}

TEST_CASE("rerolled programs compute the same values") {
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"Sum_Reduction(Exp(-SqDist(x,y))*b, 0)", {"x = Vi(64)", "y = Vj(64)", "b = Vj(3)"}},
      {"Sum_Reduction((x|y) * Sum(x*p), 0)", {"x = Vi(40)", "y = Vj(40)", "p = Pm(40)"}},
      {"Sum_Reduction(MatVecMult(a, y), 0)", {"a = Vi(120)", "y = Vj(12)"}},
      {"Sum_Reduction(TensorDot(a, y, [4,30], [30], [1], [0]), 0)", {"a = Vi(120)", "y = Vj(30)"}},
      {"Sum_Reduction(SqNorm2(MatVecMult(a, y)), 0)", {"a = Vi(400)", "y = Vj(20)"}},
      {"Sum_Reduction(Grad(Exp(-SqDist(x,y)/IntCst(9)), x, e), 1)", {"x = Vi(33)", "y = Vj(33)", "e = Vi(1)"}},
      {"Sum_Reduction(Sum(Concat(Exp(x), Elem(y, 3) * y)), 0)", {"x = Vi(5)", "y = Vj(20)"}},
      {"Max_SumShiftExpWeight_Reduction(-SqNorm2(x-y), 0, y * (x|y))", {"x = Vi(50)", "y = Vj(50)"}},
  };
  for (const auto& [formula, aliases] : cases) {
    INFO(formula);
    Program p = lowered(formula, aliases);
    Program r = reroll(p);
    check_loops(r);
    CHECK(count(r, Prim::LoopSum) >= 1);
    CHECK(r.code.size() < p.code.size());
    check_same_values(p, r);
  }
}

TEST_CASE("short sums and sums of unlike terms stay straight-line code") {
  for (const auto& [formula, aliases] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"Sum_Reduction(Exp(-SqDist(x,y)), 0)", {"x = Vi(3)", "y = Vj(3)"}},
           {"Sum_Reduction(Exp(x) + Sin(x) + Cos(y) + Log(y) + Sqrt(x) + Abs(y) + Exp(y) + Sin(y) + Atan(x), 0)",
            {"x = Vi(1)", "y = Vj(1)"}}}) {
    INFO(formula);
    Program p = lowered(formula, aliases);
    Program r = reroll(p);
    CHECK(count(r, Prim::LoopSum) == 0);
    CHECK(r.code == p.code);
  }
}
