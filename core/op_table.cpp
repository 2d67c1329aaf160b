// Every KeOps operation: one entry each with its signature, dimension rule, rewrite and lowering.
#include "op_table.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <unordered_map>

#include "differentiate.h"
#include "errors.h"
#include "lower.h"
#include "printer.h"

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

constexpr int64_t kMaxPowExponent = int64_t{1} << 31;

// A dimension computed in 64 bits, checked against the limit before it becomes an int.
int checked_dim(const NodeKey& k, int64_t d, const char* what) {
  if (d <= 0) dim_error(k, string(what) + " must be positive, got " + std::to_string(d));
  if (d > kMaxDim) dim_error(k, string(what) + " " + std::to_string(d) + " exceeds the limit " + std::to_string(kMaxDim));
  return static_cast<int>(d);
}
// Constant folding only where the result fits: otherwise the operation stays and runs in floating point.
std::optional<int64_t> add_fold(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}
std::optional<int64_t> sub_fold(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_sub_overflow(a, b, &r)) return std::nullopt;
  return r;
}
std::optional<int64_t> mul_fold(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

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
                     std::to_string(dim_of(k, 1)) + " (they must be equal)");
}
void require_positive(const NodeKey& k, int64_t v, const char* what) {
  if (v <= 0) dim_error(k, string(what) + " must be positive, got " + std::to_string(v));
}

