// Bindings for kernels: get_kernel() from the cache, metadata, and run() on raw buffer addresses.
#include <pybind11/stl.h>

#include "../jit/kernel_cache.h"
#include "../jit/thread_pool.h"
#include "bindings.h"

namespace py = pybind11;
using keops::Kernel;

void define_kernels(py::module_& m) {
  py::class_<Kernel, std::shared_ptr<Kernel>>(m, "Kernel")
      .def_property_readonly("nargs", [](const Kernel& k) { return k.program().args.size(); })
      .def_property_readonly("arg_dims", [](const Kernel& k) {
        std::vector<int> v;
        for (auto& a : k.program().args) v.push_back(a.dim);
        return v;
      })
      .def_property_readonly("arg_cats", [](const Kernel& k) {
        std::vector<int> v;
        for (auto& a : k.program().args) v.push_back(a.cat);
        return v;
      })
      .def_property_readonly("dim_out", [](const Kernel& k) { return k.program().dim_out; })
      .def_property_readonly("tag", [](const Kernel& k) { return k.program().tag; })
      .def_property_readonly("formula", [](const Kernel& k) { return k.program().canonical; })
      .def_property_readonly("num_instructions", [](const Kernel& k) { return k.program().code.size(); })
      // The only array conversion: Python passes data addresses of arrays it has validated and keeps alive.
      .def("run", [](const Kernel& k, const std::vector<uintptr_t>& ptrs, int64_t nx, int64_t ny, uintptr_t out) {
        py::gil_scoped_release release;
        k.run(ptrs, nx, ny, out);
      }, py::arg("ptrs"), py::arg("nx"), py::arg("ny"), py::arg("out"));

  m.def("get_kernel", [](const std::string& formula, const std::vector<std::string>& aliases, const std::string& dtype,
                         const std::string& dtype_acc, const std::string& sum_scheme) {
        keops::KernelRequest r{formula, aliases, dtype, dtype_acc, sum_scheme};
        py::gil_scoped_release release;
        return std::const_pointer_cast<Kernel>(keops::get_kernel(r));
      },
      py::arg("formula"), py::arg("aliases"), py::arg("dtype"), py::arg("dtype_acc") = "auto",
      py::arg("sum_scheme") = "auto");
  m.def("set_num_threads", &keops::set_num_threads, py::arg("n"));
  m.def("get_num_threads", &keops::num_threads);
  m.def("cache_folder", &keops::cache_folder);
  m.def("set_cache_folder", &keops::set_cache_folder, py::arg("path"));
  m.def("clear_memory_cache", &keops::clear_memory_cache);
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
