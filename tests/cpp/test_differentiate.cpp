// Symbolic differentiation: every operation's derivative rule (driven by the operation table) against central
// finite differences, first and second order; Diff, Divergence, Laplacian, GradMatrix; linear operators;
// gradients of reductions (Grad_WithSavedForward / Diff_WithSavedForward) against finite differences of the
// whole reduction; graph sizes.
#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>

#include "catch.hpp"
#include "core/differentiate.h"
#include "core/errors.h"
#include "core/lower.h"
#include "core/op_table.h"
#include "core/parser.h"
#include "core/printer.h"
#include "program_eval.h"

using namespace keops;

namespace {

using Values = std::vector<std::vector<double>>;
constexpr double kStep = 1e-5;  // central differences: error ~ kStep^2 f'''
constexpr double kTol = 1e-5;   // relative to 1 + |reference|

std::mt19937_64& rng() {
  static std::mt19937_64 g(20240611);
  return g;
}
double uniform(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng()); }
// Components in +-[0.2, 0.9] (or [0.2, 0.9]): away from 0, inside Asin's domain, distinct.
std::vector<double> random_vec(size_t n, bool positive) {
  std::vector<double> v(n);
  for (double& x : v) x = uniform(0.2, 0.9) * (positive || uniform(0, 1) < 0.5 ? 1 : -1);
  return v;
}
bool all_finite(const std::vector<double>& v) {
  return std::all_of(v.begin(), v.end(), [](double x) { return std::isfinite(x); });
}

// A formula over variables at positions 0..n-1, lowered as Sum_Reduction(f, 0) and evaluated at one (i, j) pair.
Program compile(NodeRef f, const std::vector<NodeRef>& vars) {
  std::vector<ArgInfo> args;
  for (size_t k = 0; k < vars.size(); ++k) {
    REQUIRE(vars[k]->ints()[0] == (int64_t)k);
    args.push_back({(int)vars[k]->ints()[1], (int)vars[k]->ints()[2]});
  }
  Reduction r;
  r.info = find_reduction("Sum_Reduction");
  r.formula = f;
  return lower(r, args);
}
std::vector<double> value(const Program& p, const Values& x) { return test::eval_pair(p, x, 0, 0); }
std::vector<double> value(NodeRef f, const std::vector<NodeRef>& vars, const Values& x) {
  return value(compile(f, vars), x);
}

NodeRef append_var(std::vector<NodeRef>& vars, Values& x, int dim, int cat) {
  NodeRef v = var((int64_t)vars.size(), dim, cat);
  vars.push_back(v);
  x.push_back(random_vec(dim, false));
  return v;
}

// Central-difference Jacobian of f with respect to vars[q]: J[k][l] = d f_k / d v_l.
std::vector<std::vector<double>> fd_jacobian(NodeRef f, const std::vector<NodeRef>& vars, const Values& x, size_t q) {
  Program p = compile(f, vars);
  const int d = vars[q]->dim();
  std::vector<std::vector<double>> J(f->dim(), std::vector<double>(d));
  for (int l = 0; l < d; ++l) {
    Values xp = x, xm = x;
    xp[q][l] += kStep;
    xm[q][l] -= kStep;
    auto fp = value(p, xp), fm = value(p, xm);
    for (int k = 0; k < f->dim(); ++k) J[k][l] = (fp[k] - fm[k]) / (2 * kStep);
  }
  return J;
}

void check_close(const std::vector<double>& got, const std::vector<double>& want, const std::string& what) {
  REQUIRE(got.size() == want.size());
  double worst = 0;
  size_t where = 0;
  for (size_t k = 0; k < got.size(); ++k) {
    double err = std::fabs(got[k] - want[k]) / (1 + std::fabs(want[k]));
    if (!(err <= worst)) worst = err, where = k;  // NaN-aware: a NaN error is the worst
  }
  INFO(what << ": component " << where << " got " << got[where] << ", finite differences give " << want[where]);
  CHECK(worst <= kTol);
}

// Operations whose derivative rule throws NotSupported, with the reason the message must give.
const std::map<std::string, std::string> kNotDifferentiable = {
    {"GradSoftDTW_SqDist", "not differentiable"},
    {"SoftDTW_SqDist", "with respect to gamma"},
    {"BSpline", "with respect to the knots"},
};
void check_not_supported_is_listed(const NotSupported& e) {
  std::string msg = e.what();
  bool listed = false;
  for (auto& [op, reason] : kNotDifferentiable)
    listed = listed || (msg.find(op) != std::string::npos && msg.find(reason) != std::string::npos);
  INFO("NotSupported: " << msg);
  CHECK(listed);
}

// Grad(F, v, e) for each variable v of F against finite differences of <F, e>. Returns how many were checked.
int check_grad_only(NodeRef F, const std::vector<NodeRef>& vars, const Values& x, const std::string& label) {
  int checked = 0;
  for (size_t q = 0; q < vars.size(); ++q) {
    if (!depends_on(F, vars[q])) continue;
    try {
      auto J = fd_jacobian(F, vars, x, q);
      auto vars2 = vars;
      auto x2 = x;
      NodeRef e = append_var(vars2, x2, F->dim(), 0);
      NodeRef G = make("Grad", {F, vars[q], e});
      std::vector<double> want(vars[q]->dim(), 0.0);
      for (int k = 0; k < F->dim(); ++k)
        for (int l = 0; l < vars[q]->dim(); ++l) want[l] += J[k][l] * x2.back()[k];
      check_close(value(G, vars2, x2), want, label + ": Grad w.r.t. " + print(vars[q]) + " = " + print(G));
      ++checked;
    } catch (const NotSupported& ex) {
      check_not_supported_is_listed(ex);
    }
  }
  return checked;
}

