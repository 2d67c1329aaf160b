// Emitters of branch-free LLVM IR for elementary functions that vectorise (no libm calls).
#pragma once

namespace llvm {
class IRBuilderBase;
class Value;
}  // namespace llvm

namespace keops::cpu {

// Each function takes a float/double scalar or a fixed vector of float/double (e.g. <16 x float>)
// and returns a value of the same type, computed lane-wise with straight-line code: arithmetic,
// bit manipulation, select, fcmp and instruction-level intrinsics (fma, fmuladd, rint, floor, fabs,
// sqrt, copysign). Special values follow IEEE / C99 Annex F (NaN propagates, exp(-inf)=0, log(0)=-inf,
// atan2 signed zeros and infinities, asin/acos outside [-1,1] give NaN).
//
// Requirements on the caller:
//  * The JIT target should have hardware FMA (x86-64-v3, AVX-512, AArch64): range reductions use
//    llvm.fma for exactness, which otherwise lowers to a (correct but slow, scalar) libm fma call.
//  * The builder's fast-math flags are ignored (cleared while emitting): the special-value logic
//    relies on IEEE semantics of NaN and infinities.
// Accuracy and the argument range of sin/cos are documented in vec_math.cpp.
llvm::Value* emit_exp(llvm::IRBuilderBase& b, llvm::Value* x);
llvm::Value* emit_log(llvm::IRBuilderBase& b, llvm::Value* x);
llvm::Value* emit_sin(llvm::IRBuilderBase& b, llvm::Value* x);
llvm::Value* emit_cos(llvm::IRBuilderBase& b, llvm::Value* x);
llvm::Value* emit_atan(llvm::IRBuilderBase& b, llvm::Value* x);
llvm::Value* emit_atan2(llvm::IRBuilderBase& b, llvm::Value* y, llvm::Value* x);
llvm::Value* emit_asin(llvm::IRBuilderBase& b, llvm::Value* x);
llvm::Value* emit_acos(llvm::IRBuilderBase& b, llvm::Value* x);

}  // namespace keops::cpu
