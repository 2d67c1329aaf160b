// Code of kernels evicted from the cache is unlinked once no one uses it; kernels still held keep theirs.
#include <cstdint>
#include <vector>

#include "catch.hpp"
#include "jit/cpu/llvm_backend.h"
#include "jit/cpu/cpu_kernel.h"

using namespace keops;

namespace {

// sum_j x_i * y_j for x = (1, 2), y = (1, 2, 3): 6 and 12.
void check_runs(const CpuKernel& k) {
  std::vector<float> x{1, 2}, y{1, 2, 3}, out(2, -1);
  k.run({{reinterpret_cast<uintptr_t>(x.data()), reinterpret_cast<uintptr_t>(y.data())}, 2, 3,
         {reinterpret_cast<uintptr_t>(out.data())}});
  CHECK(out == std::vector<float>{6, 12});
}

}  // namespace

TEST_CASE("kernel code: unlinked when the last user goes, shared while one lives") {
  const std::string old_folder = cache_folder();
  set_cache_folder("");  // memory only: every request after a clear links again
  clear_memory_cache();
  const int64_t base = cpu::linked_objects();
  KernelRequest r{"Sum_Reduction(x*y*IntCst(1), 0)", {"x = Vi(1)", "y = Vj(1)"}, "float32"};
  auto k1 = get_cpu_kernel(r);
  CHECK(cpu::linked_objects() == base + 1);
  clear_memory_cache();
  check_runs(*k1);  // held here: still linked
  CHECK(cpu::linked_objects() == base + 1);
  auto k2 = get_cpu_kernel(r);  // a new CpuKernel of the same code: shares k1's, the symbol is not defined twice
  CHECK(k2 != k1);
  CHECK(cpu::linked_objects() == base + 1);
  clear_memory_cache();
  k1.reset();
  check_runs(*k2);
  k2.reset();
  CHECK(cpu::linked_objects() == base);
  for (int round = 0; round < 3; ++round) {  // linked again after its release
    auto k = get_cpu_kernel(r);
    check_runs(*k);
    clear_memory_cache();
  }
  CHECK(cpu::linked_objects() == base);
  set_cache_folder(old_folder);
}
