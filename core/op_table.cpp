// Every KeOps operation: one entry each with its signature, dimension rule, rewrite and lowering.
#include "op_table.h"

#include <algorithm>
#include <cmath>
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


int select(Lowerer& L, int cond, int a, int b) { return L.emit(Prim::Select, cond, a, b); }
int is_zero_value(Lowerer& L, int v) { return L.emit(Prim::Eq, v, L.constant(0)); }

// Element-wise rules built from a scalar function of the arguments' components (broadcasting dim 1).
template <int (*F)(Lowerer&, const Node&, const std::vector<int>&)>
Vals lower_map(Lowerer& L, const Node& n, const Args& a) {
  Vals r;
  for (int k = 0; k < n.dim(); ++k) {
    std::vector<int> xs;
    for (const Vals& v : a) xs.push_back(at(v, k));
    r.push_back(F(L, n, xs));
  }
  return r;
}
int sign_of(Lowerer& L, const Node&, const std::vector<int>& x) {
  return L.sub(L.emit(Prim::Lt, L.constant(0), x[0]), L.emit(Prim::Lt, x[0], L.constant(0)));
}
int step_of(Lowerer& L, const Node&, const std::vector<int>& x) {  // KeOps: x < 0 ? 0 : 1 (so NaN gives 1)
  return L.sub(L.constant(1), L.emit(Prim::Lt, x[0], L.constant(0)));
}
int relu_of(Lowerer& L, const Node&, const std::vector<int>& x) { return L.emit(Prim::Max, x[0], L.constant(0)); }
int xlogx_of(Lowerer& L, const Node&, const std::vector<int>& x) {
  return select(L, is_zero_value(L, x[0]), L.constant(0), L.mul(x[0], L.emit(Prim::Log, x[0])));
}
int sinxdivx_of(Lowerer& L, const Node&, const std::vector<int>& x) {
  return select(L, is_zero_value(L, x[0]), L.constant(1), L.div(L.emit(Prim::Sin, x[0]), x[0]));
}
int round_of(Lowerer& L, const Node& n, const std::vector<int>& x) {  // KeOps: round(x * 10^d) / 10^d
  int64_t d = n.ints()[0];
  if (d == 0) return L.emit(Prim::Round, x[0]);
  int scale = L.constant(std::pow(10.0, static_cast<double>(d)));
  return L.div(L.emit(Prim::Round, L.mul(x[0], scale)), scale);
}
int clamp_of(Lowerer& L, const Node& n, const std::vector<int>& x) {
  int lo = x.size() == 3 ? x[1] : L.constant(static_cast<double>(n.ints()[0]));
  int hi = x.size() == 3 ? x[2] : L.constant(static_cast<double>(n.ints()[1]));
  return L.emit(Prim::Min, L.emit(Prim::Max, x[0], lo), hi);
}
int diff_clampint_of(Lowerer& L, const Node& n, const std::vector<int>& x) {
  int lo = L.constant(static_cast<double>(n.ints()[0])), hi = L.constant(static_cast<double>(n.ints()[1]));
  return L.mul(L.emit(Prim::Lt, lo, x[0]), L.emit(Prim::Lt, x[0], hi));
}
int ifelse_of(Lowerer& L, const Node&, const std::vector<int>& x) { return L.emit(Prim::IfPos, x[0], x[1], x[2]); }
int mod_of(Lowerer& L, const Node&, const std::vector<int>& x) {  // f - n * floor((f - d) / n)
  return L.sub(x[0], L.mul(x[1], L.emit(Prim::Floor, L.div(L.sub(x[0], x[2]), x[1]))));
}
int powf_of(Lowerer& L, const Node&, const std::vector<int>& x) {
  return L.emit(Prim::Exp, L.mul(x[1], L.emit(Prim::Log, x[0])));
}
template <Prim P>
int cmp_of(Lowerer& L, const Node&, const std::vector<int>& x) { return L.emit(P, x[0], x[1]); }

Vals lower_ratcst(Lowerer& L, const Node& n, const Args&) {
  return {L.constant(static_cast<double>(n.ints()[0]) / static_cast<double>(n.ints()[1]))};
}
Vals lower_intinv(Lowerer& L, const Node& n, const Args&) { return {L.constant(1.0 / static_cast<double>(n.ints()[0]))}; }

