// The request layer shared by the backends (option checks) and the ranges-per-batch check of launch_plan.
#include <filesystem>
#include <string_view>

#include <unistd.h>

#include "catch.hpp"
#include "core/errors.h"
#include "jit/disk_cache.h"
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
  const std::string key = program_key("k", "o", prepare_request(a, "CPU", kCpu).first);
  CHECK(key == program_key("k", "o", prepare_request(b, "CPU", kCpu).first));
  CHECK(key.rfind("k " + std::string(kSourceHash) + "\no\n", 0) == 0);
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

TEST_CASE("cached_binary: built once, then read from the folder; no folder, no files") {
  const std::string old = cache_folder();
  auto tmp = std::filesystem::temp_directory_path() / ("keops_layer_" + std::to_string(::getpid()));
  std::filesystem::remove_all(tmp);
  set_cache_folder((tmp / "sub").string());  // created on first write
  int builds = 0;
  auto build = [&] { return std::pair<std::string, std::string>{"binary " + std::to_string(++builds), "info line"}; };
  CachedBinary a = cached_binary("key 1", ".bin", ".meta", build);
  CHECK((a.data == "binary 1" && a.info == "info line" && !a.from_disk));
  CachedBinary b = cached_binary("key 1", ".bin", ".meta", build);
  CHECK((b.data == "binary 1" && b.info == "info line" && b.from_disk));
  CHECK(cached_binary("key 2", ".bin", ".meta", build).data == "binary 2");
  CHECK(std::filesystem::exists(tmp / "sub" / (key_digest("key 1") + ".bin")));
  set_cache_folder("");
  CHECK(!cached_binary("key 1", ".bin", ".meta", build).from_disk);
  CHECK(builds == 3);
  std::filesystem::remove_all(tmp);
  set_cache_folder(old);
}