// Every first-order form (Grad, Diff, GradMatrix, Divergence) for each variable, then second order:
// Grad of Grad(F, v, e) with respect to every variable (e included), and the Laplacian of a scalar F.
void check_formula(NodeRef F, const std::vector<NodeRef>& vars, Values x, const std::string& label) {
  INFO(label << " = " << print(F));
  // A point where F is finite: mixed signs first, then positive values (Log, Sqrt, Powf, ... domains).
  for (int attempt = 0; attempt < 2 && !all_finite(value(F, vars, x)); ++attempt)
    for (size_t k = 0; k < x.size(); ++k) x[k] = random_vec(x[k].size(), true);
  REQUIRE(all_finite(value(F, vars, x)));
  check_grad_only(F, vars, x, label);
  for (size_t q = 0; q < vars.size(); ++q) {
    NodeRef v = vars[q];
    if (!depends_on(F, v)) continue;
    const int n = v->dim(), m = F->dim();
    try {
      auto J = fd_jacobian(F, vars, x, q);
      {  // Diff(F, v, u) = J u
        auto vars2 = vars;
        auto x2 = x;
        NodeRef u = append_var(vars2, x2, n, (int)v->ints()[2]);
        std::vector<double> want(m, 0.0);
        for (int k = 0; k < m; ++k)
          for (int l = 0; l < n; ++l) want[k] += J[k][l] * x2.back()[l];
        check_close(value(make("Diff", {F, v, u}), vars2, x2), want, label + ": Diff w.r.t. " + print(v));
      }
      {  // GradMatrix: out[k * n + l] = J[k][l]
        std::vector<double> want;
        for (int k = 0; k < m; ++k) want.insert(want.end(), J[k].begin(), J[k].end());
        check_close(value(make("GradMatrix", {F, v}), vars, x), want, label + ": GradMatrix w.r.t. " + print(v));
      }
      if (m == n) {
        double tr = 0;
        for (int k = 0; k < n; ++k) tr += J[k][k];
        check_close(value(make("Divergence", {F, v}), vars, x), {tr}, label + ": Divergence w.r.t. " + print(v));
      }
      // Second order.
      auto vars2 = vars;
      auto x2 = x;
      NodeRef e = append_var(vars2, x2, m, 0);
      check_grad_only(make("Grad", {F, v, e}), vars2, x2, label + ": Grad of Grad w.r.t. " + print(v));
      if (m == 1) {
        NodeRef g1 = make("Grad", {F, v, int_cst(1)});
        auto H = fd_jacobian(g1, vars, x, q);
        double lap = 0;
        for (int k = 0; k < n; ++k) lap += H[k][k];
        check_close(value(make("Laplacian", {F, v}), vars, x), {lap}, label + ": Laplacian w.r.t. " + print(v));
      }
    } catch (const NotSupported& ex) {
      check_not_supported_is_listed(ex);
    }
  }
}

// Universal aliases for the hand-written formulas (positions 0..N-1, every one declared).
const std::vector<std::string> kAliasTexts = {
    "x = Vi(0,3)", "y = Vj(1,3)", "s = Pm(2,1)", "t = Vj(3,1)", "m = Vi(4,6)", "q = Pm(5,9)", "z = Vi(6,2)",
    "w = Vj(7,4)", "a = Vi(8,12)", "b = Vj(9,6)", "k = Vi(10,4)", "r = Pm(11,1)"};

void check_text(const std::string& text) {
  auto aliases = parse_aliases(kAliasTexts);
  std::vector<NodeRef> vars;
  Values x;
  for (const Alias& a : aliases) {
    vars.push_back(var(a.pos, a.dim, a.cat));
    x.push_back(random_vec(a.dim, false));
  }
  check_formula(parse_formula(text, aliases), vars, x, text);
}

// Operations that need particular arguments (lists, sorted knots, even dimensions, meaningful ranges).
const std::map<std::string, std::vector<std::string>> kRecipes = {
    {"TensorDot",
     {"TensorDot(m, y, [2,3], [3], [1], [0])", "TensorDot(a, b, [2,3,2], [3,2], [1,2], [0,1])",
      "TensorDot(m, b, [2,3], [3,2], [1], [0], [1,0])", "TensorDot(m, b, [2,3], [2,3], [0,1], [0,1])",
      "TensorDot(z, y, [2], [3], [], [], [1,0])", "TensorDot(a, k, [2,3,2], [2,2], [2], [1], [2,0,1])"}},
    {"Kron", {"Kron(k, b, [2,2], [2,3])", "Kron(z, y, [2], [3])"}},
    {"BSpline",  // knots -2, -1, -1, 0, 1, 1, 3 (one empty span)
     {"BSpline(Concat(Concat(Concat(Concat(Concat(Concat(IntCst(-2),IntCst(-1)),IntCst(-1)),IntCst(0)),IntCst(1)),IntCst(1)),IntCst(3)), t, 0)",
      "BSpline(Concat(Concat(Concat(Concat(Concat(Concat(IntCst(-2),IntCst(-1)),IntCst(-1)),IntCst(0)),IntCst(1)),IntCst(1)),IntCst(3)), t, 1)",
      "BSpline(Concat(Concat(Concat(Concat(Concat(Concat(IntCst(-2),IntCst(-1)),IntCst(-1)),IntCst(0)),IntCst(1)),IntCst(1)),IntCst(3)), t, 2)",
      "BSpline(Concat(Concat(Concat(Concat(Concat(Concat(IntCst(-2),IntCst(-1)),IntCst(-1)),IntCst(0)),IntCst(1)),IntCst(1)),IntCst(3)), t, 3)"}},
    {"SoftDTW_SqDist", {"SoftDTW_SqDist(x, k, r)", "SoftDTW_SqDist(t, y, r)"}},
    {"ClampInt", {"ClampInt(x, 0, 1)", "ClampInt(x, -1, 0)"}},
    {"ComplexSumT", {"ComplexSumT(z, 4)"}},
    {"MatVecMult", {"MatVecMult(m, y)", "MatVecMult(q, y)"}},
    {"VecMatMult", {"VecMatMult(y, m)"}},
    {"TensorProd", {"TensorProd(z, y)"}},
};