// ---- vector and structural rules ----

Vals lower_first(Lowerer&, const Node&, const Args& a) { return a[0]; }
Vals lower_sumt(Lowerer&, const Node& n, const Args& a) { return Vals(n.dim(), a[0][0]); }
template <Prim P>
Vals lower_extremum(Lowerer& L, const Node&, const Args& a) {
  int best = a[0][0];
  for (size_t k = 1; k < a[0].size(); ++k) best = L.emit(P, best, a[0][k]);
  return {best};
}
// Index of the first largest (ArgMax) or smallest (ArgMin) component, as a float; NaN components are skipped.
template <bool IsMax>
Vals lower_argextremum(Lowerer& L, const Node&, const Args& a) {
  int best = a[0][0], idx = L.constant(0);
  for (size_t k = 1; k < a[0].size(); ++k) {
    int better = IsMax ? L.emit(Prim::Lt, best, a[0][k]) : L.emit(Prim::Lt, a[0][k], best);
    best = select(L, better, a[0][k], best);
    idx = select(L, better, L.constant(static_cast<double>(k)), idx);
  }
  return {idx};
}
Vals lower_elem(Lowerer&, const Node& n, const Args& a) { return {a[0][n.ints()[0]]}; }
Vals lower_elemt(Lowerer& L, const Node& n, const Args& a) {
  Vals r(n.dim(), L.constant(0));
  r[n.ints()[1]] = a[0][0];
  return r;
}
Vals lower_extract(Lowerer&, const Node& n, const Args& a) {
  auto s = a[0].begin() + n.ints()[0];
  return Vals(s, s + n.dim());
}
Vals lower_extractt(Lowerer& L, const Node& n, const Args& a) {
  Vals r(n.dim(), L.constant(0));
  std::copy(a[0].begin(), a[0].end(), r.begin() + n.ints()[0]);
  return r;
}
Vals lower_concat(Lowerer&, const Node&, const Args& a) {
  Vals r = a[0];
  r.insert(r.end(), a[1].begin(), a[1].end());
  return r;
}
Vals lower_onehot(Lowerer& L, const Node& n, const Args& a) {
  int r = L.emit(Prim::Round, a[0][0]);
  Vals out;
  for (int k = 0; k < n.dim(); ++k) out.push_back(L.emit(Prim::Eq, r, L.constant(k)));
  return out;
}
Vals lower_norm2(Lowerer& L, const Node& n, const Args& a) { return {L.emit(Prim::Sqrt, lower_sqnorm2(L, n, a)[0])}; }
Vals lower_normalize(Lowerer& L, const Node& n, const Args& a) {  // f * Rsqrt(|f|^2), with Rsqrt(0) = 0
  int sq = lower_sqnorm2(L, n, a)[0];
  int inv = select(L, is_zero_value(L, sq), L.constant(0), L.div(L.constant(1), L.emit(Prim::Sqrt, sq)));
  Vals r;
  for (int v : a[0]) r.push_back(L.mul(v, inv));
  return r;
}
// f^T S f for a weight of dim 1 (isotropic), n (diagonal) or n^2 (full, row-major).
int weighted_sqnorm(Lowerer& L, const Vals& s, const Vals& f) {
  size_t n = f.size();
  Vals terms;
  if (s.size() == n * n && n > 1) {
    for (size_t k = 0; k < n; ++k)
      for (size_t l = 0; l < n; ++l) terms.push_back(L.mul(L.mul(s[k * n + l], f[k]), f[l]));
    return L.sum(terms);
  }
  if (s.size() == 1 && n > 1) {
    for (int v : f) terms.push_back(L.mul(v, v));
    return L.mul(s[0], L.sum(terms));
  }
  for (size_t k = 0; k < n; ++k) terms.push_back(L.mul(at(s, k), L.mul(f[k], f[k])));
  return L.sum(terms);
}
Vals lower_weighted_sqnorm(Lowerer& L, const Node&, const Args& a) { return {weighted_sqnorm(L, a[0], a[1])}; }
Vals lower_weighted_sqdist(Lowerer& L, const Node&, const Args& a) {
  Vals diff;
  size_t n = std::max(a[1].size(), a[2].size());
  for (size_t k = 0; k < n; ++k) diff.push_back(L.sub(at(a[1], k), at(a[2], k)));
  return {weighted_sqnorm(L, a[0], diff)};
}
Vals lower_matvec(Lowerer& L, const Node& n, const Args& a) {  // out[i] = sum_k A[i*nb + k] b[k]
  const Vals &A = a[0], &b = a[1];
  Vals r;
  for (int i = 0; i < n.dim(); ++i) {
    Vals t;
    for (size_t k = 0; k < b.size(); ++k) t.push_back(L.mul(A[i * b.size() + k], b[k]));
    r.push_back(L.sum(t));
  }
  return r;
}
Vals lower_vecmat(Lowerer& L, const Node& n, const Args& a) {  // out[i] = sum_k b[k] A[k*nout + i]
  const Vals &b = a[0], &A = a[1];
  Vals r;
  for (int i = 0; i < n.dim(); ++i) {
    Vals t;
    for (size_t k = 0; k < b.size(); ++k) t.push_back(L.mul(b[k], A[k * n.dim() + i]));
    r.push_back(L.sum(t));
  }
  return r;
}
Vals lower_tensorprod(Lowerer& L, const Node&, const Args& a) {
  Vals r;
  for (int f : a[0])
    for (int g : a[1]) r.push_back(L.mul(f, g));
  return r;
}
// Row-major strides of a shape.
IntList strides_of(const IntList& shape) {
  IntList s(shape.size(), 1);
  for (int k = (int)shape.size() - 2; k >= 0; --k) s[k] = s[k + 1] * shape[k + 1];
  return s;
}
// numpy.tensordot(f, g, (contract_f, contract_g)) on row-major shapes, then numpy.transpose(perm) if given.
Vals lower_tensordot(Lowerer& L, const Node& n, const Args& a) {
  const IntList &da = n.lists()[0], &db = n.lists()[1], &ca = n.lists()[2], &cb = n.lists()[3];
  IntList free_a, free_b, out_shape, cont_shape;
  for (int64_t k = 0; k < (int64_t)da.size(); ++k)
    if (std::find(ca.begin(), ca.end(), k) == ca.end()) free_a.push_back(k), out_shape.push_back(da[k]);
  for (int64_t k = 0; k < (int64_t)db.size(); ++k)
    if (std::find(cb.begin(), cb.end(), k) == cb.end()) free_b.push_back(k), out_shape.push_back(db[k]);
  for (int64_t k : ca) cont_shape.push_back(da[k]);
  IntList sa = strides_of(da), sb = strides_of(db), so = strides_of(out_shape), sc = strides_of(cont_shape);
  int64_t n_cont = product(cont_shape);
  Vals unpermuted(n.dim());
  for (int64_t o = 0; o < n.dim(); ++o) {
    int64_t base_a = 0, base_b = 0;
    for (size_t t = 0; t < out_shape.size(); ++t) {
      int64_t idx = (o / so[t]) % out_shape[t];
      if (t < free_a.size()) base_a += idx * sa[free_a[t]];
      else base_b += idx * sb[free_b[t - free_a.size()]];
    }
    Vals terms;
    for (int64_t c = 0; c < n_cont; ++c) {
      int64_t ia = base_a, ib = base_b;
      for (size_t t = 0; t < ca.size(); ++t) {
        int64_t idx = (c / sc[t]) % cont_shape[t];
        ia += idx * sa[ca[t]];
        ib += idx * sb[cb[t]];
      }
      terms.push_back(L.mul(a[0][ia], a[1][ib]));
    }
    unpermuted[o] = L.sum(terms);
  }
  if (n.lists().size() < 5) return unpermuted;
  const IntList& perm = n.lists()[4];  // result axis t is unpermuted axis perm[t]
  IntList shape_p;
  for (int64_t p : perm) shape_p.push_back(out_shape[p]);
  IntList sp = strides_of(shape_p);
  Vals r(n.dim());
  for (int64_t q = 0; q < n.dim(); ++q) {
    int64_t src = 0;
    for (size_t t = 0; t < perm.size(); ++t) src += ((q / sp[t]) % shape_p[t]) * so[perm[t]];
    r[q] = unpermuted[src];
  }
  return r;
}
// numpy.kron of f (shape dims_f) and g (shape dims_g), flattened row-major.
Vals lower_kron(Lowerer& L, const Node& n, const Args& a) {
  const IntList &df = n.lists()[0], &dg = n.lists()[1];
  IntList shape;
  for (size_t k = 0; k < df.size(); ++k) shape.push_back(df[k] * dg[k]);
  IntList so = strides_of(shape), sf = strides_of(df), sg = strides_of(dg);
  Vals r(n.dim());
  for (int64_t o = 0; o < n.dim(); ++o) {
    int64_t i = 0, j = 0;
    for (size_t t = 0; t < shape.size(); ++t) {
      int64_t idx = (o / so[t]) % shape[t];
      i += (idx / dg[t]) * sf[t];
      j += (idx % dg[t]) * sg[t];
    }
    r[o] = L.mul(a[0][i], a[1][j]);
  }
  return r;
}
// Cox-de Boor recursion; a term whose knot span is empty (0/0) counts as 0.
Vals lower_bspline(Lowerer& L, const Node& n, const Args& a) {
  const Vals& t = a[0];
  int x = a[1][0];
  int64_t order = n.ints()[0];
  Vals b;
  for (size_t i = 0; i + 1 < t.size(); ++i)
    b.push_back(L.mul(L.emit(Prim::Le, t[i], x), L.emit(Prim::Lt, x, t[i + 1])));
  auto ratio = [&](int num, int den) { return select(L, is_zero_value(L, den), L.constant(0), L.div(num, den)); };
  for (int64_t k = 1; k <= order; ++k) {
    Vals next;
    for (size_t i = 0; i + k + 1 < t.size(); ++i) {
      int left = L.mul(ratio(L.sub(x, t[i]), L.sub(t[i + k], t[i])), b[i]);
      int right = L.mul(ratio(L.sub(t[i + k + 1], x), L.sub(t[i + k + 1], t[i + 1])), b[i + 1]);
      next.push_back(L.add(left, right));
    }
    b = next;
  }
  return b;
}
// Soft-DTW between the series x and y with squared-difference costs:
// R(i,j) = (x_i - y_j)^2 + softmin_gamma(R(i-1,j-1), R(i-1,j), R(i,j-1)), R(0,0) = 0, other borders +inf.
Vals lower_softdtw(Lowerer& L, const Node&, const Args& a) {
  const Vals &x = a[0], &y = a[1];
  int gamma = a[2][0], inf = L.constant(INFINITY);
  size_t n = x.size(), m = y.size();
  std::vector<Vals> R(n + 1, Vals(m + 1, inf));
  R[0][0] = L.constant(0);
  for (size_t i = 1; i <= n; ++i)
    for (size_t j = 1; j <= m; ++j) {
      int r0 = R[i - 1][j - 1], r1 = R[i - 1][j], r2 = R[i][j - 1];
      // -gamma * log(sum exp(-r / gamma)), shifted by the smallest r so that exp never overflows.
      int lo = L.emit(Prim::Min, r0, L.emit(Prim::Min, r1, r2));
      int s = L.constant(0);
      for (int r : {r0, r1, r2}) s = L.add(s, L.emit(Prim::Exp, L.div(L.sub(lo, r), gamma)));
      int softmin = L.sub(lo, L.mul(gamma, L.emit(Prim::Log, s)));
      int diff = L.sub(x[i - 1], y[j - 1]);
      R[i][j] = L.add(L.mul(diff, diff), softmin);
    }
  return {R[n][m]};
}

