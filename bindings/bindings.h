// Declarations of the binding areas of pykeops._engine.
#pragma once
#include <pybind11/pybind11.h>

void define_formulas(pybind11::module_& m);
void define_kernels(pybind11::module_& m);
void define_gpu(pybind11::module_& m);

#include <pybind11/stl.h>

#include <exception>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "../jit/disk_cache.h"
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

// The read-only description of a compiled kernel (CPU Kernel or GpuKernel): its arguments and outputs.
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
