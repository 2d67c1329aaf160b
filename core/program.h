// The lowered map-reduce program: scalar SSA code for one (i, j) pair plus the reduction. Backends see only this.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace keops {

// Scalar primitives every backend renders. Operations of the table lower to these.
enum class Prim : uint8_t {
  Const, Load,                                   // immediate; component `comp` of argument `pos`
  Add, Sub, Mul, Div, Neg, Abs, Sqrt,
  Exp, Log, Sin, Cos, Atan, Atan2, Asin, Acos,
  Floor, Round,                                  // Round: to nearest, halves away from zero (C round)
  Min, Max,                                      // NaN-propagating
  IfPos,                                         // a >= 0 ? b : c (NaN a picks c)
  Select,                                        // a != 0 ? b : c (a is a 0/1 comparison result)
  Lt, Le, Eq, Ne,                                // 1.0 or 0.0
  Index,                                         // the current i (comp 0) or j (comp 1), as a number
  LoopSum,                                       // c + sum over k < imm of the body's value a (see Loops); the last Prim
};
const char* prim_name(Prim p);
int prim_arity(Prim p);

struct Instr {
  Prim op;
  int a = -1, b = -1, c = -1;   // operands: earlier values
  double imm = 0;               // Const
  int pos = -1, comp = -1;      // Load; Index: comp is the category (0 i, 1 j)
  int step = 0;                 // Load in a loop body: component comp + k * step at iteration k
  bool operator==(const Instr&) const = default;
};

// Loops (made by core/reroll.h, for backends that render them): a LoopSum at `id` owns the body code[b .. id-1],
// contiguous, evaluated once per iteration k = 0 .. imm-1 (Loads with a step read component comp + k * step), and is
// c + sum_k a(k), added left to right (c < 0: from -0.0, the exact additive identity). The body sees values before
// b (invariants) and its own; nothing outside the body uses a body value; bodies do not nest. Body instructions have
// the LoopSum's level.

// Where a value depends on: parameters only, the output-side index, or the reduced index.
enum class Level : uint8_t { Param = 0, Outer = 1, Inner = 2 };

struct ArgInfo {
  int dim = 0;
  int cat = 0;   // 0 i, 1 j, 2 parameter
};

enum class ReductionKind { Sum, Min, Max, ArgMin, ArgMax, MinArgMin, MaxArgMax, KMin, ArgKMin, KMinArgKMin,
                           MaxSumShiftExpWeight, Zero };

// One output array of a reduction: `cols` columns per row, of the data type or of int64 indices.
struct OutputSpec {
  bool indices = false;
  int cols = 0;
};

struct Program {
  std::vector<Instr> code;     // topologically ordered SSA
  std::vector<Level> level;    // per value
  std::vector<int> out;        // value of each component of the reduced formula
  std::vector<int> out2;       // second formula (Max_SumShiftExpWeight's weight), if any
  std::vector<ArgInfo> args;   // per argument position
  ReductionKind reduction = ReductionKind::Sum;
  std::string reduction_name;
  int tag = 0;                 // category of the output index: 0 -> output indexed by i
  int opt = 0;                 // K of the K-reductions
  int dim_formula = 0;         // dimension of the reduced formula
  int dim_out = 0;             // columns of the output array
  std::string canonical;       // canonical reduction string (identifies the program)
};

// The output arrays of the program's reduction (values, indices, or both), each laid out row-major.
std::vector<OutputSpec> output_specs(const Program& p);

}  // namespace keops
