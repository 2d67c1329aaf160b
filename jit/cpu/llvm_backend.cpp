// CPU backend: Program -> LLVM IR (explicitly vectorised across the reduced index) -> O3 -> object -> ORC LLJIT.
#include "llvm_backend.h"

#include <llvm/ADT/StringMap.h>
#include <llvm/Config/llvm-config.h>
#include <llvm/ExecutionEngine/Orc/ExecutionUtils.h>
#include <llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>
#include <llvm/IR/Verifier.h>
#include <llvm/Passes/PassBuilder.h>
#include <llvm/Support/Host.h>
#include <llvm/Support/MemoryBuffer.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Target/TargetMachine.h>

#include <mutex>
#include <unordered_map>

#include "../../core/errors.h"
#include "vec_math.h"

namespace keops::cpu {

namespace {

using llvm::IRBuilder;
using llvm::Value;

#if LLVM_VERSION_MAJOR >= 18
constexpr auto kOptAggressive = llvm::CodeGenOptLevel::Aggressive;
constexpr auto kObjectFile = llvm::CodeGenFileType::ObjectFile;
#else
constexpr auto kOptAggressive = llvm::CodeGenOpt::Aggressive;
constexpr auto kObjectFile = llvm::CGFT_ObjectFile;
#endif

std::string check(llvm::Error e) {
  std::string msg;
  llvm::handleAllErrors(std::move(e), [&](const llvm::ErrorInfoBase& info) { msg = info.message(); });
  return msg;
}

template <class T>
T unwrap(llvm::Expected<T> v, const char* what) {
  if (!v) internal_failure(__FILE__, __LINE__, std::string(what) + ": " + check(v.takeError()));
  return std::move(*v);
}

// Host target, created once.
struct Host {
  llvm::orc::JITTargetMachineBuilder jtmb;
  std::unique_ptr<llvm::TargetMachine> tm;
  std::string cpu, features, signature;
  bool avx512 = false, avx = false;

  static llvm::orc::JITTargetMachineBuilder detect() {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    return unwrap(llvm::orc::JITTargetMachineBuilder::detectHost(), "detecting the host");
  }

  Host() : jtmb(detect()) {
    cpu = llvm::sys::getHostCPUName().str();
    llvm::StringMap<bool> host_features;
    llvm::SubtargetFeatures f;
    if (llvm::sys::getHostCPUFeatures(host_features))
      for (auto& kv : host_features) f.AddFeature(kv.getKey(), kv.getValue());
    features = f.getString();
    avx512 = host_features.lookup("avx512f");
    avx = host_features.lookup("avx");
    jtmb.setCPU(cpu);
    jtmb.getFeatures() = f;
    jtmb.setCodeGenOptLevel(kOptAggressive);
    tm = unwrap(jtmb.createTargetMachine(), "creating the target machine");
    signature = jtmb.getTargetTriple().str() + "|" + cpu + "|" + features + "|llvm" + std::to_string(LLVM_VERSION_MAJOR);
  }
};

Host& host() {
  static Host* h = new Host();  // never destroyed: kernels may run during exit
  return *h;
}

// ---- IR generation -----------------------------------------------------------------------------

class Emitter {
 public:
  Emitter(IRBuilder<>& b, llvm::Module& m, const Program& p, llvm::Type* t) : b_(b), m_(m), p_(p), t_(t) {}