// Broadcasting variants and composite formulas, checked like the table's operations.
const std::vector<std::string> kExtraFormulas = {
    "x * s", "s * x", "x + t", "t - x", "x / t", "t / x", "Atan2(x, t)", "Powf(x, t)", "Powf(t, x)", "Clamp(x, s, t)",
    "Clamp(x, y, t)", "IfElse(t, x, y)", "IfElse(x, s, t)", "Mod(x, s, t)", "SqDist(x, t)", "SqDist(t, y)",
    "WeightedSqNorm(s, x)", "WeightedSqNorm(q, x)", "WeightedSqNorm(x, y)", "WeightedSqDist(q, x, y)",
    "WeightedSqDist(s, x, t)", "WeightedSqDist(y, x, t)", "SqNormDiag(s, x)", "SqNormIso(s, x)", "SymSqNorm(q, x)",
    "Concat(x, t)", "Extract(m, 1, 3)", "ExtractT(z, 1, 5)", "ElemT(t, 4, 2)", "SumT(t, 3)", "Elem(m, 4)",
    "ComplexMult(w, z)", "ComplexMult(z, w)", "ComplexAdd(w, z)", "ComplexSubtract(z, w)", "ComplexDivide(w, z)",
    "ComplexDivide(z, w)", "ComplexRealScal(w, s)", "ComplexRealScal(t, w)", "ComplexSum(w)", "ComplexExp(w)",
    "ComplexAbs(w)", "ComplexAngle(w)", "ComplexSquareAbs(w)", "ComplexExp1j(x)", "Conj(w)", "ComplexReal(w)",
    "ComplexImag(w)", "Real2Complex(x)", "Imag2Complex(x)", "ComplexMult(ComplexExp1j(z), Conj(w * t))",
    "Exp(-SqDist(x, y)) * t", "Norm2(x - y) * Sin((x | y))", "Log(Sum(Exp(x * y)))", "Max(x * y) + Min(x - y)",
    "Normalize(x + y * t)", "Sqrt(SqNorm2(x) + s) * Inv(t)", "Rsqrt(SqDist(x, y)) * XLogX(Abs(t))",
    "Pow(x, 3) * Pow(y, -2)", "Factorize(Exp(x) * Exp(x) + Exp(x), Exp(x))", "AutoFactorize(Cos(x) * Cos(x))",
    "SinXDivX(x * t)", "ReLU(x - y)", "Asin(x * s) + Acos(y * s) + Atan(x / t)", "MatVecMult(m, Exp(y)) * Sin(z)",
    "Grad(Exp(-SqDist(x, y)) * t, x, t)", "Diff(Sin(x) * Cos(y), x, y)", "Extract(GradMatrix(Sin(x * y), x), 2, 4)",
    "Divergence(Sin(x * y), y) * t", "Laplacian(Exp(-SqNorm2(x - y)) * t, x)",
};

// Builds op(vars...) for an operation of the table with generic arguments: the first combination of argument
// dimensions and integers that the operation accepts and does not simplify away.
std::optional<std::pair<NodeRef, std::vector<NodeRef>>> build_generic(const OpInfo& op) {
  int nf = 0, ni = 0;
  for (char c : op.signature) {
    if (c == '?') break;
    if (c == 'L') return std::nullopt;
    (c == 'F' ? nf : ni)++;
  }
  static const int dims[] = {3, 1, 2, 4, 9, 6};
  static const int64_t ints[] = {2, 1, 3, 0, 4};
  const int nd = 6, nint = 5;
  int total_d = 1, total_i = 1;
  for (int k = 0; k < nf; ++k) total_d *= nd;
  for (int k = 0; k < ni; ++k) total_i *= nint;
  for (int pass = 0; pass < 2; ++pass)  // equal dimensions first
    for (int cd = 0; cd < total_d; ++cd) {
      std::vector<NodeRef> vars;
      int c = cd;
      for (int k = 0; k < nf; ++k, c /= nd) vars.push_back(var(k, dims[c % nd], k % 3));
      bool equal = std::all_of(vars.begin(), vars.end(), [&](NodeRef v) { return v->dim() == vars[0]->dim(); });
      if (equal != (pass == 0)) continue;
      for (int ci = 0; ci < total_i; ++ci) {
        IntList is;
        int c2 = ci;
        for (int k = 0; k < ni; ++k, c2 /= nint) is.push_back(ints[c2 % nint]);
        try {
          NodeRef f = make(op, vars, is);
          if (&f->op() == &op) return std::make_pair(f, vars);
        } catch (const UserError&) {
        }
      }
    }
  return std::nullopt;
}

bool is_leaf(const OpInfo& op) { return op.signature.find('F') == std::string_view::npos; }
const std::set<std::string> kResolvedAtConstruction = {"Grad", "Diff", "Divergence", "Laplacian", "GradMatrix",
                                                       "TraceOperator", "AdjointOperator", "SumLinOperator"};

std::vector<Alias> aliases_of(std::initializer_list<std::string> texts) { return parse_aliases(std::vector<std::string>(texts)); }

}  // namespace

TEST_CASE("every operation has a derivative rule; autodiff forms resolve at construction") {
  for (const OpInfo& op : all_ops()) {
    INFO(op.name);
    CHECK(op.grad != nullptr);
    bool resolved = kResolvedAtConstruction.count(std::string(op.name)) > 0;
    CHECK(resolved == (op.lower == nullptr));  // everything else lowers
    if (resolved) CHECK(op.simplify != nullptr);
  }
  for (const std::string& op : kResolvedAtConstruction) CHECK(find_op(op) != nullptr);
}

TEST_CASE("derivative rules of every operation against finite differences (first and second order)") {
  std::set<std::string> covered;
  for (const OpInfo& op : all_ops()) {
    std::string name(op.name);
    if (is_leaf(op) || kResolvedAtConstruction.count(name)) continue;
    auto recipe = kRecipes.find(name);
    if (recipe != kRecipes.end()) {
      for (const std::string& text : recipe->second) {
        check_text(text);
        CHECK(parse_formula(text, parse_aliases(kAliasTexts))->is(name));
      }
      covered.insert(name);
      continue;
    }
    auto built = build_generic(op);
    if (!built) FAIL("operation " << name << ": no generic instance; add a recipe to kRecipes");
    auto [f, vars] = *built;
    Values x;
    for (NodeRef v : vars) x.push_back(random_vec(v->dim(), false));
    check_formula(f, vars, x, name);
    covered.insert(name);
  }
  for (const OpInfo& op : all_ops()) {
    std::string name(op.name);
    INFO(name);
    CHECK((is_leaf(op) || kResolvedAtConstruction.count(name) || covered.count(name)));
  }
}

