// The reduction table and the argument table of a parsed reduction.
#include "reduction.h"

#include <unordered_set>

#include "errors.h"

namespace keops {

const std::vector<ReductionInfo>& all_reductions() {
  static const std::vector<ReductionInfo> table = {
      {"Sum_Reduction", "FI", ReductionKind::Sum, "Sum over the reduced index."},
      {"Min_Reduction", "FI", ReductionKind::Min, "Minimum, per component."},
      {"Max_Reduction", "FI", ReductionKind::Max, "Maximum, per component."},
      {"ArgMin_Reduction", "FI", ReductionKind::ArgMin, "Index of the minimum, per component."},
      {"ArgMax_Reduction", "FI", ReductionKind::ArgMax, "Index of the maximum, per component."},
      {"Min_ArgMin_Reduction", "FI", ReductionKind::MinArgMin, "Minimum and its index, per component."},
      {"Max_ArgMax_Reduction", "FI", ReductionKind::MaxArgMax, "Maximum and its index, per component."},
      {"KMin_Reduction", "FII", ReductionKind::KMin, "K smallest values, per component."},
      {"ArgKMin_Reduction", "FII", ReductionKind::ArgKMin, "Indices of the K smallest values, per component."},
      {"KMin_ArgKMin_Reduction", "FII", ReductionKind::KMinArgKMin, "K smallest values and their indices."},
      {"Max_SumShiftExpWeight_Reduction", "FI?F", ReductionKind::MaxSumShiftExpWeight,
       "[m, s]: m = max F, s = sum exp(F - m) G (G = 1 by default)."},
      {"Max_SumShiftExp_Reduction", "FI?F", ReductionKind::MaxSumShiftExpWeight, "Alias of Max_SumShiftExpWeight_Reduction."},
      {"Zero_Reduction", "II", ReductionKind::Zero, "Zero_Reduction(dim, tag): an output of zeros."},
  };
  return table;
}

const ReductionInfo* find_reduction(std::string_view name) {
  for (const ReductionInfo& r : all_reductions())
    if (r.name == name) return &r;
  return nullptr;
}

int Reduction::dim_out() const {
  int d = formula ? formula->dim() : zero_dim;
  switch (info->kind) {
    case ReductionKind::MinArgMin:
    case ReductionKind::MaxArgMax: return 2 * d;
    case ReductionKind::KMin:
    case ReductionKind::ArgKMin: return opt * d;
    case ReductionKind::KMinArgKMin: return 2 * opt * d;
    case ReductionKind::MaxSumShiftExpWeight: return 1 + (formula2 ? formula2->dim() : 1);
    default: return d;
  }
}

std::vector<OutputSpec> output_specs(const Program& p) {
  const int d = p.dim_formula, k = p.opt;
  switch (p.reduction) {
    case ReductionKind::ArgMin:
    case ReductionKind::ArgMax: return {{true, d}};
    case ReductionKind::MinArgMin:
    case ReductionKind::MaxArgMax: return {{false, d}, {true, d}};
    case ReductionKind::KMin: return {{false, k * d}};
    case ReductionKind::ArgKMin: return {{true, k * d}};
    case ReductionKind::KMinArgKMin: return {{false, k * d}, {true, k * d}};
    default: return {{false, p.dim_out}};
  }
}

std::vector<ArgInfo> argument_table(const Reduction& red, const std::vector<Alias>& aliases) {
  std::vector<ArgInfo> table;
  std::vector<bool> known;
  // Variables in depth-first order (iterative: formulas may be 1e5 nodes deep), then those the text wrote
  // and simplification dropped; Var checked their ranges.
  std::vector<IntList> vars;
  std::unordered_set<NodeRef> seen;
  for (NodeRef f : {red.formula, red.formula2})
    post_order(f, [&](NodeRef n) { return seen.count(n) > 0; }, [&](NodeRef n) {
      seen.insert(n);
      if (n->is("Var")) vars.push_back(n->ints());
    });
  vars.insert(vars.end(), red.written_vars.begin(), red.written_vars.end());
  // n declarations cover at most positions 0..n-1: a position beyond leaves a gap below it, reported below,
  // and never grows the table to its size.
  const size_t max_args = aliases.size() + vars.size();
  bool beyond = false;
  auto declare = [&](int pos, int dim, int cat, const std::string& where) {
    if (static_cast<size_t>(pos) >= max_args) {
      beyond = true;
      return;
    }
    if (pos >= (int)table.size()) {
      table.resize(pos + 1);
      known.resize(pos + 1, false);
    }
    if (known[pos] && (table[pos].dim != dim || table[pos].cat != cat))
      throw UserError("argument " + std::to_string(pos) + " is declared twice with different dims or categories: Var(" +
                      std::to_string(pos) + "," + std::to_string(table[pos].dim) + "," + std::to_string(table[pos].cat) +
                      ") and " + where);
    table[pos] = {dim, cat};
    known[pos] = true;
  };
  for (const Alias& a : aliases)
    declare(a.pos, a.dim, a.cat, "alias '" + a.name + "'");
  for (const IntList& v : vars)
    declare((int)v[0], (int)v[1], (int)v[2],
            "Var(" + std::to_string(v[0]) + "," + std::to_string(v[1]) + "," + std::to_string(v[2]) + ")");
  for (size_t p = 0; p < table.size(); ++p)
    if (!known[p]) throw UserError("argument " + std::to_string(p) + " is not declared by any alias or variable");
  if (beyond) throw UserError("argument " + std::to_string(table.size()) + " is not declared by any alias or variable");
  return table;
}

}  // namespace keops
