// Kernel cache: request -> compiled Kernel, in memory (by exact request and by canonical program) and on disk.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../core/program.h"
#include "cpu/llvm_backend.h"
#include "dtype.h"

namespace keops {

struct KernelRequest {
  std::string formula;               // full reduction string, e.g. "Sum_Reduction(Exp(-SqDist(x,y))*b,0)"
  std::vector<std::string> aliases;  // "x = Vi(3)", ...
  std::string dtype = "float32";
  std::string dtype_acc = "auto";
  std::string sum_scheme = "auto";
};

class Kernel {
 public:
  Kernel(Program program, Dtype dtype, cpu::KernelFn fn) : program_(std::move(program)), dtype_(dtype), fn_(fn) {}
  const Program& program() const { return program_; }
  Dtype dtype() const { return dtype_; }

  // ptrs: one C-contiguous buffer per argument position (i-variables (nx, dim), j-variables (ny, dim),
  // parameters (dim)); out: (nx or ny, dim_out). Validates counts and sizes, not the pointed-to memory.
  void run(const std::vector<uintptr_t>& ptrs, int64_t nx, int64_t ny, uintptr_t out) const;

 private:
  Program program_;
  Dtype dtype_;
  cpu::KernelFn fn_;
};

std::shared_ptr<const Kernel> get_kernel(const KernelRequest& request);

struct CacheStats {
  int64_t requests = 0, memory_hits = 0, disk_hits = 0, compiled = 0;
};
CacheStats cache_stats();

// Disk cache folder: KEOPS_CACHE_FOLDER, else $XDG_CACHE_HOME/keops-jit or ~/.cache/keops-jit; "" disables it.
std::string cache_folder();
void set_cache_folder(const std::string& path);
void clear_memory_cache();

}  // namespace keops