  // Renders instruction `id` on operands of type `ty` (T or <W x T>).
  Value* prim(const Instr& in, Value* x, Value* y, Value* z, llvm::Type* ty) {
    auto constant = [&](double v) { return llvm::ConstantFP::get(ty, v); };
    auto intrinsic = [&](llvm::Intrinsic::ID id, std::vector<Value*> args) {
      return b_.CreateCall(llvm::Intrinsic::getDeclaration(&m_, id, {ty}), args);
    };
    auto is_nan = [&](Value* v) { return b_.CreateFCmpUNO(v, v); };
    switch (in.op) {
      case Prim::Const: return constant(in.imm);
      case Prim::Add: return b_.CreateFAdd(x, y);
      case Prim::Sub: return b_.CreateFSub(x, y);
      case Prim::Mul: return b_.CreateFMul(x, y);
      case Prim::Div: return b_.CreateFDiv(x, y);
      case Prim::Neg: return b_.CreateFNeg(x);
      case Prim::Abs: return intrinsic(llvm::Intrinsic::fabs, {x});
      case Prim::Sqrt: return intrinsic(llvm::Intrinsic::sqrt, {x});
      case Prim::Floor: return intrinsic(llvm::Intrinsic::floor, {x});
      case Prim::Round: return intrinsic(llvm::Intrinsic::round, {x});
      case Prim::Exp: return emit_exp(b_, x);
      case Prim::Log: return emit_log(b_, x);
      case Prim::Sin: return emit_sin(b_, x);
      case Prim::Cos: return emit_cos(b_, x);
      case Prim::Atan: return emit_atan(b_, x);
      case Prim::Atan2: return emit_atan2(b_, x, y);
      case Prim::Asin: return emit_asin(b_, x);
      case Prim::Acos: return emit_acos(b_, x);
      case Prim::Min:
      case Prim::Max: {  // NaN-propagating
        Value* pick = in.op == Prim::Min ? b_.CreateFCmpOLT(x, y) : b_.CreateFCmpOGT(x, y);
        Value* r = b_.CreateSelect(pick, x, y);
        return b_.CreateSelect(is_nan(x), x, r);
      }
      case Prim::IfPos: return b_.CreateSelect(b_.CreateFCmpOGE(x, constant(0)), y, z);
      case Prim::Select: return b_.CreateSelect(b_.CreateFCmpUNE(x, constant(0)), y, z);
      case Prim::Lt: return b_.CreateSelect(b_.CreateFCmpOLT(x, y), constant(1), constant(0));
      case Prim::Le: return b_.CreateSelect(b_.CreateFCmpOLE(x, y), constant(1), constant(0));
      case Prim::Eq: return b_.CreateSelect(b_.CreateFCmpOEQ(x, y), constant(1), constant(0));
      case Prim::Ne: return b_.CreateSelect(b_.CreateFCmpUNE(x, y), constant(1), constant(0));
      case Prim::Load: break;
    }
    KEOPS_ASSERT(false, std::string("no rendering of primitive ") + prim_name(in.op));
  }

  // Emits every instruction of `level` at type `ty`; `load` renders Loads, `operand` fetches lower levels.
  template <class LoadFn>
  void emit_level(Level level, llvm::Type* ty, std::vector<Value*>& vals, LoadFn load) {
    for (size_t id = 0; id < p_.code.size(); ++id) {
      if (p_.level[id] != level) continue;
      const Instr& in = p_.code[id];
      if (in.op == Prim::Load) {
        vals[id] = load(in);
        continue;
      }
      if (in.op == Prim::Const) {
        vals[id] = llvm::ConstantFP::get(ty, in.imm);
        continue;
      }
      auto get = [&](int v) { return v < 0 ? nullptr : vals[v]; };
      vals[id] = prim(in, get(in.a), get(in.b), get(in.c), ty);
    }
  }

