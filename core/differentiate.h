// Symbolic differentiation: reverse mode over the formula DAG, the linear operators built on it, and the
// gradients of reductions. Every function returns an ordinary (interned, simplified) formula or reduction:
// Grad, Diff, Divergence, Laplacian, GradMatrix, TraceOperator, AdjointOperator and SumLinOperator call these
// from their construction-time rewrite, so lowering never sees them.
#pragma once
#include <initializer_list>

#include "node.h"
#include "reduction.h"

namespace keops {

// Vector-Jacobian product (KeOps's Grad / DiffT): the formula d/dv <f, e>, of dimension v.dim, where v is a Var
// and e (the incoming gradient) has f's dimension. Computed in one reverse sweep over the DAG of f: each node's
// adjoint is the sum of its users' contributions, and each contribution is given by the derivative rule of the
// user's operation (OpInfo::grad). The result is therefore linear in the size of f. NotSupported names the
// operation when a rule cannot be applied.
NodeRef grad(NodeRef f, NodeRef v, NodeRef e);

// Forward differential J u (dimension f.dim), computed as the adjoint of the transposed derivative:
// Diff(f, v, u) = AdjointOperator(Grad(f, v, e), e, u) = Grad(Grad(f, v, e), e, u) for a temporary variable e,
// which disappears from the result because Grad(f, v, e) is linear in e.
NodeRef diff(NodeRef f, NodeRef v, NodeRef u);

// Trace of the Jacobian of f with respect to v (f.dim == v.dim): sum_k d f_k / d v_k, dimension 1.
NodeRef divergence(NodeRef f, NodeRef v);

// Divergence(Grad(f, v, 1), v) of a scalar f.
NodeRef laplacian(NodeRef f, NodeRef v);

// Transposed Jacobian, dimension f.dim * v.dim, laid out row-major as KeOps: out[k * v.dim + l] = d f_k / d v_l
// (entry k of f's gradient block k).
NodeRef grad_matrix(NodeRef f, NodeRef v);

// For f linear in v, with matrix M (f.dim x v.dim), f.dim in {1, v.dim}: sum_k w_k M_kk (or sum_k w_k M_0k when
// f is scalar); w is null (w = 1), of dim 1 (a factor) or of dim v.dim (weights).
NodeRef trace_operator(NodeRef f, NodeRef v, NodeRef w);

// For f linear in v: M^T u (dimension v.dim). UserError naming AdjointOperator when f is not linear in v.
NodeRef adjoint_operator(NodeRef f, NodeRef v, NodeRef u);

// For f linear in v: sum_kl wl_k M_kl wr_l (wl, wr null for 1, or of dim 1, or of dims f.dim and v.dim).
NodeRef sum_lin_operator(NodeRef f, NodeRef v, NodeRef wl, NodeRef wr);

// True when the Var v occurs in f.
bool depends_on(NodeRef f, NodeRef v);

// f with every occurrence of the Var v replaced by r (same dimension), rebuilt through make() so that the
// construction-time simplifications apply again.
NodeRef substitute(NodeRef f, NodeRef v, NodeRef r);

// True when f is (homogeneously) linear in v: its gradient does not involve v and f vanishes at v = 0.
// Sound but not complete: a linear formula that the simplifier cannot prove so is reported as not linear.
bool is_linear_in(NodeRef f, NodeRef v);

// A Var(pos, dim, cat) whose position is one more than the largest position used in `fs` (0 if none).
NodeRef next_var(std::initializer_list<NodeRef> fs, int dim, int cat);

// Grad_WithSavedForward(red, v, gradin, f0): the reduction computing the gradient of the reduction `red` with
// respect to the Var v, given the incoming gradient `gradin` and the saved forward output f0 (both indexed like
// red's output, dim red.dim_out(); for Min_ArgMin/Max_ArgMax/KMin_ArgKMin they may also hold the values only).
// The result is indexed like v: by i for v of category 0, by j for category 1, and by i for a parameter
// (category 2), whose gradient the caller then sums over i. See differentiate.cpp for each reduction's rule.
Reduction grad_reduction(const Reduction& red, NodeRef v, NodeRef gradin, NodeRef f0);

// Diff_WithSavedForward(red, v, u, f0): the reduction computing the forward differential of `red` in the
// direction u (u has v's dimension and category), indexed like red's output.
Reduction diff_reduction(const Reduction& red, NodeRef v, NodeRef u, NodeRef f0);

}  // namespace keops
