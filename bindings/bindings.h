// Declarations of the binding areas of pykeops._engine.
#pragma once
#include <pybind11/pybind11.h>

void define_formulas(pybind11::module_& m);
void define_kernels(pybind11::module_& m);
void define_gpu(pybind11::module_& m);
void define_jax_ffi(pybind11::module_& m);  // built with jaxlib's FFI headers (KEOPS_JAX_FFI)

#include <pybind11/stl.h>

#include <exception>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "../jit/disk_cache.h"
#include "../jit/kernel_cache.h"
#include "../jit/launch.h"
#include "../jit/thread_pool.h"

// Turns the engine's warnings raised on this thread (damaged disk-cache entries) into Python RuntimeWarnings.
inline void emit_engine_warnings() {
  for (const std::string& w : keops::take_warnings())
    if (PyErr_WarnEx(PyExc_RuntimeWarning, w.c_str(), 1) != 0) throw pybind11::error_already_set();
}

// Runs f(interrupted) without the GIL; interrupted() takes it back briefly to run Python's signal handlers, so that
// Ctrl-C stops the engine and raises KeyboardInterrupt (or what the handler raised) once its workers have stopped.
template <class F>
auto run_interruptible(F&& f) {
  std::exception_ptr raised;
  std::function<bool()> interrupted = [&raised] {
    pybind11::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() == 0) return false;
    raised = std::make_exception_ptr(pybind11::error_already_set());
    return true;
  };
  try {
    pybind11::gil_scoped_release release;
    return f(interrupted);
  } catch (const keops::Interrupted&) {
    if (raised) std::rethrow_exception(raised);
    throw;
  }
}

// The read-only description of a compiled kernel (CpuKernel or GpuKernel): its arguments and outputs.
template <class K, class Cls>
void def_kernel_properties(Cls& cls) {
  cls.def_property_readonly("nargs", [](const K& k) { return k.program().args.size(); })
      .def_property_readonly("arg_dims", [](const K& k) {
        std::vector<int> v;
        for (auto& a : k.program().args) v.push_back(a.dim);
        return v;
      })
      .def_property_readonly("arg_cats", [](const K& k) {
        std::vector<int> v;
        for (auto& a : k.program().args) v.push_back(a.cat);
        return v;
      })
      .def_property_readonly("dim_out", [](const K& k) { return k.program().dim_out; })
      .def_property_readonly("tag", [](const K& k) { return k.program().tag; })
      .def_property_readonly("formula", [](const K& k) { return k.program().canonical; })
      .def_property_readonly("num_instructions", [](const K& k) { return k.program().code.size(); })
      .def_property_readonly("reduction", [](const K& k) { return k.program().reduction_name; })
      .def_property_readonly("outputs", [](const K& k) {
        std::vector<std::pair<std::string, int>> v;
        for (auto& o : k.outputs()) v.emplace_back(o.indices ? "indices" : "values", o.cols);
        return v;
      }, "Output arrays as (kind, columns): kind 'values' (the data type) or 'indices' (int64).");
}

// The Launch of a run() call: data addresses as Python passes them (one output: an int or a list).
inline keops::Launch make_launch(std::vector<uintptr_t> ptrs, int64_t nx, int64_t ny, const pybind11::object& outs,
                                 std::vector<int64_t> batch, std::vector<std::vector<int64_t>> arg_batch,
                                 std::vector<uintptr_t> ranges, std::vector<int64_t> range_counts, int64_t range_sets) {
  keops::Launch L{std::move(ptrs), nx, ny, {}, std::move(batch), std::move(arg_batch), std::move(ranges),
                  std::move(range_counts), range_sets};
  if (pybind11::isinstance<pybind11::int_>(outs)) L.outs = {outs.cast<uintptr_t>()};
  else L.outs = outs.cast<std::vector<uintptr_t>>();
  return L;
}

// Defines `run` on a kernel class K: f(kernel, Launch, rest...) takes the launch arguments of make_launch, then
// the backend's own arguments of types Rest (named in `extra` by py::arg, then the docstring).
template <class K, class... Rest, class Cls, class F, class... Extra>
void def_run(Cls& cls, F f, Extra&&... extra) {
  namespace py = pybind11;
  cls.def("run", [f](const K& k, std::vector<uintptr_t> ptrs, int64_t nx, int64_t ny, py::object outs,
                                          std::vector<int64_t> batch, std::vector<std::vector<int64_t>> arg_batch,
                                          std::vector<uintptr_t> ranges, std::vector<int64_t> range_counts,
                                          int64_t range_sets, Rest... rest) {
        return f(k, make_launch(std::move(ptrs), nx, ny, outs, std::move(batch), std::move(arg_batch), std::move(ranges),
                                std::move(range_counts), range_sets), rest...);
      }, py::arg("ptrs"), py::arg("nx"), py::arg("ny"), py::arg("outs"), py::arg("batch") = std::vector<int64_t>{},
      py::arg("arg_batch") = std::vector<std::vector<int64_t>>{}, py::arg("ranges") = std::vector<uintptr_t>{},
      py::arg("range_counts") = std::vector<int64_t>{}, py::arg("range_sets") = 1, std::forward<Extra>(extra)...);
}

inline pybind11::dict stats_dict(const keops::CacheStats& s) {
  pybind11::dict d;
  d["requests"] = s.requests;
  d["memory_hits"] = s.memory_hits;
  d["disk_hits"] = s.disk_hits;
  d["compiled"] = s.compiled;
  d["memory_entries"] = s.memory_entries;
  return d;
}