TEST_CASE("broadcasting variants and composite formulas against finite differences") {
  for (const std::string& text : kExtraFormulas) check_text(text);
}

TEST_CASE("operations that are not differentiable say so, naming the operation") {
  auto a = aliases_of({"x = Vi(3)", "y = Vj(4)", "g = Pm(1)", "k = Pm(6)", "t = Vi(1)", "e = Vj(1)"});
  CHECK_THROWS_WITH(parse_formula("Grad(SoftDTW_SqDist(x, y, g), g, e)", a),
                    Catch::Contains("SoftDTW_SqDist") && Catch::Contains("gamma"));
  CHECK_THROWS_WITH(parse_formula("Grad(Sum(GradSoftDTW_SqDist(x, y, g)), x, e)", a),
                    Catch::Contains("GradSoftDTW_SqDist is not differentiable"));
  CHECK_THROWS_AS(parse_formula("Grad(Sum(BSpline(k, t, 2)), k, e)", a), NotSupported);
  // The derivative with respect to x of a B-spline with variable knots is fine.
  CHECK(parse_formula("Grad(Sum(BSpline(k, t, 2)), t, e)", a)->dim() == 1);
}

TEST_CASE("Grad: zero when v does not occur, conventions for an omitted gradient input or direction") {
  auto a = aliases_of({"x = Vi(3)", "y = Vj(3)", "p = Pm(2)", "e = Vi(1)"});
  CHECK(print(parse_formula("Grad(Exp(y), x, y)", a)) == "Zero(3)");
  // KeOps: gradin = Var(1 + largest position in the formula, formula dim, 1 - v.cat).
  CHECK(print(parse_formula("Grad(SqDist(x, y), x)", a)) == print(parse_formula("Grad(SqDist(x, y), x, Var(2,1,1))", a)));
  CHECK(print(parse_formula("Grad(SqDist(x, y), y)", a)) == print(parse_formula("Grad(SqDist(x, y), y, Var(2,1,0))", a)));
  CHECK_THROWS_WITH(parse_formula("Grad(Sum(p), p)", a), Catch::Contains("Grad") && Catch::Contains("parameter"));
  // Diff: u = Var(1 + largest position, v.dim, v.cat).
  CHECK(parse_formula("Diff(Sum(p * p), p)", a) == parse_formula("Diff(Sum(p * p), p, Var(3,2,2))", a));
  CHECK_THROWS_WITH(parse_formula("Grad(x, x, e)", a), Catch::Contains("gradient input has dimension 1, expected 3"));
  CHECK_THROWS_WITH(parse_formula("Diff(x, x, e)", a), Catch::Contains("direction has dimension"));
  CHECK_THROWS_WITH(parse_formula("Divergence(x, x + x)", a), Catch::Contains("Divergence"));
}

TEST_CASE("linear operators: adjoint, trace, sum of entries; linearity is checked") {
  auto a = aliases_of({"A = Pm(6)", "v = Vi(3)", "u = Vj(2)", "w = Vj(3)", "c = Vi(1)", "B = Pm(9)", "l = Vj(2)"});
  std::vector<NodeRef> vars;
  Values x;
  for (const Alias& al : a) {
    vars.push_back(var(al.pos, al.dim, al.cat));
    x.push_back(random_vec(al.dim, false));
  }
  auto val = [&](const std::string& f) { return value(parse_formula(f, a), vars, x); };
  const auto &A = x[0], &u = x[2], &w = x[3], &B = x[5], &l = x[6];
  const double c = x[4][0];
  // AdjointOperator(A v, v, u) = A^T u.
  std::vector<double> atu(3, 0.0);
  for (int r = 0; r < 2; ++r)
    for (int k = 0; k < 3; ++k) atu[k] += A[r * 3 + k] * u[r];
  check_close(val("AdjointOperator(MatVecMult(A, v), v, u)"), atu, "AdjointOperator");
  check_close(val("AdjointOperator(MatVecMult(A, v) * c - MatVecMult(A, v * c), v, u)"), {0, 0, 0}, "AdjointOperator of 0");
  CHECK_THROWS_WITH(val("AdjointOperator(Exp(v), v, w)"), Catch::Contains("AdjointOperator") && Catch::Contains("not linear"));
  CHECK_THROWS_WITH(val("AdjointOperator(v + c, v, w)"), Catch::Contains("not linear"));  // affine
  CHECK_THROWS_WITH(val("AdjointOperator(v * v, v, w)"), Catch::Contains("not linear"));
  CHECK_THROWS_WITH(val("AdjointOperator(c * c, v, c)"), Catch::Contains("not linear"));  // constant
  // TraceOperator(B v, v) = trace(B); with weights w: sum_k w_k B_kk; a factor c; a scalar formula.
  double tr = B[0] + B[4] + B[8], wtr = w[0] * B[0] + w[1] * B[4] + w[2] * B[8];
  check_close(val("TraceOperator(MatVecMult(B, v), v)"), {tr}, "TraceOperator");
  check_close(val("TraceOperator(MatVecMult(B, v), v, w)"), {wtr}, "weighted TraceOperator");
  check_close(val("TraceOperator(MatVecMult(B, v), v, c)"), {c * tr}, "scaled TraceOperator");
  check_close(val("TraceOperator((w | v), v)"), {w[0] + w[1] + w[2]}, "TraceOperator of a scalar");
  CHECK_THROWS_WITH(val("TraceOperator(Sin(v), v)"), Catch::Contains("TraceOperator") && Catch::Contains("not linear"));
  // SumLinOperator(A v, v, wl, wr) = sum_kl wl_k A_kl wr_l.
  double sum = 0, wsum = 0;
  for (int r = 0; r < 2; ++r)
    for (int k = 0; k < 3; ++k) sum += A[r * 3 + k], wsum += l[r] * A[r * 3 + k] * w[k];
  check_close(val("SumLinOperator(MatVecMult(A, v), v)"), {sum}, "SumLinOperator");
  check_close(val("SumLinOperator(MatVecMult(A, v), v, l, w)"), {wsum}, "weighted SumLinOperator");
  check_close(val("SumLinOperator(MatVecMult(A, v), v, c, c)"), {c * c * sum}, "scaled SumLinOperator");
  // GradMatrix layout: out[k * v.dim + l] = d f_k / d v_l, so GradMatrix(A v, v) = A (row-major).
  check_close(val("GradMatrix(MatVecMult(A, v), v)"), A, "GradMatrix layout");
  // Nothing of the autodiff forms survives construction.
  NodeRef f = parse_formula("Laplacian(Exp(-SqDist(v, w)), v) + TraceOperator(MatVecMult(B, v), v)", a);
  std::set<NodeRef> seen;
  std::function<void(NodeRef)> visit = [&](NodeRef n) {
    if (!seen.insert(n).second) return;
    CHECK(kResolvedAtConstruction.count(std::string(n->op().name)) == 0);
    for (NodeRef arg : n->args()) visit(arg);
  };
  visit(f);
}

