// Tests the vec_math IR emitters: JIT-compiled over scalars and vectors, before and after O3,
// against long double std:: references (max ulp per function/type) and exact special values.
#include "catch.hpp"
#if __has_include("jit/cpu/vec_math.h")  // repo root on the include path (CMake)
#include "jit/cpu/vec_math.h"
#else
#include "vec_math.h"
#endif

#include <llvm/ADT/StringMap.h>
#include <llvm/Config/llvm-config.h>
#include <llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/ExecutionEngine/Orc/ThreadSafeModule.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/IntrinsicInst.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/IR/Module.h>
#include <llvm/IR/Verifier.h>
#include <llvm/Passes/PassBuilder.h>
#if LLVM_VERSION_MAJOR >= 17
#include <llvm/TargetParser/Host.h>
#else
#include <llvm/Support/Host.h>
#endif
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Target/TargetMachine.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace {

enum class Fn { exp, log, sin, cos, atan, atan2, asin, acos };
const char* fn_name(Fn f) {
  static const char* n[] = {"exp", "log", "sin", "cos", "atan", "atan2", "asin", "acos"};
  return n[static_cast<int>(f)];
}

// kern(const T* a, const T* b, T* out, int64 n): out[i] = f(a[i]) (or atan2(a[i], b[i])),
// processed `width` lanes at a time; n must be a multiple of width.
using Kern = void (*)(const void*, const void*, void*, int64_t);

std::unique_ptr<llvm::Module> build_module(llvm::LLVMContext& ctx, Fn fn, bool dbl, unsigned width,
                                           const std::string& name, const llvm::TargetMachine& tm) {
  auto mod = std::make_unique<llvm::Module>(name, ctx);
  mod->setDataLayout(tm.createDataLayout());
  mod->setTargetTriple(tm.getTargetTriple().str());
  llvm::Type* el = dbl ? llvm::Type::getDoubleTy(ctx) : llvm::Type::getFloatTy(ctx);
  llvm::Type* vt = width == 1 ? el : static_cast<llvm::Type*>(llvm::FixedVectorType::get(el, width));
  llvm::Type* pel = el->getPointerTo();
  llvm::Type* i64 = llvm::Type::getInt64Ty(ctx);
  auto* fty = llvm::FunctionType::get(llvm::Type::getVoidTy(ctx), {pel, pel, pel, i64}, false);
  auto* f = llvm::Function::Create(fty, llvm::Function::ExternalLinkage, name, mod.get());
  auto* entry = llvm::BasicBlock::Create(ctx, "entry", f);
  auto* loop = llvm::BasicBlock::Create(ctx, "loop", f);
  auto* done = llvm::BasicBlock::Create(ctx, "done", f);
  llvm::IRBuilder<> b(entry);
  b.CreateCondBr(b.CreateICmpSGT(f->getArg(3), b.getInt64(0)), loop, done);
  b.SetInsertPoint(loop);
  llvm::PHINode* i = b.CreatePHI(i64, 2);
  i->addIncoming(b.getInt64(0), entry);
  llvm::Align al(dbl ? 8 : 4);
  auto load = [&](llvm::Value* base) {
    llvm::Value* p = b.CreateGEP(el, base, i);
    return b.CreateAlignedLoad(vt, b.CreateBitCast(p, vt->getPointerTo()), al);
  };
  llvm::Value* x = load(f->getArg(0));
  llvm::Value* r = nullptr;
  using namespace keops::cpu;
  switch (fn) {
    case Fn::exp: r = emit_exp(b, x); break;
    case Fn::log: r = emit_log(b, x); break;
    case Fn::sin: r = emit_sin(b, x); break;
    case Fn::cos: r = emit_cos(b, x); break;
    case Fn::atan: r = emit_atan(b, x); break;
    case Fn::atan2: r = emit_atan2(b, x, load(f->getArg(1))); break;
    case Fn::asin: r = emit_asin(b, x); break;
    case Fn::acos: r = emit_acos(b, x); break;
  }
  REQUIRE(r->getType() == vt);
  llvm::Value* po = b.CreateGEP(el, f->getArg(2), i);
  b.CreateAlignedStore(r, b.CreateBitCast(po, vt->getPointerTo()), al);
  llvm::Value* next = b.CreateAdd(i, b.getInt64(width));
  i->addIncoming(next, loop);
  b.CreateCondBr(b.CreateICmpSLT(next, f->getArg(3)), loop, done);
  b.SetInsertPoint(done);
  b.CreateRetVoid();
  REQUIRE_FALSE(llvm::verifyFunction(*f, &llvm::errs()));
  return mod;
}

void optimize_o3(llvm::Module& m, llvm::TargetMachine& tm) {
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  llvm::PassBuilder pb(&tm);
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cgam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cgam, mam);
  pb.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O3).run(m, mam);
  REQUIRE_FALSE(llvm::verifyModule(m, &llvm::errs()));
}

