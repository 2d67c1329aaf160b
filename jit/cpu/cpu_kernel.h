// CPU backend: request -> CpuKernel (Program + object code linked by LLVM, through the shared kernel cache), and
// the launch on the thread pool.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../../core/program.h"
#include "../kernel_cache.h"
#include "../kernel_options.h"
#include "../launch.h"
#include "llvm_backend.h"

namespace keops {

class CpuKernel {
 public:
  CpuKernel(Program program, KernelOptions options, std::shared_ptr<const cpu::LinkedCode> code)
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

// The kernel of a request: from memory, else from the disk cache, else compiled.
std::shared_ptr<const CpuKernel> get_cpu_kernel(const KernelRequest& request);

// The optimised LLVM IR of the request's CPU kernel (for inspection; not cached).
std::string kernel_ir(const KernelRequest& request);

// Seconds spent in each phase of building the request's CPU kernel from scratch, in order: parse (with the
// construction-time simplifications and symbolic derivatives), lower, then those of cpu::compile_phases (for
// benchmarks; nothing is cached).
cpu::Phases kernel_phases(const KernelRequest& request);

CacheStats cache_stats();
// Forgets the CPU kernels in memory; the code of each is unlinked when its last user (e.g. a Genred) lets it go.
void clear_memory_cache();

// Bytes of inner-variable data that a task's rows share from cache before moving to the next chunk of j (see
// CpuKernel::run); half of a core's L2 cache by default. n <= 0 restores the default. For tests and tuning.
int64_t chunk_bytes();
void set_chunk_bytes(int64_t n);

}  // namespace keops