 private:
  IRBuilder<>& b_;
  llvm::Module& m_;
  const Program& p_;
  llvm::Type* t_;
};

void build_kernel(llvm::Module& m, const Program& p, Dtype dtype, const std::string& symbol) {
  KEOPS_ASSERT(p.reduction == ReductionKind::Sum, "the CPU backend was given a reduction it does not implement");
  llvm::LLVMContext& ctx = m.getContext();
  llvm::Type* t = dtype == Dtype::F32 ? llvm::Type::getFloatTy(ctx) : llvm::Type::getDoubleTy(ctx);
  llvm::Type* i64 = llvm::Type::getInt64Ty(ctx);
  llvm::Type* ptr = llvm::PointerType::getUnqual(llvm::Type::getInt8Ty(ctx));
  llvm::Type* tptr = llvm::PointerType::getUnqual(t);
  const int w = vector_width(dtype);
  llvm::Type* vt = llvm::FixedVectorType::get(t, w);

  auto* fty = llvm::FunctionType::get(llvm::Type::getVoidTy(ctx), {i64, i64, i64, i64, llvm::PointerType::getUnqual(ptr), ptr}, false);
  auto* fn = llvm::Function::Create(fty, llvm::Function::ExternalLinkage, symbol, m);
  fn->addFnAttr("target-cpu", host().cpu);
  fn->addFnAttr("target-features", host().features);
  if (host().avx512) {  // without these, LLVM splits 512-bit vectors in two on AVX-512 hosts
    fn->addFnAttr("prefer-vector-width", "512");
    fn->addFnAttr("min-legal-vector-width", "512");
  }
  fn->addFnAttr(llvm::Attribute::NoUnwind);
  for (unsigned a = 4; a < 6; ++a) fn->addParamAttr(a, llvm::Attribute::NoAlias);
  auto arg = fn->arg_begin();
  Value *start = &*arg++, *end = &*arg++, *n_inner = &*arg++, *ld = &*arg++, *args = &*arg++, *out_raw = &*arg++;

  IRBuilder<> b(ctx);
  llvm::FastMathFlags fmf;
  fmf.setAllowContract(true);  // fused multiply-add where the target has it
  b.setFastMathFlags(fmf);
  Emitter em(b, m, p, t);

  auto* entry = llvm::BasicBlock::Create(ctx, "entry", fn);
  auto* row_head = llvm::BasicBlock::Create(ctx, "row", fn);
  auto* vec_head = llvm::BasicBlock::Create(ctx, "vec", fn);
  auto* vec_body = llvm::BasicBlock::Create(ctx, "vec_body", fn);
  auto* vec_exit = llvm::BasicBlock::Create(ctx, "vec_exit", fn);
  auto* tail_head = llvm::BasicBlock::Create(ctx, "tail", fn);
  auto* tail_body = llvm::BasicBlock::Create(ctx, "tail_body", fn);
  auto* row_end = llvm::BasicBlock::Create(ctx, "row_end", fn);
  auto* done = llvm::BasicBlock::Create(ctx, "done", fn);

  // entry: argument base pointers and parameter-level values, computed once.
  b.SetInsertPoint(entry);
  std::vector<Value*> base(p.args.size());
  for (size_t pos = 0; pos < p.args.size(); ++pos) {
    Value* slot = b.CreateConstInBoundsGEP1_64(ptr, args, pos);
    base[pos] = b.CreatePointerCast(b.CreateLoad(ptr, slot), tptr);
  }
  Value* out = b.CreatePointerCast(out_raw, tptr);
  std::vector<Value*> scalar(p.code.size(), nullptr);
  em.emit_level(Level::Param, t, scalar, [&](const Instr& in) {
    return b.CreateLoad(t, b.CreateConstInBoundsGEP1_64(t, base[in.pos], in.comp));
  });
  Value* n_vec = b.CreateAnd(n_inner, llvm::ConstantInt::get(i64, ~int64_t(w - 1)));
  b.CreateCondBr(b.CreateICmpSLT(start, end), row_head, done);

  // row: outer-level values for row i.
  b.SetInsertPoint(row_head);
  llvm::PHINode* i = b.CreatePHI(i64, 2, "i");
  i->addIncoming(start, entry);
  em.emit_level(Level::Outer, t, scalar, [&](const Instr& in) {
    Value* idx = b.CreateAdd(b.CreateMul(i, llvm::ConstantInt::get(i64, p.args[in.pos].dim)), llvm::ConstantInt::get(i64, in.comp));
    return b.CreateLoad(t, b.CreateInBoundsGEP(t, base[in.pos], idx));
  });
  std::vector<Value*> vec(p.code.size(), nullptr);
  for (size_t id = 0; id < p.code.size(); ++id)
    if (p.level[id] != Level::Inner) vec[id] = b.CreateVectorSplat(w, scalar[id]);
  const size_t d = p.out.size();
  b.CreateCondBr(b.CreateICmpSGT(n_vec, llvm::ConstantInt::get(i64, 0)), vec_head, vec_exit);

  // vec: W consecutive j at a time.
  b.SetInsertPoint(vec_head);
  llvm::PHINode* j = b.CreatePHI(i64, 2, "j");
  j->addIncoming(llvm::ConstantInt::get(i64, 0), row_head);
  std::vector<llvm::PHINode*> acc(d);
  for (size_t k = 0; k < d; ++k) {
    acc[k] = b.CreatePHI(vt, 2);
    acc[k]->addIncoming(llvm::ConstantFP::get(vt, 0.0), row_head);
  }
  b.CreateBr(vec_body);
  b.SetInsertPoint(vec_body);
  em.emit_level(Level::Inner, vt, vec, [&](const Instr& in) {
    Value* idx = b.CreateAdd(b.CreateMul(ld, llvm::ConstantInt::get(i64, in.comp)), j);
    Value* addr = b.CreatePointerCast(b.CreateInBoundsGEP(t, base[in.pos], idx), llvm::PointerType::getUnqual(vt));
    return b.CreateAlignedLoad(vt, addr, llvm::Align(dtype_size(dtype)));
  });
  std::vector<Value*> acc_next(d);
  for (size_t k = 0; k < d; ++k) {
    acc_next[k] = b.CreateFAdd(acc[k], vec[p.out[k]]);
    acc[k]->addIncoming(acc_next[k], vec_body);
  }
  Value* j_next = b.CreateAdd(j, llvm::ConstantInt::get(i64, w));
  j->addIncoming(j_next, vec_body);
  b.CreateCondBr(b.CreateICmpSLT(j_next, n_vec), vec_head, vec_exit);
  // vec_exit: lane sums.
  b.SetInsertPoint(vec_exit);
  std::vector<llvm::PHINode*> acc_final(d);
  for (size_t k = 0; k < d; ++k) {  // all PHIs first: a block starts with its PHIs
    acc_final[k] = b.CreatePHI(vt, 2);
    acc_final[k]->addIncoming(llvm::ConstantFP::get(vt, 0.0), row_head);
    acc_final[k]->addIncoming(acc_next[k], vec_body);
  }
  std::vector<Value*> lane_sum(d);
  for (size_t k = 0; k < d; ++k) lane_sum[k] = b.CreateFAddReduce(llvm::ConstantFP::get(t, -0.0), acc_final[k]);
  b.CreateCondBr(b.CreateICmpSLT(n_vec, n_inner), tail_head, row_end);

  // tail: the last n_inner mod W values of j, one at a time.
  b.SetInsertPoint(tail_head);
  llvm::PHINode* jt = b.CreatePHI(i64, 2, "jt");
  jt->addIncoming(n_vec, vec_exit);
  std::vector<llvm::PHINode*> tacc(d);
  for (size_t k = 0; k < d; ++k) {
    tacc[k] = b.CreatePHI(t, 2);
    tacc[k]->addIncoming(lane_sum[k], vec_exit);
  }
  b.CreateBr(tail_body);
  b.SetInsertPoint(tail_body);
  std::vector<Value*> tail_vals = scalar;
  em.emit_level(Level::Inner, t, tail_vals, [&](const Instr& in) {
    Value* idx = b.CreateAdd(b.CreateMul(ld, llvm::ConstantInt::get(i64, in.comp)), jt);
    return b.CreateLoad(t, b.CreateInBoundsGEP(t, base[in.pos], idx));
  });
  std::vector<Value*> tacc_next(d);
  for (size_t k = 0; k < d; ++k) {
    tacc_next[k] = b.CreateFAdd(tacc[k], tail_vals[p.out[k]]);
    tacc[k]->addIncoming(tacc_next[k], tail_body);
  }
  Value* jt_next = b.CreateAdd(jt, llvm::ConstantInt::get(i64, 1));
  jt->addIncoming(jt_next, tail_body);
  b.CreateCondBr(b.CreateICmpSLT(jt_next, n_inner), tail_head, row_end);

  // row_end: store the row, next i.
  b.SetInsertPoint(row_end);
  std::vector<llvm::PHINode*> result(d);
  for (size_t k = 0; k < d; ++k) {
    result[k] = b.CreatePHI(t, 2);
    result[k]->addIncoming(lane_sum[k], vec_exit);
    result[k]->addIncoming(tacc_next[k], tail_body);
  }
  for (size_t k = 0; k < d; ++k) {
    Value* idx = b.CreateAdd(b.CreateMul(i, llvm::ConstantInt::get(i64, d)), llvm::ConstantInt::get(i64, k));
    b.CreateStore(result[k], b.CreateInBoundsGEP(t, out, idx));
  }
  Value* i_next = b.CreateAdd(i, llvm::ConstantInt::get(i64, 1));
  i->addIncoming(i_next, row_end);
  b.CreateCondBr(b.CreateICmpSLT(i_next, end), row_head, done);

  b.SetInsertPoint(done);
  b.CreateRetVoid();

  std::string err;
  llvm::raw_string_ostream os(err);
  if (llvm::verifyFunction(*fn, &os)) internal_failure(__FILE__, __LINE__, "generated IR is invalid: " + os.str());
}

void optimize(llvm::Module& m) {
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  llvm::PassBuilder pb(host().tm.get());
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cgam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cgam, mam);
  pb.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O3).run(m, mam);
}