// Every call left must be an intrinsic that lowers to plain instructions (no libm, no llvm.exp...).
void require_no_libcalls(const llvm::Module& m) {
  static const std::set<llvm::Intrinsic::ID> ok = {
      llvm::Intrinsic::fma,       llvm::Intrinsic::fmuladd,   llvm::Intrinsic::rint,
      llvm::Intrinsic::floor,     llvm::Intrinsic::fabs,      llvm::Intrinsic::sqrt,
      llvm::Intrinsic::copysign,  llvm::Intrinsic::minnum,    llvm::Intrinsic::maxnum,
      llvm::Intrinsic::nearbyint, llvm::Intrinsic::roundeven, llvm::Intrinsic::trunc};
  for (const llvm::Function& f : m)
    for (const llvm::BasicBlock& bb : f)
      for (const llvm::Instruction& ins : bb)
        if (auto* call = llvm::dyn_cast<llvm::CallBase>(&ins)) {
          const llvm::Function* callee = call->getCalledFunction();
          INFO("call to " << (callee ? callee->getName().str() : std::string("<indirect>")));
          REQUIRE(callee != nullptr);
          REQUIRE(callee->isIntrinsic());
          REQUIRE(ok.count(callee->getIntrinsicID()) == 1);
        }
}

bool host_has(const char* feature) {
#if LLVM_VERSION_MAJOR >= 19
  llvm::StringMap<bool> feats = llvm::sys::getHostCPUFeatures();
#else
  llvm::StringMap<bool> feats;
  llvm::sys::getHostCPUFeatures(feats);
#endif
  return feats.lookup(feature);
}

struct Jit {
  std::unique_ptr<llvm::orc::LLJIT> jit;
  std::unique_ptr<llvm::TargetMachine> tm;  // same target as the JIT: used for O3 and asm dumps
  int counter = 0;

  Jit() {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    auto jtmb = llvm::cantFail(llvm::orc::JITTargetMachineBuilder::detectHost());
    tm = llvm::cantFail(jtmb.createTargetMachine());
    jit = llvm::cantFail(llvm::orc::LLJITBuilder().setJITTargetMachineBuilder(jtmb).create());
  }

  Kern compile(Fn fn, bool dbl, unsigned width, bool o3) {
    auto ctx = std::make_unique<llvm::LLVMContext>();
    std::string name = "kern_" + std::to_string(counter++);
    auto mod = build_module(*ctx, fn, dbl, width, name, *tm);
    if (o3) optimize_o3(*mod, *tm);
    require_no_libcalls(*mod);
    llvm::cantFail(jit->addIRModule(llvm::orc::ThreadSafeModule(std::move(mod), std::move(ctx))));
    auto sym = llvm::cantFail(jit->lookup(name));
#if LLVM_VERSION_MAJOR >= 15
    return sym.toPtr<Kern>();
#else
    return reinterpret_cast<Kern>(static_cast<uintptr_t>(sym.getAddress()));
#endif
  }

  // Native assembly of the O3-optimised kernel.
  std::string assembly(Fn fn, bool dbl, unsigned width) {
    llvm::LLVMContext ctx;
    auto mod = build_module(ctx, fn, dbl, width, "asm_kern", *tm);
    optimize_o3(*mod, *tm);
    llvm::SmallString<0> buf;
    llvm::raw_svector_ostream os(buf);
    llvm::legacy::PassManager pm;
#if LLVM_VERSION_MAJOR >= 18
    constexpr auto kAsm = llvm::CodeGenFileType::AssemblyFile;
#else
    constexpr auto kAsm = llvm::CGFT_AssemblyFile;
#endif
    REQUIRE_FALSE(tm->addPassesToEmitFile(pm, os, nullptr, kAsm));
    pm.run(*mod);
    return std::string(buf.str());
  }
};

