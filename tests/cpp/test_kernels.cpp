// JIT kernels against the reference evaluation of their Program; kernel cache in memory and on disk.
#include <cmath>
#include <filesystem>
#include <random>

#include "catch.hpp"
#include "core/errors.h"
#include "jit/disk_cache.h"
#include "jit/cpu/cpu_kernel.h"
#include "jit/thread_pool.h"
#include "program_eval.h"
#include "reference_reduction.h"

using namespace keops;
using keops::test::RefOut;
using keops::test::reference;

namespace {

template <class T>
void check_kernel(const std::string& formula, const std::vector<std::string>& aliases, int64_t nx, int64_t ny,
                  double rtol) {
  KernelRequest req{formula, aliases, sizeof(T) == 4 ? "float32" : "float64"};
  auto k = get_cpu_kernel(req);
  const Program& p = k->program();
  std::mt19937 gen(42);
  std::uniform_real_distribution<double> u(0.1, 1.5);
  std::vector<std::vector<double>> ref_args;
  std::vector<std::vector<T>> data;
  for (const ArgInfo& a : p.args) {
    int64_t rows = a.cat == 2 ? 1 : a.cat == 0 ? nx : ny;
    std::vector<T> d(rows * a.dim);
    for (T& v : d) v = static_cast<T>(u(gen));
    data.push_back(d);
    ref_args.emplace_back(d.begin(), d.end());
  }
  std::vector<uintptr_t> ptrs;
  for (auto& d : data) ptrs.push_back(reinterpret_cast<uintptr_t>(d.data()));
  int64_t n_out = p.tag == 0 ? nx : ny;
  std::vector<T> out(std::max<int64_t>(1, n_out * p.dim_out), T(-1234));
  k->run({ptrs, nx, ny, {reinterpret_cast<uintptr_t>(out.data())}});
  auto ref = test::eval_sum(p, ref_args, nx, ny);
  double scale = 0;
  for (double r : ref) scale = std::max(scale, std::fabs(r));
  for (size_t q = 0; q < ref.size(); ++q) {
    INFO(formula << " nx=" << nx << " ny=" << ny << " entry " << q);
    CHECK(std::fabs(out[q] - ref[q]) <= rtol * (std::fabs(ref[q]) + 1e-3 * scale));
  }
}

const std::vector<std::string> kFormulas = {
    "Exp(-SqDist(x,y))*b",
    "Exp(-Sum(Square(x-y)))*b + (x|y)",
    "Square(x-y) * Log(b) + Sqrt(x) / Inv(y)",
    "Sin(x) * Cos(y) + Abs(x - y) + Rsqrt(b + x) + Pow(x - y, 3) + Pow(y, -2)",
    "SqNorm2(x) * b - IntCst(3)",
    "Zero(3) + x*y*0",
    "Sign(x-y) + Step(x-y) + ReLU(x-y) + Floor(x*y*IntCst(3)) + Round(x*y, 1)",
    "IfElse(x-y, x, y) + Clamp(x, y, b) + ClampInt(x*IntCst(2), 1, 2) + Mod(x, b, y) + DiffClampInt(x, 0, 1)",
    "ArgMax(x-y) + Max(x) + Min(y) + ArgMin(x*y) + (x < y) + (x >= y) + Equal(x, x) + NotEqual(x, y)",
    "Concat(Elem(x,1), Extract(y,0,2)) + ElemT(b, 3, 2) + ExtractT(Elem(x, 0), 1, 3) + SumT(b, 3)",
    "Asin(Sin(x)) + Acos(Cos(y)) + Atan(x - y) + Atan2(x - b, y - b) + Powf(x, y) + XLogX(x) + SinXDivX(x - y)",
    "MatVecMult(Concat(x, Concat(y, y)), y) + VecMatMult(y, Concat(x, Concat(x, y))) + Norm2(x) + Normalize(x - y)",
    "TensorProd(Elem(x,0), y) + WeightedSqNorm(b, x) + WeightedSqDist(x, x, y) + OneHot(b*IntCst(2), 3) + RatCst(2,3) + IntInv(4)",
};
const std::vector<std::string> kAliases = {"x = Vi(3)", "y = Vj(3)", "b = Vj(1)"};

}  // namespace

