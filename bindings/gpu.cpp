// Bindings for the GPU backend: status probe, GpuKernel (metadata, run on a stream), NVRTC compile checks and the
// plain device-memory helpers used for host arrays when torch is absent.
#include <pybind11/stl.h>

#include "../core/errors.h"
#include "../jit/cpu/llvm_backend.h"
#include "../jit/gpu/cuda_api.h"
#include "../jit/gpu/gpu_kernel.h"
#include "bindings.h"

namespace py = pybind11;
using keops::gpu::GpuKernel;

namespace {

int parse_arch(const py::object& arch) {
  if (py::isinstance<py::int_>(arch)) return arch.cast<int>();
  std::string s = arch.cast<std::string>();
  for (const char* prefix : {"sm_", "compute_"})
    if (s.rfind(prefix, 0) == 0) s = s.substr(std::string(prefix).size());
  try {
    return std::stoi(s);
  } catch (...) {
    throw keops::UserError("arch must be an int such as 80 or a string such as 'sm_80', got '" + arch.cast<std::string>() + "'");
  }
}

keops::gpu::Scheme parse_scheme(const std::string& s) {
  if (s == "auto") return keops::gpu::Scheme::Auto;
  if (s == "1D") return keops::gpu::Scheme::OneD;
  if (s == "2D") return keops::gpu::Scheme::TwoD;
  throw keops::UserError("scheme must be 'auto', '1D' or '2D', got '" + s + "'");
}

py::dict layout_dict(const keops::gpu::KernelLayout& L) {
  py::dict d;
  d["name"] = L.name;
  d["block"] = L.block;
  d["chunked"] = L.chunked;
  d["groups"] = L.groups;
  d["segments"] = L.segments;
  d["carries"] = L.carries;
  d["shared_bytes"] = L.shared_bytes;
  d["state_stride"] = L.state_stride;
  return d;
}

py::dict compile_dict(const keops::gpu::CompileResult& r) {
  py::dict d;
  d["arch"] = r.arch;
  d["cubin"] = r.cubin;
  d["binary_size"] = r.binary.size();
  d["log"] = r.log;
  d["seconds"] = r.seconds;
  py::dict kernels;
  for (const auto& [name, k] : r.resources) {
    py::dict e;
    e["registers"] = k.registers;
    e["stack_bytes"] = k.stack_bytes;
    e["spill_stores"] = k.spill_stores;
    e["spill_loads"] = k.spill_loads;
    e["shared_bytes"] = k.shared_bytes;
    kernels[py::str(name)] = e;
  }
  d["kernels"] = kernels;
  return d;
}

keops::gpu::GpuRequest request(const std::string& formula, const std::vector<std::string>& aliases, const std::string& dtype,
                               const std::string& dtype_acc, const std::string& sum_scheme, bool fast_math, bool chunks,
                               int block) {
  return {{formula, aliases, dtype, dtype_acc, sum_scheme}, fast_math, chunks, block};
}

}  // namespace