int dim_var(const NodeKey& k) {
  if (k.ints[0] < 0) dim_error(k, "position must be >= 0, got " + std::to_string(k.ints[0]));
  if (k.ints[0] >= kMaxPosition)
    dim_error(k, "position " + std::to_string(k.ints[0]) + " exceeds the limit " + std::to_string(kMaxPosition - 1));
  if (k.ints[2] < 0 || k.ints[2] > 2) dim_error(k, "category must be 0 (i), 1 (j) or 2 (parameter), got " + std::to_string(k.ints[2]));
  return checked_dim(k, k.ints[1], "dimension");
}
int dim_zero(const NodeKey& k) { return checked_dim(k, k.ints[0], "dimension"); }
int dim_index(const NodeKey& k) {
  if (k.ints[0] != 0 && k.ints[0] != 1) dim_error(k, "the category must be 0 (i) or 1 (j), got " + std::to_string(k.ints[0]));
  return 1;
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
  const int d = checked_dim(k, k.ints[0], "dimension");
  if (k.ints[1] < 0 || k.ints[1] >= d)
    dim_error(k, "index " + std::to_string(k.ints[1]) + " is out of range for dimension " + std::to_string(d));
  return d;
}
int dim_extract(const NodeKey& k) {
  int64_t s = k.ints[0], d = k.ints[1], n = dim_of(k, 0);
  require_positive(k, d, "length");
  if (s < 0 || d > n || s > n - d) {  // s + d > n, without overflow
    int64_t e;
    const string end = __builtin_add_overflow(s, d, &e) ? std::to_string(s) + "+" + std::to_string(d) : std::to_string(e);
    dim_error(k, "range [" + std::to_string(s) + ", " + end + ") is out of bounds for dimension " + std::to_string(n));
  }
  return static_cast<int>(d);
}
int dim_extractt(const NodeKey& k) {
  int64_t s = k.ints[0], n = dim_of(k, 0);
  const int D = checked_dim(k, k.ints[1], "dimension");
  if (s < 0 || n > D || s > D - n)
    dim_error(k, "placing dimension " + std::to_string(n) + " at " + std::to_string(s) + " does not fit in dimension " +
                     std::to_string(D));
  return D;
}
int dim_sumt(const NodeKey& k) {
  require_scalar(k, 0, "the argument");
  return checked_dim(k, k.ints[0], "dimension");
}
int dim_concat(const NodeKey& k) { return checked_dim(k, int64_t{dim_of(k, 0)} + dim_of(k, 1), "output dimension"); }
int dim_onehot(const NodeKey& k) {
  require_scalar(k, 0, "the argument");
  return checked_dim(k, k.ints[0], "dimension");
}
int dim_product(const NodeKey& k) { return checked_dim(k, int64_t{dim_of(k, 0)} * dim_of(k, 1), "output dimension"); }
int dim_matvec(const NodeKey& k) {  // MatVecMult(A, b) and VecMatMult(b, A): the larger is the matrix
  int big = std::max(dim_of(k, 0), dim_of(k, 1)), small = std::min(dim_of(k, 0), dim_of(k, 1));
  bool ok = k.op->name == "MatVecMult" ? dim_of(k, 0) % dim_of(k, 1) == 0 : dim_of(k, 1) % dim_of(k, 0) == 0;
  if (!ok) dim_error(k, "matrix dimension " + std::to_string(big) + " is not a multiple of vector dimension " + std::to_string(small));
  return k.op->name == "MatVecMult" ? dim_of(k, 0) / dim_of(k, 1) : dim_of(k, 1) / dim_of(k, 0);
}
int dim_sqnorm_weighted(const NodeKey& k) {  // (s, f): s of dim 1, n or n^2 depending on the operation
  int64_t s = dim_of(k, 0), n = dim_of(k, 1);
  std::string_view op = k.op->name;
  bool ok = op == "SqNormIso" ? s == 1 : op == "SqNormDiag" ? (s == 1 || s == n) : op == "SymSqNorm" ? s == n * n
            : (s == 1 || s == n || s == n * n);
  if (!ok) dim_error(k, "weight dimension " + std::to_string(s) + " does not match vector dimension " + std::to_string(n));
  return 1;
}
int dim_weighted_sqdist(const NodeKey& k) {
  int64_t s = dim_of(k, 0), n = std::max(dim_of(k, 1), dim_of(k, 2));
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
// The shape of a formula of dimension `dim`: positive axis sizes whose product is dim (checked without overflow).
void check_shape(const NodeKey& k, const IntList& shape, int64_t dim, const char* which) {
  int64_t p = 1;
  for (int64_t v : shape)
    if (v <= 0 || __builtin_mul_overflow(p, v, &p) || p > dim)
      dim_error(k, string(which) + " dimension list must hold positive sizes multiplying to " + std::to_string(dim));
  if (p != dim) dim_error(k, string(which) + " dimension list does not multiply to " + std::to_string(dim));
}
// Contraction axes: distinct, each an axis of the shape.
void check_axes(const NodeKey& k, const IntList& axes, const IntList& shape) {
  for (size_t t = 0; t < axes.size(); ++t) {
    if (axes[t] < 0 || axes[t] >= (int64_t)shape.size()) dim_error(k, "contraction axis out of range");
    if (std::find(axes.begin(), axes.begin() + t, axes[t]) != axes.begin() + t)
      dim_error(k, "contraction axis " + std::to_string(axes[t]) + " is repeated");
  }
}
int dim_tensordot(const NodeKey& k) {
  const IntList &da = k.lists[0], &db = k.lists[1], &ca = k.lists[2], &cb = k.lists[3];
  check_shape(k, da, dim_of(k, 0), "first");
  check_shape(k, db, dim_of(k, 1), "second");
  if (ca.size() != cb.size()) dim_error(k, "contraction lists have different lengths");
  check_axes(k, ca, da);
  check_axes(k, cb, db);
  int64_t contracted = 1;
  for (size_t t = 0; t < ca.size(); ++t) {
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
  return checked_dim(k, int64_t{dim_of(k, 0)} * dim_of(k, 1) / (contracted * contracted), "output dimension");
}
int dim_kron(const NodeKey& k) {
  if (k.lists[0].size() != k.lists[1].size()) dim_error(k, "dimension lists have different lengths");
  check_shape(k, k.lists[0], dim_of(k, 0), "first");
  check_shape(k, k.lists[1], dim_of(k, 1), "second");
  return checked_dim(k, int64_t{dim_of(k, 0)} * dim_of(k, 1), "output dimension");
}
int dim_bspline(const NodeKey& k) {
  require_scalar(k, 1, "x");
  const int64_t order = k.ints[0];
  if (order < 0 || order >= int64_t{dim_of(k, 0)} - 1) dim_error(k, "needs more knots than order + 1");
  return static_cast<int>(dim_of(k, 0) - order - 1);
}
int dim_softdtw(const NodeKey& k) { require_scalar(k, 2, "gamma"); return 1; }
int dim_grad_softdtw(const NodeKey& k) { require_scalar(k, 2, "gamma"); return dim_of(k, 0) + dim_of(k, 1); }
int dim_clampint(const NodeKey& k) { return dim_of(k, 0); }
int dim_round(const NodeKey& k) { return dim_of(k, 0); }
int dim_pow(const NodeKey& k) {  // bounded so that the exponents of derivatives (m - 1, ...) never overflow
  if (k.ints[0] < -kMaxPowExponent || k.ints[0] > kMaxPowExponent)
    dim_error(k, "exponent " + std::to_string(k.ints[0]) + " is out of range [-2^31, 2^31]");
  return dim_of(k, 0);
}
// Autodiff and linear-operator forms.
int dim_of_second(const NodeKey& k) { return dim_of(k, 1); }
int dim_gradmatrix(const NodeKey& k) { return checked_dim(k, int64_t{dim_of(k, 0)} * dim_of(k, 1), "output dimension"); }
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
int dim_complex_double(const NodeKey& k) { return checked_dim(k, 2 * int64_t{dim_of(k, 0)}, "output dimension"); }
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
  if (k.ints[0] <= 0 || k.ints[0] % 2 != 0) dim_error(k, "the dimension must be positive and even, got " + std::to_string(k.ints[0]));
  return checked_dim(k, k.ints[0], "dimension");
}

// ---- construction-time rewrites -------------------------------------------------------------------

NodeRef keep_if_dim(NodeRef f, int dim) { return f->dim() == dim ? f : nullptr; }

NodeRef simplify_intcst(const NodeKey& k, int) { return k.ints[0] == 0 ? zero(1) : nullptr; }

bool is_minus(NodeRef n) { return n->is("Minus"); }

NodeRef simplify_add(const NodeKey& k, int dim) {
  NodeRef a = k.args[0], b = k.args[1];
  if (is_zero(a)) return keep_if_dim(b, dim);
  if (is_zero(b)) return keep_if_dim(a, dim);
  if (auto x = int_value(a)) if (auto y = int_value(b)) if (auto z = add_fold(*x, *y)) return int_cst(*z);
  if (a == b) return make("Mult", {int_cst(2), a});
  if (is_minus(b)) return make("Subtract", {a, b->arg(0)});  // a + (-b) -> a - b
  if (is_minus(a)) return make("Subtract", {b, a->arg(0)});  // (-a) + b -> b - a
  return nullptr;
}
NodeRef simplify_subtract(const NodeKey& k, int dim) {
  NodeRef a = k.args[0], b = k.args[1];
  if (is_zero(b)) return keep_if_dim(a, dim);
  if (is_zero(a) && b->dim() == dim) return make("Minus", {b});
  if (auto x = int_value(a)) if (auto y = int_value(b)) if (auto z = sub_fold(*x, *y)) return int_cst(*z);
  if (is_minus(b)) return make("Add", {a, b->arg(0)});  // a - (-b) -> a + b
  return nullptr;
}
NodeRef simplify_mult(const NodeKey& k, int dim) {
  NodeRef a = k.args[0], b = k.args[1];
  if (is_zero(a) || is_zero(b)) return zero(dim);
  auto x = int_value(a), y = int_value(b);
  if (x && y) if (auto z = mul_fold(*x, *y)) return int_cst(*z);
  if (y && !x) return make("Mult", {b, a});
  if (x && y) return nullptr;  // an overflowing product of constants stays as it is  // constants on the left: one canonical form
  if (x == 1) return keep_if_dim(b, dim);
  if (x == -1 && b->dim() == dim) return make("Minus", {b});
  if (a == b) return make("Square", {a});
  if (x && is_minus(b))  // c * (-b) -> (-c) * b
    if (auto c = sub_fold(0, *x)) return make("Mult", {int_cst(*c), b->arg(0)});
  if (x && b->is("Mult"))  // c * (d * b) -> (c d) * b
    if (auto z = int_value(b->arg(0)))
      if (auto c = mul_fold(*x, *z)) return make("Mult", {int_cst(*c), b->arg(1)});
  if (is_minus(a) && is_minus(b)) return make("Mult", {a->arg(0), b->arg(0)});
  if (is_minus(a)) return make("Minus", {make("Mult", {a->arg(0), b})});  // signs move outwards, where
  if (is_minus(b) && !x) return make("Minus", {make("Mult", {a, b->arg(0)})});  // constants absorb them
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
  if (auto x = int_value(a)) if (auto c = sub_fold(0, *x)) return int_cst(*c);
  if (a->is("Mult"))  // -(c * b) -> (-c) * b
    if (auto x = int_value(a->arg(0)))
      if (auto c = sub_fold(0, *x)) return make("Mult", {int_cst(*c), a->arg(1)});
  if (a->is("Subtract") && a->arg(0)->dim() == a->arg(1)->dim())  // -(p - q) -> q - p
    return make("Subtract", {a->arg(1), a->arg(0)});
  return nullptr;
}
NodeRef simplify_square(const NodeKey& k, int) {
  NodeRef a = k.args[0];
  if (is_zero(a)) return a;
  if (auto x = int_value(a)) if (auto c = mul_fold(*x, *x)) return int_cst(*c);
  if (is_minus(a)) return make("Square", {a->arg(0)});
  return nullptr;
}
NodeRef simplify_sum(const NodeKey& k, int) {
  NodeRef a = k.args[0];
  if (is_zero(a)) return zero(1);
  if (a->dim() == 1) return a;
  if (a->is("SumT")) return make("Mult", {int_cst(a->dim()), a->arg(0)});
  return nullptr;
}
NodeRef simplify_pow(const NodeKey& k, int) {
  if (k.ints[0] == 1) return k.args[0];
  if (k.ints[0] == 2) return make("Square", {k.args[0]});
  if (is_zero(k.args[0]) && k.ints[0] > 0) return k.args[0];
  return nullptr;
}
// Operations linear in each argument (or vanishing at 0 in one): zero when any argument is the zero constant.
NodeRef simplify_zero_if_any_zero(const NodeKey& k, int dim) {
  for (NodeRef a : k.args) if (is_zero(a)) return zero(dim);
  return nullptr;
}
// Linear operations: zero when every argument is the zero constant.
NodeRef simplify_zero_if_all_zero(const NodeKey& k, int dim) {
  for (NodeRef a : k.args) if (!is_zero(a)) return nullptr;
  return zero(dim);
}
// Elem(f, m) of zeros, of a scalar, and through ElemT, Concat, Extract, ExtractT and SumT.
NodeRef simplify_elem(const NodeKey& k, int) {
  NodeRef a = k.args[0];
  const int64_t m = k.ints[0];
  if (is_zero(a)) return zero(1);
  if (a->dim() == 1) return a;
  if (a->is("ElemT")) return a->ints()[1] == m ? a->arg(0) : zero(1);
  if (a->is("SumT")) return a->arg(0);
  if (a->is("Concat")) {
    NodeRef l = a->arg(0), r = a->arg(1);
    return m < l->dim() ? make("Elem", {l}, {m}) : make("Elem", {r}, {m - l->dim()});
  }
  if (a->is("Extract")) return make("Elem", {a->arg(0)}, {a->ints()[0] + m});
  if (a->is("ExtractT")) {
    const int64_t s = a->ints()[0], d = a->arg(0)->dim();
    return m >= s && m < s + d ? make("Elem", {a->arg(0)}, {m - s}) : zero(1);
  }
  return nullptr;
}
NodeRef simplify_elemt(const NodeKey& k, int dim) {
  if (is_zero(k.args[0])) return zero(dim);
  if (dim == 1) return k.args[0];
  return nullptr;
}
// Extract(f, s, d) of zeros, of the whole of f, and through Concat, Extract and ExtractT.
NodeRef simplify_extract(const NodeKey& k, int dim) {
  NodeRef a = k.args[0];
  const int64_t s = k.ints[0], d = k.ints[1];
  if (is_zero(a)) return zero(dim);
  if (s == 0 && d == a->dim()) return a;
  if (a->is("Concat")) {
    NodeRef l = a->arg(0), r = a->arg(1);
    if (s + d <= l->dim()) return make("Extract", {l}, {s, d});
    if (s >= l->dim()) return make("Extract", {r}, {s - l->dim(), d});
  }
  if (a->is("Extract")) return make("Extract", {a->arg(0)}, {a->ints()[0] + s, d});
  if (a->is("ExtractT")) {
    const int64_t s2 = a->ints()[0], d2 = a->arg(0)->dim();
    if (s == s2 && d == d2) return a->arg(0);
    if (s + d <= s2 || s >= s2 + d2) return zero(dim);
  }
  return nullptr;
}
NodeRef simplify_extractt(const NodeKey& k, int dim) {
  if (is_zero(k.args[0])) return zero(dim);
  if (k.args[0]->dim() == dim) return k.args[0];
  return nullptr;
}
NodeRef simplify_sumt(const NodeKey& k, int dim) {
  if (is_zero(k.args[0])) return zero(dim);
  if (dim == 1) return k.args[0];
  return nullptr;
}
NodeRef simplify_complex_sumt(const NodeKey& k, int dim) {
  if (is_zero(k.args[0])) return zero(dim);
  if (dim == 2) return k.args[0];
  return nullptr;
}
// ComplexReal / ComplexImag of zeros and of Real2Complex / Imag2Complex.
template <bool Imag>
NodeRef simplify_complex_part(const NodeKey& k, int dim) {
  NodeRef a = k.args[0];
  if (is_zero(a)) return zero(dim);
  if (a->is("Real2Complex")) return Imag ? zero(dim) : a->arg(0);
  if (a->is("Imag2Complex")) return Imag ? a->arg(0) : zero(dim);
  return nullptr;
}
NodeRef simplify_conj(const NodeKey& k, int dim) {
  NodeRef a = k.args[0];
  if (is_zero(a)) return zero(dim);
  if (a->is("Conj")) return a->arg(0);
  return nullptr;
}
NodeRef simplify_complex_add(const NodeKey& k, int dim) {
  NodeRef a = k.args[0], b = k.args[1];
  if (is_zero(a)) return b->dim() == dim ? b : nullptr;
  if (is_zero(b)) return a->dim() == dim ? a : nullptr;
  return nullptr;
}
NodeRef simplify_complex_subtract(const NodeKey& k, int dim) {
  NodeRef a = k.args[0], b = k.args[1];
  if (is_zero(b)) return a->dim() == dim ? a : nullptr;
  if (is_zero(a) && b->dim() == dim) return make("Minus", {b});
  return nullptr;
}
NodeRef simplify_complex_divide(const NodeKey& k, int dim) {
  if (is_zero(k.args[1])) dim_error(k, "division by the constant zero");
  if (is_zero(k.args[0])) return zero(dim);
  return nullptr;
}
NodeRef simplify_weighted_sqdist(const NodeKey& k, int dim) {
  if (is_zero(k.args[0]) || (is_zero(k.args[1]) && is_zero(k.args[2]))) return zero(dim);
  return nullptr;
}
// IfElse(f, a, a) -> a.
NodeRef simplify_ifelse(const NodeKey& k, int dim) {
  if (k.args[1] == k.args[2] && k.args[1]->dim() == dim) return k.args[1];
  return nullptr;
}
// Autodiff and linear-operator forms resolve at construction: lowering never sees them.
NodeRef simplify_grad(const NodeKey& k, int) {
  NodeRef f = k.args[0], v = k.args[1];
  if (k.args.size() > 2) return grad(f, v, k.args[2]);
  // KeOps's convention for an omitted gradient input: a new Var at the next free position, of f's dimension,
  // indexed by the other index than v.
  const int64_t cat = v->ints()[2];
  if (cat == CAT_P)
    dim_error(k, "the gradient input can only be omitted for a variable indexed by i or j (a new Var(next "
                 "position, formula dim, 1 - category) is then created); " + print(v) + " is a parameter");
  return grad(f, v, next_var({f, v}, f->dim(), static_cast<int>(1 - cat)));
}
NodeRef simplify_diff(const NodeKey& k, int) {
  NodeRef f = k.args[0], v = k.args[1];
  // An omitted direction becomes a new Var at the next free position, of v's dimension and category.
  NodeRef u = k.args.size() > 2 ? k.args[2] : next_var({f, v}, v->dim(), static_cast<int>(v->ints()[2]));
  return diff(f, v, u);
}
NodeRef simplify_divergence(const NodeKey& k, int) { return divergence(k.args[0], k.args[1]); }
NodeRef simplify_laplacian(const NodeKey& k, int) { return laplacian(k.args[0], k.args[1]); }
NodeRef simplify_gradmatrix(const NodeKey& k, int) { return grad_matrix(k.args[0], k.args[1]); }
NodeRef simplify_trace(const NodeKey& k, int) {
  return trace_operator(k.args[0], k.args[1], k.args.size() > 2 ? k.args[2] : nullptr);
}
NodeRef simplify_adjoint(const NodeKey& k, int) { return adjoint_operator(k.args[0], k.args[1], k.args[2]); }
NodeRef simplify_sumlin(const NodeKey& k, int) {
  return sum_lin_operator(k.args[0], k.args[1], k.args.size() > 2 ? k.args[2] : nullptr,
                          k.args.size() > 3 ? k.args[3] : nullptr);
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
Vals lower_index(Lowerer& L, const Node& n, const Args&) { return {L.index(static_cast<int>(n.ints()[0]))}; }
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
  return L.mul(L.emit(Prim::Le, lo, x[0]), L.emit(Prim::Le, x[0], hi));
}
int ifelse_of(Lowerer& L, const Node&, const std::vector<int>& x) { return L.emit(Prim::IfPos, x[0], x[1], x[2]); }
int mod_of(Lowerer& L, const Node&, const std::vector<int>& x) {  // f - n * floor((f - d) / n)
  return L.sub(x[0], L.mul(x[1], L.emit(Prim::Floor, L.div(L.sub(x[0], x[2]), x[1]))));
}
int powf_of(Lowerer& L, const Node&, const std::vector<int>& x) {  // 1 where g = 0, as C's pow (and KeOps)
  return L.emit(Prim::Select, L.emit(Prim::Eq, x[1], L.constant(0)), L.constant(1),
                L.emit(Prim::Exp, L.mul(x[1], L.emit(Prim::Log, x[0]))));
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
// numpy.tensordot(f, g, (contract_f, contract_g)) on row-major shapes; then, if given, axis k of that result moves to
// position perm[k] (KeOps's rule: numpy.transpose(result, numpy.argsort(perm))).
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
  const IntList& moved_to = n.lists()[4];
  IntList perm(moved_to.size());  // result axis t is unpermuted axis perm[t]
  for (size_t k = 0; k < moved_to.size(); ++k) perm[moved_to[k]] = k;
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
// Fills R and S(i,j) = the softmin term of R(i,j), for 1 <= i <= n, 1 <= j <= m.
void softdtw_table(Lowerer& L, const Vals& x, const Vals& y, int gamma, std::vector<Vals>& R, std::vector<Vals>& S) {
  int inf = L.constant(INFINITY);
  size_t n = x.size(), m = y.size();
  R.assign(n + 1, Vals(m + 1, inf));
  S.assign(n + 1, Vals(m + 1, inf));
  R[0][0] = L.constant(0);
  for (size_t i = 1; i <= n; ++i)
    for (size_t j = 1; j <= m; ++j) {
      int r0 = R[i - 1][j - 1], r1 = R[i - 1][j], r2 = R[i][j - 1];
      // -gamma * log(sum exp(-r / gamma)), shifted by the smallest r so that exp never overflows.
      int lo = L.emit(Prim::Min, r0, L.emit(Prim::Min, r1, r2));
      int s = L.constant(0);
      for (int r : {r0, r1, r2}) s = L.add(s, L.emit(Prim::Exp, L.div(L.sub(lo, r), gamma)));
      S[i][j] = L.sub(lo, L.mul(gamma, L.emit(Prim::Log, s)));
      int diff = L.sub(x[i - 1], y[j - 1]);
      R[i][j] = L.add(L.mul(diff, diff), S[i][j]);
    }
}
Vals lower_softdtw(Lowerer& L, const Node&, const Args& a) {
  std::vector<Vals> R, S;
  softdtw_table(L, a[0], a[1], a[2][0], R, S);
  return {R[a[0].size()][a[1].size()]};
}
// Gradient of soft-DTW with respect to (x, y), by the backward recursion of Cuturi & Blondel (2017):
// E(i,j) = dR(n,m)/dR(i,j) = sum over the successors s of (i,j) of E(s) exp((S(s) - R(i,j)) / gamma), E(n,m) = 1,
// since dS(s)/dR(p) = exp((S(s) - R(p)) / gamma) for each predecessor p of s. Then, with D(i,j) = (x_i - y_j)^2,
// d/dx_i = sum_j E(i,j) 2 (x_i - y_j) and d/dy_j = -sum_i E(i,j) 2 (x_i - y_j).
Vals lower_grad_softdtw(Lowerer& L, const Node&, const Args& a) {
  const Vals &x = a[0], &y = a[1];
  int gamma = a[2][0];
  size_t n = x.size(), m = y.size();
  std::vector<Vals> R, S;
  softdtw_table(L, x, y, gamma, R, S);
  std::vector<Vals> E(n + 2, Vals(m + 2, -1));
  for (size_t i = n; i >= 1; --i)
    for (size_t j = m; j >= 1; --j) {
      if (i == n && j == m) { E[i][j] = L.constant(1); continue; }
      int e = -1;
      for (auto [si, sj] : {std::pair{i + 1, j}, std::pair{i, j + 1}, std::pair{i + 1, j + 1}}) {
        if (si > n || sj > m) continue;
        int t = L.mul(E[si][sj], L.emit(Prim::Exp, L.div(L.sub(S[si][sj], R[i][j]), gamma)));
        e = e < 0 ? t : L.add(e, t);
      }
      E[i][j] = e;
    }
  Vals gx(n), gy(m);
  std::vector<Vals> terms_y(m);
  for (size_t i = 1; i <= n; ++i) {
    Vals terms_x;
    for (size_t j = 1; j <= m; ++j) {
      int t = L.mul(L.mul(L.constant(2), E[i][j]), L.sub(x[i - 1], y[j - 1]));
      terms_x.push_back(t);
      terms_y[j - 1].push_back(t);
    }
    gx[i - 1] = L.sum(terms_x);
  }
  for (size_t j = 0; j < m; ++j) gy[j] = L.emit(Prim::Neg, L.sum(terms_y[j]));
  gx.insert(gx.end(), gy.begin(), gy.end());
  return gx;
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

// ---- derivative rules (vector-Jacobian products; see GradFn in op_table.h) --------------------------

namespace sym {  // formula builders for the rules; make() simplifies as it builds

NodeRef op(std::string_view name, std::vector<NodeRef> a, IntList i = {}, std::vector<IntList> l = {}) {
  return make(name, std::move(a), std::move(i), std::move(l));
}
NodeRef cst(int64_t n) { return int_cst(n); }
NodeRef add(NodeRef a, NodeRef b) { return op("Add", {a, b}); }
NodeRef sub(NodeRef a, NodeRef b) { return op("Subtract", {a, b}); }
NodeRef mul(NodeRef a, NodeRef b) { return op("Mult", {a, b}); }
NodeRef div(NodeRef a, NodeRef b) { return op("Divide", {a, b}); }
NodeRef neg(NodeRef a) { return op("Minus", {a}); }
NodeRef sq(NodeRef a) { return op("Square", {a}); }
NodeRef fn(std::string_view name, NodeRef a) { return op(name, {a}); }
// A contribution of the node's dimension, summed back onto an argument broadcast from dimension 1.
NodeRef fit(NodeRef g, NodeRef arg) {
  if (g->dim() == arg->dim()) return g;
  KEOPS_ASSERT(arg->dim() == 1, "contribution of dimension " + std::to_string(g->dim()) + " to an argument of dimension " +
                                    std::to_string(arg->dim()));
  return op("Sum", {g});
}
// The same for a complex scalar (dimension 2) broadcast over a complex vector.
NodeRef cfit(NodeRef g, NodeRef arg) {
  if (g->dim() == arg->dim()) return g;
  KEOPS_ASSERT(arg->dim() == 2, "complex contribution to an argument of dimension " + std::to_string(arg->dim()));
  return op("ComplexSum", {g});
}
NodeRef self(const Node& n) { return &n; }  // nodes are interned: the address is the node

}  // namespace sym

using namespace sym;

NodeRef grad_leaf(const Node& n, size_t, NodeRef) {
  internal_failure(__FILE__, __LINE__, "derivative rule of the leaf " + string(n.op().name) + " called");
}
NodeRef grad_resolved(const Node& n, size_t, NodeRef) {
  internal_failure(__FILE__, __LINE__, string(n.op().name) + " should have been resolved at construction");
}
// Piecewise-constant operations (comparisons, Floor, Sign, Step, Round, ArgMin, ArgMax, OneHot, ...).
NodeRef grad_zero(const Node& n, size_t k, NodeRef) { return zero(n.arg(k)->dim()); }
NodeRef grad_identity(const Node& n, size_t k, NodeRef e) { return fit(e, n.arg(k)); }  // Add, AutoFactorize
NodeRef grad_factorize(const Node& n, size_t k, NodeRef e) {  // Factorize(f, g) is f: g is only a hint
  return k == 0 ? e : zero(n.arg(1)->dim());
}

// Element-wise functions of one argument: e * f'(x).
NodeRef grad_minus(const Node&, size_t, NodeRef e) { return neg(e); }
NodeRef grad_square(const Node& n, size_t, NodeRef e) { return mul(cst(2), mul(e, n.arg(0))); }
// Rsqrt(x) / 2, so 0 at x = 0 (KeOps's convention Rsqrt(0) = 0): distances' self-terms get no NaN gradient.
NodeRef grad_sqrt(const Node& n, size_t, NodeRef e) { return mul(mul(op("RatCst", {}, {1, 2}), fn("Rsqrt", n.arg(0))), e); }
NodeRef grad_rsqrt(const Node& n, size_t, NodeRef e) {  // -x^(-3/2) / 2 = -Rsqrt(x)^3 / 2
  return mul(mul(op("RatCst", {}, {-1, 2}), op("Pow", {self(n)}, {3})), e);
}
NodeRef grad_inv(const Node& n, size_t, NodeRef e) { return neg(mul(e, sq(self(n)))); }
NodeRef grad_exp(const Node& n, size_t, NodeRef e) { return mul(e, self(n)); }
NodeRef grad_log(const Node& n, size_t, NodeRef e) { return div(e, n.arg(0)); }
NodeRef grad_abs(const Node& n, size_t, NodeRef e) { return mul(e, fn("Sign", n.arg(0))); }
NodeRef grad_sin(const Node& n, size_t, NodeRef e) { return mul(e, fn("Cos", n.arg(0))); }
NodeRef grad_cos(const Node& n, size_t, NodeRef e) { return neg(mul(e, fn("Sin", n.arg(0)))); }
NodeRef grad_asin(const Node& n, size_t, NodeRef e) { return mul(e, fn("Rsqrt", sub(cst(1), sq(n.arg(0))))); }
NodeRef grad_acos(const Node& n, size_t, NodeRef e) { return neg(mul(e, fn("Rsqrt", sub(cst(1), sq(n.arg(0)))))); }
NodeRef grad_atan(const Node& n, size_t, NodeRef e) { return div(e, add(cst(1), sq(n.arg(0)))); }
NodeRef grad_relu(const Node& n, size_t, NodeRef e) { return mul(e, fn("Step", n.arg(0))); }
NodeRef grad_xlogx(const Node& n, size_t, NodeRef e) { return mul(e, add(fn("Log", n.arg(0)), cst(1))); }
NodeRef grad_sinxdivx(const Node& n, size_t, NodeRef e) {  // (cos x - sin x / x) / x, and 0 at x = 0
  NodeRef x = n.arg(0);
  return mul(e, op("IfElse", {neg(fn("Abs", x)), zero(1), div(sub(fn("Cos", x), self(n)), x)}));
}
NodeRef grad_pow(const Node& n, size_t, NodeRef e) {
  const int64_t m = n.ints()[0];
  if (m == 0) return zero(n.dim());
  return mul(mul(cst(m), op("Pow", {n.arg(0)}, {m - 1})), e);
}
NodeRef grad_clampint(const Node& n, size_t, NodeRef e) { return mul(e, op("DiffClampInt", {n.arg(0)}, n.ints())); }

// Element-wise functions of several arguments (dims equal or 1).
NodeRef grad_subtract(const Node& n, size_t k, NodeRef e) { return fit(k == 0 ? e : neg(e), n.arg(k)); }
NodeRef grad_mult(const Node& n, size_t k, NodeRef e) { return fit(mul(e, n.arg(1 - k)), n.arg(k)); }
NodeRef grad_divide(const Node& n, size_t k, NodeRef e) {
  NodeRef g = n.arg(1);
  return fit(k == 0 ? div(e, g) : neg(div(mul(e, self(n)), g)), n.arg(k));
}
NodeRef grad_atan2(const Node& n, size_t k, NodeRef e) {  // atan2(y, x): (x dy - y dx) / (x^2 + y^2)
  NodeRef y = n.arg(0), x = n.arg(1), r2 = add(sq(y), sq(x));
  return fit(k == 0 ? div(mul(e, x), r2) : neg(div(mul(e, y), r2)), n.arg(k));
}
NodeRef grad_powf(const Node& n, size_t k, NodeRef e) {  // exp(g log f)
  NodeRef f = n.arg(0), g = n.arg(1);
  return fit(k == 0 ? mul(mul(e, g), op("Powf", {f, sub(g, cst(1))})) : mul(mul(e, self(n)), fn("Log", f)), n.arg(k));
}
// min(max(f, a), b): which of f, a, b is selected; f on the closed [a, b] (at a bound too, as KeOps).
NodeRef grad_clamp(const Node& n, size_t k, NodeRef e) {
  NodeRef f = n.arg(0), a = n.arg(1), b = n.arg(2);
  NodeRef takes_f = mul(op("LessOrEqual", {a, f}), op("LessOrEqual", {f, b}));
  NodeRef takes_a = mul(op("LessThan", {f, a}), op("LessOrEqual", {a, b}));
  NodeRef mask = k == 0 ? takes_f : k == 1 ? takes_a : sub(sub(cst(1), takes_f), takes_a);
  return fit(mul(e, mask), n.arg(k));
}
NodeRef grad_ifelse(const Node& n, size_t k, NodeRef e) {  // a where f >= 0, else b
  if (k == 0) return zero(n.arg(0)->dim());
  NodeRef f = n.arg(0);
  return fit(k == 1 ? op("IfElse", {f, e, zero(1)}) : op("IfElse", {f, zero(1), e}), n.arg(k));
}
NodeRef grad_mod(const Node& n, size_t k, NodeRef e) {  // f - m floor((f - d) / m)
  NodeRef f = n.arg(0), m = n.arg(1), d = n.arg(2);
  if (k == 2) return zero(d->dim());
  return fit(k == 0 ? e : neg(mul(e, fn("Floor", div(sub(f, d), m)))), n.arg(k));
}

// Vector and structural operations: adjoint pairs.
NodeRef grad_sum(const Node& n, size_t, NodeRef e) { return op("SumT", {e}, {n.arg(0)->dim()}); }
NodeRef grad_sumt(const Node&, size_t, NodeRef e) { return fn("Sum", e); }
template <bool IsMax>
NodeRef grad_extremum(const Node& n, size_t, NodeRef e) {
  NodeRef f = n.arg(0);
  return mul(op("OneHot", {fn(IsMax ? "ArgMax" : "ArgMin", f)}, {f->dim()}), e);
}
NodeRef grad_elem(const Node& n, size_t, NodeRef e) { return op("ElemT", {e}, {n.arg(0)->dim(), n.ints()[0]}); }
NodeRef grad_elemt(const Node& n, size_t, NodeRef e) { return op("Elem", {e}, {n.ints()[1]}); }
NodeRef grad_extract(const Node& n, size_t, NodeRef e) { return op("ExtractT", {e}, {n.ints()[0], n.arg(0)->dim()}); }
NodeRef grad_extractt(const Node& n, size_t, NodeRef e) { return op("Extract", {e}, {n.ints()[0], n.arg(0)->dim()}); }
NodeRef grad_concat(const Node& n, size_t k, NodeRef e) {
  return op("Extract", {e}, {k == 0 ? 0 : n.arg(0)->dim(), n.arg(k)->dim()});
}
NodeRef grad_scalprod(const Node& n, size_t k, NodeRef e) { return mul(e, n.arg(1 - k)); }
NodeRef grad_sqnorm2(const Node& n, size_t, NodeRef e) { return mul(cst(2), mul(e, n.arg(0))); }
NodeRef grad_norm2(const Node& n, size_t, NodeRef e) { return mul(e, fn("Normalize", n.arg(0))); }
NodeRef grad_normalize(const Node& n, size_t, NodeRef e) {  // u = f/|f|: (e - u <u, e>) / |f|
  NodeRef u = self(n);
  return mul(fn("Rsqrt", fn("SqNorm2", n.arg(0))), sub(e, mul(u, op("Scalprod", {u, e}))));
}
NodeRef grad_sqdist(const Node& n, size_t k, NodeRef e) {
  NodeRef t = mul(cst(2), mul(e, sub(n.arg(0), n.arg(1))));
  return fit(k == 0 ? t : neg(t), n.arg(k));
}
// x^T S x with the dispatch of its lowering on s.dim: n*n (full, n > 1), 1 (isotropic, n > 1), else diagonal.
NodeRef weighted_sqnorm_grad(NodeRef s, NodeRef x, NodeRef e, bool wrt_weight) {
  const int64_t n = x->dim();
  const bool full = s->dim() == n * n && n > 1, iso = s->dim() == 1 && n > 1;
  if (wrt_weight) {
    if (full) return mul(e, op("TensorProd", {x, x}));
    if (iso) return mul(e, fn("SqNorm2", x));
    return fit(mul(e, sq(x)), s);
  }
  if (full) return mul(e, add(op("MatVecMult", {s, x}), op("VecMatMult", {x, s})));
  return mul(cst(2), mul(mul(e, s), x));
}
NodeRef grad_weighted_sqnorm(const Node& n, size_t k, NodeRef e) {
  return weighted_sqnorm_grad(n.arg(0), n.arg(1), e, k == 0);
}
NodeRef grad_weighted_sqdist(const Node& n, size_t k, NodeRef e) {
  NodeRef d = sub(n.arg(1), n.arg(2));
  if (k == 0) return weighted_sqnorm_grad(n.arg(0), d, e, true);
  NodeRef g = weighted_sqnorm_grad(n.arg(0), d, e, false);
  return fit(k == 1 ? g : neg(g), n.arg(k));
}
NodeRef grad_matvec(const Node& n, size_t k, NodeRef e) {  // A b: dA = e b^T, db = e^T A
  return k == 0 ? op("TensorProd", {e, n.arg(1)}) : op("VecMatMult", {e, n.arg(0)});
}
NodeRef grad_vecmat(const Node& n, size_t k, NodeRef e) {  // b^T A: db = A e, dA = b e^T
  return k == 0 ? op("MatVecMult", {n.arg(1), e}) : op("TensorProd", {n.arg(0), e});
}
NodeRef grad_tensorprod(const Node& n, size_t k, NodeRef e) {  // f g^T: df = E g, dg = E^T f
  return k == 0 ? op("MatVecMult", {e, n.arg(1)}) : op("VecMatMult", {n.arg(0), e});
}
// TensorDot(f, g, da, db, ca, cb[, perm]): the adjoint of one argument is a TensorDot of e with the other one,
// contracting e's axes that come from the other argument's free axes, then permuted back to the argument's axes.
NodeRef tensordot_grad(NodeRef f, NodeRef g, const std::vector<IntList>& lists, size_t k, NodeRef e) {
  const IntList &da = lists[0], &db = lists[1], &ca = lists[2], &cb = lists[3];
  auto free_axes = [](const IntList& dims, const IntList& contracted) {
    IntList r;
    for (int64_t t = 0; t < (int64_t)dims.size(); ++t)
      if (std::find(contracted.begin(), contracted.end(), t) == contracted.end()) r.push_back(t);
    return r;
  };
  const IntList free_a = free_axes(da, ca), free_b = free_axes(db, cb);
  const int64_t n_free_a = free_a.size(), n_out = n_free_a + free_b.size();
  IntList perm(n_out);  // axis t of e is the unpermuted output axis perm[t] (free_a first, then free_b)
  for (int64_t k = 0; k < n_out; ++k) perm[lists.size() > 4 ? lists[4][k] : k] = k;
  IntList e_shape;
  for (int64_t u : perm) e_shape.push_back(u < n_free_a ? da[free_a[u]] : db[free_b[u - n_free_a]]);
  const IntList &d_own = k == 0 ? da : db, &d_other = k == 0 ? db : da;
  const IntList &c_own = k == 0 ? ca : cb, &c_other = k == 0 ? cb : ca;
  const IntList &free_own = k == 0 ? free_a : free_b, &free_other = k == 0 ? free_b : free_a;
  const int64_t own_lo = k == 0 ? 0 : n_free_a, other_lo = k == 0 ? n_free_a : 0;
  auto is_own = [&](int64_t u) { return u >= own_lo && u < own_lo + (int64_t)free_own.size(); };
  IntList contract_e, contract_other, result_axes;  // result_axes[r]: the own axis that result axis r is
  for (int64_t t = 0; t < n_out; ++t)
    if (!is_own(perm[t])) contract_e.push_back(t), contract_other.push_back(free_other[perm[t] - other_lo]);
  for (int64_t t = 0; t < n_out; ++t)
    if (is_own(perm[t])) result_axes.push_back(free_own[perm[t] - own_lo]);
  IntList c_other_sorted = c_other;
  std::sort(c_other_sorted.begin(), c_other_sorted.end());
  for (int64_t ax : c_other_sorted) {  // the other's contracted axes, in its order, pair with ours
    size_t s = std::find(c_other.begin(), c_other.end(), ax) - c_other.begin();
    result_axes.push_back(c_own[s]);
  }
  // Unpermuted axis r of the adjoint is own axis result_axes[r]: that is where it moves to.
  bool identity = true;
  for (size_t r = 0; r < result_axes.size(); ++r) identity = identity && result_axes[r] == (int64_t)r;
  std::vector<IntList> l = {e_shape, d_other, contract_e, contract_other};
  if (!identity) l.push_back(result_axes);
  return op("TensorDot", {e, k == 0 ? g : f}, {}, l);
}
NodeRef grad_tensordot(const Node& n, size_t k, NodeRef e) { return tensordot_grad(n.arg(0), n.arg(1), n.lists(), k, e); }
// Kron(f, g, df, dg) is TensorDot(f, g, df, dg, [], [], [0, 2, 4, ..., 1, 3, 5, ...]) (same row-major layout):
// axis t of f moves to 2t, axis t of g to 2t+1.
NodeRef grad_kron(const Node& n, size_t k, NodeRef e) {
  const int64_t r = n.lists()[0].size();
  IntList perm(2 * r);
  for (int64_t t = 0; t < r; ++t) perm[t] = 2 * t, perm[r + t] = 2 * t + 1;
  return tensordot_grad(n.arg(0), n.arg(1), {n.lists()[0], n.lists()[1], {}, {}, perm}, k, e);
}
// d/dx B_{i,p}(x) = c_i B_{i,p-1}(x) - c_{i+1} B_{i+1,p-1}(x), c_i = p / (t_{i+p} - t_i) (0 on an empty span).
NodeRef grad_bspline(const Node& n, size_t k, NodeRef e) {
  if (k == 0) throw NotSupported("BSpline: the derivative with respect to the knots is not supported");
  NodeRef t = n.arg(0), x = n.arg(1);
  const int64_t p = n.ints()[0], d = n.dim();
  if (p == 0) return zero(1);
  NodeRef lower_order = op("BSpline", {t, x}, {p - 1});
  NodeRef span = sub(op("Extract", {t}, {p, d + 1}), op("Extract", {t}, {0, d + 1}));
  NodeRef c = op("IfElse", {neg(fn("Abs", span)), zero(1), div(cst(p), span)});
  NodeRef w = mul(c, lower_order);
  return op("Scalprod", {e, sub(op("Extract", {w}, {0, d}), op("Extract", {w}, {1, d}))});
}
NodeRef grad_softdtw(const Node& n, size_t k, NodeRef e) {
  if (k == 2) throw NotSupported("SoftDTW_SqDist: the derivative with respect to gamma is not supported");
  NodeRef x = n.arg(0), y = n.arg(1);
  NodeRef g = op("GradSoftDTW_SqDist", {x, y, n.arg(2)});
  return mul(e, k == 0 ? op("Extract", {g}, {0, x->dim()}) : op("Extract", {g}, {x->dim(), y->dim()}));
}
NodeRef grad_not_differentiable(const Node& n, size_t, NodeRef) {
  throw NotSupported(string(n.op().name) + " is not differentiable (it is itself a derivative, without a rule of its own)");
}

// Complex operations (interleaved re, im). Multiplication by w has the adjoint multiplication by conj(w).
NodeRef grad_complex_real(const Node&, size_t, NodeRef e) { return fn("Real2Complex", e); }
NodeRef grad_complex_imag(const Node&, size_t, NodeRef e) { return fn("Imag2Complex", e); }
NodeRef grad_real2complex(const Node&, size_t, NodeRef e) { return fn("ComplexReal", e); }
NodeRef grad_imag2complex(const Node&, size_t, NodeRef e) { return fn("ComplexImag", e); }
NodeRef grad_conj(const Node&, size_t, NodeRef e) { return fn("Conj", e); }
NodeRef grad_complex_squareabs(const Node& n, size_t, NodeRef e) {  // 2 (re, im) e
  return mul(cst(2), op("ComplexMult", {fn("Real2Complex", e), n.arg(0)}));
}
NodeRef grad_complex_abs(const Node& n, size_t, NodeRef e) {  // (re, im) e / |z|, 0 at z = 0 (Rsqrt(0) = 0)
  NodeRef z = n.arg(0);
  return op("ComplexMult", {fn("Real2Complex", mul(e, fn("Rsqrt", fn("ComplexSquareAbs", z)))), z});
}
NodeRef grad_complex_angle(const Node& n, size_t, NodeRef e) {  // (-im, re) e / |z|^2
  NodeRef z = n.arg(0);
  return op("ComplexMult", {fn("Imag2Complex", div(e, fn("ComplexSquareAbs", z))), z});
}
NodeRef grad_complex_exp1j(const Node& n, size_t, NodeRef e) {  // d(cos x, sin x) = (-sin x, cos x) dx
  NodeRef w = self(n);
  return sub(mul(fn("ComplexImag", e), fn("ComplexReal", w)), mul(fn("ComplexReal", e), fn("ComplexImag", w)));
}
NodeRef grad_complex_exp(const Node& n, size_t, NodeRef e) { return op("ComplexMult", {e, fn("Conj", self(n))}); }
NodeRef grad_complex_add(const Node& n, size_t k, NodeRef e) { return cfit(e, n.arg(k)); }
NodeRef grad_complex_subtract(const Node& n, size_t k, NodeRef e) { return cfit(k == 0 ? e : neg(e), n.arg(k)); }
NodeRef grad_complex_mult(const Node& n, size_t k, NodeRef e) {
  return cfit(op("ComplexMult", {e, fn("Conj", n.arg(1 - k))}), n.arg(k));
}
NodeRef grad_complex_divide(const Node& n, size_t k, NodeRef e) {  // d(f/g) = df / g - (f/g) dg / g
  NodeRef g = n.arg(1);
  NodeRef c = k == 0 ? op("ComplexDivide", {e, fn("Conj", g)})
                     : neg(op("ComplexMult", {e, fn("Conj", op("ComplexDivide", {self(n), g}))}));
  return cfit(c, n.arg(k));
}
NodeRef grad_complex_realscal(const Node& n, size_t k, NodeRef e) {  // s z, s real
  const size_t s = n.arg(0)->dim() == 1 ? 0 : 1;
  return k == s ? fn("Sum", mul(e, n.arg(1 - s))) : mul(n.arg(s), e);
}
NodeRef grad_complex_sum(const Node& n, size_t, NodeRef e) { return op("ComplexSumT", {e}, {n.arg(0)->dim()}); }
NodeRef grad_complex_sumt(const Node&, size_t, NodeRef e) { return fn("ComplexSum", e); }

// ---- the table ------------------------------------------------------------------------------------

std::vector<OpInfo> build_table() {
  const auto U = "F";
  const auto B = "FF";
  // Output dimensions in words (the dim functions say them in code).
  constexpr std::string_view kOne = "1", kSame = "dim of f", kMaxOf = "max of the dims (equal, or 1)";
  constexpr std::string_view kComplexHalf = "dim of f / 2 (one real per complex entry)";
  constexpr std::string_view kComplexMax = "max of the dims (equal, or one of them 2: a complex scalar)";
  return {
      // variables and constants
      {.name = "Var", .signature = "III",
       .doc = "Variable Var(pos, dim, cat): argument number pos, of dimension dim, indexed by i (cat 0), j (1) or a parameter (2).",
       .dim = dim_var, .out_dim = "dim", .lower = lower_var, .on_complex = true, .grad = grad_leaf},
      {.name = "IntCst", .signature = "I", .doc = "Integer constant.", .dim = dim_one, .out_dim = kOne,
       .lower = lower_intcst, .simplify = simplify_intcst, .on_complex = true, .grad = grad_leaf},
      {.name = "RatCst", .signature = "II", .doc = "Rational constant p/q.", .dim = dim_ratcst, .out_dim = kOne,
       .lower = lower_ratcst, .on_complex = true, .grad = grad_leaf},
      {.name = "IntInv", .signature = "I", .doc = "Constant 1/n.", .dim = dim_intinv, .out_dim = kOne,
       .lower = lower_intinv, .on_complex = true, .grad = grad_leaf},
      {.name = "Zero", .signature = "I", .doc = "Zero vector of dimension d.", .dim = dim_zero, .out_dim = "d",
       .lower = lower_zero, .on_complex = true, .grad = grad_leaf},
      {.name = "RowIndex", .signature = "I",
       .doc = "RowIndex(c): the index of the current i (c = 0) or j (c = 1), as a number (exact up to 2^24 in float32). "
              "The gradients of Min, Max and KMin use it to single out the selected index.",
       .dim = dim_index, .out_dim = kOne, .lower = lower_index, .accuracy = "exact", .grad = grad_leaf},
      // element-wise arithmetic
      {.name = "Add", .signature = B, .doc = "Element-wise sum; dims equal or 1.", .dim = dim_vect,
       .out_dim = kMaxOf, .lower = lower_binary<Prim::Add>, .simplify = simplify_add,
       .infix = "+", .on_complex = true, .grad = grad_identity},
      {.name = "Subtract", .signature = B, .doc = "Element-wise difference; dims equal or 1.", .dim = dim_vect,
       .out_dim = kMaxOf, .lower = lower_binary<Prim::Sub>, .simplify = simplify_subtract,
       .infix = "-", .on_complex = true, .grad = grad_subtract},
      {.name = "Mult", .signature = B, .doc = "Element-wise product; dims equal or 1.", .dim = dim_vect,
       .out_dim = kMaxOf, .lower = lower_binary<Prim::Mul>, .simplify = simplify_mult,
       .infix = "*", .grad = grad_mult},
      {.name = "Divide", .signature = B, .doc = "Element-wise quotient; dims equal or 1.", .dim = dim_vect,
       .out_dim = kMaxOf, .lower = lower_binary<Prim::Div>, .simplify = simplify_divide,
       .infix = "/", .grad = grad_divide},
      {.name = "Minus", .signature = U, .doc = "Negation.", .dim = dim_first, .out_dim = kSame,
       .lower = lower_unary<Prim::Neg>, .simplify = simplify_minus, .on_complex = true, .grad = grad_minus},
      {.name = "Square", .signature = U, .doc = "x*x element-wise.", .dim = dim_first, .out_dim = kSame,
       .lower = lower_square, .simplify = simplify_square, .grad = grad_square},
      {.name = "Sqrt", .signature = U,
       .doc = "Square root element-wise (NaN below 0); derivative Rsqrt(x)/2, so 0 at 0 as in KeOps.",
       .dim = dim_first, .out_dim = kSame, .lower = lower_unary<Prim::Sqrt>, .accuracy = "correctly rounded",
       .grad = grad_sqrt},
      {.name = "Rsqrt", .signature = U, .doc = "1/sqrt(x) element-wise, with Rsqrt(0) = 0 as in KeOps.",
       .dim = dim_first, .out_dim = kSame, .lower = lower_rsqrt, .accuracy = "<= 1.5 ulp", .grad = grad_rsqrt},
      {.name = "Inv", .signature = U, .doc = "1/x element-wise.", .dim = dim_first, .out_dim = kSame,
       .lower = lower_inv, .accuracy = "correctly rounded", .grad = grad_inv},
      {.name = "Exp", .signature = U, .doc = "Exponential element-wise.", .dim = dim_first, .out_dim = kSame,
       .lower = lower_unary<Prim::Exp>, .accuracy = "see vec_math", .grad = grad_exp},
      {.name = "Log", .signature = U, .doc = "Natural logarithm element-wise (NaN below 0, -inf at 0).",
       .dim = dim_first, .out_dim = kSame, .lower = lower_unary<Prim::Log>, .accuracy = "see vec_math",
       .grad = grad_log},
      {.name = "Abs", .signature = U, .doc = "Absolute value element-wise.", .dim = dim_first, .out_dim = kSame,
       .lower = lower_unary<Prim::Abs>, .accuracy = "exact", .grad = grad_abs},
      {.name = "Sin", .signature = U, .doc = "Sine element-wise.", .dim = dim_first, .out_dim = kSame,
       .lower = lower_unary<Prim::Sin>, .accuracy = "see vec_math", .grad = grad_sin},
      {.name = "Cos", .signature = U, .doc = "Cosine element-wise.", .dim = dim_first, .out_dim = kSame,
       .lower = lower_unary<Prim::Cos>, .accuracy = "see vec_math", .grad = grad_cos},
      {.name = "Asin", .signature = U, .doc = "Arc sine element-wise (NaN outside [-1, 1]).", .dim = dim_first,
       .out_dim = kSame, .lower = lower_unary<Prim::Asin>, .accuracy = "see vec_math", .grad = grad_asin},
      {.name = "Acos", .signature = U, .doc = "Arc cosine element-wise (NaN outside [-1, 1]).", .dim = dim_first,
       .out_dim = kSame, .lower = lower_unary<Prim::Acos>, .accuracy = "see vec_math", .grad = grad_acos},
      {.name = "Atan", .signature = U, .doc = "Arc tangent element-wise.", .dim = dim_first, .out_dim = kSame,
       .lower = lower_unary<Prim::Atan>, .accuracy = "see vec_math", .grad = grad_atan},
      {.name = "Sign", .signature = U, .doc = "Sign element-wise (0 at 0 and at NaN).", .dim = dim_first,
       .out_dim = kSame, .lower = lower_map<sign_of>, .accuracy = "exact", .grad = grad_zero},
      {.name = "Step", .signature = U,
       .doc = "Heaviside step element-wise: 0 below 0, else 1 (1 at 0 and at NaN, as KeOps).", .dim = dim_first,
       .out_dim = kSame, .lower = lower_map<step_of>, .accuracy = "exact", .grad = grad_zero},
      {.name = "ReLU", .signature = U, .doc = "max(x, 0) element-wise (NaN stays NaN).", .dim = dim_first,
       .out_dim = kSame, .lower = lower_map<relu_of>, .accuracy = "exact", .grad = grad_relu},
      {.name = "Floor", .signature = U, .doc = "Floor element-wise.", .dim = dim_first, .out_dim = kSame,
       .lower = lower_unary<Prim::Floor>, .accuracy = "exact", .grad = grad_zero},
      {.name = "XLogX", .signature = U, .doc = "x*log(x) element-wise (0 at 0).", .dim = dim_first,
       .out_dim = kSame, .lower = lower_map<xlogx_of>, .accuracy = "as Log, plus one rounding",
       .grad = grad_xlogx},
      {.name = "SinXDivX", .signature = U,
       .doc = "sin(x)/x element-wise (1 at 0, derivative 0 at 0; pykeops 2.3 gives NaN there).", .dim = dim_first,
       .out_dim = kSame, .lower = lower_map<sinxdivx_of>, .accuracy = "as Sin, plus one rounding",
       .grad = grad_sinxdivx},
      {.name = "Pow", .signature = "FI", .doc = "Integer power Pow(f, m) element-wise.", .dim = dim_pow,
       .out_dim = kSame, .lower = lower_pow, .simplify = simplify_pow, .grad = grad_pow},
      {.name = "Round", .signature = "FI",
       .doc = "Round(f, d): round(f * 10^d) / 10^d element-wise, halves away from zero.", .dim = dim_round,
       .out_dim = kSame, .lower = lower_map<round_of>, .accuracy = "exact for d = 0", .grad = grad_zero},
      {.name = "ClampInt", .signature = "FII",
       .doc = "ClampInt(f, a, b): f clamped to the integers [a, b]; derivative 1 on the closed [a, b], as KeOps and torch.clamp.",
       .dim = dim_clampint, .out_dim = kSame, .lower = lower_map<clamp_of>, .accuracy = "exact",
       .grad = grad_clampint},
      {.name = "DiffClampInt", .signature = "FII",
       .doc = "Indicator of a <= f <= b (derivative of ClampInt, 1 at the bounds as in KeOps).", .dim = dim_clampint,
       .out_dim = kSame, .lower = lower_map<diff_clampint_of>, .accuracy = "exact", .grad = grad_zero},
      {.name = "Atan2", .signature = B, .doc = "Atan2(y, x) element-wise.", .dim = dim_vect,
       .out_dim = kMaxOf, .lower = lower_binary<Prim::Atan2>, .accuracy = "see vec_math",
       .grad = grad_atan2},
      {.name = "Powf", .signature = B,
       .doc = "Powf(f, g) = exp(g*log(f)) element-wise (NaN for f < 0; 1 where g = 0, as pow and KeOps).",
       .dim = dim_vect, .out_dim = kMaxOf, .lower = lower_map<powf_of>,
       .accuracy = "as Exp and Log composed", .grad = grad_powf},
      {.name = "Equal", .signature = B, .doc = "1 where f == g, else 0.", .dim = dim_vect,
       .out_dim = kMaxOf, .lower = lower_map<cmp_of<Prim::Eq>>, .accuracy = "exact",
       .grad = grad_zero},
      {.name = "NotEqual", .signature = B, .doc = "1 where f != g, else 0.", .dim = dim_vect,
       .out_dim = kMaxOf, .lower = lower_map<cmp_of<Prim::Ne>>, .accuracy = "exact",
       .grad = grad_zero},
      {.name = "LessThan", .signature = B, .doc = "1 where f < g, else 0.", .dim = dim_vect,
       .out_dim = kMaxOf, .lower = lower_map<cmp_of<Prim::Lt>>, .accuracy = "exact",
       .grad = grad_zero},
      {.name = "LessOrEqual", .signature = B, .doc = "1 where f <= g, else 0.", .dim = dim_vect,
       .out_dim = kMaxOf, .lower = lower_map<cmp_of<Prim::Le>>, .accuracy = "exact",
       .grad = grad_zero},
      {.name = "Clamp", .signature = "FFF",
       .doc = "Clamp(f, a, b): f clamped to [a, b]; derivative in f 1 on the closed [a, b], as KeOps and torch.clamp.",
       .dim = dim_vect, .out_dim = kMaxOf, .lower = lower_map<clamp_of>,
       .accuracy = "exact", .grad = grad_clamp},
      {.name = "IfElse", .signature = "FFF", .doc = "IfElse(f, a, b): a where f >= 0, else b (b where f is NaN).",
       .dim = dim_vect, .out_dim = kMaxOf, .lower = lower_map<ifelse_of>,
       .simplify = simplify_ifelse, .accuracy = "exact", .grad = grad_ifelse},
      {.name = "Mod", .signature = "FFF", .doc = "Mod(f, n, d) = f - n*floor((f - d)/n).", .dim = dim_vect,
       .out_dim = kMaxOf, .lower = lower_map<mod_of>, .accuracy = "a few roundings",
       .grad = grad_mod},
      // vector and structural operations
      {.name = "Sum", .signature = U, .doc = "Sum of the components.", .dim = dim_one, .out_dim = kOne,
       .lower = lower_sum, .simplify = simplify_sum, .grad = grad_sum},
      {.name = "SumT", .signature = "FI", .doc = "SumT(f, d): scalar f repeated d times (adjoint of Sum).",
       .dim = dim_sumt, .out_dim = "d (f of dim 1)", .lower = lower_sumt, .simplify = simplify_sumt,
       .grad = grad_sumt},
      {.name = "Max", .signature = U, .doc = "Largest component (NaN if any is NaN).", .dim = dim_one,
       .out_dim = kOne, .lower = lower_extremum<Prim::Max>, .grad = grad_extremum<true>},
      {.name = "Min", .signature = U, .doc = "Smallest component (NaN if any is NaN).", .dim = dim_one,
       .out_dim = kOne, .lower = lower_extremum<Prim::Min>, .grad = grad_extremum<false>},
      {.name = "ArgMax", .signature = U,
       .doc = "Index of the first largest component, as a float (NaN components are skipped).", .dim = dim_one,
       .out_dim = kOne, .lower = lower_argextremum<true>, .grad = grad_zero},
      {.name = "ArgMin", .signature = U,
       .doc = "Index of the first smallest component, as a float (NaN components are skipped).", .dim = dim_one,
       .out_dim = kOne, .lower = lower_argextremum<false>, .grad = grad_zero},
      {.name = "Elem", .signature = "FI", .doc = "Elem(f, m): component m.", .dim = dim_elem, .out_dim = kOne,
       .lower = lower_elem, .simplify = simplify_elem, .grad = grad_elem},
      {.name = "ElemT", .signature = "FII",
       .doc = "ElemT(f, n, m): scalar f placed at index m of a zero vector of dimension n.", .dim = dim_elemt,
       .out_dim = "n (f of dim 1)", .lower = lower_elemt, .simplify = simplify_elemt, .grad = grad_elemt},
      {.name = "Extract", .signature = "FII", .doc = "Extract(f, start, d): components start..start+d-1.",
       .dim = dim_extract, .out_dim = "d", .lower = lower_extract, .simplify = simplify_extract,
       .grad = grad_extract},
      {.name = "ExtractT", .signature = "FII",
       .doc = "ExtractT(f, start, D): f placed at start in a zero vector of dimension D.", .dim = dim_extractt,
       .out_dim = "D", .lower = lower_extractt, .simplify = simplify_extractt, .grad = grad_extractt},
      {.name = "Concat", .signature = B, .doc = "Concatenation of two vectors.", .dim = dim_concat,
       .out_dim = "dim f + dim g", .lower = lower_concat, .simplify = simplify_zero_if_all_zero, .on_complex = true,
       .grad = grad_concat},
      {.name = "OneHot", .signature = "FI",
       .doc = "OneHot(f, D): one-hot encoding of the scalar f rounded to the nearest integer.", .dim = dim_onehot,
       .out_dim = "D (f of dim 1)", .lower = lower_onehot, .grad = grad_zero},
      {.name = "Scalprod", .signature = B, .doc = "Scalar product of two vectors of equal dimension.",
       .dim = dim_equal_to_one, .out_dim = "1 (equal dims)", .lower = lower_scalprod,
       .simplify = simplify_zero_if_any_zero, .infix = "|", .grad = grad_scalprod},
      {.name = "SqNorm2", .signature = U, .doc = "Squared Euclidean norm.", .dim = dim_one, .out_dim = kOne,
       .lower = lower_sqnorm2, .simplify = simplify_zero_if_all_zero, .grad = grad_sqnorm2},
      {.name = "Norm2", .signature = U, .doc = "Euclidean norm.", .dim = dim_one, .out_dim = kOne,
       .lower = lower_norm2, .simplify = simplify_zero_if_all_zero, .grad = grad_norm2},
      {.name = "Normalize", .signature = U, .doc = "f / |f| (0 where f = 0).", .dim = dim_first,
       .out_dim = kSame, .lower = lower_normalize, .simplify = simplify_zero_if_all_zero,
       .grad = grad_normalize},
      {.name = "SqDist", .signature = B, .doc = "Squared Euclidean distance; dims equal or 1.",
       .dim = [](const NodeKey& k) { dim_vect(k); return 1; }, .out_dim = kOne, .lower = lower_sqdist,
       .simplify = simplify_zero_if_all_zero, .grad = grad_sqdist},
      {.name = "SqNormIso", .signature = B, .doc = "SqNormIso(s, f) = s * |f|^2 (s scalar).",
       .dim = dim_sqnorm_weighted, .out_dim = "1 (s of dim 1)", .lower = lower_weighted_sqnorm,
       .simplify = simplify_zero_if_any_zero, .grad = grad_weighted_sqnorm},
      {.name = "SqNormDiag", .signature = B, .doc = "SqNormDiag(s, f) = sum(s * f^2).", .dim = dim_sqnorm_weighted,
       .out_dim = "1 (s of the dim of f)", .lower = lower_weighted_sqnorm, .simplify = simplify_zero_if_any_zero,
       .grad = grad_weighted_sqnorm},
      {.name = "SymSqNorm", .signature = B, .doc = "SymSqNorm(A, f) = f^T A f (A of dimension n^2, row-major).",
       .dim = dim_sqnorm_weighted, .out_dim = "1 (A of dim n^2 for f of dim n)", .lower = lower_weighted_sqnorm,
       .simplify = simplify_zero_if_any_zero, .grad = grad_weighted_sqnorm},
      {.name = "WeightedSqNorm", .signature = B,
       .doc = "WeightedSqNorm(s, f): SqNormIso, SqNormDiag or SymSqNorm by the dimension of s (1, n or n^2).",
       .dim = dim_sqnorm_weighted, .out_dim = "1 (s of dim 1, n or n^2 for f of dim n)",
       .lower = lower_weighted_sqnorm, .simplify = simplify_zero_if_any_zero, .grad = grad_weighted_sqnorm},
      {.name = "WeightedSqDist", .signature = "FFF", .doc = "WeightedSqDist(s, f, g) = WeightedSqNorm(s, f - g).",
       .dim = dim_weighted_sqdist, .out_dim = kOne, .lower = lower_weighted_sqdist,
       .simplify = simplify_weighted_sqdist, .grad = grad_weighted_sqdist},
      {.name = "MatVecMult", .signature = B,
       .doc = "MatVecMult(A, b): row-major matrix A times vector b: out[i] = sum_k A[i*n_b + k] b[k].",
       .dim = dim_matvec, .out_dim = "dim A / dim b", .lower = lower_matvec, .simplify = simplify_zero_if_any_zero,
       .grad = grad_matvec},
      {.name = "VecMatMult", .signature = B,
       .doc = "VecMatMult(b, A): vector b times row-major matrix A: out[i] = sum_k b[k] A[k*n_out + i].",
       .dim = dim_matvec, .out_dim = "dim A / dim b", .lower = lower_vecmat, .simplify = simplify_zero_if_any_zero,
       .grad = grad_vecmat},
      {.name = "TensorProd", .signature = B, .doc = "Row-major outer product: out[k*n_g + l] = f[k] g[l].",
       .dim = dim_product, .out_dim = "dim f * dim g", .lower = lower_tensorprod,
       .simplify = simplify_zero_if_any_zero, .grad = grad_tensorprod},
      {.name = "TensorDot", .signature = "FFLLLL?L",
       .doc = "TensorDot(f, g, dims_f, dims_g, contract_f, contract_g[, permutation]): numpy.tensordot on row-major shapes; with a permutation, axis k of that result moves to position permutation[k] (KeOps's rule, numpy.transpose(result, numpy.argsort(permutation))).",
       .dim = dim_tensordot, .out_dim = "product of the sizes not contracted", .lower = lower_tensordot,
       .simplify = simplify_zero_if_any_zero, .grad = grad_tensordot},
      {.name = "Kron", .signature = "FFLL",
       .doc = "Kronecker product Kron(f, g, dims_f, dims_g), as numpy.kron on row-major shapes.", .dim = dim_kron,
       .out_dim = "dim f * dim g", .lower = lower_kron, .simplify = simplify_zero_if_any_zero, .grad = grad_kron},
      {.name = "BSpline", .signature = "FFI",
       .doc = "BSpline(knots, x, order): the B-spline basis functions of that order at x (Cox-de Boor; empty spans count 0).",
       .dim = dim_bspline, .out_dim = "dim knots - order - 1 (x of dim 1)", .lower = lower_bspline,
       .grad = grad_bspline},
      {.name = "SoftDTW_SqDist", .signature = "FFF",
       .doc = "SoftDTW_SqDist(x, y, gamma): soft-DTW between series x and y with costs (x_i - y_j)^2.",
       .dim = dim_softdtw, .out_dim = "1 (gamma of dim 1)", .lower = lower_softdtw, .grad = grad_softdtw},
      {.name = "GradSoftDTW_SqDist", .signature = "FFF",
       .doc = "GradSoftDTW_SqDist(x, y, gamma): gradient of SoftDTW_SqDist with respect to (x, y), dim n + m (backward recursion); not itself differentiable.",
       .dim = dim_grad_softdtw, .out_dim = "dim x + dim y", .lower = lower_grad_softdtw,
       .grad = grad_not_differentiable},
      {.name = "GradMatrix", .signature = B,
       .doc = "GradMatrix(f, v): transposed Jacobian, out[k*v.dim + l] = d f_k / d v_l (the gradients of f's components, concatenated); resolved at construction.",
       .dim = dim_gradmatrix, .out_dim = "dim f * dim v", .simplify = simplify_gradmatrix, .on_complex = true, .grad = grad_resolved},
      // complex numbers (interleaved real and imaginary parts)
      {.name = "ComplexReal", .signature = U, .doc = "Real parts.", .dim = dim_complex_half,
       .out_dim = kComplexHalf, .lower = lower_complex_real,
       .simplify = simplify_complex_part<false>, .on_complex = true, .grad = grad_complex_real},
      {.name = "ComplexImag", .signature = U, .doc = "Imaginary parts.", .dim = dim_complex_half,
       .out_dim = kComplexHalf, .lower = lower_complex_imag,
       .simplify = simplify_complex_part<true>, .on_complex = true, .grad = grad_complex_imag},
      {.name = "ComplexSquareAbs", .signature = U, .doc = "Squared moduli.", .dim = dim_complex_half,
       .out_dim = kComplexHalf, .lower = lower_complex_scalar<0>,
       .simplify = simplify_zero_if_all_zero, .on_complex = true, .grad = grad_complex_squareabs},
      {.name = "ComplexAbs", .signature = U, .doc = "Moduli (derivative 0 at z = 0, as KeOps).",
       .dim = dim_complex_half, .out_dim = kComplexHalf,
       .lower = lower_complex_scalar<1>, .simplify = simplify_zero_if_all_zero, .on_complex = true,
       .grad = grad_complex_abs},
      {.name = "ComplexAngle", .signature = U, .doc = "Arguments.", .dim = dim_complex_half,
       .out_dim = kComplexHalf, .lower = lower_complex_scalar<2>, .on_complex = true,
       .grad = grad_complex_angle},
      {.name = "Real2Complex", .signature = U, .doc = "Real vector to complex.", .dim = dim_complex_double,
       .out_dim = "2 * dim f", .lower = lower_to_complex<0>, .simplify = simplify_zero_if_all_zero,
       .grad = grad_real2complex},
      {.name = "Imag2Complex", .signature = U, .doc = "Real vector to purely imaginary complex.",
       .dim = dim_complex_double, .out_dim = "2 * dim f", .lower = lower_to_complex<1>,
       .simplify = simplify_zero_if_all_zero, .grad = grad_imag2complex},
      {.name = "ComplexExp1j", .signature = U, .doc = "exp(1j * x) of a real vector.", .dim = dim_complex_double,
       .out_dim = "2 * dim f", .lower = lower_to_complex<2>, .grad = grad_complex_exp1j},
      {.name = "Conj", .signature = U, .doc = "Complex conjugate.", .dim = dim_complex_same, .out_dim = kSame,
       .lower = lower_conj, .simplify = simplify_conj, .on_complex = true, .grad = grad_conj},
      {.name = "ComplexExp", .signature = U, .doc = "Complex exponential.", .dim = dim_complex_same,
       .out_dim = kSame, .lower = lower_complex_exp, .on_complex = true, .grad = grad_complex_exp},
      {.name = "ComplexAdd", .signature = B, .doc = "Complex sum.", .dim = dim_complex_binary,
       .out_dim = kComplexMax, .lower = lower_complex_binary<0>,
       .simplify = simplify_complex_add, .on_complex = true, .grad = grad_complex_add},
      {.name = "ComplexSubtract", .signature = B, .doc = "Complex difference.", .dim = dim_complex_binary,
       .out_dim = kComplexMax, .lower = lower_complex_binary<1>,
       .simplify = simplify_complex_subtract, .on_complex = true, .grad = grad_complex_subtract},
      {.name = "ComplexMult", .signature = B, .doc = "Complex product.", .dim = dim_complex_binary,
       .out_dim = kComplexMax, .lower = lower_complex_binary<2>,
       .simplify = simplify_zero_if_any_zero, .on_complex = true, .grad = grad_complex_mult},
      {.name = "ComplexDivide", .signature = B, .doc = "Complex quotient.", .dim = dim_complex_binary,
       .out_dim = kComplexMax, .lower = lower_complex_binary<3>,
       .simplify = simplify_complex_divide, .on_complex = true, .grad = grad_complex_divide},
      {.name = "ComplexRealScal", .signature = B, .doc = "Real scalar times complex vector.",
       .dim = dim_complex_realscal, .out_dim = "dim of the complex operand (the other is a real scalar)",
       .lower = lower_complex_realscal, .simplify = simplify_zero_if_any_zero, .on_complex = true,
       .grad = grad_complex_realscal},
      {.name = "ComplexSum", .signature = U, .doc = "Sum of complex components.", .dim = dim_complex_two,
       .out_dim = "2 (one complex number)", .lower = lower_complex_sum, .simplify = simplify_zero_if_all_zero,
       .on_complex = true, .grad = grad_complex_sum},
      {.name = "ComplexSumT", .signature = "FI", .doc = "Complex scalar repeated (adjoint of ComplexSum).",
       .dim = dim_complex_sumt, .out_dim = "d (f of dim 2)", .lower = lower_complex_sumt,
       .simplify = simplify_complex_sumt, .on_complex = true, .grad = grad_complex_sumt},
      // symbolic differentiation and linear operators
      {.name = "Grad", .signature = "FF?F",
       .doc = "Grad(f, v, e): vector-Jacobian product of f with respect to variable v, contracted with e; e omitted: a new Var(next position, f.dim, 1 - v.cat). Resolved at construction.",
       .dim = dim_grad, .out_dim = "dim v", .simplify = simplify_grad, .on_complex = true, .grad = grad_resolved},
      {.name = "Diff", .signature = "FF?F",
       .doc = "Diff(f, v, u): differential J u of f with respect to v in direction u (u omitted: a new Var(next position, v.dim, v.cat)). Resolved at construction.",
       .dim = dim_diff, .out_dim = kSame, .simplify = simplify_diff, .on_complex = true, .grad = grad_resolved},
      {.name = "Divergence", .signature = B,
       .doc = "Divergence(f, v): trace of the Jacobian of f with respect to v (f.dim == v.dim). Resolved at construction.",
       .dim = dim_divergence, .out_dim = "1 (dim f = dim v)", .simplify = simplify_divergence, .on_complex = true, .grad = grad_resolved},
      {.name = "Laplacian", .signature = B,
       .doc = "Laplacian(f, v) = Divergence(Grad(f, v, 1), v) of a scalar f. Resolved at construction.",
       .dim = dim_laplacian, .out_dim = "1 (f of dim 1)", .simplify = simplify_laplacian, .on_complex = true, .grad = grad_resolved},
      {.name = "TraceOperator", .signature = "FF?F",
       .doc = "TraceOperator(f, v[, w]): trace of the linear map v -> f(v) (f.dim 1 or v.dim), weighted by w (dim 1 or v.dim). Resolved at construction.",
       .dim = dim_one, .out_dim = kOne, .simplify = simplify_trace, .on_complex = true, .grad = grad_resolved},
      {.name = "AdjointOperator", .signature = "FFF",
       .doc = "AdjointOperator(f, v, u): adjoint of the linear map v -> f(v) applied to u (UserError if f is not linear in v). Resolved at construction.",
       .dim = dim_of_second, .out_dim = "dim v", .simplify = simplify_adjoint, .on_complex = true, .grad = grad_resolved},
      {.name = "SumLinOperator", .signature = "FF?FF",
       .doc = "SumLinOperator(f, v[, wl, wr]): sum_kl wl_k M_kl wr_l for the matrix M of the linear map v -> f(v). Resolved at construction.",
       .dim = dim_one, .out_dim = kOne, .simplify = simplify_sumlin, .on_complex = true, .grad = grad_resolved},
      // Lowering numbers values (CSE), so a shared subformula is always computed once: both are f itself.
      {.name = "Factorize", .signature = B,
       .doc = "Factorize(f, g): f, with the subformula g computed once (always the case here).", .dim = dim_first,
       .out_dim = kSame, .lower = lower_first, .on_complex = true, .grad = grad_factorize},
      {.name = "AutoFactorize", .signature = U,
       .doc = "AutoFactorize(f): f, with repeated subformulas computed once (always the case here).",
       .dim = dim_first, .out_dim = kSame, .lower = lower_first, .on_complex = true, .grad = grad_identity},
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
