// GPU backend, code generation: a lowered Program becomes CUDA C++ source for NVRTC (map-reduce kernels).
#pragma once
#include <string>
#include <vector>

#include "../../core/program.h"
#include "../kernel_options.h"

namespace keops::gpu {

enum class GpuDtype { F16, F32, F64 };
const char* gpu_dtype_name(GpuDtype d);
int gpu_dtype_size(GpuDtype d);

struct GpuOptions {
  GpuDtype dtype = GpuDtype::F32;   // storage type of the arguments and value outputs
  GpuDtype acc = GpuDtype::F32;     // accumulator of Sum and Max_SumShiftExpWeight (float16 data: float32 by default)
  SumScheme scheme = SumScheme::Block;
  bool fast_math = true;            // -use_fast_math
  bool chunks = true;               // chunked evaluation when the per-pair data is too large for registers
  int block = 0;                    // threads per block; 0: chosen by the generator (tests force small blocks)
  std::string text() const;
};

// What the host needs to know to launch the generated kernels.
struct KernelLayout {
  std::string name;          // kernels <name>_reduce (1D, or 2D partial states when given a buffer), <name>_combine
  int block = 0;             // threads per block of the 1D and 2D kernels (= rows per block = j per tile)
  int combine_block = 128;   // threads per block of the combining kernel
  bool chunked = false;      // pairs evaluated in segments of at most kChunkWords loaded values
  int groups = 1;            // output groups, each a pass over j with its own (smaller) state
  int segments = 1;          // largest number of segments of a group
  int carries = 0;           // values carried per j between segments
  int shared_bytes = 0;      // static shared memory of the 1D/2D kernels
  int state_stride = 0;      // bytes of one row's partial states (all groups) in the 2D buffer; 8-aligned
  int max_batch_dims = 8;
  int nargs = 0;
};

struct CudaSource {
  std::string prelude;  // types, conversions, primitives; shared by all programs of a translation unit
  std::string body;     // this program's kernels (in namespace kp_<name>, kernels extern "C")
  KernelLayout layout;
  std::string full() const { return prelude + body; }
};

constexpr int kChunkWords = 64;  // chunk mode: at most this many 32-bit words of loaded values per segment

// CUDA source for the program's kernels. Zero_Reduction has no kernels (the launch zero-fills).
CudaSource generate_cuda(const Program& p, const GpuOptions& o, const std::string& name);

// The fixed part of every translation unit (also inside generate_cuda(...).prelude).
const std::string& cuda_prelude();

// The CUDA expression of a primitive applied to operand expressions a, b, c (empty when unused); nullptr for Const,
// Load and Index, which the generator renders itself. Every other primitive has a rendering (the build fails otherwise).
const char* cuda_prim_pattern(Prim p);
std::string render_prim(Prim p, const std::string& a, const std::string& b, const std::string& c);

}  // namespace keops::gpu