Jit& jit() {
  static Jit j;
  return j;
}

// ---------------------------------------------------------------------------------------------
// reference and error measure

template <typename T>
long double reference(Fn fn, T a, T b) {
  long double x = a, y = b;
  switch (fn) {
    case Fn::exp: return std::exp(x);
    case Fn::log: return std::log(x);
    case Fn::sin: return std::sin(x);
    case Fn::cos: return std::cos(x);
    case Fn::atan: return std::atan(x);
    case Fn::atan2: return std::atan2(x, y);
    case Fn::asin: return std::asin(x);
    case Fn::acos: return std::acos(x);
  }
  return 0;
}

// |got - ref| in units of the last place of T at ref (subnormal spacing below the normal range;
// an infinite result counts as 2^(max_exponent) so a near-overflow miss is measured, not absolute).
template <typename T>
double ulp_error(T got, long double ref) {
  using L = std::numeric_limits<T>;
  if (std::isnan(ref) || std::isnan(got)) return (std::isnan(ref) && std::isnan(got)) ? 0.0 : INFINITY;
  if (std::isinf(ref)) return got == ref ? 0.0 : INFINITY;
  if (std::isinf(static_cast<T>(ref)) && got == static_cast<T>(ref)) return 0.0;  // correctly overflowed
  long double g = got;
  if (std::isinf(got)) g = std::copysign(std::ldexp(1.0L, L::max_exponent), (long double)got);
  int e = ref == 0 ? L::min_exponent - 1 : std::ilogb(ref);
  if (e < L::min_exponent - 1) e = L::min_exponent - 1;
  long double ulp = std::ldexp(1.0L, e - (L::digits - 1));
  return static_cast<double>(std::fabs(g - ref) / ulp);
}


// ---------------------------------------------------------------------------------------------
// inputs

