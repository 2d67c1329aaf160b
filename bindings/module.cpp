// The native module pykeops._engine: exception translation and one define_<area>() per file.
#include <pybind11/pybind11.h>

#include "../core/errors.h"
#include "bindings.h"

namespace py = pybind11;

PYBIND11_MODULE(_engine, m) {
  m.doc() = "C++ engine of pykeops: formula parser, simplifier, LLVM JIT and kernel cache.";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const keops::UserError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const keops::NotSupported& e) {
      PyErr_SetString(PyExc_NotImplementedError, e.what());
    } catch (const keops::InternalError& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
  });
  define_formulas(m);
  define_kernels(m);
  define_gpu(m);
#ifdef KEOPS_JAX_FFI
  define_jax_ffi(m);
#endif
}