TEST_CASE("kernels match the reference, both axes, both dtypes, sizes with and without vector tails") {
  for (const std::string& f : kFormulas)
    for (int tag : {0, 1})
      for (auto [nx, ny] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {7, 33}, {40, 7}, {300, 1001}}) {
        std::string red = "Sum_Reduction(" + f + "," + std::to_string(tag) + ")";
        check_kernel<float>(red, kAliases, nx, ny, 2e-5);
        check_kernel<double>(red, kAliases, nx, ny, 1e-12);
      }
}

TEST_CASE("parameters and i-only formulas") {
  std::vector<std::string> a = {"p = Pm(2)", "x = Vi(2)", "y = Vj(1)"};
  check_kernel<float>("Sum_Reduction(p*x + y, 0)", a, 50, 37, 2e-5);
  check_kernel<double>("Sum_Reduction(Exp(p)*x, 0)", a, 50, 37, 1e-12);  // independent of j: N times the term
  check_kernel<double>("Sum_Reduction(p, 1)", a, 50, 37, 1e-12);
}

TEST_CASE("empty reduced set gives zeros; empty output is a no-op") {
  auto k = get_cpu_kernel({"Sum_Reduction(Exp(x-y), 0)", {"x = Vi(1)", "y = Vj(1)"}, "float64"});
  std::vector<double> x = {1, 2, 3}, out(3, 7.0);
  uintptr_t xp = reinterpret_cast<uintptr_t>(x.data()), op = reinterpret_cast<uintptr_t>(out.data());
  k->run({{xp, 0}, 3, 0, {op}});
  CHECK(out == std::vector<double>{0, 0, 0});
  k->run({{0, xp}, 0, 3, {0}});
  CHECK_THROWS_AS(k->run({{xp}, 3, 3, {op}}), UserError);
  CHECK_THROWS_AS(k->run({{0, xp}, 3, 3, {op}}), UserError);
}

TEST_CASE("NaN and inf propagate like the reference") {
  auto k = get_cpu_kernel({"Sum_Reduction(Exp(x)*y, 0)", {"x = Vi(1)", "y = Vj(1)"}, "float32"});
  std::vector<float> x = {NAN, 1000.f, -1000.f, 0.f}, y(19, 1.f), out(4);
  y[5] = INFINITY;
  k->run({{reinterpret_cast<uintptr_t>(x.data()), reinterpret_cast<uintptr_t>(y.data())}, 4, 19,
          {reinterpret_cast<uintptr_t>(out.data())}});
  CHECK(std::isnan(out[0]));
  CHECK(std::isinf(out[1]));
  CHECK(std::isnan(out[2]));  // 0 * inf
  CHECK(std::isinf(out[3]));
}

TEST_CASE("threads give the same result as one thread") {
  auto k = get_cpu_kernel({"Sum_Reduction(Exp(-SqDist(x,y)), 0)", {"x = Vi(2)", "y = Vj(2)"}, "float64"});
  std::mt19937 gen(1);
  std::normal_distribution<double> n;
  std::vector<double> x(2 * 5000), y(2 * 300), a(5000), b(5000);
  for (auto& v : x) v = n(gen);
  for (auto& v : y) v = n(gen);
  std::vector<uintptr_t> ptrs = {reinterpret_cast<uintptr_t>(x.data()), reinterpret_cast<uintptr_t>(y.data())};
  set_num_threads(1);
  k->run({ptrs, 5000, 300, {reinterpret_cast<uintptr_t>(a.data())}});
  set_num_threads(4);
  k->run({ptrs, 5000, 300, {reinterpret_cast<uintptr_t>(b.data())}});
  set_num_threads(0);
  CHECK(a == b);
}

