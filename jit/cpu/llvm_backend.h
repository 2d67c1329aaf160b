// CPU backend: renders a Program as LLVM IR, optimises it at O3 for the host and links it in process with ORC LLJIT.
#pragma once
#include <cstdint>
#include <string>

#include "../../core/program.h"
#include "../kernel_options.h"

namespace keops::cpu {

// Reduces rows [start, end) of the output over the reduced indices in intervals[2k] <= j < intervals[2k+1],
// k < n_intervals. args[pos]: outer variables row-major (n_outer, dim), inner variables component-major (dim, ld)
// so that consecutive j are contiguous, parameters (dim). outs: the arrays of output_specs(), row-major.
using KernelFn = void (*)(int64_t start, int64_t end, const int64_t* intervals, int64_t n_intervals, int64_t ld,
                          const void* const* args, void* const* outs);

// Generates, optimises and compiles the kernel to a relocatable object defining the function `symbol`.
std::string compile_object(const Program& p, const KernelOptions& options, const std::string& symbol);

// Links an object from compile_object (fresh or from the disk cache) into the process and returns `symbol`.
KernelFn load_object(const std::string& object, const std::string& symbol);

// Host description folded into cache keys: target triple, CPU name and features, LLVM version.
const std::string& host_signature();

// Vector width (elements) used for `dtype` on this host.
int vector_width(Dtype dtype);

// Textual LLVM IR of the kernel after optimisation (for tests and inspection).
std::string optimized_ir(const Program& p, const KernelOptions& options);

}  // namespace keops::cpu
