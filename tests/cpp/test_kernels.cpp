// JIT kernels against the reference evaluation of their Program; kernel cache in memory and on disk.
#include <cmath>
#include <filesystem>
#include <random>

#include "catch.hpp"
#include "core/errors.h"
#include "jit/kernel_cache.h"
#include "jit/thread_pool.h"
#include "program_eval.h"

using namespace keops;

namespace {

template <class T>
void check_kernel(const std::string& formula, const std::vector<std::string>& aliases, int64_t nx, int64_t ny,
                  double rtol) {
  KernelRequest req{formula, aliases, sizeof(T) == 4 ? "float32" : "float64"};
  auto k = get_kernel(req);
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
  k->run(ptrs, nx, ny, reinterpret_cast<uintptr_t>(out.data()));
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
  auto k = get_kernel({"Sum_Reduction(Exp(x-y), 0)", {"x = Vi(1)", "y = Vj(1)"}, "float64"});
  std::vector<double> x = {1, 2, 3}, out(3, 7.0);
  k->run({reinterpret_cast<uintptr_t>(x.data()), 0}, 3, 0, reinterpret_cast<uintptr_t>(out.data()));
  CHECK(out == std::vector<double>{0, 0, 0});
  k->run({0, reinterpret_cast<uintptr_t>(x.data())}, 0, 3, 0);
  CHECK_THROWS_AS(k->run({reinterpret_cast<uintptr_t>(x.data())}, 3, 3, reinterpret_cast<uintptr_t>(out.data())), UserError);
  CHECK_THROWS_AS(k->run({0, reinterpret_cast<uintptr_t>(x.data())}, 3, 3, reinterpret_cast<uintptr_t>(out.data())), UserError);
}

TEST_CASE("NaN and inf propagate like the reference") {
  auto k = get_kernel({"Sum_Reduction(Exp(x)*y, 0)", {"x = Vi(1)", "y = Vj(1)"}, "float32"});
  std::vector<float> x = {NAN, 1000.f, -1000.f, 0.f}, y(19, 1.f), out(4);
  y[5] = INFINITY;
  k->run({reinterpret_cast<uintptr_t>(x.data()), reinterpret_cast<uintptr_t>(y.data())}, 4, 19,
         reinterpret_cast<uintptr_t>(out.data()));
  CHECK(std::isnan(out[0]));
  CHECK(std::isinf(out[1]));
  CHECK(std::isnan(out[2]));  // 0 * inf
  CHECK(std::isinf(out[3]));
}

TEST_CASE("threads give the same result as one thread") {
  auto k = get_kernel({"Sum_Reduction(Exp(-SqDist(x,y)), 0)", {"x = Vi(2)", "y = Vj(2)"}, "float64"});
  std::mt19937 gen(1);
  std::normal_distribution<double> n;
  std::vector<double> x(2 * 5000), y(2 * 300), a(5000), b(5000);
  for (auto& v : x) v = n(gen);
  for (auto& v : y) v = n(gen);
  std::vector<uintptr_t> ptrs = {reinterpret_cast<uintptr_t>(x.data()), reinterpret_cast<uintptr_t>(y.data())};
  set_num_threads(1);
  k->run(ptrs, 5000, 300, reinterpret_cast<uintptr_t>(a.data()));
  set_num_threads(4);
  k->run(ptrs, 5000, 300, reinterpret_cast<uintptr_t>(b.data()));
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
  auto k1 = get_kernel(a);
  auto k2 = get_kernel(a);
  auto k3 = get_kernel(b);
  CHECK(k1 == k2);
  CHECK(k1 == k3);
  auto mid = cache_stats();
  CHECK(mid.compiled == before.compiled + 1);
  clear_memory_cache();
  auto k4 = get_kernel(a);
  CHECK(cache_stats().disk_hits == mid.disk_hits + 1);
  CHECK(k4->program().canonical == k1->program().canonical);
  check_kernel<float>(a.formula, a.aliases, 20, 20, 2e-5);
  set_cache_folder("");
  std::filesystem::remove_all(tmp);
}

TEST_CASE("unsupported reductions, options and dtypes are named") {
  CHECK_THROWS_WITH(get_kernel({"Min_Reduction(x, 0)", {"x = Vi(1)"}, "float32"}),
                    "reduction Min_Reduction is not supported yet");
  CHECK_THROWS_AS(get_kernel({"Sum_Reduction(x, 0)", {"x = Vi(1)"}, "float16"}), NotSupported);
  CHECK_THROWS_AS(get_kernel({"Sum_Reduction(x, 0)", {"x = Vi(1)"}, "int32"}), UserError);
  CHECK_THROWS_AS(get_kernel({"Sum_Reduction(x, 0)", {"x = Vi(1)"}, "float32", "float64"}), NotSupported);
}