TEST_CASE("cache: same request, same program in another spelling, and the disk") {
  auto tmp = std::filesystem::temp_directory_path() / ("keops_test_cache_" + std::to_string(::getpid()));
  std::filesystem::remove_all(tmp);
  set_cache_folder(tmp.string());
  KernelRequest a{"Sum_Reduction(Exp(-SqDist(x,y))*b*Cos(x), 0)", kAliases, "float32"};
  KernelRequest b{"Sum_Reduction(Exp(-SqDist(Var(0,3,0),Var(1,3,1)))*Var(2,1,1)*Cos(Var(0,3,0)),0)", {}, "float32"};
  auto before = cache_stats();
  auto k1 = get_cpu_kernel(a);
  CHECK(std::string(last_lookup) == "compiled");
  auto k2 = get_cpu_kernel(a);
  CHECK(std::string(last_lookup) == "memory");
  auto k3 = get_cpu_kernel(b);
  CHECK(std::string(last_lookup) == "memory");
  CHECK(k1 == k2);
  CHECK(k1 == k3);
  auto mid = cache_stats();
  CHECK(mid.compiled == before.compiled + 1);
  CHECK(mid.memory_entries >= 1);
  clear_memory_cache();
  CHECK(cache_stats().memory_entries == 0);
  auto k4 = get_cpu_kernel(a);
  CHECK(std::string(last_lookup) == "disk");
  CHECK(cache_stats().disk_hits == mid.disk_hits + 1);
  CHECK(k4->program().canonical == k1->program().canonical);
  // The stored key (after the entry's size-and-checksum and info lines) starts with the hash of the engine's
  // sources: another code generator never reads this object.
  REQUIRE(std::string(kSourceHash).size() == 64);
  int keys = 0;
  for (const auto& e : std::filesystem::directory_iterator(tmp))
    if (e.path().extension() == ".key") {
      ++keys;
      const std::string meta = read_file(e.path());
      const size_t key_start = meta.find('\n', meta.find('\n') + 1) + 1;
      const std::string prefix = "keops-jit " + std::string(kSourceHash) + "\n";
      CHECK(meta.compare(key_start, prefix.size(), prefix) == 0);
    }
  CHECK(keys == 1);
  check_kernel<float>(a.formula, a.aliases, 20, 20, 2e-5);
  set_cache_folder("");
  std::filesystem::remove_all(tmp);
}

TEST_CASE("bad options and dtypes are named") {
  CHECK_THROWS_AS(get_cpu_kernel({"Sum_Reduction(x, 0)", {"x = Vi(1)"}, "float16"}), NotSupported);
  CHECK_THROWS_AS(get_cpu_kernel({"Sum_Reduction(x, 0)", {"x = Vi(1)"}, "int32"}), UserError);
  CHECK_THROWS_AS(get_cpu_kernel({"Sum_Reduction(x, 0)", {"x = Vi(1)"}, "float64", "float32"}), UserError);
  CHECK_THROWS_AS(get_cpu_kernel({"Min_Reduction(x, 0)", {"x = Vi(1)"}, "float32", "float64"}), UserError);
  CHECK_THROWS_AS(get_cpu_kernel({"Sum_Reduction(x, 0)", {"x = Vi(1)"}, "float32", "auto", "pairwise"}), UserError);
}

