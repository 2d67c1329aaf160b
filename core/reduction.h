// Reductions: the table of KeOps reductions and the parsed form Reduction(formula, tag, ...).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "node.h"
#include "program.h"

namespace keops {

// How sum-type reductions accumulate: plainly, in blocks flushed into a total (the error grows like
// sqrt(N) blocks instead of N terms), or with Kahan compensation.
enum class SumScheme : uint8_t { Direct, Block, Kahan };
constexpr unsigned scheme_bit(SumScheme s) { return 1u << static_cast<unsigned>(s); }
std::string_view sum_scheme_name(SumScheme s);  // "direct_sum", "block_sum", "kahan_scheme"

// The columns of one output array, from the formula's dim d, K and the weight formula's dim g (1 without one).
enum class Cols : uint8_t { D, KD, OnePlusG };
struct OutputLayout {
  bool indices = false;  // int64 indices, else values of the data type
  Cols cols = Cols::D;
};

// How a reduction is differentiated (core/differentiate.cpp, pykeops/torch/autograd.py).
enum class GradKind : uint8_t {
  Sum,       // the summand's gradient, summed
  Select,    // Min, Max, KMin (values and pairs): the gradient flows to the selected index
  Index,     // ArgMin, ArgMax, ArgKMin: indices, whose gradient is zero
  ShiftExp,  // Max_SumShiftExpWeight: through the softmax weights exp(F - m)
  Zero,      // Zero_Reduction
};

// One engine reduction "<name>(...)": the single description that the parser, the printer, the backends, the
// gradients and Python (through the bindings) read.
struct ReductionInfo {
  std::string_view name;       // e.g. "Sum_Reduction"
  std::string_view signature;  // as OpInfo::signature; the formula first, then K where present, the tag, formula2
  ReductionKind kind;
  std::string_view doc;
  std::vector<OutputLayout> outputs;  // the raw output arrays, in order
  bool selects = false;        // keeps candidates chosen by comparison (Min, ArgKMin, ...)
  bool takes_k = false;        // has K (KMin, ArgKMin, KMin_ArgKMin)
  bool accumulates = false;    // a sum type: dtype_acc applies
  unsigned schemes = 0;        // the sum_schemes it implements (scheme_bit mask)
  SumScheme default_scheme = SumScheme::Direct;        // what sum_scheme="auto" means
  GradKind grad = GradKind::Sum;
};

const ReductionInfo* find_reduction(std::string_view name);
const std::vector<ReductionInfo>& all_reductions();

// The summation scheme that `name` ("auto", "direct_sum", "block_sum", "kahan_scheme") selects for reduction `r`;
// UserError for an unknown name or one that `r` does not implement (naming `who`, the user's word for `r`).
SumScheme parse_sum_scheme(const ReductionInfo& r, const std::string& name, std::string_view who);

// The columns of output `o` of a reduction with formula dim d, K = k and weight dim g.
int output_cols(const OutputLayout& o, int d, int k, int g);

// A reduction_op of Genred and of the LazyTensor reductions: the engine reduction it runs, how it takes formula2,
// and how Python turns the raw outputs into its result.
enum class Formula2 : uint8_t { No, Optional, Required };
enum class Post : uint8_t {
  Raw,        // the raw outputs
  KShape,     // K-reductions: (..., K) or (..., K, d)
  LogSumExp,  // [m, s...] -> m + log(s)
  SoftMax,    // formula2 G runs as Concat(1, G): [m, s0, s...] -> s / s0
};
struct ReductionOp {
  std::string_view name;          // "LogSumExp"
  std::string_view engine;        // its ReductionInfo::name, "Max_SumShiftExpWeight_Reduction"
  Formula2 formula2 = Formula2::No;
  Post post = Post::Raw;
  std::string_view with_indices;  // the op that also returns the selected indices (for gradients), e.g. Min_ArgMin
};
const std::vector<ReductionOp>& reduction_ops();
const ReductionOp* find_reduction_op(std::string_view name);

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
