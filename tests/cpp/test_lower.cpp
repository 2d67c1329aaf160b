// Lowering: scalar code size (CSE, folding), levels, and values against hand-computed formulas.
#include <cmath>

#include "catch.hpp"
#include "core/errors.h"
#include "core/lower.h"
#include "core/parser.h"
#include "program_eval.h"

using namespace keops;

using test::lowered;

TEST_CASE("gaussian kernel lowers to a small program with the right levels") {
  Program p = lowered("Sum_Reduction(Exp(-SqDist(x,y))*b, 0)", {"x = Vi(3)", "y = Vj(3)", "b = Vj(1)"});
  CHECK(p.dim_out == 1);
  CHECK(p.args.size() == 3);
  int loads = 0, exps = 0;
  for (size_t id = 0; id < p.code.size(); ++id) {
    if (p.code[id].op == Prim::Load) {
      ++loads;
      CHECK(p.level[id] == (p.code[id].pos == 0 ? Level::Outer : Level::Inner));
    }
    exps += p.code[id].op == Prim::Exp;
  }
  CHECK(loads == 7);
  CHECK(exps == 1);
  CHECK(p.code.size() <= 20);
  CHECK(p.level[p.out[0]] == Level::Inner);
}

TEST_CASE("common subexpressions are computed once; constants fold") {
  Program p = lowered("Sum_Reduction(Exp(x)*Exp(x)+Exp(x) + IntCst(2)*IntCst(3), 0)", {"x = Vi(2)"});
  int exps = 0, consts = 0;
  for (auto& in : p.code) {
    exps += in.op == Prim::Exp;
    consts += in.op == Prim::Const;
  }
  CHECK(exps == 2);  // one per component
  CHECK(consts == 1);
}

TEST_CASE("lowered values match the formula's meaning") {
  Program p = lowered("Sum_Reduction(Pow(x, -3) + Rsqrt(y) * (x|y) - Inv(b) / Sqrt(b) + Abs(Sin(x) - Cos(y)) + Log(b), 1)",
                      {"x = Vi(2)", "y = Vj(2)", "b = Pm(1)"});
  std::vector<std::vector<double>> args = {{0.7, 1.3}, {0.4, 2.0}, {3.0}};
  auto v = test::eval_pair(p, args, 0, 0);
  REQUIRE(v.size() == 2);
  double sp = 0.7 * 0.4 + 1.3 * 2.0;
  double xs[2] = {0.7, 1.3}, ys[2] = {0.4, 2.0};
  for (int k = 0; k < 2; ++k) {
    double expect = std::pow(xs[k], -3) + sp / std::sqrt(ys[k]) - (1 / 3.0) / std::sqrt(3.0) +
                    std::fabs(std::sin(xs[k]) - std::cos(ys[k])) + std::log(3.0);
    CHECK(v[k] == Approx(expect).epsilon(1e-14));
  }
}

TEST_CASE("Rsqrt(0) is 0 as in KeOps; Pow(x, 0) is 1") {
  CHECK(test::eval_pair(lowered("Sum_Reduction(Rsqrt(x), 0)", {"x = Vi(1)"}), {{0.0}}, 0, 0)[0] == 0.0);
  CHECK(test::eval_pair(lowered("Sum_Reduction(Pow(x, 0), 0)", {"x = Vi(1)"}), {{0.0}}, 0, 0)[0] == 1.0);
}

TEST_CASE("autodiff operations resolve at construction, so they lower like any formula") {
  Program p = lowered("Sum_Reduction(Grad(Sum(x), x, y), 0)", {"x = Vi(4)", "y = Vj(1)"});
  CHECK(p.dim_out == 4);
  CHECK(p.canonical == "Sum_Reduction(SumT(Var(1,1,1),4),0)");
}