namespace {

// Data on a coarse grid so that ties happen; one NaN among the j-variable values.
std::vector<double> grid_data(int64_t n, std::mt19937& gen) {
  std::uniform_int_distribution<int> u(-3, 3);
  std::vector<double> v(n);
  for (double& x : v) x = u(gen) * 0.25;
  return v;
}

template <class T>
// nan_rows: component 0 of every j-variable is NaN (all-NaN rows), component 1 on even rows (mixed rows).
void check_reduction(const std::string& red, const std::vector<std::string>& aliases, int64_t nx, int64_t ny,
                     bool nan_rows = false) {
  auto k = get_cpu_kernel({red, aliases, sizeof(T) == 4 ? "float32" : "float64"});
  const Program& p = k->program();
  std::mt19937 gen(7);
  std::vector<std::vector<double>> ref_args;
  std::vector<std::vector<T>> data;
  for (const ArgInfo& a : p.args) {
    int64_t rows = a.cat == 2 ? 1 : a.cat == 0 ? nx : ny;
    auto d = grid_data(rows * a.dim, gen);
    if (a.cat == 1 && d.size() > 3 && p.reduction != ReductionKind::MaxSumShiftExpWeight) d[2] = NAN;
    for (int64_t r = 0; nan_rows && a.cat == 1 && r < rows; ++r) {
      d[r * a.dim] = NAN;
      if (a.dim > 1 && r % 2 == 0) d[r * a.dim + 1] = NAN;
    }
    ref_args.push_back(d);
    data.emplace_back(d.begin(), d.end());
  }
  std::vector<uintptr_t> ptrs;
  for (auto& d : data) ptrs.push_back(reinterpret_cast<uintptr_t>(d.data()));
  int64_t n_out = p.tag == 0 ? nx : ny;
  std::vector<std::vector<T>> vals;
  std::vector<std::vector<int64_t>> idx;
  std::vector<uintptr_t> outs;
  for (auto& o : k->outputs()) {
    if (o.indices) idx.emplace_back(n_out * o.cols, -7), outs.push_back(reinterpret_cast<uintptr_t>(idx.back().data()));
    else vals.emplace_back(n_out * o.cols, T(-7)), outs.push_back(reinterpret_cast<uintptr_t>(vals.back().data()));
  }
  k->run({ptrs, nx, ny, outs});
  RefOut ref = reference(p, ref_args, nx, ny);
  INFO(red << " " << (sizeof(T) == 4 ? "float32" : "float64") << " nx=" << nx << " ny=" << ny);
  if (!vals.empty()) {
    REQUIRE(vals[0].size() == ref.values.size());
    for (size_t q = 0; q < ref.values.size(); ++q) {
      INFO("value " << q << " got " << vals[0][q] << " expected " << ref.values[q]);
      bool same_inf = std::isinf(ref.values[q]) && vals[0][q] == ref.values[q];
      CHECK((same_inf || std::fabs(vals[0][q] - ref.values[q]) <= 1e-5 * (1 + std::fabs(ref.values[q]))));
    }
  }
  if (!idx.empty()) {
    REQUIRE(idx[0].size() == ref.indices.size());
    for (size_t q = 0; q < ref.indices.size(); ++q) {
      INFO("index " << q);
      CHECK(idx[0][q] == ref.indices[q]);
    }
  }
}

}  // namespace

TEST_CASE("every reduction against the reference: ties to the smallest index, NaN skipped") {
  const std::vector<std::string> a = {"x = Vi(2)", "y = Vj(2)", "b = Vj(1)"};
  for (std::string f : {"SqDist(x,y) * b", "x - y"})
    for (int tag : {0, 1})
      for (auto [nx, ny] : std::vector<std::pair<int64_t, int64_t>>{{5, 40}, {40, 5}, {6, 100}}) {
        std::string t = std::to_string(tag);
        for (std::string r : {"Min", "Max", "ArgMin", "ArgMax", "Min_ArgMin", "Max_ArgMax"}) {
          check_reduction<double>(r + "_Reduction(" + f + "," + t + ")", a, nx, ny);
          check_reduction<float>(r + "_Reduction(" + f + "," + t + ")", a, nx, ny);
        }
        for (std::string r : {"KMin", "ArgKMin", "KMin_ArgKMin"}) {
          check_reduction<double>(r + "_Reduction(" + f + ",3," + t + ")", a, nx, ny);
          check_reduction<float>(r + "_Reduction(" + f + ",4," + t + ")", a, nx, ny);
        }
      }
}

TEST_CASE("all-NaN rows: indices of the first elements (NaN ranks last), values +-inf") {
  const std::vector<std::string> a = {"x = Vi(2)", "y = Vj(2)", "b = Vj(1)"};
  for (std::string f : {"x - y", "SqDist(x,y) * b"})
    for (int tag : {0, 1})
      for (auto [nx, ny] : std::vector<std::pair<int64_t, int64_t>>{{5, 40}, {3, 3}, {6, 100}}) {
        std::string t = std::to_string(tag);
        for (std::string r : {"Min", "Max", "ArgMin", "ArgMax", "Min_ArgMin", "Max_ArgMax"}) {
          check_reduction<double>(r + "_Reduction(" + f + "," + t + ")", a, nx, ny, true);
          check_reduction<float>(r + "_Reduction(" + f + "," + t + ")", a, nx, ny, true);
        }
        for (std::string r : {"KMin", "ArgKMin", "KMin_ArgKMin"}) {
          check_reduction<double>(r + "_Reduction(" + f + ",3," + t + ")", a, nx, ny, true);
          check_reduction<float>(r + "_Reduction(" + f + ",1," + t + ")", a, nx, ny, true);
        }
      }
}

