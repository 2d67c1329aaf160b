// Bindings for kernels: get_kernel() from the cache, metadata, and run() on raw buffer addresses.
#include <pybind11/stl.h>

#include "../jit/kernel_cache.h"
#include "../jit/thread_pool.h"
#include "bindings.h"

namespace py = pybind11;
using keops::Kernel;

void define_kernels(py::module_& m) {
  py::class_<Kernel, std::shared_ptr<Kernel>> kernel(m, "Kernel");
  def_kernel_properties<Kernel>(kernel);
  kernel
      // The only array conversion: Python passes data addresses of arrays it has validated and keeps alive.
      .def("run", [](const Kernel& k, std::vector<uintptr_t> ptrs, int64_t nx, int64_t ny, py::object outs,
                     std::vector<int64_t> batch, std::vector<std::vector<int64_t>> arg_batch,
                     std::vector<uintptr_t> ranges, std::vector<int64_t> range_counts, int64_t range_sets) {
        keops::Launch launch{std::move(ptrs), nx, ny, {}, std::move(batch), std::move(arg_batch), std::move(ranges),
                             std::move(range_counts), range_sets};
        if (py::isinstance<py::int_>(outs)) launch.outs = {outs.cast<uintptr_t>()};
        else launch.outs = outs.cast<std::vector<uintptr_t>>();
        run_interruptible([&](const std::function<bool()>& interrupted) {
          launch.interrupted = interrupted;
          k.run(launch);
        });
      }, py::arg("ptrs"), py::arg("nx"), py::arg("ny"), py::arg("outs"), py::arg("batch") = std::vector<int64_t>{},
         py::arg("arg_batch") = std::vector<std::vector<int64_t>>{}, py::arg("ranges") = std::vector<uintptr_t>{},
         py::arg("range_counts") = std::vector<int64_t>{}, py::arg("range_sets") = 1,
         "Runs the kernel on data addresses; see the Launch structure in jit/kernel_cache.h for the layout.");

  m.def("get_kernel", [](const std::string& formula, const std::vector<std::string>& aliases, const std::string& dtype,
                         const std::string& dtype_acc, const std::string& sum_scheme) {
        keops::KernelRequest r{formula, aliases, dtype, dtype_acc, sum_scheme};
        std::shared_ptr<const Kernel> k;
        {
          py::gil_scoped_release release;
          k = keops::get_kernel(r);
        }
        emit_engine_warnings();
        return std::const_pointer_cast<Kernel>(k);
      },
      py::arg("formula"), py::arg("aliases"), py::arg("dtype"), py::arg("dtype_acc") = "auto",
      py::arg("sum_scheme") = "auto");
  m.def("kernel_ir", [](const std::string& formula, const std::vector<std::string>& aliases, const std::string& dtype,
                        const std::string& dtype_acc, const std::string& sum_scheme) {
        return keops::kernel_ir({formula, aliases, dtype, dtype_acc, sum_scheme});
      },
      py::arg("formula"), py::arg("aliases"), py::arg("dtype"), py::arg("dtype_acc") = "auto",
      py::arg("sum_scheme") = "auto", "Optimised LLVM IR of the CPU kernel, for inspection.");
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
  m.def("cache_stats", [] {
    auto s = keops::cache_stats();
    py::dict d;
    d["requests"] = s.requests;
    d["memory_hits"] = s.memory_hits;
    d["disk_hits"] = s.disk_hits;
    d["compiled"] = s.compiled;
    return d;
  });
}
