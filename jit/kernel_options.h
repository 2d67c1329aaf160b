// Compile-time options of a kernel: data type, accumulator type and summation scheme.
#pragma once
#include <string>
#include <string_view>

#include "../core/program.h"
#include "../core/reduction.h"

namespace keops {

enum class Dtype { F32, F64 };

inline int dtype_size(Dtype d) { return d == Dtype::F32 ? 4 : 8; }
inline std::string_view dtype_name(Dtype d) { return d == Dtype::F32 ? "float32" : "float64"; }

struct KernelOptions {
  Dtype dtype = Dtype::F32;
  Dtype acc = Dtype::F32;          // accumulator type of Sum and Max_SumShiftExpWeight
  SumScheme scheme = SumScheme::Block;
  std::string text() const {
    return std::string(dtype_name(dtype)) + "/" + std::string(dtype_name(acc)) + "/" +
           (scheme == SumScheme::Direct ? "direct" : scheme == SumScheme::Block ? "block" : "kahan");
  }
};

}  // namespace keops
