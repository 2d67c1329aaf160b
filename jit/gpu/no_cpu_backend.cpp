// Stand-in for the LLVM CPU backend in builds without it (cmake -DKEOPS_CPU_BACKEND=OFF, e.g. a GPU machine without
// LLVM development files): the package still builds and imports, the GPU backend works, CPU kernels raise
// NotImplementedError. Mirrors jit/cpu/llvm_backend.h.
#include <cstring>

#include "../../core/errors.h"
#include "../cpu/llvm_backend.h"

namespace keops::cpu {

namespace {
[[noreturn]] void absent() {
  throw NotSupported("this pykeops build has no CPU backend (built with KEOPS_CPU_BACKEND=OFF): use a GPU backend");
}
}  // namespace

void tile_major(const void* src, void* dst, int64_t n, int dim, int w, size_t elem_size) {
  const auto* s = static_cast<const unsigned char*>(src);
  auto* d = static_cast<unsigned char*>(dst);
  for (int64_t j = 0; j < n; ++j)
    for (int c = 0; c < dim; ++c)
      std::memcpy(d + (((j / w) * dim + c) * w + j % w) * elem_size, s + (j * dim + c) * elem_size, elem_size);
}

std::string compile_object(const Program&, const KernelOptions&, const std::string&) { absent(); }
std::shared_ptr<const LinkedCode> load_object(const std::string&, const std::string&) { absent(); }
int64_t linked_objects() { return 0; }
const std::string& host_signature() {
  static const std::string none = "no-cpu-backend";
  return none;
}
int vector_width(Dtype dtype) { return 16 / dtype_size(dtype); }
int state_slots(const Program&, const KernelOptions&) { absent(); }
std::string optimized_ir(const Program&, const KernelOptions&) { absent(); }
Phases compile_phases(const Program&, const KernelOptions&) { absent(); }

}  // namespace keops::cpu