// ---- complex numbers: (re, im) pairs ----

Vals lower_complex_part(Lowerer&, const Node& n, const Args& a, int part) {
  Vals r;
  for (int k = 0; k < n.dim(); ++k) r.push_back(a[0][2 * k + part]);
  return r;
}
Vals lower_complex_real(Lowerer& L, const Node& n, const Args& a) { return lower_complex_part(L, n, a, 0); }
Vals lower_complex_imag(Lowerer& L, const Node& n, const Args& a) { return lower_complex_part(L, n, a, 1); }
template <int Kind>  // 0: |z|^2, 1: |z|, 2: arg z
Vals lower_complex_scalar(Lowerer& L, const Node& n, const Args& a) {
  Vals r;
  for (int k = 0; k < n.dim(); ++k) {
    int re = a[0][2 * k], im = a[0][2 * k + 1];
    int sq = L.add(L.mul(re, re), L.mul(im, im));
    r.push_back(Kind == 0 ? sq : Kind == 1 ? L.emit(Prim::Sqrt, sq) : L.emit(Prim::Atan2, im, re));
  }
  return r;
}
template <int Kind>  // 0: x + 0i, 1: 0 + xi, 2: exp(ix)
Vals lower_to_complex(Lowerer& L, const Node&, const Args& a) {
  Vals r;
  for (int v : a[0]) {
    if (Kind == 0) r.insert(r.end(), {v, L.constant(0)});
    if (Kind == 1) r.insert(r.end(), {L.constant(0), v});
    if (Kind == 2) r.insert(r.end(), {L.emit(Prim::Cos, v), L.emit(Prim::Sin, v)});
  }
  return r;
}
Vals lower_conj(Lowerer& L, const Node&, const Args& a) {
  Vals r = a[0];
  for (size_t k = 1; k < r.size(); k += 2) r[k] = L.emit(Prim::Neg, r[k]);
  return r;
}
Vals lower_complex_exp(Lowerer& L, const Node&, const Args& a) {
  Vals r;
  for (size_t k = 0; k < a[0].size(); k += 2) {
    int e = L.emit(Prim::Exp, a[0][k]), im = a[0][k + 1];
    r.insert(r.end(), {L.mul(e, L.emit(Prim::Cos, im)), L.mul(e, L.emit(Prim::Sin, im))});
  }
  return r;
}
// Complex element-wise operations; a complex scalar (dim 2) broadcasts.
template <int Kind>  // 0 add, 1 subtract, 2 multiply, 3 divide
Vals lower_complex_binary(Lowerer& L, const Node& n, const Args& a) {
  Vals r;
  for (int k = 0; k < n.dim(); k += 2) {
    auto part = [&](const Vals& v, int c) { return v.size() == 2 ? v[c] : v[k + c]; };
    int ar = part(a[0], 0), ai = part(a[0], 1), br = part(a[1], 0), bi = part(a[1], 1);
    if (Kind == 0) r.insert(r.end(), {L.add(ar, br), L.add(ai, bi)});
    if (Kind == 1) r.insert(r.end(), {L.sub(ar, br), L.sub(ai, bi)});
    if (Kind >= 2) {
      int sr = Kind == 2 ? L.sub(L.mul(ar, br), L.mul(ai, bi)) : L.add(L.mul(ar, br), L.mul(ai, bi));
      int si = Kind == 2 ? L.add(L.mul(ar, bi), L.mul(ai, br)) : L.sub(L.mul(ai, br), L.mul(ar, bi));
      if (Kind == 3) {
        int den = L.add(L.mul(br, br), L.mul(bi, bi));
        sr = L.div(sr, den);
        si = L.div(si, den);
      }
      r.insert(r.end(), {sr, si});
    }
  }
  return r;
}
Vals lower_complex_realscal(Lowerer& L, const Node&, const Args& a) {
  bool first_real = a[0].size() == 1;
  int s = first_real ? a[0][0] : a[1][0];
  const Vals& z = first_real ? a[1] : a[0];
  Vals r;
  for (int v : z) r.push_back(L.mul(s, v));
  return r;
}
Vals lower_complex_sum(Lowerer& L, const Node&, const Args& a) {
  Vals re, im;
  for (size_t k = 0; k < a[0].size(); k += 2) re.push_back(a[0][k]), im.push_back(a[0][k + 1]);
  return {L.sum(re), L.sum(im)};
}
Vals lower_complex_sumt(Lowerer&, const Node& n, const Args& a) {
  Vals r;
  for (int k = 0; k < n.dim(); k += 2) r.insert(r.end(), {a[0][0], a[0][1]});
  return r;
}