std::unique_ptr<llvm::Module> build_module(llvm::LLVMContext& ctx, const Program& p, Dtype dtype, const std::string& symbol) {
  auto m = std::make_unique<llvm::Module>(symbol, ctx);
  m->setDataLayout(host().tm->createDataLayout());
  m->setTargetTriple(host().tm->getTargetTriple().str());
  build_kernel(*m, p, dtype, symbol);
  optimize(*m);
  return m;
}

std::mutex& jit_mutex() {
  static std::mutex m;
  return m;
}

llvm::orc::LLJIT& jit() {
  static llvm::orc::LLJIT* j = [] {
    auto built = unwrap(llvm::orc::LLJITBuilder().setJITTargetMachineBuilder(host().jtmb).create(), "creating the JIT");
    // Optimised code may call memset/memcpy: resolve them from the process.
    char prefix = built->getDataLayout().getGlobalPrefix();
    built->getMainJITDylib().addGenerator(
        unwrap(llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(prefix), "process symbols"));
    return built.release();  // never destroyed: kernels may run during exit
  }();
  return *j;
}

}  // namespace

const std::string& host_signature() { return host().signature; }

int vector_width(Dtype dtype) {
  int bytes = host().avx512 ? 64 : host().avx ? 32 : 16;
  return bytes / dtype_size(dtype);
}

