// Every KeOps operation: one entry each with its signature, dimension rule, rewrite and lowering.
#include "op_table.h"

#include <algorithm>
#include <optional>
#include <string>
#include <unordered_map>

#include "errors.h"
#include "lower.h"

namespace keops {

namespace {

using std::string;

string op_name(const NodeKey& k) { return string(k.op->name); }
int dim_of(const NodeKey& k, size_t a) { return k.args[a]->dim(); }

[[noreturn]] void dim_error(const NodeKey& k, const string& what) { throw UserError(op_name(k) + ": " + what); }

std::optional<int64_t> int_value(NodeRef n) {
  if (n->is("IntCst")) return n->ints()[0];
  return std::nullopt;
}
bool is_zero(NodeRef n) { return n->is("Zero"); }

// ---- dimension rules ------------------------------------------------------------------------------

// Element-wise: formula arguments of equal dims, or dim 1 broadcast; the result has the largest.
int dim_vect(const NodeKey& k) {
  int d = 1;
  for (NodeRef a : k.args) {
    if (a->dim() != 1 && d != 1 && a->dim() != d)
      dim_error(k, "dimensions " + std::to_string(d) + " and " + std::to_string(a->dim()) +
                       " are incompatible (they must be equal, or one of them 1)");
    d = std::max(d, a->dim());
  }
  return d;
}
int dim_first(const NodeKey& k) { return dim_of(k, 0); }
int dim_one(const NodeKey&) { return 1; }

void require_scalar(const NodeKey& k, size_t a, const char* what) {
  if (dim_of(k, a) != 1)
    dim_error(k, string(what) + " must have dimension 1, got " + std::to_string(dim_of(k, a)));
}
void require_equal(const NodeKey& k) {
  if (dim_of(k, 0) != dim_of(k, 1))
    dim_error(k, "both arguments must have the same dimension, got " + std::to_string(dim_of(k, 0)) + " and " +
                     std::to_string(dim_of(k, 1)));
}
void require_positive(const NodeKey& k, int64_t v, const char* what) {
  if (v <= 0) dim_error(k, string(what) + " must be positive, got " + std::to_string(v));
}

int dim_var(const NodeKey& k) {
  if (k.ints[0] < 0) dim_error(k, "position must be >= 0, got " + std::to_string(k.ints[0]));
  require_positive(k, k.ints[1], "dimension");
  if (k.ints[2] < 0 || k.ints[2] > 2) dim_error(k, "category must be 0 (i), 1 (j) or 2 (parameter), got " + std::to_string(k.ints[2]));
  return static_cast<int>(k.ints[1]);
}
int dim_zero(const NodeKey& k) {
  require_positive(k, k.ints[0], "dimension");
  return static_cast<int>(k.ints[0]);
}
int dim_ratcst(const NodeKey& k) {
  if (k.ints[1] == 0) dim_error(k, "denominator is zero");
  return 1;
}
int dim_intinv(const NodeKey& k) {
  if (k.ints[0] == 0) dim_error(k, "IntInv(0) is a division by zero");
  return 1;
}
int dim_equal_to_one(const NodeKey& k) { require_equal(k); return 1; }
int dim_elem(const NodeKey& k) {
  int64_t m = k.ints[0];
  if (m < 0 || m >= dim_of(k, 0))
    dim_error(k, "index " + std::to_string(m) + " is out of range for dimension " + std::to_string(dim_of(k, 0)));
  return 1;
}
int dim_elemt(const NodeKey& k) {
  require_scalar(k, 0, "the argument");
  require_positive(k, k.ints[0], "dimension");
  if (k.ints[1] < 0 || k.ints[1] >= k.ints[0])
    dim_error(k, "index " + std::to_string(k.ints[1]) + " is out of range for dimension " + std::to_string(k.ints[0]));
  return static_cast<int>(k.ints[0]);
}
int dim_extract(const NodeKey& k) {
  int64_t s = k.ints[0], d = k.ints[1];
  require_positive(k, d, "length");
  if (s < 0 || s + d > dim_of(k, 0))
    dim_error(k, "range [" + std::to_string(s) + ", " + std::to_string(s + d) + ") is out of bounds for dimension " +
                     std::to_string(dim_of(k, 0)));
  return static_cast<int>(d);
}
int dim_extractt(const NodeKey& k) {
  int64_t s = k.ints[0], D = k.ints[1];
  if (s < 0 || s + dim_of(k, 0) > D)
    dim_error(k, "placing dimension " + std::to_string(dim_of(k, 0)) + " at " + std::to_string(s) +
                     " does not fit in dimension " + std::to_string(D));
  return static_cast<int>(D);
}
int dim_sumt(const NodeKey& k) {
  require_scalar(k, 0, "the argument");
  require_positive(k, k.ints[0], "dimension");
  return static_cast<int>(k.ints[0]);
}
int dim_concat(const NodeKey& k) { return dim_of(k, 0) + dim_of(k, 1); }
int dim_onehot(const NodeKey& k) {
  require_scalar(k, 0, "the argument");
  require_positive(k, k.ints[0], "dimension");
  return static_cast<int>(k.ints[0]);
}
int dim_product(const NodeKey& k) { return dim_of(k, 0) * dim_of(k, 1); }
int dim_matvec(const NodeKey& k) {  // MatVecMult(A, b) and VecMatMult(b, A): the larger is the matrix
  int big = std::max(dim_of(k, 0), dim_of(k, 1)), small = std::min(dim_of(k, 0), dim_of(k, 1));
  bool ok = k.op->name == "MatVecMult" ? dim_of(k, 0) % dim_of(k, 1) == 0 : dim_of(k, 1) % dim_of(k, 0) == 0;
  if (!ok) dim_error(k, "matrix dimension " + std::to_string(big) + " is not a multiple of vector dimension " + std::to_string(small));
  return k.op->name == "MatVecMult" ? dim_of(k, 0) / dim_of(k, 1) : dim_of(k, 1) / dim_of(k, 0);
}
int dim_sqnorm_weighted(const NodeKey& k) {  // (s, f): s of dim 1, n or n^2 depending on the operation
  int s = dim_of(k, 0), n = dim_of(k, 1);
  std::string_view op = k.op->name;
  bool ok = op == "SqNormIso" ? s == 1 : op == "SqNormDiag" ? (s == 1 || s == n) : op == "SymSqNorm" ? s == n * n
            : (s == 1 || s == n || s == n * n);
  if (!ok) dim_error(k, "weight dimension " + std::to_string(s) + " does not match vector dimension " + std::to_string(n));
  return 1;
}
int dim_weighted_sqdist(const NodeKey& k) {
  int s = dim_of(k, 0), n = std::max(dim_of(k, 1), dim_of(k, 2));
  if (dim_of(k, 1) != dim_of(k, 2) && dim_of(k, 1) != 1 && dim_of(k, 2) != 1)
    dim_error(k, "point dimensions " + std::to_string(dim_of(k, 1)) + " and " + std::to_string(dim_of(k, 2)) + " differ");
  if (!(s == 1 || s == n || s == n * n))
    dim_error(k, "weight dimension " + std::to_string(s) + " does not match vector dimension " + std::to_string(n));
  return 1;
}
int64_t product(const IntList& l) {
  int64_t p = 1;
  for (int64_t v : l) p *= v;
  return p;
}
int dim_tensordot(const NodeKey& k) {
  const IntList &da = k.lists[0], &db = k.lists[1], &ca = k.lists[2], &cb = k.lists[3];
  if (product(da) != dim_of(k, 0)) dim_error(k, "first dimension list does not multiply to " + std::to_string(dim_of(k, 0)));
  if (product(db) != dim_of(k, 1)) dim_error(k, "second dimension list does not multiply to " + std::to_string(dim_of(k, 1)));
  if (ca.size() != cb.size()) dim_error(k, "contraction lists have different lengths");
  int64_t contracted = 1;
  for (size_t t = 0; t < ca.size(); ++t) {
    if (ca[t] < 0 || ca[t] >= (int64_t)da.size() || cb[t] < 0 || cb[t] >= (int64_t)db.size())
      dim_error(k, "contraction axis out of range");
    if (da[ca[t]] != db[cb[t]])
      dim_error(k, "contracted axes have sizes " + std::to_string(da[ca[t]]) + " and " + std::to_string(db[cb[t]]));
    contracted *= da[ca[t]];
  }
  if (k.lists.size() > 4) {
    IntList perm = k.lists[4];
    std::sort(perm.begin(), perm.end());
    size_t n_out = da.size() + db.size() - 2 * ca.size();
    for (size_t t = 0; t < perm.size(); ++t)
      if (perm.size() != n_out || perm[t] != (int64_t)t) dim_error(k, "permutation is not a permutation of the output axes");
  }
  return static_cast<int>(dim_of(k, 0) * dim_of(k, 1) / (contracted * contracted));
}
int dim_kron(const NodeKey& k) {
  if (k.lists[0].size() != k.lists[1].size()) dim_error(k, "dimension lists have different lengths");
  if (product(k.lists[0]) != dim_of(k, 0) || product(k.lists[1]) != dim_of(k, 1))
    dim_error(k, "dimension lists do not multiply to the arguments' dimensions");
  return dim_of(k, 0) * dim_of(k, 1);
}
int dim_bspline(const NodeKey& k) {
  require_scalar(k, 1, "x");
  int d = dim_of(k, 0) - static_cast<int>(k.ints[0]) - 1;
  if (k.ints[0] < 0 || d <= 0) dim_error(k, "needs more knots than order + 1");
  return d;
}
int dim_softdtw(const NodeKey& k) { require_scalar(k, 2, "gamma"); return 1; }
int dim_grad_softdtw(const NodeKey& k) { return dim_of(k, 0) + dim_of(k, 1); }
int dim_clampint(const NodeKey& k) { return dim_of(k, 0); }
int dim_round(const NodeKey& k) { return dim_of(k, 0); }
int dim_pow(const NodeKey& k) { return dim_of(k, 0); }
// Autodiff and linear-operator forms.
int dim_of_second(const NodeKey& k) { return dim_of(k, 1); }
int dim_gradmatrix(const NodeKey& k) { return dim_of(k, 0) * dim_of(k, 1); }
int dim_divergence(const NodeKey& k) { require_equal(k); return 1; }
int dim_laplacian(const NodeKey& k) { require_scalar(k, 0, "the formula"); return 1; }
int dim_grad(const NodeKey& k) {
  if (!k.args[1]->is("Var")) dim_error(k, "the second argument must be a variable");
  if (k.args.size() > 2 && dim_of(k, 2) != dim_of(k, 0))
    dim_error(k, "the gradient input has dimension " + std::to_string(dim_of(k, 2)) + ", expected " + std::to_string(dim_of(k, 0)));
  return dim_of(k, 1);
}
int dim_diff(const NodeKey& k) {
  if (!k.args[1]->is("Var")) dim_error(k, "the second argument must be a variable");
  if (k.args.size() > 2 && dim_of(k, 2) != dim_of(k, 1))
    dim_error(k, "the direction has dimension " + std::to_string(dim_of(k, 2)) + ", expected " + std::to_string(dim_of(k, 1)));
  return dim_of(k, 0);
}
// Complex numbers are interleaved (re, im) pairs.
int dim_even(const NodeKey& k, size_t a) {
  if (dim_of(k, a) % 2 != 0) dim_error(k, "a complex argument must have an even dimension, got " + std::to_string(dim_of(k, a)));
  return dim_of(k, a);
}
int dim_complex_half(const NodeKey& k) { return dim_even(k, 0) / 2; }
int dim_complex_same(const NodeKey& k) { return dim_even(k, 0); }
int dim_complex_double(const NodeKey& k) { return 2 * dim_of(k, 0); }
int dim_complex_two(const NodeKey& k) { dim_even(k, 0); return 2; }
int dim_complex_binary(const NodeKey& k) {
  int a = dim_even(k, 0), b = dim_even(k, 1);
  if (a != b && a != 2 && b != 2) dim_error(k, "complex dimensions " + std::to_string(a) + " and " + std::to_string(b) + " are incompatible");
  return std::max(a, b);
}
int dim_complex_realscal(const NodeKey& k) {
  int a = dim_of(k, 0), b = dim_of(k, 1);
  if (a == 1) return dim_even(k, 1);
  if (b == 1) return dim_even(k, 0);
  dim_error(k, "one argument must be a real scalar");
}
int dim_complex_sumt(const NodeKey& k) {
  if (dim_of(k, 0) != 2) dim_error(k, "the argument must be a complex scalar (dimension 2)");
  return static_cast<int>(k.ints[0]);
}

// ---- construction-time rewrites -------------------------------------------------------------------

NodeRef keep_if_dim(NodeRef f, int dim) { return f->dim() == dim ? f : nullptr; }

NodeRef simplify_intcst(const NodeKey& k, int) { return k.ints[0] == 0 ? zero(1) : nullptr; }

NodeRef simplify_add(const NodeKey& k, int dim) {
  NodeRef a = k.args[0], b = k.args[1];
  if (is_zero(a)) return keep_if_dim(b, dim);
  if (is_zero(b)) return keep_if_dim(a, dim);
  if (auto x = int_value(a)) if (auto y = int_value(b)) return int_cst(*x + *y);
  if (a == b) return make("Mult", {int_cst(2), a});
  return nullptr;
}
NodeRef simplify_subtract(const NodeKey& k, int dim) {
  NodeRef a = k.args[0], b = k.args[1];
  if (is_zero(b)) return keep_if_dim(a, dim);
  if (is_zero(a) && b->dim() == dim) return make("Minus", {b});
  if (auto x = int_value(a)) if (auto y = int_value(b)) return int_cst(*x - *y);
  return nullptr;
}
NodeRef simplify_mult(const NodeKey& k, int dim) {
  NodeRef a = k.args[0], b = k.args[1];
  if (is_zero(a) || is_zero(b)) return zero(dim);
  auto x = int_value(a), y = int_value(b);
  if (x && y) return int_cst(*x * *y);
  if (y && !x) return make("Mult", {b, a});  // constants on the left: one canonical form
  if (x == 1) return keep_if_dim(b, dim);
  if (x == -1 && b->dim() == dim) return make("Minus", {b});
  if (a == b) return make("Square", {a});
  return nullptr;
}
NodeRef simplify_divide(const NodeKey& k, int dim) {
  NodeRef a = k.args[0], b = k.args[1];
  if (is_zero(b)) dim_error(k, "division by the constant zero");
  if (is_zero(a)) return zero(dim);
  if (int_value(b) == 1) return keep_if_dim(a, dim);
  return nullptr;
}
NodeRef simplify_minus(const NodeKey& k, int) {
  NodeRef a = k.args[0];
  if (a->is("Minus")) return a->arg(0);
  if (is_zero(a)) return a;
  if (auto x = int_value(a)) return int_cst(-*x);
  return nullptr;
}
NodeRef simplify_square(const NodeKey& k, int) {
  NodeRef a = k.args[0];
  if (is_zero(a)) return a;
  if (auto x = int_value(a)) return int_cst(*x * *x);
  return nullptr;
}
NodeRef simplify_sum(const NodeKey& k, int) {
  NodeRef a = k.args[0];
  if (is_zero(a)) return zero(1);
  if (a->dim() == 1) return a;
  return nullptr;
}
NodeRef simplify_pow(const NodeKey& k, int) {
  if (k.ints[0] == 1) return k.args[0];
  if (k.ints[0] == 2) return make("Square", {k.args[0]});
  return nullptr;
}
NodeRef simplify_to_scalar_zero(const NodeKey& k, int) {  // Scalprod, SqNorm2, SqDist of zeros
  for (NodeRef a : k.args) if (!is_zero(a)) return nullptr;
  return zero(1);
}

// ---- lowering rules -------------------------------------------------------------------------------

using Args = std::vector<Vals>;

template <Prim P>
Vals lower_unary(Lowerer& L, const Node&, const Args& a) {
  Vals r;
  for (int v : a[0]) r.push_back(L.emit(P, v));
  return r;
}
template <Prim P>
Vals lower_binary(Lowerer& L, const Node& n, const Args& a) {
  Vals r;
  for (int k = 0; k < n.dim(); ++k) r.push_back(L.emit(P, at(a[0], k), at(a[1], k)));
  return r;
}
Vals lower_var(Lowerer& L, const Node& n, const Args&) {
  Vals r;
  for (int k = 0; k < n.dim(); ++k) r.push_back(L.load(static_cast<int>(n.ints()[0]), k));
  return r;
}
Vals lower_intcst(Lowerer& L, const Node& n, const Args&) { return {L.constant(static_cast<double>(n.ints()[0]))}; }
Vals lower_zero(Lowerer& L, const Node& n, const Args&) { return Vals(n.dim(), L.constant(0)); }
Vals lower_square(Lowerer& L, const Node&, const Args& a) {
  Vals r;
  for (int v : a[0]) r.push_back(L.mul(v, v));
  return r;
}
Vals lower_inv(Lowerer& L, const Node&, const Args& a) {
  Vals r;
  for (int v : a[0]) r.push_back(L.div(L.constant(1), v));
  return r;
}
// KeOps convention: Rsqrt(0) = 0 rather than inf.
Vals lower_rsqrt(Lowerer& L, const Node&, const Args& a) {
  Vals r;
  for (int v : a[0]) {
    int is_zero_test = L.emit(Prim::Neg, L.emit(Prim::Abs, v));  // >= 0 exactly when v == 0
    r.push_back(L.emit(Prim::IfPos, is_zero_test, L.constant(0), L.div(L.constant(1), L.emit(Prim::Sqrt, v))));
  }
  return r;
}
int pow_int(Lowerer& L, int v, int64_t m) {
  if (m < 0) return L.div(L.constant(1), pow_int(L, v, -m));
  int result = -1, base = v;
  for (; m > 0; m >>= 1) {  // square and multiply
    if (m & 1) result = result < 0 ? base : L.mul(result, base);
    if (m > 1) base = L.mul(base, base);
  }
  return result < 0 ? L.constant(1) : result;
}
Vals lower_pow(Lowerer& L, const Node& n, const Args& a) {
  Vals r;
  for (int v : a[0]) r.push_back(pow_int(L, v, n.ints()[0]));
  return r;
}
Vals lower_sum(Lowerer& L, const Node&, const Args& a) { return {L.sum(a[0])}; }
Vals lower_sqnorm2(Lowerer& L, const Node&, const Args& a) {
  Vals sq;
  for (int v : a[0]) sq.push_back(L.mul(v, v));
  return {L.sum(sq)};
}
Vals lower_sqdist(Lowerer& L, const Node&, const Args& a) {
  Vals sq;
  size_t d = std::max(a[0].size(), a[1].size());
  for (size_t k = 0; k < d; ++k) {
    int diff = L.sub(at(a[0], k), at(a[1], k));
    sq.push_back(L.mul(diff, diff));
  }
  return {L.sum(sq)};
}
Vals lower_scalprod(Lowerer& L, const Node&, const Args& a) {
  Vals prods;
  for (size_t k = 0; k < a[0].size(); ++k) prods.push_back(L.mul(a[0][k], a[1][k]));
  return {L.sum(prods)};
}

// ---- the table ------------------------------------------------------------------------------------

std::vector<OpInfo> build_table() {
  const auto U = "F";
  const auto B = "FF";
  return {
      // variables and constants
      {"Var", "III", "Variable Var(pos, dim, cat): argument number pos, of dimension dim, indexed by i (cat 0), j (1) or a parameter (2).", dim_var, lower_var},
      {"IntCst", "I", "Integer constant.", dim_one, lower_intcst, simplify_intcst},
      {"RatCst", "II", "Rational constant p/q.", dim_ratcst},
      {"IntInv", "I", "Constant 1/n.", dim_intinv},
      {"Zero", "I", "Zero vector of dimension d.", dim_zero, lower_zero},
      // element-wise arithmetic
      {"Add", B, "Element-wise sum; dims equal or 1.", dim_vect, lower_binary<Prim::Add>, simplify_add, "+"},
      {"Subtract", B, "Element-wise difference; dims equal or 1.", dim_vect, lower_binary<Prim::Sub>, simplify_subtract, "-"},
      {"Mult", B, "Element-wise product; dims equal or 1.", dim_vect, lower_binary<Prim::Mul>, simplify_mult, "*"},
      {"Divide", B, "Element-wise quotient; dims equal or 1.", dim_vect, lower_binary<Prim::Div>, simplify_divide, "/"},
      {"Minus", U, "Negation.", dim_first, lower_unary<Prim::Neg>, simplify_minus},
      {"Square", U, "x*x element-wise.", dim_first, lower_square, simplify_square},
      {"Sqrt", U, "Square root element-wise (NaN below 0).", dim_first, lower_unary<Prim::Sqrt>, nullptr, {}, "correctly rounded"},
      {"Rsqrt", U, "1/sqrt(x) element-wise, with Rsqrt(0) = 0 as in KeOps.", dim_first, lower_rsqrt, nullptr, {}, "<= 1.5 ulp"},
      {"Inv", U, "1/x element-wise.", dim_first, lower_inv, nullptr, {}, "correctly rounded"},
      {"Exp", U, "Exponential element-wise.", dim_first, lower_unary<Prim::Exp>, nullptr, {}, "see vec_math"},
      {"Log", U, "Natural logarithm element-wise (NaN below 0, -inf at 0).", dim_first, lower_unary<Prim::Log>, nullptr, {}, "see vec_math"},
      {"Abs", U, "Absolute value element-wise.", dim_first, lower_unary<Prim::Abs>, nullptr, {}, "exact"},
      {"Sin", U, "Sine element-wise.", dim_first, lower_unary<Prim::Sin>, nullptr, {}, "see vec_math"},
      {"Cos", U, "Cosine element-wise.", dim_first, lower_unary<Prim::Cos>, nullptr, {}, "see vec_math"},
      {"Asin", U, "Arc sine element-wise.", dim_first},
      {"Acos", U, "Arc cosine element-wise.", dim_first},
      {"Atan", U, "Arc tangent element-wise.", dim_first},
      {"Sign", U, "Sign element-wise (0 at 0).", dim_first},
      {"Step", U, "Heaviside step element-wise (1 at 0).", dim_first},
      {"ReLU", U, "max(x, 0) element-wise.", dim_first},
      {"Floor", U, "Floor element-wise.", dim_first},
      {"XLogX", U, "x*log(x) element-wise (0 at 0).", dim_first},
      {"SinXDivX", U, "sin(x)/x element-wise (1 at 0).", dim_first},
      {"Pow", "FI", "Integer power Pow(f, m) element-wise.", dim_pow, lower_pow, simplify_pow},
      {"Round", "FI", "Round(f, d): rounding to d decimals element-wise.", dim_round},
      {"ClampInt", "FII", "ClampInt(f, a, b): f clamped to the integers [a, b].", dim_clampint},
      {"DiffClampInt", "FII", "Indicator of a < f < b (derivative of ClampInt).", dim_clampint},
      {"Atan2", B, "Atan2(y, x) element-wise.", dim_vect},
      {"Powf", B, "Powf(f, g) = exp(g*log(f)) element-wise.", dim_vect},
      {"Equal", B, "1 where f == g, else 0.", dim_vect},
      {"NotEqual", B, "1 where f != g, else 0.", dim_vect},
      {"LessThan", B, "1 where f < g, else 0.", dim_vect},
      {"LessOrEqual", B, "1 where f <= g, else 0.", dim_vect},
      {"Clamp", "FFF", "Clamp(f, a, b): f clamped to [a, b].", dim_vect},
      {"IfElse", "FFF", "IfElse(f, a, b): a where f >= 0, else b.", dim_vect},
      {"Mod", "FFF", "Mod(f, n, d) = f - n*floor((f - d)/n).", dim_vect},
      // vector and structural operations
      {"Sum", U, "Sum of the components.", dim_one, lower_sum, simplify_sum},
      {"SumT", "FI", "SumT(f, d): scalar f repeated d times (adjoint of Sum).", dim_sumt},
      {"Max", U, "Largest component.", dim_one},
      {"Min", U, "Smallest component.", dim_one},
      {"ArgMax", U, "Index of the largest component (as a float).", dim_one},
      {"ArgMin", U, "Index of the smallest component (as a float).", dim_one},
      {"Elem", "FI", "Elem(f, m): component m.", dim_elem},
      {"ElemT", "FII", "ElemT(f, n, m): scalar f placed at index m of a zero vector of dimension n.", dim_elemt},
      {"Extract", "FII", "Extract(f, start, d): components start..start+d-1.", dim_extract},
      {"ExtractT", "FII", "ExtractT(f, start, D): f placed at start in a zero vector of dimension D.", dim_extractt},
      {"Concat", B, "Concatenation of two vectors.", dim_concat},
      {"OneHot", "FI", "OneHot(f, D): one-hot encoding of the rounded scalar f.", dim_onehot},
      {"Scalprod", B, "Scalar product of two vectors of equal dimension.", dim_equal_to_one, lower_scalprod, simplify_to_scalar_zero, "|"},
      {"SqNorm2", U, "Squared Euclidean norm.", dim_one, lower_sqnorm2, simplify_to_scalar_zero},
      {"Norm2", U, "Euclidean norm.", dim_one},
      {"Normalize", U, "f / |f| (0 where f = 0).", dim_first},
      {"SqDist", B, "Squared Euclidean distance; dims equal or 1.", [](const NodeKey& k) { dim_vect(k); return 1; }, lower_sqdist, simplify_to_scalar_zero},
      {"SqNormIso", B, "SqNormIso(s, f) = s * |f|^2 (s scalar).", dim_sqnorm_weighted},
      {"SqNormDiag", B, "SqNormDiag(s, f) = sum(s * f^2).", dim_sqnorm_weighted},
      {"SymSqNorm", B, "SymSqNorm(A, f) = f^T A f (A of dimension n^2).", dim_sqnorm_weighted},
      {"WeightedSqNorm", B, "WeightedSqNorm(s, f): SqNormIso, SqNormDiag or SymSqNorm by the dimension of s.", dim_sqnorm_weighted},
      {"WeightedSqDist", "FFF", "WeightedSqDist(s, f, g) = WeightedSqNorm(s, f - g).", dim_weighted_sqdist},
      {"MatVecMult", B, "MatVecMult(A, b): row-major matrix A times vector b.", dim_matvec},
      {"VecMatMult", B, "VecMatMult(b, A): vector b times row-major matrix A.", dim_matvec},
      {"TensorProd", B, "Row-major outer product.", dim_product},
      {"TensorDot", "FFLLLL?L", "TensorDot(f, g, dims_f, dims_g, contract_f, contract_g[, permutation]).", dim_tensordot},
      {"Kron", "FFLL", "Kronecker product Kron(f, g, dims_f, dims_g).", dim_kron},
      {"BSpline", "FFI", "BSpline(knots, x, order): B-spline basis functions at x.", dim_bspline},
      {"SoftDTW_SqDist", "FFF", "Soft-DTW with squared distance cost, SoftDTW_SqDist(x, y, gamma).", dim_softdtw},
      {"GradSoftDTW_SqDist", "FFF", "Gradient of SoftDTW_SqDist with respect to (x, y).", dim_grad_softdtw},
      {"GradMatrix", B, "GradMatrix(f, v): transposed Jacobian of f with respect to v.", dim_gradmatrix},
      // complex numbers (interleaved real and imaginary parts)
      {"ComplexReal", U, "Real parts.", dim_complex_half},
      {"ComplexImag", U, "Imaginary parts.", dim_complex_half},
      {"ComplexSquareAbs", U, "Squared moduli.", dim_complex_half},
      {"ComplexAbs", U, "Moduli.", dim_complex_half},
      {"ComplexAngle", U, "Arguments.", dim_complex_half},
      {"Real2Complex", U, "Real vector to complex.", dim_complex_double},
      {"Imag2Complex", U, "Real vector to purely imaginary complex.", dim_complex_double},
      {"ComplexExp1j", U, "exp(1j * x) of a real vector.", dim_complex_double},
      {"Conj", U, "Complex conjugate.", dim_complex_same},
      {"ComplexExp", U, "Complex exponential.", dim_complex_same},
      {"ComplexAdd", B, "Complex sum.", dim_complex_binary},
      {"ComplexSubtract", B, "Complex difference.", dim_complex_binary},
      {"ComplexMult", B, "Complex product.", dim_complex_binary},
      {"ComplexDivide", B, "Complex quotient.", dim_complex_binary},
      {"ComplexRealScal", B, "Real scalar times complex vector.", dim_complex_realscal},
      {"ComplexSum", U, "Sum of complex components.", dim_complex_two},
      {"ComplexSumT", "FI", "Complex scalar repeated (adjoint of ComplexSum).", dim_complex_sumt},
      // symbolic differentiation and linear operators
      {"Grad", "FF?F", "Grad(f, v, e): vector-Jacobian product of f with respect to variable v, contracted with e.", dim_grad},
      {"Diff", "FF?F", "Diff(f, v, u): differential of f with respect to v in direction u.", dim_diff},
      {"Divergence", B, "Divergence(f, v): trace of the Jacobian of f with respect to v.", dim_divergence},
      {"Laplacian", B, "Laplacian(f, v) of a scalar f.", dim_laplacian},
      {"TraceOperator", "FF?F", "Trace of the linear map v -> f(v).", dim_one},
      {"AdjointOperator", "FFF", "AdjointOperator(f, v, u): adjoint of the linear map v -> f(v) applied to u.", dim_of_second},
      {"SumLinOperator", "FF?FF", "Sum of the entries of the linear map v -> f(v).", dim_one},
      {"Factorize", B, "Factorize(f, g): computes the subformula g once.", dim_first},
      {"AutoFactorize", U, "Factorizes repeated subformulas.", dim_first},
  };
}

struct SigCounts {
  int min_f = 0, max_f = 0, min_i = 0, max_i = 0, min_l = 0, max_l = 0;
};
SigCounts count_signature(std::string_view sig) {
  SigCounts c;
  bool optional = false;
  for (char ch : sig) {
    if (ch == '?') { optional = true; continue; }
    int& mn = ch == 'F' ? c.min_f : ch == 'I' ? c.min_i : c.min_l;
    int& mx = ch == 'F' ? c.max_f : ch == 'I' ? c.max_i : c.max_l;
    if (!optional) ++mn;
    ++mx;
  }
  return c;
}

}  // namespace

const std::vector<OpInfo>& all_ops() {
  static const std::vector<OpInfo> table = build_table();
  return table;
}

const OpInfo* find_op(std::string_view name) {
  static const auto index = [] {
    std::unordered_map<std::string_view, const OpInfo*> m;
    for (const OpInfo& op : all_ops()) m[op.name] = &op;
    return m;
  }();
  auto it = index.find(name);
  return it == index.end() ? nullptr : it->second;
}

void check_signature(const NodeKey& k) {
  SigCounts c = count_signature(k.op->signature);
  auto bad = [&](const char* kind, int got, int mn, int mx) {
    string expected = mn == mx ? std::to_string(mn) : std::to_string(mn) + " to " + std::to_string(mx);
    throw UserError(op_name(k) + ": expected " + expected + " " + kind + " argument(s), got " + std::to_string(got));
  };
  int nf = (int)k.args.size(), ni = (int)k.ints.size(), nl = (int)k.lists.size();
  if (nf < c.min_f || nf > c.max_f) bad("formula", nf, c.min_f, c.max_f);
  if (ni < c.min_i || ni > c.max_i) bad("integer", ni, c.min_i, c.max_i);
  if (nl < c.min_l || nl > c.max_l) bad("list", nl, c.min_l, c.max_l);
}

}  // namespace keops
