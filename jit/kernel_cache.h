// Kernel cache: request -> compiled Kernel, in memory (by exact request and by canonical program) and on disk.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "../core/program.h"
#include "../core/reduction.h"
#include "cpu/llvm_backend.h"
#include "kernel_options.h"

namespace keops {

struct KernelRequest {
  std::string formula;               // full reduction string, e.g. "Sum_Reduction(Exp(-SqDist(x,y))*b,0)"
  std::vector<std::string> aliases;  // "x = Vi(3)", ...
  std::string dtype = "float32";
  std::string dtype_acc = "auto";
  std::string sum_scheme = "auto";
};

// One call of a kernel on the caller's buffers (data addresses of C-contiguous arrays).
struct Launch {
  std::vector<uintptr_t> args;                // per argument position
  int64_t nx = 0, ny = 0;
  std::vector<uintptr_t> outs;                // per output_specs() entry: batch + (n_out, cols)
  std::vector<int64_t> batch;                 // broadcast batch shape B (may be empty)
  std::vector<std::vector<int64_t>> arg_batch;  // per argument: its batch shape, len(B) entries of 1 or B[k]
  std::vector<uintptr_t> ranges;              // empty or the 6 KeOps block-sparse int64 arrays
  std::vector<int64_t> range_counts;          // [n ranges_i, n redranges_j, n ranges_j, n redranges_i]
  int64_t range_sets = 1;                     // 1: one pattern for every batch; else one per batch, stacked
  // CPU: polled on the calling thread about every 50 ms while the workers run (see parallel_for); true stops the
  // launch (the outputs are then undefined) with Interrupted. The bindings check Python's signals (Ctrl-C) here.
  // Not used by the GPU: its launch is queued asynchronously (one kernel, maybe a combine) and cannot be cut short.
  std::function<bool()> interrupted;
};

class Kernel {
 public:
  Kernel(Program program, KernelOptions options, std::shared_ptr<const cpu::LinkedCode> code)
      : program_(std::move(program)), options_(options), outputs_(output_specs(program_)), code_(std::move(code)) {}
  const Program& program() const { return program_; }
  const KernelOptions& options() const { return options_; }
  const std::vector<OutputSpec>& outputs() const { return outputs_; }

  // Validates counts, shapes and ranges (UserError), then runs on all threads (Interrupted: see Launch).
  void run(const Launch& launch) const;

 private:
  Program program_;
  KernelOptions options_;
  std::vector<OutputSpec> outputs_;
  std::shared_ptr<const cpu::LinkedCode> code_;  // null for Zero_Reduction
};

std::shared_ptr<const Kernel> get_kernel(const KernelRequest& request);

// The optimised LLVM IR of the request's CPU kernel (for inspection; not cached).
std::string kernel_ir(const KernelRequest& request);

struct CacheStats {
  int64_t requests = 0, memory_hits = 0, disk_hits = 0, compiled = 0;
};
CacheStats cache_stats();

// Disk cache folder: KEOPS_CACHE_FOLDER, else $XDG_CACHE_HOME/keops-jit or ~/.cache/keops-jit; "" disables it.
std::string cache_folder();
void set_cache_folder(const std::string& path);
// Forgets the kernels in memory; the code of each is unlinked when its last user (e.g. a Genred) lets it go.
void clear_memory_cache();

// Bytes of inner-variable data that a task's rows share from cache before moving to the next chunk of j (see
// Kernel::run); half of a core's L2 cache by default. n <= 0 restores the default. For tests and tuning.
int64_t chunk_bytes();
void set_chunk_bytes(int64_t n);

}  // namespace keops