TEST_CASE("log-sum-exp reduction (raw [m, s]) with and without weights, huge and tiny terms") {
  const std::vector<std::string> a = {"x = Vi(1)", "y = Vj(1)", "b = Vj(2)"};
  for (int tag : {0, 1}) {
    std::string t = std::to_string(tag);
    check_reduction<double>("Max_SumShiftExpWeight_Reduction(x*y, " + t + ")", a, 13, 37);
    check_reduction<float>("Max_SumShiftExpWeight_Reduction(x*y*IntCst(10000), " + t + ", b)", a, 13, 37);
    check_reduction<double>("Max_SumShiftExpWeight_Reduction(-x*y*IntCst(10000), " + t + ", b)", a, 13, 37);
  }
}

TEST_CASE("sum schemes and float64 accumulation agree with the reference") {
  for (std::string scheme : {"direct_sum", "block_sum", "kahan_scheme"})
    for (std::string acc : {"auto", "float64"}) {
      KernelRequest r{"Sum_Reduction(Exp(-SqDist(x,y))*b, 0)", kAliases, "float32", acc, scheme};
      auto k = get_cpu_kernel(r);
      std::mt19937 gen(3);
      std::uniform_real_distribution<float> u(0, 1);
      const int64_t nx = 9, ny = 5003;
      std::vector<float> x(nx * 3), y(ny * 3), b(ny), out(nx);
      for (auto* v : {&x, &y, &b})
        for (float& e : *v) e = u(gen);
      k->run({{reinterpret_cast<uintptr_t>(x.data()), reinterpret_cast<uintptr_t>(y.data()), reinterpret_cast<uintptr_t>(b.data())},
              nx, ny, {reinterpret_cast<uintptr_t>(out.data())}});
      for (int64_t i = 0; i < nx; ++i) {
        double s = 0;
        for (int64_t j = 0; j < ny; ++j) {
          double d2 = 0;
          for (int c = 0; c < 3; ++c) d2 += std::pow(double(x[i * 3 + c]) - y[j * 3 + c], 2);
          s += std::exp(-d2) * b[j];
        }
        INFO(scheme << " " << acc);
        CHECK(std::fabs(out[i] - s) <= 2e-6 * s);
      }
    }
}

TEST_CASE("K larger than the reduced size, arg-reductions over nothing") {
  auto k = get_cpu_kernel({"ArgKMin_Reduction(x - y, 5, 0)", {"x = Vi(1)", "y = Vj(1)"}, "float64"});
  std::vector<double> x(3), y(4);
  std::vector<int64_t> out(15);
  CHECK_THROWS_WITH(k->run({{reinterpret_cast<uintptr_t>(x.data()), reinterpret_cast<uintptr_t>(y.data())}, 3, 4,
                            {reinterpret_cast<uintptr_t>(out.data())}}),
                    "ArgKMin_Reduction: K = 5 is larger than the number of reduced elements (4)");
  auto a = get_cpu_kernel({"ArgMin_Reduction(x - y, 0)", {"x = Vi(1)", "y = Vj(1)"}, "float64"});
  CHECK_THROWS_AS(a->run({{reinterpret_cast<uintptr_t>(x.data()), 0}, 3, 0, {reinterpret_cast<uintptr_t>(out.data())}}), UserError);
}

