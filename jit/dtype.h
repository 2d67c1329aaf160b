// Element types the kernels handle.
#pragma once
#include <string>
#include <string_view>

namespace keops {

enum class Dtype { F32, F64 };

inline int dtype_size(Dtype d) { return d == Dtype::F32 ? 4 : 8; }
inline std::string_view dtype_name(Dtype d) { return d == Dtype::F32 ? "float32" : "float64"; }

}  // namespace keops
