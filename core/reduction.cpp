// The reduction table and the argument table of a parsed reduction.
#include "reduction.h"

#include <unordered_set>

#include "errors.h"

namespace keops {

namespace {

constexpr OutputLayout kValues{.indices = false, .cols = Cols::D}, kIndices{.indices = true, .cols = Cols::D};
constexpr OutputLayout kKValues{.indices = false, .cols = Cols::KD}, kKIndices{.indices = true, .cols = Cols::KD};
constexpr unsigned kAllSchemes = scheme_bit(SumScheme::Direct) | scheme_bit(SumScheme::Block) | scheme_bit(SumScheme::Kahan);

ReductionInfo shift_exp(std::string_view name, std::string_view doc) {
  return {.name = name, .signature = "FI?F", .kind = ReductionKind::MaxSumShiftExpWeight, .doc = doc,
          .outputs = {{.indices = false, .cols = Cols::OnePlusG}}, .accumulates = true,
          .schemes = scheme_bit(SumScheme::Direct) | scheme_bit(SumScheme::Block), .default_scheme = SumScheme::Direct, .grad = GradKind::ShiftExp};
}

}  // namespace

const std::vector<ReductionInfo>& all_reductions() {
  using K = ReductionKind;
  static const std::vector<ReductionInfo> table = {
      {.name = "Sum_Reduction", .signature = "FI", .kind = K::Sum, .doc = "Sum over the reduced index.",
       .outputs = {kValues}, .accumulates = true, .schemes = kAllSchemes, .default_scheme = SumScheme::Block,
       .grad = GradKind::Sum},
      {.name = "Min_Reduction", .signature = "FI", .kind = K::Min, .doc = "Minimum, per component.",
       .outputs = {kValues}, .selects = true, .grad = GradKind::Select},
      {.name = "Max_Reduction", .signature = "FI", .kind = K::Max, .doc = "Maximum, per component.",
       .outputs = {kValues}, .selects = true, .grad = GradKind::Select},
      {.name = "ArgMin_Reduction", .signature = "FI", .kind = K::ArgMin, .doc = "Index of the minimum, per component.",
       .outputs = {kIndices}, .selects = true, .grad = GradKind::Index},
      {.name = "ArgMax_Reduction", .signature = "FI", .kind = K::ArgMax, .doc = "Index of the maximum, per component.",
       .outputs = {kIndices}, .selects = true, .grad = GradKind::Index},
      {.name = "Min_ArgMin_Reduction", .signature = "FI", .kind = K::MinArgMin,
       .doc = "Minimum and its index, per component.", .outputs = {kValues, kIndices}, .selects = true,
       .grad = GradKind::Select},
      {.name = "Max_ArgMax_Reduction", .signature = "FI", .kind = K::MaxArgMax,
       .doc = "Maximum and its index, per component.", .outputs = {kValues, kIndices}, .selects = true,
       .grad = GradKind::Select},
      {.name = "KMin_Reduction", .signature = "FII", .kind = K::KMin, .doc = "K smallest values, per component.",
       .outputs = {kKValues}, .selects = true, .takes_k = true, .grad = GradKind::Select},
      {.name = "ArgKMin_Reduction", .signature = "FII", .kind = K::ArgKMin,
       .doc = "Indices of the K smallest values, per component.", .outputs = {kKIndices}, .selects = true,
       .takes_k = true, .grad = GradKind::Index},
      {.name = "KMin_ArgKMin_Reduction", .signature = "FII", .kind = K::KMinArgKMin,
       .doc = "K smallest values and their indices.", .outputs = {kKValues, kKIndices}, .selects = true,
       .takes_k = true, .grad = GradKind::Select},
      shift_exp("Max_SumShiftExpWeight_Reduction", "[m, s]: m = max F, s = sum exp(F - m) G (G = 1 by default)."),
      shift_exp("Max_SumShiftExp_Reduction", "Alias of Max_SumShiftExpWeight_Reduction."),
      {.name = "Zero_Reduction", .signature = "II", .kind = K::Zero, .doc = "Zero_Reduction(dim, tag): an output of zeros.",
       .outputs = {kValues}, .grad = GradKind::Zero},
  };
  return table;
}

const ReductionInfo* find_reduction(std::string_view name) {
  for (const ReductionInfo& r : all_reductions())
    if (r.name == name) return &r;
  return nullptr;
}

std::string_view sum_scheme_name(SumScheme s) {
  switch (s) {
    case SumScheme::Direct: return "direct_sum";
    case SumScheme::Block: return "block_sum";
    case SumScheme::Kahan: return "kahan_scheme";
  }
  return "";
}

SumScheme parse_sum_scheme(const ReductionInfo& r, const std::string& name, std::string_view who) {
  if (name == "auto") return r.default_scheme;
  for (SumScheme s : {SumScheme::Direct, SumScheme::Block, SumScheme::Kahan}) {
    if (name != sum_scheme_name(s)) continue;
    if (r.schemes & scheme_bit(s)) return s;
    std::string accepted = "'auto'";
    for (SumScheme t : {SumScheme::Direct, SumScheme::Block, SumScheme::Kahan})
      if (r.schemes & scheme_bit(t)) accepted += ", '" + std::string(sum_scheme_name(t)) + "'";
    throw UserError("sum_scheme='" + name + "' is not available for the " + std::string(who) + " reduction (" +
                    (r.accumulates ? "it accepts " + accepted : "only sum-type reductions take a sum_scheme") + ")");
  }
  throw UserError("unknown sum_scheme '" + name + "' (expected auto, direct_sum, block_sum or kahan_scheme)");
}

int output_cols(const OutputLayout& o, int d, int k, int g) {
  switch (o.cols) {
    case Cols::D: return d;
    case Cols::KD: return k * d;
    case Cols::OnePlusG: return 1 + g;
  }
  return 0;
}

int Reduction::dim_out() const {
  const int d = formula ? formula->dim() : zero_dim, g = formula2 ? formula2->dim() : 1;
  int cols = 0;
  for (const OutputLayout& o : info->outputs) cols += output_cols(o, d, opt, g);
  return cols;
}

std::vector<OutputSpec> output_specs(const Program& p) {
  const ReductionInfo* r = find_reduction(p.reduction_name);
  KEOPS_ASSERT(r != nullptr, "program of an unknown reduction " + p.reduction_name);
  const int g = p.out2.empty() ? 1 : (int)p.out2.size();
  std::vector<OutputSpec> specs;
  for (const OutputLayout& o : r->outputs)
    specs.push_back({o.indices, r->kind == ReductionKind::Zero ? p.dim_out : output_cols(o, p.dim_formula, p.opt, g)});
  return specs;
}

const std::vector<ReductionOp>& reduction_ops() {
  constexpr std::string_view lse = "Max_SumShiftExpWeight_Reduction";
  static const std::vector<ReductionOp> table = {
      {.name = "Sum", .engine = "Sum_Reduction"},
      {.name = "Max_SumShiftExp", .engine = lse, .formula2 = Formula2::Optional},
      {.name = "Max_SumShiftExpWeight", .engine = lse, .formula2 = Formula2::Optional},
      {.name = "LogSumExp", .engine = lse, .formula2 = Formula2::Optional, .post = Post::LogSumExp},
      {.name = "LogSumExpWeight", .engine = lse, .formula2 = Formula2::Required, .post = Post::LogSumExp},
      {.name = "SumSoftMaxWeight", .engine = lse, .formula2 = Formula2::Required, .post = Post::SoftMax},
      {.name = "SoftMax", .engine = lse, .formula2 = Formula2::Required, .post = Post::SoftMax},
      {.name = "Min", .engine = "Min_Reduction", .with_indices = "Min_ArgMin"},
      {.name = "Max", .engine = "Max_Reduction", .with_indices = "Max_ArgMax"},
      {.name = "ArgMin", .engine = "ArgMin_Reduction"},
      {.name = "ArgMax", .engine = "ArgMax_Reduction"},
      {.name = "Min_ArgMin", .engine = "Min_ArgMin_Reduction"},
      {.name = "Max_ArgMax", .engine = "Max_ArgMax_Reduction"},
      {.name = "KMin", .engine = "KMin_Reduction", .post = Post::KShape, .with_indices = "KMin_ArgKMin"},
      {.name = "ArgKMin", .engine = "ArgKMin_Reduction", .post = Post::KShape},
      {.name = "KMin_ArgKMin", .engine = "KMin_ArgKMin_Reduction", .post = Post::KShape},
  };
  return table;
}

const ReductionOp* find_reduction_op(std::string_view name) {
  for (const ReductionOp& r : reduction_ops())
    if (r.name == name) return &r;
  return nullptr;
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