// Uniformly random bit pattern: every magnitude, subnormals, infinities and NaNs included.
template <typename T>
T random_value(std::mt19937_64& rng);
template <>
float random_value<float>(std::mt19937_64& rng) {
  uint32_t u = static_cast<uint32_t>(rng());
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
template <>
double random_value<double>(std::mt19937_64& rng) {
  uint64_t u = rng();
  double d;
  std::memcpy(&d, &u, sizeof d);
  return d;
}

template <typename T>
struct Inputs {
  std::vector<T> a, b;       // b only for atan2
  std::vector<bool> exact;   // special values: must match the reference bit for bit (NaN as NaN)
  std::vector<bool> ranged;  // only checked to lie in [-1, 1] (sin/cos beyond the accurate range)
};

template <typename T>
void push(Inputs<T>& in, T a, T b = T(1), bool exact = false) {
  in.a.push_back(a);
  in.b.push_back(b);
  in.exact.push_back(exact);
  in.ranged.push_back(false);
}

template <typename T>
Inputs<T> make_inputs(Fn fn, size_t n_random) {
  using L = std::numeric_limits<T>;
  constexpr bool dbl = sizeof(T) == 8;
  Inputs<T> in;
  std::mt19937_64 rng(1234 + static_cast<int>(fn) * 7 + dbl);
  auto rand_bits = [&]() { return random_value<T>(rng); };
  auto uni = [&](double lo, double hi) {
    return static_cast<T>(std::uniform_real_distribution<double>(lo, hi)(rng));
  };
  auto sweep = [&](double lo, double hi, int n) {
    for (int k = 0; k <= n; ++k) push(in, static_cast<T>(lo + (hi - lo) * k / n));
  };
  const T inf = L::infinity(), nan = L::quiet_NaN();
  std::vector<T> specials = {T(0), -T(0), inf, -inf, nan, -nan, L::denorm_min(), -L::denorm_min(),
                             L::min(), -L::min(), L::max(), -L::max(), T(1), T(-1), T(0.5), T(-0.5),
                             T(2), T(-2), L::min() / 3, -L::min() / 3, L::epsilon(), T(1) - L::epsilon() / 2,
                             T(1) + L::epsilon()};
  for (T s : specials) push(in, s, T(1), true);

  switch (fn) {
    case Fn::exp: {
      const double ovf = dbl ? 709.782712893384 : 88.72283935546875;
      const double unf = dbl ? -745.1332191019412 : -103.97208404541016;
      const double den = dbl ? -708.3964185322641 : -87.33654022216797;
      sweep(unf - 3, ovf + 3, 200000);
      sweep(-1, 1, 20000);
      for (double t : {ovf, unf, den, dbl ? -744.4400719213812 : -103.27892990343184})
        for (int k = -200; k <= 200; ++k) {
          T v = static_cast<T>(t);
          for (int j = 0; j < std::abs(k); ++j) v = std::nextafter(v, k < 0 ? -inf : inf);
          push(in, v);
        }
      for (size_t k = 0; k < n_random; ++k) push(in, uni(unf - 5, ovf + 5));
      break;
    }
    case Fn::log:
      sweep(0.5, 2.0, 200000);
      sweep(1e-3, 20, 100000);
      for (int k = -300; k <= 300; ++k) push(in, static_cast<T>(1) + k * L::epsilon() / 4);
      for (size_t k = 0; k < n_random; ++k) push(in, std::fabs(rand_bits()));
      for (size_t k = 0; k < n_random / 4; ++k) push(in, uni(0, 1) * L::min());  // subnormals
      break;
    case Fn::sin:
    case Fn::cos: {
      const double lim = dbl ? 1e12 : 1e6;
      sweep(-10, 10, 200000);
      sweep(-lim, lim, 200000);
      // neighbours of multiples of pi/2: the hardest cases for the reduction
      for (int k = -2000; k <= 2000; ++k) {
        T v = static_cast<T>(k * 1.5707963267948966192L);
        push(in, v);
        push(in, std::nextafter(v, inf));
        push(in, std::nextafter(v, -inf));
      }
      for (int k = 0; k < 20000; ++k) {
        T v = static_cast<T>(std::floor(uni(0, lim / 1.5707963267948966)) * 1.5707963267948966192L);
        push(in, v);
        push(in, std::nextafter(v, inf));
      }
      for (size_t k = 0; k < n_random; ++k) push(in, uni(-lim, lim));
      for (size_t k = 0; k < n_random; ++k) {
        T v = rand_bits();
        if (std::fabs(v) <= lim) {
          push(in, v);
        } else {
          push(in, v);
          in.ranged.back() = std::isfinite(v);
          in.exact.back() = !std::isfinite(v);
        }
      }
      break;
    }
    case Fn::atan:
      sweep(-5, 5, 200000);
      sweep(-100, 100, 100000);
      for (size_t k = 0; k < n_random; ++k) push(in, rand_bits());
      break;
    case Fn::atan2: {
      std::vector<T> sv = {T(0), -T(0), inf, -inf, nan, T(1), T(-1), T(3), T(-3), L::max(), -L::max(),
                           L::min(), -L::min(), L::denorm_min(), -L::denorm_min()};
      for (T y : sv)
        for (T x : sv) push(in, y, x, true);
      for (int k = 0; k <= 200000; ++k) {
        double th = -3.2 + 6.4 * k / 200000;
        push(in, static_cast<T>(std::sin(th) * 3), static_cast<T>(std::cos(th) * 3));
      }
      for (size_t k = 0; k < n_random; ++k) push(in, uni(-10, 10), uni(-10, 10));
      for (size_t k = 0; k < n_random; ++k) push(in, rand_bits(), rand_bits());
      for (size_t k = 0; k < n_random; ++k) {  // both large / both tiny, ratios near 1
        T y = rand_bits();
        push(in, y, static_cast<T>(y * uni(0.3, 3)));
      }
      break;
    }
    case Fn::asin:
    case Fn::acos:
      sweep(-1, 1, 400000);
      for (int k = 0; k <= 2000; ++k) {
        for (T c : {T(1), T(-1), T(0.5), T(-0.5)}) {
          T v = c;
          for (int j = 0; j < k % 50; ++j) v = std::nextafter(v, T(0));
          push(in, v);
        }
      }
      sweep(-1.5, 1.5, 3000);
      for (size_t k = 0; k < n_random; ++k) {
        T v = rand_bits();
        push(in, std::fabs(v) <= 1 || !std::isfinite(v) ? v : v / std::ldexp(T(1), std::ilogb(v) + 1));
      }
      break;
  }
  if (fn == Fn::sin || fn == Fn::cos) {
    // beyond the documented accurate range only the [-1, 1] bound is promised
    const T lim = dbl ? T(1e12) : T(1e6);
    for (size_t i = 0; i < in.a.size(); ++i)
      if (std::isfinite(in.a[i]) && std::fabs(in.a[i]) > lim) {
        in.ranged[i] = true;
        in.exact[i] = false;
      }
  }
  return in;
}

// ---------------------------------------------------------------------------------------------

template <typename T>
double run_and_measure(Fn fn, unsigned width, bool o3, const Inputs<T>& in,
                       const std::vector<long double>& ref, double bound) {
  size_t n = in.a.size();
  size_t padded = (n + 15) / 16 * 16;
  std::vector<T> a(in.a), b(in.b), out(padded, T(-7));
  a.resize(padded, T(0.25));
  b.resize(padded, T(1));
  Kern k = jit().compile(fn, sizeof(T) == 8, width, o3);
  k(a.data(), b.data(), out.data(), static_cast<int64_t>(padded));
  double worst = 0;
  size_t bad = 0;
  for (size_t i = 0; i < n; ++i) {
    T got = out[i];
    if (in.ranged[i]) {
      if (!(got >= T(-1) && got <= T(1))) ++bad;
      continue;
    }
    if (in.exact[i]) {
      T r = static_cast<T>(ref[i]);
      bool okv = std::isnan(r) ? std::isnan(got)
                 : (std::isinf(r) || r == 0) ? (got == r && std::signbit(got) == std::signbit(r))
                                             : ulp_error(got, ref[i]) <= bound;
      if (!okv) {
        if (bad < 10)
          UNSCOPED_INFO(fn_name(fn) << "(" << in.a[i]
                                    << (fn == Fn::atan2 ? ", " + std::to_string(in.b[i]) : "")
                                    << ") = " << got << ", expected " << r);
        ++bad;
      }
      if (std::isfinite(r) && r != 0) worst = std::max(worst, ulp_error(got, ref[i]));
      continue;
    }
    double e = ulp_error(got, ref[i]);
    if (!(e <= bound)) {
      if (bad < 10)
        UNSCOPED_INFO(fn_name(fn) << (sizeof(T) == 8 ? " f64" : " f32") << " w" << width << " ("
                                  << static_cast<double>(in.a[i]) << ", " << static_cast<double>(in.b[i])
                                  << ") = " << static_cast<double>(got) << ", ref "
                                  << static_cast<double>(ref[i]) << ", " << e << " ulp");
      ++bad;
    }
    if (e > worst) worst = e;
  }
  CHECK(bad == 0);
  return worst;
}

template <typename T>
void check_function(Fn fn, double bound) {
  constexpr bool dbl = sizeof(T) == 8;
  Inputs<T> in = make_inputs<T>(fn, 200000);
  std::vector<long double> ref(in.a.size());
  for (size_t i = 0; i < ref.size(); ++i) ref[i] = reference<T>(fn, in.a[i], in.b[i]);
  double worst = 0;
  for (unsigned width : dbl ? std::vector<unsigned>{1, 4, 8} : std::vector<unsigned>{1, 8, 16})
    for (bool o3 : {false, true}) {
      INFO(fn_name(fn) << (dbl ? " f64" : " f32") << " width " << width << (o3 ? " O3" : " no-opt"));
      worst = std::max(worst, run_and_measure<T>(fn, width, o3, in, ref, bound));
    }
  WARN(fn_name(fn) << (dbl ? " f64" : " f32") << ": max error " << worst << " ulp over " << in.a.size()
                   << " points (bound " << bound << ")");
  CHECK(worst <= bound);
}

}  // namespace