TEST_CASE("gradient graphs stay linear in the size of the formula") {
  auto a = aliases_of({"x = Vi(3)", "y = Vj(3)", "b = Vj(1)", "e = Vi(1)", "e2 = Vi(3)", "e3 = Vj(3)"});
  NodeRef F = parse_formula("Exp(-SqDist(x, y)) * b", a);
  NodeRef G = parse_formula("Grad(Exp(-SqDist(x, y)) * b, x, e)", a);
  NodeRef GG = make("Grad", {G, var(0, 3, 0), var(4, 3, 0)});
  NodeRef GGy = make("Grad", {G, var(1, 3, 1), var(5, 3, 1)});
  INFO("F " << dag_size(F) << ", Grad " << dag_size(G) << ", Grad of Grad (x) " << dag_size(GG) << ", (y) " << dag_size(GGy));
  CHECK(dag_size(F) == 7);
  CHECK(dag_size(G) <= 2 * dag_size(F) + 2);
  CHECK(dag_size(GG) <= 4 * dag_size(F));
  // A deep DAG with sharing (exponential as a tree): f_{k+1} = f_k * Sin(f_k) + f_k.
  auto x = var(0, 3, 0), e = var(3, 3, 0);
  NodeRef f = x;
  std::vector<size_t> ratio;
  for (int depth = 1; depth <= 40; ++depth) {
    f = make("Add", {make("Mult", {f, make("Sin", {f})}), f});
    if (depth % 10 == 0) {
      size_t n = dag_size(f), g = dag_size(make("Grad", {f, x, e}));
      INFO("depth " << depth << ": formula " << n << " nodes, gradient " << g);
      CHECK(g <= 4 * n);
    }
  }
}

// ---- gradients of reductions ------------------------------------------------------------------------

namespace {

constexpr int NX = 4, NY = 5;

struct RedSetup {
  std::vector<Alias> aliases;
  Values data;  // per position: rows x dim
  int rows(int pos) const { return aliases[pos].cat == 2 ? 1 : aliases[pos].cat == 0 ? NX : NY; }
};
RedSetup setup(std::initializer_list<std::string> texts) {
  RedSetup s{aliases_of(texts), {}};
  for (const Alias& a : s.aliases) s.data.push_back(random_vec((size_t)s.rows(a.pos) * a.dim, false));
  return s;
}
Program lowered(const std::string& red, const std::vector<Alias>& a) {
  Reduction r = parse_reduction(red, a);
  return lower(r, argument_table(r, a));
}
// F (a formula over the aliases) at every pair: vals[i][j] = F(x_i, y_j).
std::vector<std::vector<std::vector<double>>> pairs(const std::string& F, const RedSetup& s, const Values& data) {
  Program p = lowered("Sum_Reduction(" + F + ", 0)", s.aliases);
  std::vector<std::vector<std::vector<double>>> v(NX, std::vector<std::vector<double>>(NY));
  for (int i = 0; i < NX; ++i)
    for (int j = 0; j < NY; ++j) v[i][j] = test::eval_pair(p, data, i, j);
  return v;
}

// Checks the reduction `grad_red` (a Grad_WithSavedForward form, evaluated by eval_sum: rows indexed like the
// variable at position `pos`, summed over i for a parameter) against central differences of `loss`.
void check_reduction_gradient(const std::string& grad_red, const RedSetup& s, int pos,
                              const std::function<double(const Values&)>& loss) {
  INFO(grad_red);
  Program g = lowered(grad_red, s.aliases);
  const Alias& v = s.aliases[pos];
  CHECK(g.tag == v.cat % 2);
  auto out = test::eval_sum(g, s.data, NX, NY);
  std::vector<double> got(s.data[pos].size(), 0.0);
  for (size_t k = 0; k < out.size(); ++k) got[k % got.size()] += out[k];  // parameters: summed over i
  std::vector<double> want(got.size());
  for (size_t k = 0; k < got.size(); ++k) {
    Values p = s.data, m = s.data;
    p[pos][k] += kStep;
    m[pos][k] -= kStep;
    want[k] = (loss(p) - loss(m)) / (2 * kStep);
  }
  check_close(got, want, "gradient w.r.t. " + v.name);
}

}  // namespace

