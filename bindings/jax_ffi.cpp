// The XLA FFI handler of pykeops.jax: a CPU kernel run as a custom call inside jitted JAX code (no host callback).
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "../jit/cpu/cpu_kernel.h"
#include "../jit/launch.h"
#include "bindings.h"
#include "xla/ffi/api/ffi.h"

namespace py = pybind11;
namespace ffi = xla::ffi;
using keops::CpuKernel;

namespace {

// Kernels named by a lowered custom call: their handle (the address) is a static attribute of the call, so they
// stay alive for the process (a compiled executable may outlive every Genred that asked for its kernels).
std::mutex registry_mutex;
std::unordered_map<int64_t, std::shared_ptr<const CpuKernel>> registry;

std::shared_ptr<const CpuKernel> find_kernel(int64_t handle) {
  std::lock_guard<std::mutex> lock(registry_mutex);
  auto it = registry.find(handle);
  return it == registry.end() ? nullptr : it->second;
}

std::vector<int64_t> dims_of(const ffi::AnyBuffer& b) {
  auto d = b.dimensions();
  return {d.begin(), d.end()};
}

// Buffers: the kernel's arguments, then optionally the 6 block-sparse int64 ranges arrays; results: its outputs.
// Without jax_enable_x64 JAX has no int64: indices and ranges then travel as int32 arrays of twice as many columns
// holding the int64 words (the bytes the engine reads and writes).
// Sizes and batch shapes are read from the buffers' dimensions (under jax.vmap they gain leading batch axes, which
// are KeOps batch dimensions); Python checked them against the kernel's signature when the call was traced.
ffi::Error run_genred(int64_t handle, ffi::RemainingArgs args, ffi::RemainingRets rets) {
  try {
    auto kernel = find_kernel(handle);
    if (!kernel) return ffi::Error::InvalidArgument("pykeops: unknown kernel handle " + std::to_string(handle));
    const keops::Program& p = kernel->program();
    const size_t nargs = p.args.size();
    if (args.size() != nargs && args.size() != nargs + 6)
      return ffi::Error::InvalidArgument("pykeops: the kernel takes " + std::to_string(nargs) + " arguments (+ 6 ranges), got " +
                                         std::to_string(args.size()));
    if (rets.size() != kernel->outputs().size())
      return ffi::Error::InvalidArgument("pykeops: the kernel has " + std::to_string(kernel->outputs().size()) +
                                         " outputs, got " + std::to_string(rets.size()));
    const ffi::DataType data = kernel->options().dtype == keops::Dtype::F32 ? ffi::DataType::F32 : ffi::DataType::F64;
    keops::Launch L;
    int64_t rows[2] = {1, 1};
    std::vector<std::vector<int64_t>> batches;
    size_t ndims = 0;
    for (size_t k = 0; k < nargs; ++k) {
      auto b = args.get<ffi::AnyBuffer>(k);
      if (!b.has_value()) return b.error();
      if (b->element_type() != data) return ffi::Error::InvalidArgument("pykeops: argument " + std::to_string(k) + " has the wrong dtype");
      auto d = dims_of(*b);
      const size_t core = p.args[k].cat == 2 ? 1 : 2;
      if (d.size() < core || d.back() != p.args[k].dim)
        return ffi::Error::InvalidArgument("pykeops: argument " + std::to_string(k) + " has the wrong shape");
      if (p.args[k].cat < 2) rows[p.args[k].cat] = d[d.size() - 2];
      batches.emplace_back(d.begin(), d.end() - core);
      ndims = std::max(ndims, batches.back().size());
      L.args.push_back(reinterpret_cast<uintptr_t>(b->untyped_data()));
    }
    L.nx = rows[0];
    L.ny = rows[1];
    L.batch.assign(ndims, 1);
    for (auto& b : batches) {
      b.insert(b.begin(), ndims - b.size(), 1);
      for (size_t a = 0; a < ndims; ++a) L.batch[a] = std::max(L.batch[a], b[a]);
    }
    if (ndims) L.arg_batch = std::move(batches);
    if (args.size() == nargs + 6) {
      const int ranks[6] = {2, 1, 2, 2, 1, 2};
      for (size_t r = 0; r < 6; ++r) {
        auto b = args.get<ffi::AnyBuffer>(nargs + r);
        if (!b.has_value()) return b.error();
        auto d = dims_of(*b);
        if (b->element_type() == ffi::DataType::S32 && !d.empty() && d.back() % 2 == 0) d.back() /= 2;  // int64 words
        else if (b->element_type() != ffi::DataType::S64) return ffi::Error::InvalidArgument("pykeops: ranges must be int64");
        if (d.size() < size_t(ranks[r])) return ffi::Error::InvalidArgument("pykeops: ranges have the wrong shape");
        if (ranks[r] == 2) L.range_counts.push_back(d[d.size() - 2]);
        if (r == 0) {
          L.range_sets = 1;
          for (size_t a = 0; a + 2 < d.size(); ++a) L.range_sets *= d[a];
        }
        L.ranges.push_back(reinterpret_cast<uintptr_t>(b->untyped_data()));
      }
    }
    int64_t n_rows = p.tag == 0 ? L.nx : L.ny;
    for (int64_t s : L.batch) n_rows *= s;
    for (size_t o = 0; o < rets.size(); ++o) {
      auto r = rets.get<ffi::AnyBuffer>(o);
      if (!r.has_value()) return r.error();
      const auto& spec = kernel->outputs()[o];
      const auto type = (*r)->element_type();
      const bool ok = spec.indices ? (type == ffi::DataType::S64 || type == ffi::DataType::S32) : type == data;
      if (!ok || int64_t((*r)->size_bytes()) != n_rows * spec.cols * (spec.indices ? 8 : ffi::ByteWidth(data)))
        return ffi::Error::InvalidArgument("pykeops: output " + std::to_string(o) + " has the wrong dtype or shape");
      L.outs.push_back(reinterpret_cast<uintptr_t>((*r)->untyped_data()));
    }
    if (n_rows > 0) kernel->run(L);
    return ffi::Error::Success();
  } catch (const std::exception& e) {
    return ffi::Error::InvalidArgument(std::string("pykeops: ") + e.what());
  }
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(keops_jax_genred, run_genred,
                              ffi::Ffi::Bind().Attr<int64_t>("kernel").RemainingArgs().RemainingRets());

void define_jax_ffi(py::module_& m) {
  m.def("jax_ffi_handler", [] { return py::capsule(reinterpret_cast<void*>(&keops_jax_genred)); },
        "The XLA FFI handler (a PyCapsule) that runs CPU kernels as custom calls of jitted JAX code.");
  m.def("jax_kernel_handle", [](std::shared_ptr<CpuKernel> kernel) {
        const auto handle = static_cast<int64_t>(reinterpret_cast<uintptr_t>(kernel.get()));
        std::lock_guard<std::mutex> lock(registry_mutex);
        registry.emplace(handle, std::move(kernel));
        return handle;
      },
      py::arg("kernel"), "The handle a custom call names this kernel by; the kernel is kept alive from then on.");
}
