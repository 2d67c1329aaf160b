// The request layer shared by the backends (option checks) and the ranges-per-batch check of launch_plan.
#include <string_view>

#include "catch.hpp"
#include "core/errors.h"
#include "jit/kernel_cache.h"
#include "jit/launch_plan.h"

using namespace keops;

namespace {
constexpr std::string_view kCpu[] = {"float32", "float64"};
constexpr std::string_view kGpu[] = {"float16", "float32", "float64"};
const std::vector<std::string> kX = {"x = Vi(1)"};
}  // namespace

TEST_CASE("prepare_request: dtypes checked against the backend's, accumulators defaulted and checked") {
  auto [p, o] = prepare_request({"Sum_Reduction(x, 0)", kX, "float64"}, "CPU", kCpu);
  CHECK(p.reduction_name == "Sum_Reduction");
  CHECK(o.dtype == "float64");
  CHECK(o.acc == "float64");
  CHECK(prepare_request({"Sum_Reduction(x, 0)", kX, "float16"}, "GPU", kGpu).second.acc == "float32");
  CHECK(prepare_request({"Sum_Reduction(x, 0)", kX, "float16", "float16"}, "GPU", kGpu).second.acc == "float16");
  try {
    prepare_request({"Sum_Reduction(x, 0)", kX, "float16"}, "CPU", kCpu);
    FAIL("float16 on the CPU");
  } catch (const NotSupported& e) {
    CHECK(std::string(e.what()) == "float16 is not supported by the CPU backend (use float32 or float64)");
  }
  try {
    prepare_request({"Sum_Reduction(x, 0)", kX, "int32"}, "GPU", kGpu);
    FAIL("int32");
  } catch (const UserError& e) {
    CHECK(std::string(e.what()) == "unsupported dtype 'int32' (expected float16, float32 or float64)");
  }
  CHECK_THROWS_AS(prepare_request({"Sum_Reduction(x, 0)", kX, "float32", "float16"}, "GPU", kGpu), UserError);
  CHECK_THROWS_AS(prepare_request({"Min_Reduction(x, 0)", kX, "float32", "float64"}, "CPU", kCpu), UserError);
  CHECK_THROWS_AS(prepare_request({"Sum_Reduction(x, 0)", kX, "float32", "auto", "pairwise"}, "CPU", kCpu), UserError);
}

TEST_CASE("request and program keys: exact spelling vs canonical program") {
  const KernelRequest a{"Sum_Reduction(x, 0)", kX}, b{"Sum_Reduction(Var(0,1,0),0)", {}};
  CHECK(request_key(a) != request_key(b));
  CHECK(program_key("k", prepare_request(a, "CPU", kCpu).first) == program_key("k", prepare_request(b, "CPU", kCpu).first));
}

TEST_CASE("range_sets: one pattern, or one per batch") {
  Launch L;
  CHECK(range_sets(L, 4) == 1);  // no ranges
  L.ranges.assign(6, 0);
  CHECK(range_sets(L, 4) == 1);
  L.range_sets = 4;
  CHECK(range_sets(L, 4) == 4);
  L.range_sets = 3;
  CHECK_THROWS_WITH(range_sets(L, 4), "ranges: expected one block-sparse pattern, or one per batch (4), got 3");
}