void define_gpu(py::module_& m) {
  m.def("gpu_status", [] {
    auto s = keops::gpu::status();
    py::dict d;
    d["available"] = s.available();
    d["reason"] = s.reason();
    d["driver"] = s.driver;
    d["driver_reason"] = s.driver_reason;
    d["driver_version"] = s.driver_version;
    d["devices"] = s.devices;
    d["nvrtc"] = s.nvrtc;
    d["nvrtc_reason"] = s.nvrtc_reason;
    d["nvrtc_path"] = s.nvrtc_path;
    d["nvrtc_version"] = s.nvrtc_version;
    return d;
  }, "Whether the GPU backend can run (libcuda, cuInit, a device, libnvrtc) and, if not, what is missing.");
  m.def("cpu_backend_available", [] { return keops::cpu::host_signature() != "no-cpu-backend"; },
        "False in builds without the LLVM CPU backend (KEOPS_CPU_BACKEND=OFF).");
  m.def("gpu_set_library_dirs", &keops::gpu::set_library_dirs, py::arg("dirs"),
        "Extra folders searched for libnvrtc (the Python package passes the nvidia-cuda-nvrtc wheel's).");
  m.def("gpu_device_info", [](int ordinal) {
    const auto& i = keops::gpu::device_info(ordinal);
    py::dict d;
    d["name"] = i.name;
    d["sm"] = i.sm;
    d["multiprocessors"] = i.multiprocessors;
    d["max_threads"] = i.max_threads;
    d["max_shared"] = i.max_shared;
    d["memory_pools"] = i.memory_pools;
    return d;
  }, py::arg("device"));

  py::class_<GpuKernel, std::shared_ptr<GpuKernel>> gpu_kernel(m, "GpuKernel");
  def_kernel_properties<GpuKernel>(gpu_kernel);
  gpu_kernel
      .def_property_readonly("source", [](const GpuKernel& k) { return k.source().full(); })
      .def_property_readonly("layout", [](const GpuKernel& k) { return layout_dict(k.layout()); })
      .def("compile", [](const GpuKernel& k, const py::object& arch) {
        int sm = parse_arch(arch);
        size_t size;
        {
          py::gil_scoped_release release;
          size = k.binary(sm).binary.size();
        }
        emit_engine_warnings();
        return size;
      }, py::arg("arch"), "Compiles (or loads from the cache) for an architecture; returns the binary's size.");
  // Device addresses of C-contiguous arrays on `device`; ranges are host int64 arrays.
  def_run<GpuKernel, int, uintptr_t, std::string>(gpu_kernel, [](const GpuKernel& k, const keops::Launch& launch, int device,
                                                              uintptr_t stream, const std::string& scheme) {
    const auto s = parse_scheme(scheme);
    keops::gpu::LaunchReport r;
    {
      py::gil_scoped_release release;
      r = k.run(launch, device, stream, s);
    }
    emit_engine_warnings();
    py::dict d;
    d["scheme"] = r.scheme;
    d["blocks"] = r.blocks;
    d["splits"] = r.splits;
    d["scratch_bytes"] = r.scratch_bytes;
    return d;
  }, py::arg("device") = 0, py::arg("stream") = 0, py::arg("scheme") = "auto",
     "Runs the kernels on device addresses, on `stream` of `device`; returns the scheme used.");

  m.def("get_gpu_kernel", [](const std::string& formula, const std::vector<std::string>& aliases, const std::string& dtype,
                             const std::string& dtype_acc, const std::string& sum_scheme, bool use_fast_math,
                             bool enable_chunks, int block) {
        auto r = request(formula, aliases, dtype, dtype_acc, sum_scheme, use_fast_math, enable_chunks, block);
        py::gil_scoped_release release;
        return std::const_pointer_cast<GpuKernel>(keops::gpu::get_gpu_kernel(r));
      },
      py::arg("formula"), py::arg("aliases"), py::arg("dtype"), py::arg("dtype_acc") = "auto",
      py::arg("sum_scheme") = "auto", py::arg("use_fast_math") = true, py::arg("enable_chunks") = true,
      py::arg("block") = 0, "The GPU kernel of a reduction (generated CUDA source; compiled per architecture on first run).");

  m.def("gpu_compile_check", [](const py::object& formulas, const std::vector<std::string>& aliases, const std::string& dtype,
                                const py::object& arch, const std::string& dtype_acc, const std::string& sum_scheme,
                                bool use_fast_math, bool enable_chunks, bool verbose, bool cubin) {
        std::vector<std::string> fs;
        if (py::isinstance<py::str>(formulas)) fs.push_back(formulas.cast<std::string>());
        else fs = formulas.cast<std::vector<std::string>>();
        std::vector<keops::gpu::GpuRequest> reqs;
        for (const std::string& f : fs)
          reqs.push_back(request(f, aliases, dtype, dtype_acc, sum_scheme, use_fast_math, enable_chunks, 0));
        int sm = parse_arch(arch);
        keops::gpu::CompileCheck c;
        {
          py::gil_scoped_release release;
          c = keops::gpu::compile_check(reqs, sm, verbose, !cubin);
        }
        py::dict d = compile_dict(c.result);
        py::list programs;
        for (auto& k : c.kernels) {
          py::dict e = layout_dict(k->layout());
          e["formula"] = k->program().canonical;
          programs.append(e);
        }
        d["programs"] = programs;
        return d;
      },
      py::arg("formulas"), py::arg("aliases"), py::arg("dtype") = "float32", py::arg("arch") = 80,
      py::arg("dtype_acc") = "auto", py::arg("sum_scheme") = "auto", py::arg("use_fast_math") = true,
      py::arg("enable_chunks") = true, py::arg("verbose") = true, py::arg("cubin") = true,
      "Generates the CUDA source of one or several reductions and compiles it with NVRTC for `arch` (no GPU needed): "
      "the log, binary size and per-kernel registers/spills (ptxas -v). cubin=False stops at PTX (quicker).");
  m.def("gpu_source", [](const std::string& formula, const std::vector<std::string>& aliases, const std::string& dtype,
                         const std::string& dtype_acc, const std::string& sum_scheme, bool use_fast_math, bool enable_chunks) {
        return keops::gpu::get_gpu_kernel(request(formula, aliases, dtype, dtype_acc, sum_scheme, use_fast_math, enable_chunks, 0))
            ->source()
            .full();
      },
      py::arg("formula"), py::arg("aliases"), py::arg("dtype") = "float32", py::arg("dtype_acc") = "auto",
      py::arg("sum_scheme") = "auto", py::arg("use_fast_math") = true, py::arg("enable_chunks") = true,
      "The generated CUDA source, for inspection.");
  m.def("gpu_cache_stats", [] { return stats_dict(keops::gpu::gpu_cache_stats()); });
  m.def("gpu_clear_memory_cache", &keops::gpu::clear_gpu_memory_cache);
  m.def("gpu_alloc", &keops::gpu::device_alloc, py::arg("device"), py::arg("nbytes"));
  m.def("gpu_free", &keops::gpu::device_free, py::arg("device"), py::arg("ptr"));
  m.def("gpu_upload", [](int device, uint64_t dst, uintptr_t src, size_t nbytes) {
    keops::gpu::copy_to_device(device, dst, reinterpret_cast<const void*>(src), nbytes);
  }, py::arg("device"), py::arg("dst"), py::arg("src"), py::arg("nbytes"));
  m.def("gpu_download", [](int device, uintptr_t dst, uint64_t src, size_t nbytes) {
    keops::gpu::copy_to_host(device, reinterpret_cast<void*>(dst), src, nbytes);
  }, py::arg("device"), py::arg("dst"), py::arg("src"), py::arg("nbytes"));
  m.def("gpu_synchronize", &keops::gpu::synchronize, py::arg("device"), py::arg("stream") = 0);
}