TEST_CASE("block-sparse ranges and batch dimensions") {
  // Output rows i in [0,3) reduce over j in [2,5) and [7,9); rows [5,8) over [0,1); rows 3, 4 and 8, 9 over nothing.
  auto k = get_cpu_kernel({"Sum_Reduction(x*y, 0)", {"x = Vi(1)", "y = Vj(1)"}, "float64"});
  std::vector<double> x(10), y(10), out(10, -1);
  for (int q = 0; q < 10; ++q) x[q] = q + 1, y[q] = 1 << q;
  std::vector<int64_t> ranges_i = {0, 3, 5, 8}, slices_i = {2, 3}, red_j = {2, 5, 7, 9, 0, 1};
  std::vector<int64_t> ranges_j = {0, 10}, slices_j = {1}, red_i = {0, 10};
  auto addr = [](auto& v) { return reinterpret_cast<uintptr_t>(v.data()); };
  Launch L{{addr(x), addr(y)}, 10, 10, {addr(out)}};
  L.ranges = {addr(ranges_i), addr(slices_i), addr(red_j), addr(ranges_j), addr(slices_j), addr(red_i)};
  L.range_counts = {2, 3, 1, 1};
  k->run(L);
  double s1 = 4 + 8 + 16 + 128 + 256, s2 = 1;
  std::vector<double> expect = {s1, 2 * s1, 3 * s1, 0, 0, 6 * s2, 7 * s2, 8 * s2, 0, 0};
  CHECK(out == expect);
  red_j[1] = 11;  // out of bounds
  CHECK_THROWS_WITH(k->run(L), Catch::Contains("redranges_j[0] = [2, 11) is not a valid range"));
  red_j[1] = 5;
  slices_i = {2, 1};
  CHECK_THROWS_WITH(k->run(L), Catch::Contains("slices_i must be non-decreasing"));

  // Batch (2, 3): x has batch shape (2, 1), y (1, 3); a loop over batches is the reference.
  auto kb = get_cpu_kernel({"Sum_Reduction(x*y + p, 1)", {"x = Vi(1)", "y = Vj(1)", "p = Pm(1)"}, "float64"});
  std::vector<double> xb(2 * 4), yb(3 * 5), pb = {0.5}, ob(2 * 3 * 5);
  for (size_t q = 0; q < xb.size(); ++q) xb[q] = q + 1;
  for (size_t q = 0; q < yb.size(); ++q) yb[q] = 0.1 * q;
  Launch B{{addr(xb), addr(yb), addr(pb)}, 4, 5, {addr(ob)}, {2, 3}, {{2, 1}, {1, 3}, {1, 1}}};
  kb->run(B);
  for (int b0 = 0; b0 < 2; ++b0)
    for (int b1 = 0; b1 < 3; ++b1)
      for (int j = 0; j < 5; ++j) {
        double s = 0;
        for (int i = 0; i < 4; ++i) s += xb[b0 * 4 + i] * yb[b1 * 5 + j] + 0.5;
        CHECK(ob[(b0 * 3 + b1) * 5 + j] == Approx(s).epsilon(1e-14));
      }
}

TEST_CASE("one block-sparse pattern per batch") {
  // Batch of 2: in batch 0 rows [0, 2) reduce over j in [0, 1); in batch 1 over j in [1, 3). Other rows: 0.
  auto k = get_cpu_kernel({"Sum_Reduction(y, 0)", {"x = Vi(1)", "y = Vj(1)"}, "float64"});
  std::vector<double> x(2 * 3, 0.0), y = {1, 2, 4, 8, 16, 32}, out(2 * 3, -1);
  std::vector<int64_t> ranges_i = {0, 2, 0, 2}, slices_i = {1, 1}, red_j = {0, 1, 1, 3};
  std::vector<int64_t> ranges_j = {0, 3, 0, 3}, slices_j = {1, 1}, red_i = {0, 3, 0, 3};
  auto addr = [](auto& v) { return reinterpret_cast<uintptr_t>(v.data()); };
  Launch L{{addr(x), addr(y)}, 3, 3, {addr(out)}, {2}, {{2}, {2}}};
  L.ranges = {addr(ranges_i), addr(slices_i), addr(red_j), addr(ranges_j), addr(slices_j), addr(red_i)};
  L.range_counts = {1, 1, 1, 1};
  L.range_sets = 2;
  k->run(L);
  CHECK(out == std::vector<double>{1, 1, 0, 16 + 32, 16 + 32, 0});
  L.range_sets = 3;
  CHECK_THROWS_AS(k->run(L), UserError);
}

