// Reductions: the table of KeOps reductions and the parsed form Reduction(formula, tag, ...).
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "node.h"
#include "program.h"

namespace keops {

struct ReductionInfo {
  std::string_view name;       // e.g. "Sum_Reduction"
  std::string_view signature;  // as OpInfo::signature; the formula first, then K where present, the tag, formula2
  ReductionKind kind;
  std::string_view doc;
};

const ReductionInfo* find_reduction(std::string_view name);
const std::vector<ReductionInfo>& all_reductions();

struct Reduction {
  const ReductionInfo* info = nullptr;
  NodeRef formula = nullptr;   // null only for Zero_Reduction
  int tag = 0;                 // category of the output index
  int opt = 0;                 // K, for the K-reductions
  NodeRef formula2 = nullptr;  // weight of Max_SumShiftExpWeight
  int zero_dim = 0;            // Zero_Reduction's dimension
  std::vector<IntList> written_vars;  // (pos, dim, cat) of every Var the text wrote, kept where simplification drops it
  int dim_out() const;         // columns of the raw output
};

// A named (or anonymous) declaration of an argument: "x = Vi(3)", "Vj(1,2)", "p = Var(2,1,2)".
struct Alias {
  std::string name;
  int pos = 0, dim = 0, cat = 0;
};

// Argument positions 0..n-1 with their dims and categories, from the aliases and the Vars of the reduction (those
// written in its text too, so that an argument list never depends on what simplification kept).
// UserError when two declarations of a position disagree or a position is declared nowhere.
std::vector<ArgInfo> argument_table(const Reduction& red, const std::vector<Alias>& aliases);

}  // namespace keops