TEST_CASE("Grad_WithSavedForward of Sum_Reduction, for i, j and parameter variables, and second order") {
  RedSetup s = setup({"x = Vi(0,3)", "y = Vj(1,3)", "b = Vj(2,2)", "p = Pm(3,1)", "g = Vi(4,2)", "f0 = Vi(5,2)",
                      "g2 = Vi(6,3)", "f02 = Vi(7,3)", "h = Vj(8,2)", "h0 = Vj(9,2)"});
  const std::string F = "Exp(-SqDist(x, y) * p) * b", red = "Sum_Reduction(" + F + ", 0)";
  Program fwd = lowered(red, s.aliases);
  auto loss = [&](const Values& d) {
    auto out = test::eval_sum(fwd, d, NX, NY);
    double L = 0;
    for (size_t k = 0; k < out.size(); ++k) L += out[k] * s.data[4][k];
    return L;
  };
  for (auto [name, pos] : {std::pair{"x", 0}, {"y", 1}, {"b", 2}, {"p", 3}})
    check_reduction_gradient("Grad_WithSavedForward(" + red + ", " + name + ", g, f0)", s, pos, loss);
  // tag 1: output indexed by j; its gradient input is indexed by j too.
  const std::string red1 = "Sum_Reduction(" + F + ", 1)";
  Program fwd1 = lowered(red1, s.aliases);
  auto loss1 = [&](const Values& d) {
    auto out = test::eval_sum(fwd1, d, NX, NY);
    double L = 0;
    for (size_t k = 0; k < out.size(); ++k) L += out[k] * s.data[8][k];
    return L;
  };
  for (auto [name, pos] : {std::pair{"x", 0}, {"y", 1}, {"p", 3}})
    check_reduction_gradient("Grad_WithSavedForward(" + red1 + ", " + name + ", h, h0)", s, pos, loss1);
  // Second order: the gradient w.r.t. y of <g2, gradient w.r.t. x>.
  const std::string gx = "Grad_WithSavedForward(" + red + ", x, g, f0)";
  Program first = lowered(gx, s.aliases);
  auto loss2 = [&](const Values& d) {
    auto out = test::eval_sum(first, d, NX, NY);
    double L = 0;
    for (size_t k = 0; k < out.size(); ++k) L += out[k] * s.data[6][k];
    return L;
  };
  check_reduction_gradient("Grad_WithSavedForward(" + gx + ", y, g2, f02)", s, 1, loss2);
  check_reduction_gradient("Grad_WithSavedForward(" + gx + ", x, g2, f02)", s, 0, loss2);
}

TEST_CASE("Diff_WithSavedForward of Sum_Reduction: forward differential of the whole reduction") {
  RedSetup s = setup({"x = Vi(0,3)", "y = Vj(1,3)", "b = Vj(2,2)", "f0 = Vi(3,2)", "u = Vi(4,3)", "uy = Vj(5,3)"});
  const std::string red = "Sum_Reduction(Exp(-SqDist(x, y)) * b, 0)";
  Program fwd = lowered(red, s.aliases);
  for (auto [name, dir, pos, upos] : {std::tuple{"x", "u", 0, 4}, {"y", "uy", 1, 5}}) {
    Program d = lowered(std::string("Diff_WithSavedForward(") + red + ", " + name + ", " + dir + ", f0)", s.aliases);
    CHECK(d.tag == 0);
    auto got = test::eval_sum(d, s.data, NX, NY);
    Values p = s.data, m = s.data;
    for (size_t k = 0; k < p[pos].size(); ++k) p[pos][k] += kStep * s.data[upos][k], m[pos][k] -= kStep * s.data[upos][k];
    auto fp = test::eval_sum(fwd, p, NX, NY), fm = test::eval_sum(fwd, m, NX, NY);
    std::vector<double> want(got.size());
    for (size_t k = 0; k < want.size(); ++k) want[k] = (fp[k] - fm[k]) / (2 * kStep);
    check_close(got, want, std::string("Diff w.r.t. ") + name);
  }
}

TEST_CASE("Max_SumShiftExpWeight gradients: LogSumExp and SoftMax through the saved [m, s]") {
  // out_i = [m_i, s_i], m = max_j F, s = sum_j exp(F - m) G. The bindings use L = m + log s (LogSumExp) or
  // s[1:] / s[0] (SumSoftMaxWeight, G = Concat(1, V)); the gradient input is [anything, dL/ds].
  RedSetup s = setup({"x = Vi(0,3)", "y = Vj(1,3)", "b = Vj(2,1)", "p = Pm(3,1)", "g = Vi(4,2)", "f0 = Vi(5,2)",
                      "V = Vj(6,2)", "gw = Vi(7,4)", "fw = Vi(8,4)", "u = Vi(9,3)"});
  const std::string F = "-SqDist(x, y) * p + b", G = "Concat(IntCst(1), V * b)";
  auto forward = [&](const Values& d, bool weighted) {  // per i: [m, s...]
    auto f = pairs(F, s, d);
    auto w = pairs(weighted ? G : "IntCst(1)", s, d);
    std::vector<std::vector<double>> out(NX);
    for (int i = 0; i < NX; ++i) {
      double m = -INFINITY;
      for (int j = 0; j < NY; ++j) m = std::max(m, f[i][j][0]);
      std::vector<double> acc(w[i][0].size(), 0.0);
      for (int j = 0; j < NY; ++j)
        for (size_t c = 0; c < acc.size(); ++c) acc[c] += std::exp(f[i][j][0] - m) * w[i][j][c];
      out[i] = {m};
      out[i].insert(out[i].end(), acc.begin(), acc.end());
    }
    return out;
  };
  // LogSumExp: L = sum_i gl_i (m_i + log s_i); gradin = [gl, gl / s].
  {
    auto out = forward(s.data, false);
    for (int i = 0; i < NX; ++i) {
      s.data[5][2 * i] = out[i][0], s.data[5][2 * i + 1] = out[i][1];
      s.data[4][2 * i + 1] = s.data[4][2 * i] / out[i][1];
    }
    auto loss = [&](const Values& d) {
      auto o = forward(d, false);
      double L = 0;
      for (int i = 0; i < NX; ++i) L += s.data[4][2 * i] * (o[i][0] + std::log(o[i][1]));
      return L;
    };
    const std::string red = "Max_SumShiftExp_Reduction(" + F + ", 0)";
    for (auto [name, pos] : {std::pair{"x", 0}, {"y", 1}, {"b", 2}, {"p", 3}})
      check_reduction_gradient("Grad_WithSavedForward(" + red + ", " + name + ", g, f0)", s, pos, loss);
    // Forward: the tangent is [0, ds with m fixed], and d(m + log s) = ds / s.
    Program d = lowered("Diff_WithSavedForward(" + red + ", x, u, f0)", s.aliases);
    auto t = test::eval_sum(d, s.data, NX, NY);
    Values p = s.data, m = s.data;
    for (size_t k = 0; k < p[0].size(); ++k) p[0][k] += kStep * s.data[9][k], m[0][k] -= kStep * s.data[9][k];
    auto op = forward(p, false), om = forward(m, false);
    std::vector<double> got, want;
    for (int i = 0; i < NX; ++i) {
      CHECK(t[2 * i] == 0.0);
      got.push_back(t[2 * i + 1] / out[i][1]);
      want.push_back((op[i][0] + std::log(op[i][1]) - om[i][0] - std::log(om[i][1])) / (2 * kStep));
    }
    check_close(got, want, "Diff of LogSumExp");
  }
  // SoftMax weights: L = sum_i <go_i, s_i[1:] / s_i[0]>; dL/ds0 = -<go, s[1:]> / s0^2, dL/ds[1:] = go / s0.
  {
    std::vector<double> go = random_vec(NX * 2, false);
    auto out = forward(s.data, true);
    for (int i = 0; i < NX; ++i) {
      double s0 = out[i][1], dot = go[2 * i] * out[i][2] + go[2 * i + 1] * out[i][3];
      for (int c = 0; c < 4; ++c) s.data[8][4 * i + c] = out[i][c];
      s.data[7][4 * i] = 0;
      s.data[7][4 * i + 1] = -dot / (s0 * s0);
      s.data[7][4 * i + 2] = go[2 * i] / s0;
      s.data[7][4 * i + 3] = go[2 * i + 1] / s0;
    }
    auto loss = [&](const Values& d) {
      auto o = forward(d, true);
      double L = 0;
      for (int i = 0; i < NX; ++i) L += (go[2 * i] * o[i][2] + go[2 * i + 1] * o[i][3]) / o[i][1];
      return L;
    };
    const std::string red = "Max_SumShiftExpWeight_Reduction(" + F + ", 0, " + G + ")";
    for (auto [name, pos] : {std::pair{"x", 0}, {"y", 1}, {"b", 2}, {"p", 3}, {"V", 6}})
      check_reduction_gradient("Grad_WithSavedForward(" + red + ", " + name + ", gw, fw)", s, pos, loss);
  }
}