TEST_CASE("cache chunks of j: every reduction resumes its rows' states between chunks") {
  set_chunk_bytes(1);  // chunks of one vector of j: every row is reduced over ceil(ny / W) calls
  const std::vector<std::string> a = {"x = Vi(2)", "y = Vj(2)", "b = Vj(1)"};
  for (int tag : {0, 1}) {
    const std::string t = std::to_string(tag);
    for (auto [nx, ny] : std::vector<std::pair<int64_t, int64_t>>{{40, 100}, {37, 61}}) {
      for (std::string r : {"Min", "Max", "ArgMin", "ArgMax", "Min_ArgMin", "Max_ArgMax"}) {
        check_reduction<double>(r + "_Reduction(SqDist(x,y) * b," + t + ")", a, nx, ny);
        check_reduction<float>(r + "_Reduction(x - y," + t + ")", a, nx, ny);
      }
      for (std::string r : {"KMin", "ArgKMin", "KMin_ArgKMin"}) {
        check_reduction<double>(r + "_Reduction(SqDist(x,y) * b,5," + t + ")", a, nx, ny);
        check_reduction<float>(r + "_Reduction(x - y,3," + t + ")", a, nx, ny);
      }
      check_reduction<double>("Max_SumShiftExpWeight_Reduction(SqDist(x,y)*IntCst(40), " + t + ", b)", a, nx, ny);
      check_kernel<float>("Sum_Reduction(Exp(-SqDist(x,y))*b, " + t + ")", a, nx, ny, 2e-5);
      check_kernel<double>("Sum_Reduction(Exp(-SqDist(x,y))*b, " + t + ")", a, nx, ny, 1e-12);
    }
  }
  set_chunk_bytes(0);
  CHECK(chunk_bytes() >= int64_t(128) << 10);  // the default: half of the L2 cache
}

namespace {

// Functions defined and instructions in the optimised IR of a kernel.
std::pair<int, int> ir_size(const std::string& formula, const std::vector<std::string>& aliases) {
  const std::string ir = kernel_ir({formula, aliases, "float32"});
  int defines = 0, instructions = 0;
  for (size_t at = 0, next; at < ir.size(); at = next + 1) {
    next = std::min(ir.find('\n', at), ir.size());
    const std::string_view line(ir.data() + at, next - at);
    if (line.starts_with("define ")) ++defines;
    else if (line.starts_with("  ") && line.find_first_not_of(' ') != std::string_view::npos) ++instructions;
  }
  return {defines, instructions};
}

std::string nested_sin(int depth) {
  std::string f = "(x-y)";
  for (int k = 0; k < depth; ++k) f = "Sin(" + f + ")";
  return "Sum_Reduction(" + f + ",0)";
}

}  // namespace

TEST_CASE("many math functions share one body per function and type; few stay inline") {
  const std::vector<std::string> a = {"x = Vi(1)", "y = Vj(1)"};
  const auto [defs100, instrs100] = ir_size(nested_sin(100), a);
  const auto [defs300, instrs300] = ir_size(nested_sin(300), a);
  // The kernel and one Sin body per type used (vectors; scalars where the kernel has scalar code).
  CHECK((defs100 >= 2 && defs100 <= 3));
  CHECK(defs300 == defs100);
  // A level adds one call per copy of the inner code (row tiles), not inlined Sin bodies of ~40 instructions each.
  CHECK(instrs300 - instrs100 < 16 * 200);
  CHECK(ir_size("Sum_Reduction(Exp(-SqDist(x,y))*b,0)", kAliases).first == 1);
  for (const char* f : {"Sum_Reduction(Sin(Cos(Exp(Log(Atan(Atan2(Asin(Sin(x-y)), Acos(Cos(y))) + x) + 2) * x)) + Exp(x)) + Sin(y),0)",
                        "Sum_Reduction(Exp(-SqDist(x,y)) + Sum(Sin(Cos(Atan(Sin(Cos(Atan("
                        "Sin(Cos(Atan(Sin(Cos(Atan(x-y)))))))))))) + Exp(x-y) + Log(Exp(x+y)+b)),1)"}) {
    CHECK(ir_size(f, kAliases).first > 1);  // over kInlineMath: called
    check_kernel<float>(f, kAliases, 40, 37, 2e-5);
    check_kernel<double>(f, kAliases, 40, 37, 1e-12);
  }
}
