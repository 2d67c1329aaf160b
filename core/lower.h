// Lowering pass: a parsed reduction becomes a Program of scalar SSA code (CSE and constant folding included).
#pragma once
#include <unordered_map>
#include <vector>

#include "node.h"
#include "program.h"
#include "reduction.h"

namespace keops {

using Vals = std::vector<int>;

// Builds a Program; operation lowering rules call it to emit scalar code.
class Lowerer {
 public:
  explicit Lowerer(Program& p) : p_(p) {}
  int constant(double v);
  int load(int pos, int comp);
  int index(int cat);            // the current i (cat 0) or j (cat 1) as a number
  int emit(Prim op, int a, int b = -1, int c = -1);
  int add(int a, int b) { return emit(Prim::Add, a, b); }
  int sub(int a, int b) { return emit(Prim::Sub, a, b); }
  int mul(int a, int b) { return emit(Prim::Mul, a, b); }
  int div(int a, int b) { return emit(Prim::Div, a, b); }
  int sum(const Vals& v);                   // left-to-right sum of a vector's components
  Vals lower(NodeRef f);                    // memoised on the node: shared subformulas are lowered once

 private:
  int intern(const Instr& in, Level level);  // the value of `in` (value numbering: an equal instruction is reused)
  Program& p_;
  std::unordered_map<NodeRef, Vals> memo_;
  std::unordered_map<size_t, std::vector<int>> cse_;
};

// Lowers `red` over the argument table `args` (from the aliases). UserError if a variable disagrees with it.
Program lower(const Reduction& red, const std::vector<ArgInfo>& args);

// Value k of a dim-1-broadcastable vector.
inline int at(const Vals& v, size_t k) { return v.size() == 1 ? v[0] : v[k]; }

}  // namespace keops