TEST_CASE("gradients through Min/Max/KMin selections (beyond KeOps); Arg reductions give zero") {
  RedSetup s = setup({"x = Vi(0,3)", "y = Vj(1,3)", "p = Pm(2,1)", "g = Vi(3,2)", "f0 = Vi(4,2)", "gr = Vi(5,4)",
                      "fr = Vi(6,4)", "gk = Vi(7,8)", "fk = Vi(8,8)", "u = Vi(9,3)", "gj = Vj(10,2)", "fj = Vj(11,2)"});
  const std::string F = "Concat(SqDist(x, y) * p, (x | y))";
  // Selected (value, index) pairs per (output row, component): the K best, ties to the smaller index.
  auto kmin = [&](const Values& d, int K, bool largest, int tag) {
    auto v = pairs(F, s, d);
    int rows = tag == 0 ? NX : NY, red = tag == 0 ? NY : NX;
    std::vector<std::vector<std::vector<std::pair<double, int>>>> out(rows, std::vector<std::vector<std::pair<double, int>>>(2));
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < 2; ++c) {
        std::vector<std::pair<double, int>> col;
        for (int t = 0; t < red; ++t) col.push_back({tag == 0 ? v[r][t][c] : v[t][r][c], t});
        std::stable_sort(col.begin(), col.end(), [&](auto a, auto b) { return largest ? a.first > b.first : a.first < b.first; });
        out[r][c].assign(col.begin(), col.begin() + K);
      }
    return out;
  };
  std::vector<double> gv = random_vec(NX * 4, false);
  auto loss_for = [&](int K, bool largest, int tag) {
    return [=, &s](const Values& d) {
      auto o = kmin(d, K, largest, tag);
      double L = 0;
      for (size_t r = 0; r < o.size(); ++r)
        for (int k = 0; k < K; ++k)
          for (int c = 0; c < 2; ++c) L += gv[(r * K + k) * 2 % gv.size() + c] * o[r][c][k].first;
      return L;
    };
  };
  // gradin and f0 in (K[, 2], D) layout; raw: each slot's values then their indices (gradin's index slots ignored)
  auto fill = [&](int gpos, int fpos, int K, bool largest, int tag, bool raw) {
    auto o = kmin(s.data, K, largest, tag);
    int stride = raw ? 4 : 2, width = K * stride;
    for (size_t r = 0; r < o.size(); ++r)
      for (int k = 0; k < K; ++k)
        for (int c = 0; c < 2; ++c) {
          s.data[fpos][r * width + k * stride + c] = o[r][c][k].first;
          s.data[gpos][r * width + k * stride + c] = gv[(r * K + k) * 2 % gv.size() + c];
          if (raw) s.data[fpos][r * width + k * stride + 2 + c] = o[r][c][k].second, s.data[gpos][r * width + k * stride + 2 + c] = 3;
        }
  };
  fill(3, 4, 1, false, 0, false);
  for (auto [name, pos] : {std::pair{"x", 0}, {"y", 1}, {"p", 2}})
    check_reduction_gradient("Grad_WithSavedForward(Min_Reduction(" + F + ", 0), " + name + ", g, f0)", s, pos,
                             loss_for(1, false, 0));
  fill(10, 11, 1, true, 1, false);
  auto lossj = [&](const Values& d) {
    auto o = kmin(d, 1, true, 1);
    double L = 0;
    for (int r = 0; r < NY; ++r)
      for (int c = 0; c < 2; ++c) L += s.data[10][r * 2 + c] * o[r][c][0].first;
    return L;
  };
  for (auto [name, pos] : {std::pair{"x", 0}, {"y", 1}})
    check_reduction_gradient("Grad_WithSavedForward(Max_Reduction(" + F + ", 1), " + name + ", gj, fj)", s, pos, lossj);
  fill(5, 6, 1, true, 0, true);  // raw [values, indices]
  for (auto [name, pos] : {std::pair{"x", 0}, {"y", 1}})
    check_reduction_gradient("Grad_WithSavedForward(Max_ArgMax_Reduction(" + F + ", 0), " + name + ", gr, fr)", s, pos,
                             loss_for(1, true, 0));
  fill(3, 4, 1, false, 0, false);  // values only
  check_reduction_gradient("Grad_WithSavedForward(Min_ArgMin_Reduction(" + F + ", 0), x, g, f0)", s, 0, loss_for(1, false, 0));
  fill(5, 6, 2, false, 0, false);  // KMin: (K, D)
  for (auto [name, pos] : {std::pair{"x", 0}, {"y", 1}})
    check_reduction_gradient("Grad_WithSavedForward(KMin_Reduction(" + F + ", 2, 0), " + name + ", gr, fr)", s, pos,
                             loss_for(2, false, 0));
  fill(7, 8, 2, false, 0, true);  // KMin_ArgKMin raw: (K, 2, D)
  check_reduction_gradient("Grad_WithSavedForward(KMin_ArgKMin_Reduction(" + F + ", 2, 0), y, gk, fk)", s, 1,
                           loss_for(2, false, 0));
  // Forward differential of KMin_ArgKMin in the raw layout: value tangents, index slots 0.
  Program d = lowered("Diff_WithSavedForward(KMin_ArgKMin_Reduction(" + F + ", 2, 0), x, u, fk)", s.aliases);
  auto t = test::eval_sum(d, s.data, NX, NY);
  Values p = s.data, m = s.data;
  for (size_t k = 0; k < p[0].size(); ++k) p[0][k] += kStep * s.data[9][k], m[0][k] -= kStep * s.data[9][k];
  auto op = kmin(p, 2, false, 0), om = kmin(m, 2, false, 0);
  std::vector<double> want(t.size(), 0.0);
  for (int r = 0; r < NX; ++r)
    for (int k = 0; k < 2; ++k)
      for (int c = 0; c < 2; ++c) want[r * 8 + k * 4 + c] = (op[r][c][k].first - om[r][c][k].first) / (2 * kStep);
  check_close(t, want, "Diff of KMin_ArgKMin");
  // Arg reductions: zero gradients, indexed like the variable.
  Reduction z = parse_reduction("Grad_WithSavedForward(ArgKMin_Reduction(" + F + ", 2, 0), y, gr, fr)", s.aliases);
  CHECK((z.info->kind == ReductionKind::Zero && z.zero_dim == 3 && z.tag == 1));
  Reduction zd = parse_reduction("Diff_WithSavedForward(ArgMin_Reduction(" + F + ", 0), x, u, f0)", s.aliases);
  CHECK((zd.info->kind == ReductionKind::Zero && zd.dim_out() == 2 && zd.tag == 0));
}