// Bounds sit a little above the measured maxima listed in jit/cpu/vec_math.cpp (sin/cos: up to
// 1.81 ulp found by exhaustive f32 sweeps for |x| <= 1e6, more than these samples reach).
TEST_CASE("vec_math exp", "[vec_math]") {
  check_function<float>(Fn::exp, 1.5);
  check_function<double>(Fn::exp, 1.5);
}
TEST_CASE("vec_math log", "[vec_math]") {
  check_function<float>(Fn::log, 1.5);
  check_function<double>(Fn::log, 1.5);
}
TEST_CASE("vec_math sin", "[vec_math]") {
  check_function<float>(Fn::sin, 2.5);
  check_function<double>(Fn::sin, 2.5);
}
TEST_CASE("vec_math cos", "[vec_math]") {
  check_function<float>(Fn::cos, 2.5);
  check_function<double>(Fn::cos, 2.5);
}
TEST_CASE("vec_math atan", "[vec_math]") {
  check_function<float>(Fn::atan, 1.5);
  check_function<double>(Fn::atan, 1.5);
}
TEST_CASE("vec_math atan2", "[vec_math]") {
  check_function<float>(Fn::atan2, 1.5);
  check_function<double>(Fn::atan2, 1.5);
}
TEST_CASE("vec_math asin", "[vec_math]") {
  check_function<float>(Fn::asin, 1.5);
  check_function<double>(Fn::asin, 1.5);
}
TEST_CASE("vec_math acos", "[vec_math]") {
  check_function<float>(Fn::acos, 1.5);
  check_function<double>(Fn::acos, 1.5);
}

