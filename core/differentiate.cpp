// Symbolic differentiation pass: reverse-mode sweep over the DAG using the operations' derivative rules,
// forward differentials, linear operators, and the gradients of reductions.
#include "differentiate.h"

#include <algorithm>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "errors.h"
#include "op_table.h"
#include "printer.h"

namespace keops {

namespace {

using std::string;

// Memoised "does this node contain the Var v" (iterative: formulas may be 1e5 nodes deep).
class Dependence {
 public:
  explicit Dependence(NodeRef v) : v_(v) {}
  bool operator()(NodeRef n) {
    if (n == v_) return true;
    post_order(n, [&](NodeRef m) { return m == v_ || memo_.count(m); }, [&](NodeRef m) {
      bool d = false;
      for (NodeRef a : m->args()) d = d || a == v_ || memo_.at(a);
      memo_.emplace(m, d);
    });
    return memo_.at(n);
  }

 private:
  NodeRef v_;
  std::unordered_map<NodeRef, bool> memo_;
};

void require_var(NodeRef v, const char* who) {
  if (!v->is("Var")) throw UserError(string(who) + ": the variable argument must be a Var, got " + print(v));
}

void require_dim(NodeRef f, int dim, const char* who, const char* what) {
  if (f->dim() != dim)
    throw UserError(string(who) + ": " + what + " has dimension " + std::to_string(f->dim()) + ", expected " +
                    std::to_string(dim));
}

int max_position(NodeRef f, std::unordered_set<NodeRef>& seen) {
  int m = -1;
  post_order(f, [&](NodeRef n) { return seen.count(n) > 0; }, [&](NodeRef n) {
    seen.insert(n);
    if (n->is("Var")) m = std::max(m, static_cast<int>(n->ints()[0]));
  });
  return m;
}

NodeRef add(NodeRef a, NodeRef b) { return make("Add", {a, b}); }
NodeRef mult(NodeRef a, NodeRef b) { return make("Mult", {a, b}); }
NodeRef one_hot(int n, int k) { return n == 1 ? int_cst(1) : make("ElemT", {int_cst(1)}, {n, k}); }
NodeRef elem(NodeRef f, int k) { return f->dim() == 1 ? f : make("Elem", {f}, {k}); }

// Grad(f, v, e) with e a temporary variable (at a position unused by f, v and `avoid`): the transposed
// Jacobian as a formula linear in the returned e.
std::pair<NodeRef, NodeRef> transposed_jacobian(NodeRef f, NodeRef v, NodeRef avoid = nullptr) {
  NodeRef e = next_var({f, v, avoid}, f->dim(), CAT_P);
  return {grad(f, v, e), e};
}

void require_linear(NodeRef f, NodeRef v, const char* who) {
  if (!is_linear_in(f, v))
    throw UserError(string(who) + ": the formula " + print(f) + " is not linear in " + print(v) +
                    " (or its linearity could not be established symbolically)");
}

}  // namespace

bool depends_on(NodeRef f, NodeRef v) { return Dependence(v)(f); }

NodeRef next_var(std::initializer_list<NodeRef> fs, int dim, int cat) {
  std::unordered_set<NodeRef> seen;
  int m = -1;
  for (NodeRef f : fs) m = std::max(m, max_position(f, seen));
  return var(m + 1, dim, cat);
}

NodeRef substitute(NodeRef f, NodeRef v, NodeRef r) {
  KEOPS_ASSERT(v->dim() == r->dim(), "substitution changes the dimension");
  Dependence dep(v);
  std::unordered_map<NodeRef, NodeRef> memo{{v, r}};
  auto image = [&](NodeRef n) { return dep(n) ? memo.at(n) : n; };
  post_order(f, [&](NodeRef n) { return !dep(n) || memo.count(n); }, [&](NodeRef n) {
    std::vector<NodeRef> args;
    for (NodeRef a : n->args()) args.push_back(image(a));
    memo.emplace(n, make(n->op(), std::move(args), n->ints(), n->lists()));
  });
  return image(f);
}

NodeRef grad(NodeRef f, NodeRef v, NodeRef e) {
  require_var(v, "Grad");
  require_dim(e, f->dim(), "Grad", "the gradient input");
  Dependence dep(v);
  if (!dep(f) || e->is("Zero")) return zero(v->dim());
  // Reverse topological order of the nodes that depend on v: a node comes before its arguments.
  std::vector<NodeRef> order;
  std::unordered_set<NodeRef> visited;
  std::vector<std::pair<NodeRef, size_t>> stack{{f, 0}};
  visited.insert(f);
  while (!stack.empty()) {
    auto& [n, k] = stack.back();
    if (k < n->args().size()) {
      NodeRef a = n->arg(k++);
      if (dep(a) && visited.insert(a).second) stack.push_back({a, 0});
    } else {
      order.push_back(n);
      stack.pop_back();
    }
  }
  std::reverse(order.begin(), order.end());
  std::unordered_map<NodeRef, NodeRef> adjoint{{f, e}};
  for (NodeRef n : order) {
    auto it = adjoint.find(n);
    if (n == v || it == adjoint.end()) continue;
    NodeRef a = it->second;
    const OpInfo& op = n->op();
    if (!op.grad) throw NotSupported("Grad: operation " + string(op.name) + " has no derivative rule");
    for (size_t k = 0; k < n->args().size(); ++k) {
      NodeRef arg = n->arg(k);
      if (!dep(arg)) continue;
      NodeRef c = op.grad(*n, k, a);
      KEOPS_ASSERT(c && c->dim() == arg->dim(), "derivative rule of " + string(op.name) + " gave the wrong dimension");
      if (c->is("Zero")) continue;
      auto [slot, fresh] = adjoint.emplace(arg, c);
      if (!fresh) slot->second = add(slot->second, c);
    }
  }
  auto it = adjoint.find(v);
  return it == adjoint.end() ? zero(v->dim()) : it->second;
}

NodeRef diff(NodeRef f, NodeRef v, NodeRef u) {
  require_var(v, "Diff");
  require_dim(u, v->dim(), "Diff", "the direction");
  if (!depends_on(f, v)) return zero(f->dim());
  auto [g, e] = transposed_jacobian(f, v, u);
  // Grad(f, v, e) = J^T e is linear in e, so its own gradient with respect to e, applied to u, is J u.
  NodeRef out = grad(g, e, u);
  KEOPS_ASSERT(!depends_on(out, e), "the temporary variable of Diff survived");
  return out;
}

NodeRef divergence(NodeRef f, NodeRef v) {
  require_var(v, "Divergence");
  require_dim(f, v->dim(), "Divergence", "the formula");
  auto [g, e] = transposed_jacobian(f, v);
  const int n = v->dim();
  NodeRef total = zero(1);
  for (int k = 0; k < n; ++k) total = add(total, elem(substitute(g, e, one_hot(n, k)), k));
  return total;
}

NodeRef laplacian(NodeRef f, NodeRef v) {
  require_var(v, "Laplacian");
  require_dim(f, 1, "Laplacian", "the formula");
  return divergence(grad(f, v, int_cst(1)), v);
}

NodeRef grad_matrix(NodeRef f, NodeRef v) {
  require_var(v, "GradMatrix");
  auto [g, e] = transposed_jacobian(f, v);
  NodeRef out = nullptr;
  for (int k = 0; k < f->dim(); ++k) {
    NodeRef row = substitute(g, e, one_hot(f->dim(), k));
    out = out ? make("Concat", {out, row}) : row;
  }
  return out;
}

bool is_linear_in(NodeRef f, NodeRef v) {
  if (!depends_on(f, v)) return f->is("Zero");
  auto [g, e] = transposed_jacobian(f, v);
  if (depends_on(g, v)) return false;
  return substitute(f, v, zero(v->dim()))->is("Zero");
}

NodeRef trace_operator(NodeRef f, NodeRef v, NodeRef w) {
  require_var(v, "TraceOperator");
  const int n = v->dim();
  if (f->dim() != 1 && f->dim() != n)
    throw UserError("TraceOperator: the formula must have dimension 1 or " + std::to_string(n) + ", got " +
                    std::to_string(f->dim()));
  if (w && w->dim() != 1 && w->dim() != n)
    throw UserError("TraceOperator: the weight must have dimension 1 or " + std::to_string(n) + ", got " +
                    std::to_string(w->dim()));
  require_linear(f, v, "TraceOperator");
  // Column k of the matrix of a linear f is f(e_k).
  NodeRef total = zero(1);
  for (int k = 0; k < n; ++k) {
    NodeRef t = elem(substitute(f, v, one_hot(n, k)), f->dim() == 1 ? 0 : k);
    if (w && w->dim() == n) t = mult(elem(w, k), t);
    total = add(total, t);
  }
  return w && w->dim() == 1 ? mult(w, total) : total;
}

NodeRef adjoint_operator(NodeRef f, NodeRef v, NodeRef u) {
  require_var(v, "AdjointOperator");
  require_dim(u, f->dim(), "AdjointOperator", "the vector u");
  require_linear(f, v, "AdjointOperator");
  return grad(f, v, u);
}

NodeRef sum_lin_operator(NodeRef f, NodeRef v, NodeRef wl, NodeRef wr) {
  require_var(v, "SumLinOperator");
  if (wl && wl->dim() != 1 && wl->dim() != f->dim())
    throw UserError("SumLinOperator: the left weight must have dimension 1 or " + std::to_string(f->dim()));
  if (wr && wr->dim() != 1 && wr->dim() != v->dim())
    throw UserError("SumLinOperator: the right weight must have dimension 1 or " + std::to_string(v->dim()));
  require_linear(f, v, "SumLinOperator");
  // sum_kl wl_k M_kl wr_l = sum_k wl_k (M wr)_k, and M wr = f(wr) for a linear f.
  NodeRef r = wr ? wr : int_cst(1);
  if (r->dim() != v->dim()) r = make("SumT", {r}, {v->dim()});
  NodeRef fr = substitute(f, v, r);
  return make("Sum", {wl ? mult(wl, fr) : fr});
}

// ---- gradients of reductions ---------------------------------------------------------------------------
//
// Sum_Reduction(F, t):  out_r = sum_s F(r, s). Gradient w.r.t. v (indexed like v):
//     Sum_Reduction(Grad(F, v, gradin), v.cat % 2)   -- gradin indexed like the output, f0 unused.
//   Forward: Sum_Reduction(Diff(F, v, u), t).
//
// Max_SumShiftExpWeight_Reduction(F, t, G): raw output [m, s], m = max_s F, s = sum_s exp(F - m) G.
//   The bindings only expose functions L = phi(m, s) that are invariant under the shift
//   (m, s) -> (m + c, s exp(-c)): LogSumExp L = m + log s, SoftMax s / s[0]. For such phi,
//   d phi/dm = s . d phi/ds, so the total derivative, in which m moves with its argmax, equals the derivative
//   with m held fixed:
//       dL = <d phi/ds, ds|_{m fixed}> = sum_s exp(F - m) [ <gS, G> dF + <gS, dG> ],   gS = d phi / ds,
//   i.e. Grad(Sum_Reduction(Exp(F - m) * G, t), v, gS) with gS = Extract(gradin, 1, G.dim) (the m component of
//   gradin is ignored, as in KeOps) and m = Elem(f0, 0). For LogSumExp the caller passes gS = gL / s.
//   Forward: [0, Sum_Reduction(Diff(Exp(F - m) * G, v, u))], the m slot of the tangent being 0.
//
// ArgMin, ArgMax, ArgKMin, Zero: piecewise constant, gradient Zero_Reduction.
//
// Min, Max, Min_ArgMin, Max_ArgMax, KMin, KMin_ArgKMin (beyond KeOps): the gradient flows through the selected
//   pairs (r, s). The selection is recognised from the saved values: the pair (r, s) is selected for slot k and
//   component c when F_c(r, s) == value_kc(r) (exactly: the backward kernel recomputes F with the same code).
//       Sum_Reduction(Grad(F, v, sum_k gradin_k * Equal(F, value_k)), v.cat % 2)
//   Equal(...) is a 0/1 mask (zero derivative), so higher derivatives are again correct almost everywhere.
//   Ties (two s with the same value) each receive the full gradient. The saved indices of *_Arg* reductions are
//   not needed; an exact index-based variant would compare a "reduced index" leaf with the saved index instead.
//   Forward: Sum_Reduction(Diff(F, v, u) * Equal(F, value_k)) per slot, index slots 0.

namespace {

Reduction make_reduction(const Reduction& like, std::string_view name, NodeRef formula, int tag) {
  Reduction r = like;  // keeps options the reduction may carry besides these fields
  r.info = find_reduction(name);
  KEOPS_ASSERT(r.info != nullptr, "unknown reduction " + string(name));
  r.formula = formula;
  r.formula2 = nullptr;
  r.tag = tag;
  r.opt = 0;
  r.zero_dim = 0;
  return r;
}
Reduction sum_reduction(const Reduction& like, NodeRef formula, int tag) {
  return make_reduction(like, "Sum_Reduction", formula, tag);
}
Reduction zero_reduction(const Reduction& like, int dim, int tag) {
  Reduction r = make_reduction(like, "Zero_Reduction", nullptr, tag);
  r.zero_dim = dim;
  return r;
}

// The layout of the selection reductions' saved outputs: K slots of d values, each optionally followed by d
// indices (the raw KeOps layout of Min_ArgMin, Max_ArgMax: [values, indices]; KMin_ArgKMin: (K, 2, d)).
struct Slots {
  int k = 1, d = 1;
  bool with_indices = false;  // the raw layout holds indices after each slot's values
};
Slots selection_slots(const Reduction& red) {
  Slots s;
  s.d = red.formula->dim();
  switch (red.info->kind) {
    case ReductionKind::Min: case ReductionKind::Max: break;
    case ReductionKind::MinArgMin: case ReductionKind::MaxArgMax: s.with_indices = true; break;
    case ReductionKind::KMin: s.k = red.opt; break;
    case ReductionKind::KMinArgKMin: s.k = red.opt; s.with_indices = true; break;
    default: KEOPS_ASSERT(false, "not a selection reduction");
  }
  return s;
}
// Values of slot k in a saved array that is either raw (with indices) or values only.
NodeRef slot_values(NodeRef a, const Slots& s, int k, const char* who, const char* what) {
  const int values_only = s.k * s.d, raw = s.with_indices ? 2 * values_only : values_only;
  if (a->dim() != values_only && a->dim() != raw)
    throw UserError(string(who) + ": " + what + " has dimension " + std::to_string(a->dim()) + ", expected " +
                    std::to_string(raw) + (raw != values_only ? " or " + std::to_string(values_only) : string()));
  const int stride = a->dim() == values_only ? s.d : 2 * s.d;
  return a->dim() == s.d ? a : make("Extract", {a}, {k * stride, s.d});
}
// 1 where the reduced index is the one slot k selected, else 0 (per component). The tie rule, shared with the torch
// autograd (pykeops/torch/autograd.py): the gradient of a selected value flows to the one index the reduction
// selected (the smallest among equal values, as ArgMin reports it). That needs the saved output with its indices
// (the raw layout of Min_ArgMin, Max_ArgMax, KMin_ArgKMin; exact for indices up to 2^24 in float32); a values-only
// saved output cannot tell equal candidates apart, and every candidate equal to the selected value is selected.
NodeRef selected(const Reduction& red, NodeRef f0, const Slots& s, int k, const char* who) {
  const NodeRef values = slot_values(f0, s, k, who, "the saved forward output");
  const bool raw = s.with_indices && f0->dim() == 2 * s.k * s.d;
  if (!raw) return make("Equal", {red.formula, values});
  const NodeRef indices = make("Extract", {f0}, {k * 2 * s.d + s.d, s.d});
  return make("Equal", {make("RowIndex", {}, {1 - red.tag}), indices});
}

bool is_selection(ReductionKind k) {
  return k == ReductionKind::Min || k == ReductionKind::Max || k == ReductionKind::MinArgMin ||
         k == ReductionKind::MaxArgMax || k == ReductionKind::KMin || k == ReductionKind::KMinArgKMin;
}
bool is_index(ReductionKind k) {
  return k == ReductionKind::ArgMin || k == ReductionKind::ArgMax || k == ReductionKind::ArgKMin ||
         k == ReductionKind::Zero;
}

// Max_SumShiftExpWeight's weight (1 by default) and the shifted summand Exp(F - m) * G.
NodeRef shifted_summand(const Reduction& red, NodeRef f0, const char* who) {
  NodeRef G = red.formula2 ? red.formula2 : int_cst(1);
  require_dim(f0, 1 + G->dim(), who, "the saved forward output");
  NodeRef m = make("Elem", {f0}, {0});
  return mult(make("Exp", {make("Subtract", {red.formula, m})}), G);
}

}  // namespace

Reduction grad_reduction(const Reduction& red, NodeRef v, NodeRef gradin, NodeRef f0) {
  const char* who = "Grad_WithSavedForward";
  require_var(v, who);
  const ReductionKind kind = red.info->kind;
  const int out_tag = static_cast<int>(v->ints()[2]) % 2;
  if (is_index(kind)) return zero_reduction(red, v->dim(), out_tag);
  if (kind == ReductionKind::Sum) {
    require_dim(gradin, red.dim_out(), who, "the gradient input");
    return sum_reduction(red, grad(red.formula, v, gradin), out_tag);
  }
  if (kind == ReductionKind::MaxSumShiftExpWeight) {
    require_dim(gradin, red.dim_out(), who, "the gradient input");
    NodeRef summand = shifted_summand(red, f0, who);
    NodeRef gs = make("Extract", {gradin}, {1, summand->dim()});
    return sum_reduction(red, grad(summand, v, gs), out_tag);
  }
  if (is_selection(kind)) {
    Slots s = selection_slots(red);
    NodeRef e = zero(s.d);
    for (int k = 0; k < s.k; ++k)
      e = add(e, mult(slot_values(gradin, s, k, who, "the gradient input"), selected(red, f0, s, k, who)));
    return sum_reduction(red, grad(red.formula, v, e), out_tag);
  }
  throw NotSupported(string(who) + ": the gradient of " + string(red.info->name) + " is not supported");
}

Reduction diff_reduction(const Reduction& red, NodeRef v, NodeRef u, NodeRef f0) {
  const char* who = "Diff_WithSavedForward";
  require_var(v, who);
  require_dim(u, v->dim(), who, "the direction");
  const ReductionKind kind = red.info->kind;
  if (is_index(kind)) return zero_reduction(red, red.dim_out(), red.tag);
  if (kind == ReductionKind::Sum) return sum_reduction(red, diff(red.formula, v, u), red.tag);
  if (kind == ReductionKind::MaxSumShiftExpWeight) {
    NodeRef d = diff(shifted_summand(red, f0, who), v, u);
    return sum_reduction(red, make("Concat", {zero(1), d}), red.tag);
  }
  if (is_selection(kind)) {
    // The tangent has the layout of f0: raw (values then zero index tangents per slot) or values only.
    Slots s = selection_slots(red);
    slot_values(f0, s, 0, who, "the saved forward output");  // checks the dimension
    const bool raw = s.with_indices && f0->dim() == 2 * s.k * s.d;
    NodeRef dF = diff(red.formula, v, u), out = nullptr;
    for (int k = 0; k < s.k; ++k) {
      NodeRef t = mult(dF, selected(red, f0, s, k, who));
      if (raw) t = make("Concat", {t, zero(s.d)});
      out = out ? make("Concat", {out, t}) : t;
    }
    return sum_reduction(red, out, red.tag);
  }
  throw NotSupported(string(who) + ": the differential of " + string(red.info->name) + " is not supported");
}

}  // namespace keops