TEST_CASE("Grad_WithSavedForward and Diff_WithSavedForward report their mistakes") {
  auto a = aliases_of({"x = Vi(3)", "y = Vj(3)", "g = Vi(1)", "f0 = Vi(1)", "g3 = Vi(3)"});
  CHECK_THROWS_WITH(parse_reduction("Grad_WithSavedForward(x, x, g, f0)", a), Catch::Contains("must be a reduction"));
  CHECK_THROWS_WITH(parse_reduction("Grad_WithSavedForward(Sum_Reduction(SqDist(x,y),0), x, g)", a),
                    Catch::Contains("expected arguments"));
  CHECK_THROWS_WITH(parse_reduction("Grad_WithSavedForward(Sum_Reduction(SqDist(x,y),0), x, g3, f0)", a),
                    Catch::Contains("gradient input has dimension 3, expected 1"));
  CHECK_THROWS_WITH(parse_reduction("Grad_WithSavedForward(Min_Reduction(SqDist(x,y),0), x, g, g3)", a),
                    Catch::Contains("saved forward output has dimension 3"));
  CHECK_THROWS_WITH(parse_reduction("Diff_WithSavedForward(Sum_Reduction(SqDist(x,y),0), x, g, f0)", a),
                    Catch::Contains("direction has dimension 1, expected 3"));
  CHECK_THROWS_WITH(parse_formula("Grad_WithSavedForward", a), Catch::Contains("needs arguments"));
  // The result prints as an ordinary reduction, which parses back to itself.
  Reduction r = parse_reduction("Grad_WithSavedForward(Sum_Reduction(Exp(-SqDist(x,y)),0), y, g, f0)", a);
  CHECK(r.tag == 1);
  CHECK(parse_reduction(print(r), a).formula == r.formula);
}

TEST_CASE("ties in Min/KMin gradients: the gradient goes to the selected index only (with the saved indices)") {
  // One row x = 0 against y = (1, 1, 3): the K = 2 smallest of (x - y)^2 tie (1 at j = 0 and j = 1).
  const auto a = parse_aliases({"x = Vi(0,1)", "y = Vj(1,1)", "g = Vi(2,4)", "f = Vi(3,4)", "h = Vi(4,2)", "v = Vi(5,2)"});
  const std::vector<std::vector<double>> data = {{0}, {1, 1, 3}, {10, 0, 100, 0}, {1, 0, 1, 1}, {10, 100}, {1, 1}};
  // d/dy_j of (x - y_j)^2 is 2 (y_j - x) = 2 at j = 0, 1.
  SECTION("raw saved output (values and indices): slot 0's gradient to j = 0, slot 1's to j = 1") {
    Program p = lowered("Grad_WithSavedForward(KMin_ArgKMin_Reduction(Square(x - y), 2, 0), y, g, f)", a);
    CHECK(test::eval_sum(p, data, 1, 3) == std::vector<double>{20, 200, 0});
  }
  SECTION("Min_ArgMin: the first of the tied indices") {
    const std::vector<std::vector<double>> d1 = {{0}, {1, 1, 3}, {10, 0}, {1, 0}};
    const auto a1 = parse_aliases({"x = Vi(0,1)", "y = Vj(1,1)", "g = Vi(2,2)", "f = Vi(3,2)"});
    Program p = lowered("Grad_WithSavedForward(Min_ArgMin_Reduction(Square(x - y), 0), y, g, f)", a1);
    CHECK(test::eval_sum(p, d1, 1, 3) == std::vector<double>{20, 0, 0});
  }
  SECTION("values only: equal candidates cannot be told apart, each gets the slots of its value") {
    Program p = lowered("Grad_WithSavedForward(KMin_Reduction(Square(x - y), 2, 0), y, h, v)", a);
    CHECK(test::eval_sum(p, data, 1, 3) == std::vector<double>{220, 220, 0});
  }
}