TEST_CASE("vec_math optimised <16 x float> code has no calls", "[vec_math]") {
  // IR level: require_no_libcalls runs on every compiled kernel; here also the machine code,
  // which proves the remaining intrinsics (fma, rint, ...) became instructions on this host.
  if (!host_has("fma")) {
    WARN("host lacks FMA: llvm.fma would lower to a libm call, machine-code check skipped");
    return;
  }
  for (Fn fn : {Fn::exp, Fn::log, Fn::sin, Fn::cos, Fn::atan, Fn::atan2, Fn::asin, Fn::acos}) {
    for (bool dbl : {false, true}) {
      std::string asm_text = jit().assembly(fn, dbl, dbl ? 8 : 16);
      INFO(fn_name(fn) << (dbl ? " <8 x double>" : " <16 x float>"));
      CHECK(asm_text.find("\tcall") == std::string::npos);
      CHECK(asm_text.find("\tjmp\t" "exp") == std::string::npos);
    }
  }
}

TEST_CASE("vec_math ignores and restores the builder's fast-math flags", "[vec_math]") {
  // nnan/ninf would let the optimiser drop the special-value selects, so none may reach the IR.
  llvm::LLVMContext ctx;
  llvm::Module mod("fmf", ctx);
  llvm::Type* vt = llvm::FixedVectorType::get(llvm::Type::getFloatTy(ctx), 8);
  auto* f = llvm::Function::Create(llvm::FunctionType::get(vt, {vt, vt}, false),
                                   llvm::Function::ExternalLinkage, "f", &mod);
  llvm::IRBuilder<> b(llvm::BasicBlock::Create(ctx, "entry", f));
  llvm::FastMathFlags fast;
  fast.setFast();
  b.setFastMathFlags(fast);
  llvm::Value* x = f->getArg(0);
  using namespace keops::cpu;
  llvm::Value* acc = emit_exp(b, x);
  for (llvm::Value* v : {emit_log(b, x), emit_sin(b, x), emit_cos(b, x), emit_atan(b, x),
                         emit_atan2(b, x, f->getArg(1)), emit_asin(b, x), emit_acos(b, x)})
    acc = b.CreateFAdd(acc, v);
  CHECK(b.getFastMathFlags().isFast());
  b.clearFastMathFlags();
  b.CreateRet(acc);
  REQUIRE_FALSE(llvm::verifyFunction(*f, &llvm::errs()));
  int flagged = 0;
  for (llvm::Instruction& ins : f->getEntryBlock())
    if (llvm::isa<llvm::FPMathOperator>(&ins) && ins.getFastMathFlags().any()) ++flagged;
  CHECK(flagged == 7);  // only the test's own FAdds combining the results
}