// ---- the table ------------------------------------------------------------------------------------

std::vector<OpInfo> build_table() {
  const auto U = "F";
  const auto B = "FF";
  return {
      // variables and constants
      {"Var", "III", "Variable Var(pos, dim, cat): argument number pos, of dimension dim, indexed by i (cat 0), j (1) or a parameter (2).", dim_var, lower_var},
      {"IntCst", "I", "Integer constant.", dim_one, lower_intcst, simplify_intcst},
      {"RatCst", "II", "Rational constant p/q.", dim_ratcst, lower_ratcst},
      {"IntInv", "I", "Constant 1/n.", dim_intinv, lower_intinv},
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
      {"Asin", U, "Arc sine element-wise (NaN outside [-1, 1]).", dim_first, lower_unary<Prim::Asin>, nullptr, {}, "see vec_math"},
      {"Acos", U, "Arc cosine element-wise (NaN outside [-1, 1]).", dim_first, lower_unary<Prim::Acos>, nullptr, {}, "see vec_math"},
      {"Atan", U, "Arc tangent element-wise.", dim_first, lower_unary<Prim::Atan>, nullptr, {}, "see vec_math"},
      {"Sign", U, "Sign element-wise (0 at 0 and at NaN).", dim_first, lower_map<sign_of>, nullptr, {}, "exact"},
      {"Step", U, "Heaviside step element-wise: 0 below 0, else 1 (1 at 0 and at NaN, as KeOps).", dim_first, lower_map<step_of>, nullptr, {}, "exact"},
      {"ReLU", U, "max(x, 0) element-wise (NaN stays NaN).", dim_first, lower_map<relu_of>, nullptr, {}, "exact"},
      {"Floor", U, "Floor element-wise.", dim_first, lower_unary<Prim::Floor>, nullptr, {}, "exact"},
      {"XLogX", U, "x*log(x) element-wise (0 at 0).", dim_first, lower_map<xlogx_of>, nullptr, {}, "as Log, plus one rounding"},
      {"SinXDivX", U, "sin(x)/x element-wise (1 at 0).", dim_first, lower_map<sinxdivx_of>, nullptr, {}, "as Sin, plus one rounding"},
      {"Pow", "FI", "Integer power Pow(f, m) element-wise.", dim_pow, lower_pow, simplify_pow},
      {"Round", "FI", "Round(f, d): round(f * 10^d) / 10^d element-wise, halves away from zero.", dim_round, lower_map<round_of>, nullptr, {}, "exact for d = 0"},
      {"ClampInt", "FII", "ClampInt(f, a, b): f clamped to the integers [a, b].", dim_clampint, lower_map<clamp_of>, nullptr, {}, "exact"},
      {"DiffClampInt", "FII", "Indicator of a < f < b (derivative of ClampInt).", dim_clampint, lower_map<diff_clampint_of>, nullptr, {}, "exact"},
      {"Atan2", B, "Atan2(y, x) element-wise.", dim_vect, lower_binary<Prim::Atan2>, nullptr, {}, "see vec_math"},
      {"Powf", B, "Powf(f, g) = exp(g*log(f)) element-wise (NaN for f < 0).", dim_vect, lower_map<powf_of>, nullptr, {}, "as Exp and Log composed"},
      {"Equal", B, "1 where f == g, else 0.", dim_vect, lower_map<cmp_of<Prim::Eq>>, nullptr, {}, "exact"},
      {"NotEqual", B, "1 where f != g, else 0.", dim_vect, lower_map<cmp_of<Prim::Ne>>, nullptr, {}, "exact"},
      {"LessThan", B, "1 where f < g, else 0.", dim_vect, lower_map<cmp_of<Prim::Lt>>, nullptr, {}, "exact"},
      {"LessOrEqual", B, "1 where f <= g, else 0.", dim_vect, lower_map<cmp_of<Prim::Le>>, nullptr, {}, "exact"},
      {"Clamp", "FFF", "Clamp(f, a, b): f clamped to [a, b].", dim_vect, lower_map<clamp_of>, nullptr, {}, "exact"},
      {"IfElse", "FFF", "IfElse(f, a, b): a where f >= 0, else b (b where f is NaN).", dim_vect, lower_map<ifelse_of>, nullptr, {}, "exact"},
      {"Mod", "FFF", "Mod(f, n, d) = f - n*floor((f - d)/n).", dim_vect, lower_map<mod_of>, nullptr, {}, "a few roundings"},
      // vector and structural operations
      {"Sum", U, "Sum of the components.", dim_one, lower_sum, simplify_sum},
      {"SumT", "FI", "SumT(f, d): scalar f repeated d times (adjoint of Sum).", dim_sumt, lower_sumt},
      {"Max", U, "Largest component (NaN if any is NaN).", dim_one, lower_extremum<Prim::Max>},
      {"Min", U, "Smallest component (NaN if any is NaN).", dim_one, lower_extremum<Prim::Min>},
      {"ArgMax", U, "Index of the first largest component, as a float (NaN components are skipped).", dim_one, lower_argextremum<true>},
      {"ArgMin", U, "Index of the first smallest component, as a float (NaN components are skipped).", dim_one, lower_argextremum<false>},
      {"Elem", "FI", "Elem(f, m): component m.", dim_elem, lower_elem},
      {"ElemT", "FII", "ElemT(f, n, m): scalar f placed at index m of a zero vector of dimension n.", dim_elemt, lower_elemt},
      {"Extract", "FII", "Extract(f, start, d): components start..start+d-1.", dim_extract, lower_extract},
      {"ExtractT", "FII", "ExtractT(f, start, D): f placed at start in a zero vector of dimension D.", dim_extractt, lower_extractt},
      {"Concat", B, "Concatenation of two vectors.", dim_concat, lower_concat},
      {"OneHot", "FI", "OneHot(f, D): one-hot encoding of the scalar f rounded to the nearest integer.", dim_onehot, lower_onehot},
      {"Scalprod", B, "Scalar product of two vectors of equal dimension.", dim_equal_to_one, lower_scalprod, simplify_to_scalar_zero, "|"},
      {"SqNorm2", U, "Squared Euclidean norm.", dim_one, lower_sqnorm2, simplify_to_scalar_zero},
      {"Norm2", U, "Euclidean norm.", dim_one, lower_norm2},
      {"Normalize", U, "f / |f| (0 where f = 0).", dim_first, lower_normalize},
      {"SqDist", B, "Squared Euclidean distance; dims equal or 1.", [](const NodeKey& k) { dim_vect(k); return 1; }, lower_sqdist, simplify_to_scalar_zero},
      {"SqNormIso", B, "SqNormIso(s, f) = s * |f|^2 (s scalar).", dim_sqnorm_weighted, lower_weighted_sqnorm},
      {"SqNormDiag", B, "SqNormDiag(s, f) = sum(s * f^2).", dim_sqnorm_weighted, lower_weighted_sqnorm},
      {"SymSqNorm", B, "SymSqNorm(A, f) = f^T A f (A of dimension n^2, row-major).", dim_sqnorm_weighted, lower_weighted_sqnorm},
      {"WeightedSqNorm", B, "WeightedSqNorm(s, f): SqNormIso, SqNormDiag or SymSqNorm by the dimension of s (1, n or n^2).", dim_sqnorm_weighted, lower_weighted_sqnorm},
      {"WeightedSqDist", "FFF", "WeightedSqDist(s, f, g) = WeightedSqNorm(s, f - g).", dim_weighted_sqdist, lower_weighted_sqdist},
      {"MatVecMult", B, "MatVecMult(A, b): row-major matrix A times vector b: out[i] = sum_k A[i*n_b + k] b[k].", dim_matvec, lower_matvec},
      {"VecMatMult", B, "VecMatMult(b, A): vector b times row-major matrix A: out[i] = sum_k b[k] A[k*n_out + i].", dim_matvec, lower_vecmat},
      {"TensorProd", B, "Row-major outer product: out[k*n_g + l] = f[k] g[l].", dim_product, lower_tensorprod},
      {"TensorDot", "FFLLLL?L", "TensorDot(f, g, dims_f, dims_g, contract_f, contract_g[, permutation]): numpy.tensordot on row-major shapes, then an optional transpose.", dim_tensordot, lower_tensordot},
      {"Kron", "FFLL", "Kronecker product Kron(f, g, dims_f, dims_g), as numpy.kron on row-major shapes.", dim_kron, lower_kron},
      {"BSpline", "FFI", "BSpline(knots, x, order): the B-spline basis functions of that order at x (Cox-de Boor; empty spans count 0).", dim_bspline, lower_bspline},
      {"SoftDTW_SqDist", "FFF", "SoftDTW_SqDist(x, y, gamma): soft-DTW between series x and y with costs (x_i - y_j)^2.", dim_softdtw, lower_softdtw},
      {"GradSoftDTW_SqDist", "FFF", "Gradient of SoftDTW_SqDist with respect to (x, y).", dim_grad_softdtw},
      {"GradMatrix", B, "GradMatrix(f, v): transposed Jacobian of f with respect to v.", dim_gradmatrix},
      // complex numbers (interleaved real and imaginary parts)
      {"ComplexReal", U, "Real parts.", dim_complex_half, lower_complex_real},
      {"ComplexImag", U, "Imaginary parts.", dim_complex_half, lower_complex_imag},
      {"ComplexSquareAbs", U, "Squared moduli.", dim_complex_half, lower_complex_scalar<0>},
      {"ComplexAbs", U, "Moduli.", dim_complex_half, lower_complex_scalar<1>},
      {"ComplexAngle", U, "Arguments.", dim_complex_half, lower_complex_scalar<2>},
      {"Real2Complex", U, "Real vector to complex.", dim_complex_double, lower_to_complex<0>},
      {"Imag2Complex", U, "Real vector to purely imaginary complex.", dim_complex_double, lower_to_complex<1>},
      {"ComplexExp1j", U, "exp(1j * x) of a real vector.", dim_complex_double, lower_to_complex<2>},
      {"Conj", U, "Complex conjugate.", dim_complex_same, lower_conj},
      {"ComplexExp", U, "Complex exponential.", dim_complex_same, lower_complex_exp},
      {"ComplexAdd", B, "Complex sum.", dim_complex_binary, lower_complex_binary<0>},
      {"ComplexSubtract", B, "Complex difference.", dim_complex_binary, lower_complex_binary<1>},
      {"ComplexMult", B, "Complex product.", dim_complex_binary, lower_complex_binary<2>},
      {"ComplexDivide", B, "Complex quotient.", dim_complex_binary, lower_complex_binary<3>},
      {"ComplexRealScal", B, "Real scalar times complex vector.", dim_complex_realscal, lower_complex_realscal},
      {"ComplexSum", U, "Sum of complex components.", dim_complex_two, lower_complex_sum},
      {"ComplexSumT", "FI", "Complex scalar repeated (adjoint of ComplexSum).", dim_complex_sumt, lower_complex_sumt},
      // symbolic differentiation and linear operators
      {"Grad", "FF?F", "Grad(f, v, e): vector-Jacobian product of f with respect to variable v, contracted with e.", dim_grad},
      {"Diff", "FF?F", "Diff(f, v, u): differential of f with respect to v in direction u.", dim_diff},
      {"Divergence", B, "Divergence(f, v): trace of the Jacobian of f with respect to v.", dim_divergence},
      {"Laplacian", B, "Laplacian(f, v) of a scalar f.", dim_laplacian},
      {"TraceOperator", "FF?F", "Trace of the linear map v -> f(v).", dim_one},
      {"AdjointOperator", "FFF", "AdjointOperator(f, v, u): adjoint of the linear map v -> f(v) applied to u.", dim_of_second},
      {"SumLinOperator", "FF?FF", "Sum of the entries of the linear map v -> f(v).", dim_one},
      // Lowering numbers values (CSE), so a shared subformula is always computed once: both are f itself.
      {"Factorize", B, "Factorize(f, g): f, with the subformula g computed once (always the case here).", dim_first, lower_first},
      {"AutoFactorize", U, "AutoFactorize(f): f, with repeated subformulas computed once (always the case here).", dim_first, lower_first},
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
