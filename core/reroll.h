// Reroll pass: long left-to-right sums of terms that differ only in the components they load become counted loops.
#pragma once
#include "program.h"

namespace keops {

// Sums of at least `min_trip` terms (Sum, SqNorm2, SqDist, scalar products, TensorDot, MatVecMult, ... over many
// components) whose terms are one expression with loads shifted by a constant step per term become one LoopSum
// (see Loops in program.h), so that code size is that of one term. The result is the same value, summed in the
// same order. Dead code is removed. Whether a backend then unrolls a loop is its own choice.
Program reroll(const Program& p, int min_trip = 8);

}  // namespace keops
