// CPU backend: renders a Program as LLVM IR, optimises it at O3 for the host and links it in process with ORC LLJIT.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../../core/program.h"
#include "../kernel_options.h"

namespace keops::cpu {

// Reduces rows [start, end) of the output over the reduced indices in intervals[2k] <= j < intervals[2k+1],
// k < n_intervals. args[pos]: outer variables row-major (n_outer, dim); inner variables of dim 1 as they are,
// of dim > 1 tile-major (see tile_major()); parameters (dim). outs: the arrays of output_specs(), row-major.
// A row's reduction may be split over several calls, one per chunk of j (so that a chunk of the inner variables
// stays in cache while all rows use it): `mode` & kResume starts each row from the state saved in `scratch`, and
// `mode` & kPartial saves the state there instead of storing the result. scratch holds state_slots() 8-byte
// slots per row, row `start` first; it is not read when mode is 0.
using KernelFn = void (*)(int64_t start, int64_t end, const int64_t* intervals, int64_t n_intervals,
                          const void* const* args, void* const* outs, int64_t* scratch, int64_t mode);
constexpr int64_t kResume = 1, kPartial = 2;

// Number of 8-byte scratch slots that hold one row's reduction state; 0 for a state that cannot wait in scratch
// (lists on the kernel's stack): its rows run in one call.
int state_slots(const Program& p, const KernelOptions& options);

// Copies rows (n, dim) into the layout kernels read inner variables of dim > 1 from: tiles of W = vector_width()
// consecutive rows, each stored component by component (element (j, c) at ((j / W) * dim + c) * W + j % W).
// `dst` holds ceil(n / W) * W * dim elements of `elem_size` bytes.
void tile_major(const void* src, void* dst, int64_t n, int dim, int w, size_t elem_size);

// Generates, optimises and compiles the kernel to a relocatable object defining the function `symbol`.
std::string compile_object(const Program& p, const KernelOptions& options, const std::string& symbol);

// Code linked into the process: `fn` stays valid while an owner holds it; the last owner unlinks it (its memory
// goes back to the system), so that kernels evicted from the cache cost nothing once no Python object uses them.
struct LinkedCode {
  KernelFn fn = nullptr;
};

// Seconds spent in each phase of compiling and linking a kernel, in order: (name, seconds) for reroll (the core
// pass), llvm_ir (IR generation), llvm_opt (the optimisation pipeline), codegen (machine code) and link (for
// benchmarks; not cached).
using Phases = std::vector<std::pair<std::string, double>>;
Phases compile_phases(const Program& p, const KernelOptions& options);

// Links an object from compile_object (fresh or from the disk cache) into the process and returns `symbol`. An
// object whose symbol is still linked is not linked again: its live code is shared.
std::shared_ptr<const LinkedCode> load_object(const std::string& object, const std::string& symbol);

// Number of objects linked into the process now (for tests: evicted kernels are released).
int64_t linked_objects();

// Host description folded into cache keys: target triple, CPU name and features, LLVM version.
const std::string& host_signature();

// Vector width (elements) used for `dtype` on this host.
int vector_width(Dtype dtype);

// Textual LLVM IR of the kernel after optimisation (for tests and inspection).
std::string optimized_ir(const Program& p, const KernelOptions& options);

}  // namespace keops::cpu
