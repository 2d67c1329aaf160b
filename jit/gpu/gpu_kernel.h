// GPU backend: request -> GpuKernel (Program + CUDA source, through the shared kernel cache), cubins per
// architecture (memory and disk cache), and the launch (scheme choice, block-sparse and batch tables, 1D or 2D kernels) on a CUDA stream.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../../core/program.h"
#include "../kernel_cache.h"
#include "../launch.h"
#include "cuda_api.h"
#include "cuda_codegen.h"

namespace keops::gpu {

// dtype: float16, float32 or float64; dtype_acc auto: float32 for float16 data, else the data type.
struct GpuRequest : KernelRequest {
  bool fast_math = true;
  bool chunks = true;
  int block = 0;                     // threads per block (0: automatic); for tests
};

// 1D: one thread per output row, j tiles in shared memory. 2D: j also split across blocks, then combined.
enum class Scheme { Auto, OneD, TwoD };

// The device side of a launch: device memory, copies and kernel launches on one stream. Implemented on the CUDA
// driver below and, in the tests, by a host emulator running the same generated source.
class Runtime {
 public:
  virtual ~Runtime() = default;
  virtual uint64_t alloc(size_t bytes) = 0;
  virtual void release(uint64_t ptr) = 0;
  virtual void upload(uint64_t dst, const void* src, size_t bytes) = 0;
  virtual void zero(uint64_t dst, size_t bytes) = 0;
  virtual void launch(const std::string& kernel, unsigned grid_x, unsigned grid_y, unsigned block, void** params) = 0;
  virtual int multiprocessors() const = 0;
};

// What a launch did (for tests and inspection).
struct LaunchReport {
  std::string scheme;          // "1D", "2D" or "none"
  int64_t blocks = 0;          // blocks along x (row chunks x batch)
  int64_t splits = 1;          // blocks along y (2D)
  size_t scratch_bytes = 0;    // device memory for tables and partial states
};

class GpuKernel {
 public:
  GpuKernel(Program program, GpuOptions options, std::string name);
  const Program& program() const { return program_; }
  const GpuOptions& options() const { return options_; }
  const std::vector<OutputSpec>& outputs() const { return outputs_; }
  const CudaSource& source() const { return source_; }
  const KernelLayout& layout() const { return source_.layout; }
  const std::string& key() const { return key_; }

  // Validates the launch (UserError, as the CPU kernel does), plans it and runs it on `rt`. L.args and L.outs are
  // device addresses; L.ranges are host arrays (the block-sparse description is planned on the host).
  LaunchReport launch(const Launch& L, Runtime& rt, Scheme scheme) const;

  // Runs on device `ordinal` (its primary context) on `stream` (a CUstream, 0 for the legacy default stream).
  LaunchReport run(const Launch& L, int ordinal, uintptr_t stream, Scheme scheme) const;

  // The compiled binary for compute capability `sm` (memory, then disk cache, then NVRTC).
  const CompileResult& binary(int sm) const;

 private:
  struct Loaded {
    CUmodule module = nullptr;
    std::map<std::string, CUfunction> functions;
  };
  const Loaded& loaded(int ordinal) const;

  Program program_;
  GpuOptions options_;
  std::vector<OutputSpec> outputs_;
  CudaSource source_;
  std::string key_;
  mutable std::mutex mutex_;
  mutable std::map<int, std::unique_ptr<CompileResult>> binaries_;  // by sm
  mutable std::map<int, std::unique_ptr<Loaded>> modules_;          // by device ordinal
};

// Parses, lowers and generates (cached in memory by request and by program). Compilation happens per architecture
// on first use (GpuKernel::binary), so this works without a GPU.
std::shared_ptr<const GpuKernel> get_gpu_kernel(const GpuRequest& request);

// Compiles the kernels of several requests as one translation unit for compute capability `sm` (no device needed):
// the NVRTC log (with ptxas's resource report when verbose) and the binary's size. Duplicate programs count once.
struct CompileCheck {
  CompileResult result;
  std::vector<std::shared_ptr<const GpuKernel>> kernels;  // per request
};
CompileCheck compile_check(const std::vector<GpuRequest>& requests, int sm, bool verbose_ptxas, bool ptx_only = false);

CacheStats gpu_cache_stats();
void clear_gpu_memory_cache();

}  // namespace keops::gpu
