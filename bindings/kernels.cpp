// Bindings for CPU kernels: get_kernel() from the cache, metadata, and run() on raw buffer addresses.
#include <pybind11/stl.h>

#include "../jit/cpu/cpu_kernel.h"
#include "../jit/thread_pool.h"
#include "bindings.h"

namespace py = pybind11;
using keops::CpuKernel;

void define_kernels(py::module_& m) {
  py::class_<CpuKernel, std::shared_ptr<CpuKernel>> kernel(m, "Kernel");
  def_kernel_properties<CpuKernel>(kernel);
  // The only array conversion: Python passes data addresses of arrays it has validated and keeps alive.
  def_run<CpuKernel>(kernel, [](const CpuKernel& k, keops::Launch launch) {
    run_interruptible([&](const std::function<bool()>& interrupted) {
      launch.interrupted = interrupted;
      k.run(launch);
    });
  }, "Runs the kernel on data addresses; see the Launch structure in jit/launch.h for the layout.");

  m.def("get_kernel", [](const std::string& formula, const std::vector<std::string>& aliases, const std::string& dtype,
                         const std::string& dtype_acc, const std::string& sum_scheme) {
        keops::KernelRequest r{formula, aliases, dtype, dtype_acc, sum_scheme};
        std::shared_ptr<const CpuKernel> k;
        {
          py::gil_scoped_release release;
          k = keops::get_cpu_kernel(r);
        }
        emit_engine_warnings();
        return std::const_pointer_cast<CpuKernel>(k);
      },
      py::arg("formula"), py::arg("aliases"), py::arg("dtype"), py::arg("dtype_acc") = "auto",
      py::arg("sum_scheme") = "auto");
  m.def("kernel_ir", [](const std::string& formula, const std::vector<std::string>& aliases, const std::string& dtype,
                        const std::string& dtype_acc, const std::string& sum_scheme) {
        return keops::kernel_ir({formula, aliases, dtype, dtype_acc, sum_scheme});
      },
      py::arg("formula"), py::arg("aliases"), py::arg("dtype"), py::arg("dtype_acc") = "auto",
      py::arg("sum_scheme") = "auto", "Optimised LLVM IR of the CPU kernel, for inspection.");
  // One call for the addresses of a launch's host arrays (NumPy's __array_interface__ costs ~1 us per array).
  m.def("data_ptrs", [](const py::list& arrays) {
        std::vector<uintptr_t> ptrs;
        ptrs.reserve(arrays.size());
        for (const py::handle a : arrays) {
          Py_buffer view;
          if (PyObject_GetBuffer(a.ptr(), &view, PyBUF_ANY_CONTIGUOUS) != 0) throw py::error_already_set();
          ptrs.push_back(reinterpret_cast<uintptr_t>(view.buf));
          PyBuffer_Release(&view);
        }
        return ptrs;
      },
      py::arg("arrays"), "Data addresses of contiguous arrays that support the buffer protocol (NumPy).");
  m.def("compile_phases", [](const std::string& formula, const std::vector<std::string>& aliases, const std::string& dtype) {
        py::gil_scoped_release release;
        return keops::kernel_phases({formula, aliases, dtype});
      },
      py::arg("formula"), py::arg("aliases"), py::arg("dtype") = "float32",
      "[(phase, seconds)] of building the CPU kernel from scratch: parse, lower, reroll, llvm_ir, llvm_opt, codegen, link.");
  m.def("set_num_threads", &keops::set_num_threads, py::arg("n"));
  m.def("get_num_threads", &keops::num_threads);
  m.def("set_chunk_bytes", &keops::set_chunk_bytes, py::arg("n"),
        "Inner-variable bytes per cache chunk of j on the CPU (n <= 0: the default); for tests and tuning.");
  m.def("chunk_bytes", &keops::chunk_bytes);
  m.def("cache_folder", &keops::cache_folder);
  m.def("set_cache_folder", &keops::set_cache_folder, py::arg("path"));
  m.def("clear_memory_cache", &keops::clear_memory_cache);
  m.def("linked_objects", &keops::cpu::linked_objects,
        "Number of CPU kernels' objects linked in the process (code of evicted, unused kernels is unlinked).");
  m.def("cache_stats", [] { return stats_dict(keops::cache_stats()); });
  m.def("last_lookup", [] { return std::string(keops::last_lookup); },
        "How this thread's last kernel lookup was served: 'memory', 'disk', 'compiled' or 'generated' (GPU source).");
}
