// Declarations of the binding areas of pykeops._engine.
#pragma once
#include <pybind11/pybind11.h>

void define_formulas(pybind11::module_& m);
void define_kernels(pybind11::module_& m);
void define_gpu(pybind11::module_& m);