std::string compile_object(const Program& p, Dtype dtype, const std::string& symbol) {
  std::lock_guard<std::mutex> lock(jit_mutex());
  llvm::LLVMContext ctx;
  auto m = build_module(ctx, p, dtype, symbol);
  llvm::SmallVector<char, 0> buffer;
  llvm::raw_svector_ostream os(buffer);
  llvm::legacy::PassManager pm;
  if (host().tm->addPassesToEmitFile(pm, os, nullptr, kObjectFile))
    internal_failure(__FILE__, __LINE__, "the target cannot emit object files");
  pm.run(*m);
  return std::string(buffer.begin(), buffer.end());
}

KernelFn load_object(const std::string& object, const std::string& symbol) {
  std::lock_guard<std::mutex> lock(jit_mutex());
  // A symbol is linked once per process, even if the kernel cache forgot it (clear_memory_cache).
  static std::unordered_map<std::string, KernelFn> linked;
  if (auto it = linked.find(symbol); it != linked.end()) return it->second;
  auto buffer = llvm::MemoryBuffer::getMemBufferCopy(object, symbol);
  if (auto e = jit().addObjectFile(std::move(buffer))) internal_failure(__FILE__, __LINE__, "linking a kernel: " + check(std::move(e)));
  auto sym = jit().lookup(symbol);
  if (!sym) internal_failure(__FILE__, __LINE__, "looking up a kernel: " + check(sym.takeError()));
#if LLVM_VERSION_MAJOR >= 15
  KernelFn fn = sym->toPtr<KernelFn>();
#else
  KernelFn fn = reinterpret_cast<KernelFn>(sym->getAddress());
#endif
  linked.emplace(symbol, fn);
  return fn;
}

std::string optimized_ir(const Program& p, Dtype dtype) {
  std::lock_guard<std::mutex> lock(jit_mutex());
  llvm::LLVMContext ctx;
  auto m = build_module(ctx, p, dtype, "keops_inspect");
  std::string text;
  llvm::raw_string_ostream os(text);
  m->print(os, nullptr);
  return os.str();
}

}  // namespace keops::cpu
