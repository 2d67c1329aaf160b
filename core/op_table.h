// The operation table: the single source of truth for every formula operation (signature, dims, rewrite, lowering).
#pragma once
#include <string_view>
#include <vector>

#include "node.h"

namespace keops {

class Lowerer;
using Vals = std::vector<int>;

// Output dimension of a node about to be created; throws UserError naming the operation when inconsistent.
using DimFn = int (*)(const NodeKey&);
// Construction-time rewrite; returns nullptr when it does not apply. Must keep the dimension.
using SimplifyFn = NodeRef (*)(const NodeKey&, int dim);
// Scalar code for a node, given the lowered values of its formula arguments.
using LowerFn = Vals (*)(Lowerer&, const Node&, const std::vector<Vals>&);
// Derivative rule (vector-Jacobian product, one step of the chain rule): given the node n, one of its formula
// arguments k and the adjoint e of n (a formula of n's dimension), the contribution to the adjoint of n.arg(k),
// a formula of that argument's dimension (broadcast arguments are summed back by the rule). The pass in
// differentiate.h calls it only for arguments that depend on the variable and accumulates the contributions.
// A rule throws NotSupported naming the operation for an argument it cannot differentiate.
using GradFn = NodeRef (*)(const Node& n, size_t k, NodeRef e);

struct OpInfo {
  std::string_view name;
  // Argument kinds in order: F formula, I integer, L integer list; those after '?' are optional.
  std::string_view signature;
  std::string_view doc;
  DimFn dim;
  std::string_view out_dim;       // the dimension rule in words, for the docs
  LowerFn lower = nullptr;        // nullptr: parses, but "not supported yet" at compile time
  SimplifyFn simplify = nullptr;
  std::string_view infix = {};    // printed as (a <infix> b) when set
  std::string_view accuracy = {};
  // Meaningful on complex arguments (interleaved re, im pairs): Add, Concat, ComplexMult, ... and the autodiff
  // operations (derivatives over the real coordinates); not Log, Mult, Elem, ... ComplexLazyTensor refuses the others.
  bool on_complex = false;
  GradFn grad = nullptr;          // every entry has one (leaves: never called; zero for piecewise-constant ops)
};

const OpInfo* find_op(std::string_view name);
const std::vector<OpInfo>& all_ops();

// Counts of each argument kind against the signature; UserError naming the operation otherwise.
void check_signature(const NodeKey& key);

}  // namespace keops
