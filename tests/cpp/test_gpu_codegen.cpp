// GPU backend without a GPU: the generated CUDA compiles under NVRTC (every primitive, every reduction in every
// dtype, big formulas within registers), and the same source, compiled for the host by an emulator of the CUDA
// execution model (one thread per CUDA thread, a barrier for __syncthreads), computes what a double-precision
// reference of the Program computes: every reduction, both schemes, both axes, block-sparse ranges, batch dimensions,
// float16/32/64, chunk mode and output groups, NaN and ties.
#include <dlfcn.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <set>
#include <sstream>

#include "catch.hpp"
#include "core/errors.h"
#include "core/lower.h"
#include "jit/gpu/cuda_api.h"
#include "jit/gpu/cuda_codegen.h"
#include "jit/gpu/gpu_kernel.h"
#include "program_eval.h"
#include "reference_reduction.h"

#ifndef KEOPS_TEST_CXX
#define KEOPS_TEST_CXX "c++"
#endif
#ifndef KEOPS_TEST_NVRTC_DIRS
#define KEOPS_TEST_NVRTC_DIRS ""
#endif

using namespace keops;
using namespace keops::gpu;
using keops::test::Ranges;
using keops::test::RefOut;
using keops::test::reference;

namespace {

// NVRTC from the build's Python environment (the nvidia-cuda-nvrtc wheel) or the usual places; a failure here is a
// test failure: CI must compile every generated source.
const Nvrtc* require_nvrtc() {
  static bool dirs_set = false;
  if (!dirs_set) {
    std::vector<std::string> dirs;
    std::stringstream s(KEOPS_TEST_NVRTC_DIRS);
    for (std::string d; std::getline(s, d, ':');)
      if (!d.empty()) dirs.push_back(d);
    set_library_dirs(dirs);
    dirs_set = true;
  }
  std::string why;
  const Nvrtc* n = nvrtc(&why);
  INFO(why);
  REQUIRE(n != nullptr);
  return n;
}

const std::vector<int> kArchs = {80, 90};

// ---- host emulator ----------------------------------------------------------------------------------------------

const char* kEmulationHeader = R"EMU(
#include <barrier>
#include <cmath>
#include <cstring>
#include <math.h>
#include <thread>
#include <vector>
#define KP_HOST_EMULATION 1
#define KP_DEV inline
#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __shared__ static
#define __launch_bounds__(n)
struct kp_dim3 { unsigned x = 0, y = 0, z = 0; };
static thread_local kp_dim3 threadIdx, blockIdx;
static std::barrier<>* kp_barrier_ = nullptr;
inline void __syncthreads() { kp_barrier_->arrive_and_wait(); }
inline float kp_h2f(unsigned short h) { _Float16 f; std::memcpy(&f, &h, 2); return (float)f; }
inline unsigned short kp_f2h(float x) { _Float16 f = (_Float16)x; unsigned short h; std::memcpy(&h, &f, 2); return h; }
template <class T> inline T kp_ldg(const T* p) { return *p; }
inline float kp_bits_f(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
inline double kp_bits_d(unsigned long long u) { double f; std::memcpy(&f, &u, 8); return f; }
extern "C" void kp_emulate(void (*kernel)(void**), void** params, unsigned gx, unsigned gy, unsigned block) {
  for (unsigned by = 0; by < gy; ++by)
    for (unsigned bx = 0; bx < gx; ++bx) {
      std::barrier<> bar(block);
      kp_barrier_ = &bar;
      std::vector<std::thread> ts;
      for (unsigned t = 0; t < block; ++t)
        ts.emplace_back([=] { threadIdx = {t, 0, 0}; blockIdx = {bx, by, 0}; kernel(params); });
      for (auto& th : ts) th.join();
    }
}
)EMU";

// The generated sources of several kernels compiled for the host into one shared library.
class Emulator {
 public:
  explicit Emulator(const std::vector<std::shared_ptr<const GpuKernel>>& kernels) {
    static int counter = 0;
    dir_ = std::filesystem::temp_directory_path() / ("keops_gpu_emu_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::create_directories(dir_);
    std::ofstream src(dir_ / "emu.cpp");
    src << kEmulationHeader << cuda_prelude();
    std::set<std::string> seen;
    for (auto& k : kernels)
      if (seen.insert(k->layout().name).second) src << k->source().body;
    src.close();
    std::string cmd = std::string(KEOPS_TEST_CXX) + " -std=c++20 -O1 -shared -fPIC -pthread -w -o " + (dir_ / "emu.so").string() +
                      " " + (dir_ / "emu.cpp").string() + " 2> " + (dir_ / "log.txt").string();
    int rc = std::system(cmd.c_str());
    std::ifstream log(dir_ / "log.txt");
    std::stringstream l;
    l << log.rdbuf();
    INFO("host compilation of the generated source failed: " << l.str());
    REQUIRE(rc == 0);
    lib_ = dlopen((dir_ / "emu.so").string().c_str(), RTLD_NOW | RTLD_LOCAL);
    REQUIRE(lib_ != nullptr);
    emulate_ = reinterpret_cast<EmulateFn>(dlsym(lib_, "kp_emulate"));
    REQUIRE(emulate_ != nullptr);
  }
  ~Emulator() {
    if (lib_) dlclose(lib_);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  void launch(const std::string& kernel, unsigned gx, unsigned gy, unsigned block, void** params) {
    auto fn = reinterpret_cast<void (*)(void**)>(dlsym(lib_, (kernel + "_host").c_str()));
    REQUIRE(fn != nullptr);
    emulate_(fn, params, gx, gy, block);
  }

 private:
  using EmulateFn = void (*)(void (*)(void**), void**, unsigned, unsigned, unsigned);
  std::filesystem::path dir_;
  void* lib_ = nullptr;
  EmulateFn emulate_ = nullptr;
};

// The launch's device side on host memory: the kernels run in the emulator.
class EmuRuntime : public Runtime {
 public:
  EmuRuntime(Emulator& emu, int sms) : emu_(emu), sms_(sms) {}
  ~EmuRuntime() override { CHECK(live_ == 0); }
  uint64_t alloc(size_t bytes) override {
    ++live_;
    return reinterpret_cast<uint64_t>(std::aligned_alloc(256, (bytes + 255) / 256 * 256));
  }
  void release(uint64_t p) override {
    --live_;
    std::free(reinterpret_cast<void*>(p));
  }
  void upload(uint64_t dst, const void* src, size_t bytes) override { std::memcpy(reinterpret_cast<void*>(dst), src, bytes); }
  void zero(uint64_t dst, size_t bytes) override { std::memset(reinterpret_cast<void*>(dst), 0, bytes); }
  void launch(const std::string& kernel, unsigned gx, unsigned gy, unsigned block, void** params) override {
    launches.push_back(kernel);
    emu_.launch(kernel, gx, gy, block, params);
  }
  int multiprocessors() const override { return sms_; }
  std::vector<std::string> launches;

 private:
  Emulator& emu_;
  int sms_, live_ = 0;
};

// ---- data and reference -------------------------------------------------------------------------------------------

uint16_t to_half(double v) {
  _Float16 h = static_cast<_Float16>(static_cast<float>(v));
  uint16_t bits;
  std::memcpy(&bits, &h, 2);
  return bits;
}
double from_half(uint16_t bits) {
  _Float16 h;
  std::memcpy(&h, &bits, 2);
  return static_cast<float>(h);
}

// Arrays in the kernel's storage type, and their values as doubles (what the kernel actually sees).
struct Buffer {
  std::string dtype;
  std::vector<unsigned char> bytes;
  std::vector<double> values;
  Buffer(const std::string& dt, const std::vector<double>& v) : dtype(dt) {
    const size_t e = dt == "float16" ? 2 : dt == "float32" ? 4 : 8;
    bytes.resize(std::max<size_t>(1, v.size()) * e);
    for (size_t k = 0; k < v.size(); ++k) {
      double x = v[k];
      if (dt == "float16") {
        uint16_t h = to_half(x);
        std::memcpy(&bytes[k * 2], &h, 2);
        x = from_half(h);
      } else if (dt == "float32") {
        float f = static_cast<float>(x);
        std::memcpy(&bytes[k * 4], &f, 4);
        x = f;
      } else {
        std::memcpy(&bytes[k * 8], &x, 8);
      }
      values.push_back(x);
    }
  }
  uintptr_t ptr() { return reinterpret_cast<uintptr_t>(bytes.data()); }
  double at(size_t k) const {
    if (dtype == "float16") {
      uint16_t h;
      std::memcpy(&h, &bytes[k * 2], 2);
      return from_half(h);
    }
    if (dtype == "float32") {
      float f;
      std::memcpy(&f, &bytes[k * 4], 4);
      return f;
    }
    double d;
    std::memcpy(&d, &bytes[k * 8], 8);
    return d;
  }
};

double tolerance(const std::string& dtype) { return dtype == "float16" ? 3e-3 : dtype == "float32" ? 2e-5 : 1e-12; }

struct Case {
  std::string formula;
  std::vector<std::string> aliases;
  std::string dtype = "float32";
  std::string dtype_acc = "auto", sum_scheme = "auto";
  int block = 8;
  bool chunks = true;
};

struct Problem {
  int64_t nx = 13, ny = 300;
  std::vector<int64_t> batch;
  std::vector<std::vector<int64_t>> arg_batch;
  const Ranges* ranges = nullptr;
  int64_t range_sets = 1;
  Scheme scheme = Scheme::Auto;
  double lo = -1.0, hi = 1.5;
  int seed = 7;
};

// Runs a kernel under the emulator and checks it against the reference. Returns the scheme used.
std::string check_emulated(Emulator& emu, const std::shared_ptr<const GpuKernel>& k, const Case& c, const Problem& pb) {
  const Program& p = k->program();
  std::mt19937 gen(pb.seed);
  std::uniform_real_distribution<double> u(pb.lo, pb.hi);
  std::vector<Buffer> args;
  std::vector<std::vector<double>> ref_args;
  int64_t n_batch = 1;
  for (int64_t b : pb.batch) n_batch *= b;
  for (size_t pos = 0; pos < p.args.size(); ++pos) {
    const ArgInfo& a = p.args[pos];
    int64_t count = (a.cat == 2 ? 1 : a.cat == 0 ? pb.nx : pb.ny) * a.dim;
    for (size_t k = 0; k < pb.batch.size(); ++k) count *= pb.arg_batch.empty() ? pb.batch[k] : pb.arg_batch[pos][k];
    std::vector<double> v(count);
    for (double& x : v) x = u(gen);
    args.emplace_back(c.dtype, v);
    ref_args.push_back(args.back().values);
  }
  const int64_t n_out = p.tag == 0 ? pb.nx : pb.ny;
  std::vector<std::vector<unsigned char>> outs;
  Launch L;
  for (Buffer& b : args) L.args.push_back(b.ptr());
  L.nx = pb.nx;
  L.ny = pb.ny;
  L.batch = pb.batch;
  L.arg_batch = pb.arg_batch;
  if (pb.ranges) {
    const Ranges& r = *pb.ranges;
    for (const auto* v : {&r.ranges_i, &r.slices_i, &r.red_j, &r.ranges_j, &r.slices_j, &r.red_i})
      L.ranges.push_back(reinterpret_cast<uintptr_t>(v->data()));
    const int64_t s = pb.range_sets;
    L.range_counts = {int64_t(r.slices_i.size()) / s, int64_t(r.red_j.size() / 2) / s, int64_t(r.slices_j.size()) / s,
                      int64_t(r.red_i.size() / 2) / s};
    L.range_sets = s;
  }
  const size_t elem = c.dtype == "float16" ? 2 : c.dtype == "float32" ? 4 : 8;
  for (const OutputSpec& o : k->outputs()) {
    outs.emplace_back(n_batch * n_out * o.cols * (o.indices ? 8 : elem), 0xCD);  // garbage: every entry must be written
    L.outs.push_back(reinterpret_cast<uintptr_t>(outs.back().data()));
  }
  EmuRuntime rt(emu, 16);
  LaunchReport report = k->launch(L, rt, pb.scheme);
  RefOut ref = reference(p, ref_args, pb.nx, pb.ny, pb.batch, pb.arg_batch, pb.ranges, pb.range_sets);
  const double tol = tolerance(c.dtype);
  size_t vi = 0, ii = 0;
  auto value_out = [&](size_t o, size_t q) {
    Buffer view(c.dtype, {});
    view.bytes = outs[o];
    return view.at(q);
  };
  double scale = 0;
  for (double v : ref.values)
    if (std::isfinite(v)) scale = std::max(scale, std::fabs(v));
  for (size_t o = 0; o < k->outputs().size(); ++o) {
    const OutputSpec& spec = k->outputs()[o];
    const size_t count = n_batch * n_out * spec.cols;
    for (size_t q = 0; q < count; ++q) {
      INFO(c.formula << " [" << c.dtype << ", scheme " << report.scheme << ", splits " << report.splits << "] output " << o << " entry "
                     << q);
      if (spec.indices) {
        int64_t got;
        std::memcpy(&got, &outs[o][q * 8], 8);
        const int64_t want = ref.indices[ii];
        if (got != want) {  // a near tie in the kernel's precision: the value at `got` must be as good
          REQUIRE(!ref.sorted.empty());
          const size_t per_row = ref.sorted.size() / (n_batch * n_out), row = q / spec.cols, col = q % spec.cols;
          const size_t comp = p.reduction == ReductionKind::ArgKMin || p.reduction == ReductionKind::KMinArgKMin
                                  ? col % p.dim_formula : col;
          const auto& cs = ref.sorted[row * per_row + comp];
          double vg = NAN, vw = NAN;
          for (auto& [v, j] : cs) {
            if (j == got) vg = v;
            if (j == want) vw = v;
          }
          CHECK(std::fabs(vg - vw) <= 4 * tol * (std::fabs(vw) + 1e-3 * scale));
        }
        ++ii;
      } else {
        const double got = value_out(o, q), want = ref.values[vi++];
        if (std::isinf(want)) CHECK(got == want);
        else CHECK(std::fabs(got - want) <= tol * (std::fabs(want) + 1e-2 * scale) + 1e-300);
      }
    }
  }
  const bool two_d = report.scheme == "2D";
  CHECK(rt.launches.size() == (report.scheme == "none" ? 0u : two_d ? 2u : 1u));
  return report.scheme;
}

std::shared_ptr<const GpuKernel> kernel(const Case& c) {
  return get_gpu_kernel({c.formula, c.aliases, c.dtype, c.dtype_acc, c.sum_scheme, false, c.chunks, c.block});
}

const std::vector<std::string> kAliases = {"x = Vi(3)", "y = Vj(3)", "b = Vj(2)", "p = Pm(2)"};

// Every reduction of the engine over a formula f (of dimension 2 for the vector ones).
std::vector<std::string> every_reduction(const std::string& f, const std::string& scalar, int tag) {
  const std::string t = std::to_string(tag);
  return {"Sum_Reduction(" + f + "," + t + ")",
          "Min_Reduction(" + f + "," + t + ")",
          "Max_Reduction(" + f + "," + t + ")",
          "ArgMin_Reduction(" + f + "," + t + ")",
          "ArgMax_Reduction(" + f + "," + t + ")",
          "Min_ArgMin_Reduction(" + f + "," + t + ")",
          "Max_ArgMax_Reduction(" + f + "," + t + ")",
          "KMin_Reduction(" + f + ",3," + t + ")",
          "ArgKMin_Reduction(" + f + ",3," + t + ")",
          "KMin_ArgKMin_Reduction(" + f + ",3," + t + ")",
          "Max_SumShiftExpWeight_Reduction(" + scalar + "," + t + ")",
          "Max_SumShiftExpWeight_Reduction(" + scalar + "," + t + "," + f + ")"};
}

}  // namespace

// ---- NVRTC compile checks --------------------------------------------------------------------------------------------

TEST_CASE("every primitive has a CUDA rendering that NVRTC compiles and the emulator evaluates") {
  require_nvrtc();
  // One program applying every primitive (beyond Const and Load) to loaded values, summed.
  Program p;
  p.args = {{2, 0}, {2, 1}};
  p.reduction = ReductionKind::Sum;
  p.reduction_name = "Sum_Reduction";
  p.dim_formula = p.dim_out = 1;
  p.canonical = "every primitive";
  Lowerer L(p);
  const int x0 = L.load(0, 0), x1 = L.load(0, 1), y0 = L.load(1, 0), y1 = L.load(1, 1);
  int total = L.constant(0.25);
  int n_prims = 0;
  for (int k = 0; k <= static_cast<int>(Prim::Ne); ++k) {
    const Prim prim = static_cast<Prim>(k);
    if (prim == Prim::Const || prim == Prim::Load) continue;
    INFO("primitive " << k);
    REQUIRE(cuda_prim_pattern(prim) != nullptr);
    // operands inside the domains of Log/Sqrt/Asin/Acos: x in (0.1, 0.9)
    const int arity = prim_arity(prim);
    const int v = arity == 1 ? L.emit(prim, x0) : arity == 2 ? L.emit(prim, x1, y0) : L.emit(prim, L.sub(x0, y1), x1, y0);
    total = L.add(total, v);
    ++n_prims;
  }
  CHECK(n_prims == static_cast<int>(Prim::Ne) - 1);
  p.out = {total};
  const GpuOptions o{GpuDtype::F64, GpuDtype::F64, SumScheme::Direct, false, true, 8};
  CudaSource src = generate_cuda(p, o, "every_prim");
  for (int sm : kArchs) {
    CompileResult r = compile(src.full(), sm, true, false);
    CHECK(!r.binary.empty());
  }
  // Same program through the emulator, against the reference.
  auto k = std::make_shared<const GpuKernel>(p, o, "every_prim");
  Emulator emu({k});
  Case c{"every primitive", {}, "float64"};
  Problem pb;
  pb.nx = 9;
  pb.ny = 21;
  pb.lo = 0.1;
  pb.hi = 0.9;
  check_emulated(emu, k, c, pb);
}

TEST_CASE("every reduction compiles under NVRTC, in float16 (sm_90), float32 (sm_80, sm_90) and float64 (sm_80)") {
  require_nvrtc();
  const std::string f = "Exp(-SqDist(x,y))*b + p", scalar = "-SqDist(x,y) + Elem(p,0)";
  int compiled = 0;
  for (const char* dtype : {"float16", "float32", "float64"}) {
    std::vector<GpuRequest> reqs;
    for (int tag : {0, 1})
      for (const std::string& red : every_reduction(f, scalar, tag)) reqs.push_back({red, kAliases, dtype});
    for (const char* scheme : {"direct_sum", "block_sum", "kahan_scheme"})
      reqs.push_back({"Sum_Reduction(" + f + ",0)", kAliases, dtype, "auto", scheme});
    reqs.push_back({"Sum_Reduction(" + f + ",0)", kAliases, dtype, "float64"});
    if (std::string(dtype) == "float16") reqs.push_back({"Sum_Reduction(" + f + ",0)", kAliases, dtype, "float16"});
    const std::vector<int> archs = std::string(dtype) == "float32" ? kArchs : std::vector<int>{dtype[5] == '1' ? 90 : 80};
    for (int sm : archs) {
      CompileCheck check = compile_check(reqs, sm, true);
      CHECK(!check.result.binary.empty());
      std::set<std::string> names;
      for (auto& k : check.kernels) names.insert(k->layout().name);
      CHECK(check.result.resources.size() == 2 * names.size());  // _reduce and _combine of each program
      for (auto& [name, res] : check.result.resources) {
        INFO(name << " " << dtype << " sm_" << sm);
        CHECK(res.spill_stores == 0);
      }
      compiled += static_cast<int>(names.size());
    }
  }
  std::cout << "[gpu codegen] NVRTC compiled " << compiled << " reduction programs (2 kernels each)\n";
}

TEST_CASE("big formulas: chunk mode and output groups keep registers without spills") {
  require_nvrtc();
  struct Big {
    std::string formula;
    std::vector<std::string> aliases;
  };
  const std::vector<Big> bigs = {
      {"Sum_Reduction(Exp(-SqDist(x,y))*b,0)", {"x = Vi(784)", "y = Vj(784)", "b = Vj(1)"}},
      {"Sum_Reduction(Exp(-SqDist(x,y))*b,0)", {"x = Vi(300)", "y = Vj(300)", "b = Vj(300)"}},
      {"ArgKMin_Reduction(SqDist(x,y),10,0)", {"x = Vi(784)", "y = Vj(784)"}},
      {"Max_SumShiftExpWeight_Reduction(-SqDist(x,y),0,b)", {"x = Vi(300)", "y = Vj(300)", "b = Vj(64)"}},
      {"Sum_Reduction((x|y)*b - x, 1)", {"x = Vi(100)", "y = Vj(100)", "b = Vj(1)"}},
  };
  for (const Big& big : bigs)
    for (const char* dtype : {"float32", "float64"}) {
      CompileCheck check = compile_check({{big.formula, big.aliases, dtype}}, 80, true);
      const KernelLayout& L = check.kernels[0]->layout();
      const KernelResources& r = check.result.resources.at(L.name + "_reduce");
      std::cout << "[gpu codegen] " << big.formula << " " << big.aliases[0] << " " << dtype << " sm_80: " << r.registers
                << " registers, " << r.spill_stores << " B spill stores, " << r.stack_bytes << " B stack (carry), chunked "
                << L.chunked << ", " << L.segments << " segments, " << L.groups << " groups, NVRTC "
                << check.result.seconds << " s\n";
      CHECK(L.chunked);
      CHECK(r.spill_stores == 0);
      CHECK(r.spill_loads == 0);
      CHECK(check.result.seconds < 20);
    }
}

// ---- emulated execution ------------------------------------------------------------------------------------------

TEST_CASE("emulated: every reduction, both axes, both schemes, three dtypes") {
  for (const char* dtype : {"float32", "float64", "float16"}) {
    std::vector<Case> cases;
    for (int tag : {0, 1})
      for (const std::string& red : every_reduction("Exp(-SqDist(x,y))*b + p", "-SqDist(x,y) + Elem(p,0)", tag))
        cases.push_back({red, kAliases, dtype});
    for (const char* scheme : {"direct_sum", "kahan_scheme"})
      cases.push_back({"Sum_Reduction(Exp(-SqDist(x,y))*b + p,0)", kAliases, dtype, "auto", scheme});
    std::vector<std::shared_ptr<const GpuKernel>> ks;
    for (const Case& c : cases) ks.push_back(kernel(c));
    Emulator emu(ks);
    for (size_t k = 0; k < cases.size(); ++k)
      for (Scheme s : {Scheme::OneD, Scheme::TwoD}) {
        Problem pb;
        pb.scheme = s;
        pb.nx = 13;
        pb.ny = 150;
        if (ks[k]->program().tag == 1) std::swap(pb.nx, pb.ny);
        std::string used = check_emulated(emu, ks[k], cases[k], pb);
        CHECK(used == (s == Scheme::OneD ? "1D" : "2D"));
      }
  }
}

TEST_CASE("emulated: formulas that are a variable, a parameter or a constant") {
  std::vector<Case> cases;
  for (const char* red : {"Sum_Reduction(y,0)", "Sum_Reduction(x,0)", "Sum_Reduction(p,1)", "Sum_Reduction(IntCst(2),0)",
                          "Min_ArgMin_Reduction(y,0)", "KMin_ArgKMin_Reduction(b,2,0)", "Max_Reduction(x,1)",
                          "Max_SumShiftExpWeight_Reduction(Elem(y,1),0,x)", "Max_SumShiftExpWeight_Reduction(IntCst(1),0,b)"})
    for (const char* dtype : {"float32", "float64"}) cases.push_back({red, kAliases, dtype});
  std::vector<std::shared_ptr<const GpuKernel>> ks;
  for (const Case& c : cases) ks.push_back(kernel(c));
  Emulator emu(ks);
  for (size_t k = 0; k < cases.size(); ++k)
    for (Scheme s : {Scheme::OneD, Scheme::TwoD}) {
      Problem pb;
      pb.scheme = s;
      pb.nx = 9;
      pb.ny = 150;
      check_emulated(emu, ks[k], cases[k], pb);
    }
}

TEST_CASE("emulated: the automatic scheme splits j when the rows do not fill the device") {
  Case c{"Sum_Reduction(Exp(-SqDist(x,y))*b,0)", kAliases};
  auto k = kernel(c);
  Emulator emu({k});
  Problem few_rows;
  few_rows.nx = 5;
  few_rows.ny = 700;
  CHECK(check_emulated(emu, k, c, few_rows) == "2D");
  Problem many_rows;
  many_rows.nx = 300;
  many_rows.ny = 20;
  CHECK(check_emulated(emu, k, c, many_rows) == "1D");
}

TEST_CASE("emulated: block-sparse ranges, both schemes, both axes") {
  // i in [0, 40), j in [0, 50): rows 0-9 see j in [0,5) and [20,30); rows 10-24 see nothing; rows 25-40 see [5,50);
  // symmetric description for the other axis.
  Ranges r;
  r.ranges_i = {0, 10, 25, 40};
  r.slices_i = {2, 3};
  r.red_j = {0, 5, 20, 30, 5, 50};
  r.ranges_j = {0, 50};
  r.slices_j = {2};
  r.red_i = {0, 10, 30, 40};
  std::vector<Case> cases;
  for (int tag : {0, 1})
    for (const std::string& red : every_reduction("Exp(-SqDist(x,y))*b + p", "-SqDist(x,y) + Elem(p,0)", tag))
      cases.push_back({red, kAliases, "float64"});
  std::vector<std::shared_ptr<const GpuKernel>> ks;
  for (const Case& c : cases) ks.push_back(kernel(c));
  Emulator emu(ks);
  for (size_t k = 0; k < cases.size(); ++k)
    for (Scheme s : {Scheme::OneD, Scheme::TwoD}) {
      Problem pb;
      pb.nx = 40;
      pb.ny = 50;
      pb.ranges = &r;
      pb.scheme = s;
      check_emulated(emu, ks[k], cases[k], pb);
    }
  // Invalid ranges are user errors, as on the CPU.
  Ranges bad = r;
  bad.red_j = {0, 5, 20, 60, 5, 50};
  Problem pb;
  pb.nx = 40;
  pb.ny = 50;
  pb.ranges = &bad;
  CHECK_THROWS_AS(check_emulated(emu, ks[0], cases[0], pb), UserError);
}

TEST_CASE("emulated: ranges with batch dimensions, one pattern for all or one per batch") {
  std::vector<Case> cases = {
      {"Sum_Reduction(Exp(-SqDist(x,y))*b + p,0)", kAliases, "float64"},
      {"ArgKMin_Reduction(SqDist(x,y),2,0)", kAliases, "float32"},
  };
  std::vector<std::shared_ptr<const GpuKernel>> ks;
  for (const Case& c : cases) ks.push_back(kernel(c));
  Emulator emu(ks);
  Ranges shared;  // rows [0, 12) of 20 see j in [0, 10) and [30, 40); the rest see [10, 40)
  shared.ranges_i = {0, 12, 12, 20};
  shared.slices_i = {2, 3};
  shared.red_j = {0, 10, 30, 40, 10, 40};
  shared.ranges_j = {0, 40};
  shared.slices_j = {1};
  shared.red_i = {0, 20};
  Ranges per_batch;  // two sets of the same sizes, stacked
  per_batch.ranges_i = {0, 12, 12, 20, 0, 5, 5, 20};
  per_batch.slices_i = {2, 3, 1, 3};
  per_batch.red_j = {0, 10, 30, 40, 10, 40, 2, 4, 4, 8, 20, 40};
  per_batch.ranges_j = {0, 40, 0, 40};
  per_batch.slices_j = {1, 1};
  per_batch.red_i = {0, 20, 3, 9};
  for (size_t k = 0; k < cases.size(); ++k)
    for (Scheme s : {Scheme::OneD, Scheme::TwoD})
      for (int sets : {1, 2}) {
        Problem pb;
        pb.nx = 20;
        pb.ny = 40;
        pb.batch = {2};
        pb.arg_batch = {{2}, {1}, {2}, {1}};
        pb.ranges = sets == 1 ? &shared : &per_batch;
        pb.range_sets = sets;
        pb.scheme = s;
        check_emulated(emu, ks[k], cases[k], pb);
      }
}

TEST_CASE("emulated: batch dimensions with broadcasting, both schemes") {
  std::vector<Case> cases = {
      {"Sum_Reduction(Exp(-SqDist(x,y))*b + p,0)", kAliases, "float64"},
      {"ArgKMin_Reduction(SqDist(x,y),2,1)", kAliases, "float32"},
      {"Max_SumShiftExpWeight_Reduction(-SqDist(x,y),0,b)", kAliases, "float64"},
  };
  std::vector<std::shared_ptr<const GpuKernel>> ks;
  for (const Case& c : cases) ks.push_back(kernel(c));
  Emulator emu(ks);
  for (size_t k = 0; k < cases.size(); ++k)
    for (Scheme s : {Scheme::OneD, Scheme::TwoD}) {
      Problem pb;
      pb.nx = 11;
      pb.ny = 70;
      pb.batch = {2, 3};
      pb.arg_batch = {{2, 1}, {1, 3}, {2, 3}, {1, 1}};  // x per batch row, y per column, b full, p shared
      pb.scheme = s;
      check_emulated(emu, ks[k], cases[k], pb);
    }
}

TEST_CASE("emulated: chunk mode and output groups match the reference") {
  std::vector<Case> cases = {
      {"Sum_Reduction(Exp(-SqDist(x,y)*IntInv(40))*b,0)", {"x = Vi(100)", "y = Vj(100)", "b = Vj(1)"}, "float64"},
      {"Sum_Reduction(Exp(-SqDist(x,y)*IntInv(40))*b,0)", {"x = Vi(100)", "y = Vj(100)", "b = Vj(70)"}, "float32"},
      {"ArgKMin_Reduction(SqDist(x,y),4,0)", {"x = Vi(150)", "y = Vj(150)"}, "float32"},
      {"Max_SumShiftExpWeight_Reduction(-SqDist(x,y)*IntInv(40),1,b)", {"x = Vi(100)", "y = Vj(100)", "b = Vi(40)"}, "float64"},
      {"Sum_Reduction(x - y + Elem(y, 99) * Elem(x, 0), 0)", {"x = Vi(100)", "y = Vj(100)"}, "float64"},
      {"Sum_Reduction(Exp(-SqDist(x,y)*IntInv(40))*b,0)", {"x = Vi(100)", "y = Vj(100)", "b = Vj(3)"}, "float32", "auto", "auto",
       8, false},  // enable_chunks=False: normal mode, whole rows staged
  };
  std::vector<std::shared_ptr<const GpuKernel>> ks;
  for (const Case& c : cases) ks.push_back(kernel(c));
  CHECK(ks[0]->layout().chunked);
  CHECK(ks[0]->layout().segments > 2);
  CHECK(ks[1]->layout().groups > 1);
  CHECK(!ks[5]->layout().chunked);
  // the repeated chunks of the squared distance become one loop: the source stays small
  CHECK(ks[0]->source().body.size() < 20000);
  Emulator emu(ks);
  for (size_t k = 0; k < cases.size(); ++k)
    for (Scheme s : {Scheme::OneD, Scheme::TwoD}) {
      Problem pb;
      pb.nx = 10;
      pb.ny = 90;
      if (ks[k]->program().tag == 1) std::swap(pb.nx, pb.ny);
      pb.scheme = s;
      pb.lo = 0.0;
      pb.hi = 0.3;
      check_emulated(emu, ks[k], cases[k], pb);
    }
}

TEST_CASE("emulated: NaN never wins, ties go to the smallest index, empty sets") {
  // x - y with repeated values; NaN where y is NaN.
  std::vector<Case> cases;
  for (const char* red : {"Min_ArgMin_Reduction(x*y,0)", "Max_ArgMax_Reduction(x*y,0)", "KMin_ArgKMin_Reduction(x*y,3,0)",
                          "Sum_Reduction(x*y,0)"})
    cases.push_back({red, {"x = Vi(1)", "y = Vj(1)"}, "float32"});
  std::vector<std::shared_ptr<const GpuKernel>> ks;
  for (const Case& c : cases) ks.push_back(kernel(c));
  Emulator emu(ks);
  std::vector<float> x = {1.f, -1.f, 0.f}, y = {2.f, NAN, 2.f, -3.f, 2.f, -3.f, NAN, 5.f, 5.f};
  for (Scheme s : {Scheme::OneD, Scheme::TwoD}) {
    std::vector<float> v(3 * 3, -7.f);
    std::vector<int64_t> idx(3 * 3, -7);
    Launch L;
    L.args = {reinterpret_cast<uintptr_t>(x.data()), reinterpret_cast<uintptr_t>(y.data())};
    L.nx = 3;
    L.ny = 9;
    L.outs = {reinterpret_cast<uintptr_t>(v.data()), reinterpret_cast<uintptr_t>(idx.data())};
    EmuRuntime rt(emu, 64);
    ks[0]->launch(L, rt, s);  // Min_ArgMin
    CHECK(v[0] == -3.f);
    CHECK(idx[0] == 3);
    CHECK(v[1] == -5.f);
    CHECK(idx[1] == 7);
    CHECK(v[2] == 0.f);
    CHECK(idx[2] == 0);  // every non-NaN value is 0: the first index
    ks[1]->launch(L, rt, s);  // Max_ArgMax
    CHECK(idx[0] == 7);
    CHECK(idx[1] == 3);
    ks[2]->launch(L, rt, s);  // KMin_ArgKMin, K = 3, row 0: -3 (3), -3 (5), 2 (0)
    CHECK(std::vector<int64_t>(idx.begin(), idx.begin() + 3) == std::vector<int64_t>{3, 5, 0});
    CHECK(std::vector<float>(v.begin(), v.begin() + 3) == std::vector<float>{-3.f, -3.f, 2.f});
  }
  // Only NaN candidates: value +-inf (as pykeops), index of the first one (as torch.argmin).
  std::vector<float> ynan = {NAN, NAN, NAN};
  std::vector<float> v(3 * 3, 0.f);
  std::vector<int64_t> idx(3 * 3, 0);
  Launch L;
  L.args = {reinterpret_cast<uintptr_t>(x.data()), reinterpret_cast<uintptr_t>(ynan.data())};
  L.nx = 3;
  L.ny = 3;
  L.outs = {reinterpret_cast<uintptr_t>(v.data()), reinterpret_cast<uintptr_t>(idx.data())};
  EmuRuntime rt(emu, 4);
  for (Scheme s : {Scheme::OneD, Scheme::TwoD}) {
    ks[0]->launch(L, rt, s);  // Min_ArgMin
    CHECK(v[0] == INFINITY);
    CHECK(idx[0] == 0);
    ks[1]->launch(L, rt, s);  // Max_ArgMax
    CHECK(v[0] == -INFINITY);
    CHECK(idx[0] == 0);
    ks[2]->launch(L, rt, s);  // KMin_ArgKMin, K = 3
    CHECK(std::vector<int64_t>(idx.begin(), idx.begin() + 3) == std::vector<int64_t>{0, 1, 2});
    CHECK(std::vector<float>(v.begin(), v.begin() + 3) == std::vector<float>(3, INFINITY));
  }
  // Empty reduced set: sums are 0, arg reductions are a user error (as on the CPU).
  std::vector<float> s(3, 9.f);
  Launch E;
  E.args = {reinterpret_cast<uintptr_t>(x.data()), reinterpret_cast<uintptr_t>(y.data())};
  E.nx = 3;
  E.ny = 0;
  E.outs = {reinterpret_cast<uintptr_t>(s.data())};
  ks[3]->launch(E, rt, Scheme::Auto);
  CHECK(s == std::vector<float>{0.f, 0.f, 0.f});
  E.outs = {reinterpret_cast<uintptr_t>(v.data()), reinterpret_cast<uintptr_t>(idx.data())};
  CHECK_THROWS_AS(ks[0]->launch(E, rt, Scheme::Auto), UserError);
}

TEST_CASE("Zero_Reduction zero-fills without kernels; bad requests are named") {
  auto k = get_gpu_kernel({"Zero_Reduction(3,0)", {"x = Vi(2)"}, "float32"});
  std::vector<float> out(12, 5.f);
  std::vector<float> x(8, 1.f);
  Launch L;
  L.args = {reinterpret_cast<uintptr_t>(x.data())};
  L.nx = 4;
  L.ny = 1;
  L.outs = {reinterpret_cast<uintptr_t>(out.data())};
  Emulator emu({});
  EmuRuntime rt(emu, 4);
  CHECK(k->launch(L, rt, Scheme::Auto).scheme == "none");
  CHECK(out == std::vector<float>(12, 0.f));
  CHECK_THROWS_AS(get_gpu_kernel({"Sum_Reduction(x,0)", {"x = Vi(1)"}, "int32"}), UserError);
  CHECK_THROWS_AS(get_gpu_kernel({"Sum_Reduction(x,0)", {"x = Vi(1)"}, "float32", "float16"}), UserError);
  CHECK_THROWS_AS(get_gpu_kernel({"Min_Reduction(x,0)", {"x = Vi(1)"}, "float32", "float64"}), UserError);
  CHECK_THROWS_AS(get_gpu_kernel({"Min_Reduction(x,0)", {"x = Vi(1)"}, "float32", "auto", "kahan_scheme"}), UserError);
  // float16 data accumulate in float32 unless asked otherwise
  CHECK(get_gpu_kernel({"Sum_Reduction(x,0)", {"x = Vi(1)"}, "float16"})->options().acc == GpuDtype::F32);
  CHECK(get_gpu_kernel({"Sum_Reduction(x,0)", {"x = Vi(1)"}, "float16", "float16"})->options().acc == GpuDtype::F16);
}

TEST_CASE("without libcuda the status says what is missing and running fails cleanly") {
  Status s = status();
  if (s.available()) {
    SUCCEED("a GPU is present: nothing to check here");
    return;
  }
  CHECK(!s.reason().empty());
  CHECK((s.reason().rfind("no libcuda", 0) == 0 || s.reason().rfind("no device", 0) == 0 ||
         s.reason().rfind("no libnvrtc", 0) == 0));
  auto k = get_gpu_kernel({"Sum_Reduction(x,0)", {"x = Vi(1)"}, "float32"});
  Launch L;
  CHECK_THROWS_AS(k->run(L, 0, 0, Scheme::Auto), NotSupported);
}

TEST_CASE("cubins are cached in memory and on disk, keyed by program, options and architecture") {
  require_nvrtc();
  auto tmp = std::filesystem::temp_directory_path() / ("keops_gpu_cache_" + std::to_string(::getpid()));
  std::filesystem::remove_all(tmp);
  set_cache_folder(tmp.string());
  const GpuRequest r{"Sum_Reduction(Exp(-SqDist(x,y))*b,0)", kAliases, "float32"};
  auto before = gpu_cache_stats();
  auto k1 = get_gpu_kernel(r);
  CHECK(get_gpu_kernel(r) == k1);
  const std::string bin = k1->binary(80).binary;
  CHECK(&k1->binary(80) == &k1->binary(80));  // memory
  CHECK(gpu_cache_stats().compiled == before.compiled + 1);
  clear_gpu_memory_cache();
  auto k2 = get_gpu_kernel(r);
  CHECK(k2 != k1);
  CHECK(k2->binary(80).binary == bin);  // disk
  CHECK(gpu_cache_stats().disk_hits == before.disk_hits + 1);
  CHECK(k2->binary(90).binary != bin);  // another architecture: compiled
  CHECK(gpu_cache_stats().compiled == before.compiled + 2);
  auto k3 = get_gpu_kernel({r.formula, r.aliases, "float32", "auto", "auto", false});  // other options: other program
  CHECK(k3->layout().name != k1->layout().name);
  set_cache_folder("");
  std::filesystem::remove_all(tmp);
}
