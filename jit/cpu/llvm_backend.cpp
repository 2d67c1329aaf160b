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
#if LLVM_VERSION_MAJOR >= 17
#include <llvm/TargetParser/Host.h>
#else
#include <llvm/Support/Host.h>
#endif
#include <llvm/Support/MemoryBuffer.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Target/TargetMachine.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <unordered_map>

#include "../../core/errors.h"
#include "../../core/reduction_rules.h"
#include "../../core/reroll.h"
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
    llvm::SubtargetFeatures f;
#if LLVM_VERSION_MAJOR >= 19
    llvm::StringMap<bool> host_features = llvm::sys::getHostCPUFeatures();
#else
    llvm::StringMap<bool> host_features;
    llvm::sys::getHostCPUFeatures(host_features);
#endif
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

// Marks the loop whose back edge is `latch` as not to be unrolled. LLVM unrolled the loops over rows, intervals,
// list entries and passing lanes, copying the vector loop or the rules' code inside them (up to 7 times): compile
// time for code that runs once per row or rarely. Only the vector loop and the LoopSum loops are left to unroll.
void keep_rolled(llvm::Instruction* latch) {
  llvm::LLVMContext& ctx = latch->getContext();
  llvm::MDNode* disable = llvm::MDNode::get(ctx, llvm::MDString::get(ctx, "llvm.loop.unroll.disable"));
  llvm::MDNode* loop = llvm::MDNode::getDistinct(ctx, {nullptr, disable});
  loop->replaceOperandWith(0, loop);
  latch->setMetadata(llvm::LLVMContext::MD_loop, loop);
}

// ---- IR generation -----------------------------------------------------------------------------

class Emitter {
 public:
  Emitter(IRBuilder<>& b, llvm::Module& m, const Program& p, llvm::Type* t)
      : b_(b), m_(m), p_(p), t_(t), in_body_(p.code.size(), 0), row_dep_(p.code.size(), 0) {
    for (size_t id = 0; id < p.code.size(); ++id) {
      const Instr& in = p.code[id];
      if (in.op == Prim::LoopSum) std::fill(in_body_.begin() + in.b, in_body_.begin() + id, 1);
      bool dep = p.level[id] == Level::Outer || (in.op == Prim::Load && p.args[in.pos].cat == p.tag) ||
                 (in.op == Prim::Index && in.comp == p.tag);
      for (int x : {in.a, in.op == Prim::LoopSum ? -1 : in.b, in.c}) dep = dep || (x >= 0 && row_dep_[x]);
      row_dep_[id] = dep;
    }
    for (const Instr& in : p.code)
      if (is_math(in.op)) ++math_uses_[in.op], ++math_total_;
  }

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
      case Prim::Exp: case Prim::Log: case Prim::Sin: case Prim::Cos: case Prim::Atan: case Prim::Asin:
      case Prim::Acos: return math(in.op, {x}, ty);
      case Prim::Atan2: return math(in.op, {x, y}, ty);
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
      case Prim::Load: case Prim::Index: case Prim::LoopSum: break;
    }
    KEOPS_ASSERT(false, std::string("no rendering of primitive ") + prim_name(in.op));
  }

  // Math functions are long straight-line code (30-90 instructions each). A program with more than kInlineMath of
  // them calls one internal, never-inlined copy per function and type for each function it uses more than once:
  // hundreds of inlined copies made optimisation and instruction selection take seconds (300 nested Sin: 12 s, vs
  // 0.12 s with calls; benchmarks/bench_compile.py). Below that, inline: a call clobbers every vector register, and
  // 12 Exp terms ran 1.6 times slower as calls.
  static constexpr int kInlineMath = 32;
  static bool is_math(Prim op) {
    return op == Prim::Exp || op == Prim::Log || op == Prim::Sin || op == Prim::Cos || op == Prim::Atan ||
           op == Prim::Atan2 || op == Prim::Asin || op == Prim::Acos;
  }

  Value* math(Prim op, const std::vector<Value*>& args, llvm::Type* ty) {
    auto body = [op](llvm::IRBuilderBase& b, const std::vector<Value*>& a) {
      switch (op) {
        case Prim::Exp: return emit_exp(b, a[0]);
        case Prim::Log: return emit_log(b, a[0]);
        case Prim::Sin: return emit_sin(b, a[0]);
        case Prim::Cos: return emit_cos(b, a[0]);
        case Prim::Atan: return emit_atan(b, a[0]);
        case Prim::Atan2: return emit_atan2(b, a[0], a[1]);
        case Prim::Asin: return emit_asin(b, a[0]);
        default: return emit_acos(b, a[0]);
      }
    };
    if (math_total_ <= kInlineMath || math_uses_[op] < 2) return body(b_, args);
    llvm::Function*& f = outlined_[{op, ty}];
    if (!f) {
      auto* fty = llvm::FunctionType::get(ty, std::vector<llvm::Type*>(args.size(), ty), false);
      std::string name = std::string("keops_") + prim_name(op) + "_" + (ty->getScalarType()->isFloatTy() ? "f32" : "f64");
      if (auto* vt = llvm::dyn_cast<llvm::FixedVectorType>(ty)) name += "x" + std::to_string(vt->getNumElements());
      f = llvm::Function::Create(fty, llvm::Function::InternalLinkage, name, m_);
      const llvm::Function* kernel = b_.GetInsertBlock()->getParent();
      for (const char* k : {"target-cpu", "target-features", "prefer-vector-width", "min-legal-vector-width"})
        if (kernel->hasFnAttribute(k)) f->addFnAttr(kernel->getFnAttribute(k));
      f->addFnAttr(llvm::Attribute::NoInline);
      f->addFnAttr(llvm::Attribute::NoUnwind);
      f->addFnAttr(llvm::Attribute::WillReturn);
      f->setDoesNotAccessMemory();
      f->setCallingConv(llvm::CallingConv::Fast);
      IRBuilder<> fb(llvm::BasicBlock::Create(m_.getContext(), "entry", f));
      std::vector<Value*> params;
      for (llvm::Argument& a : f->args()) params.push_back(&a);
      fb.CreateRet(body(fb, params));
    }
    llvm::CallInst* call = b_.CreateCall(f, args);
    call->setCallingConv(llvm::CallingConv::Fast);
    return call;
  }

  // One value table per row of a tile of rows (a single table where there is one row).
  using Tables = std::vector<std::vector<Value*>*>;

  // Emits every instruction of `level` at type `ty` into the tables: once per row where the value depends on the
  // row, else once, shared. `load(in, k, r)` renders Loads and Index for row r (k: the loop counter, an i64, inside a
  // loop body; else null); lower levels are already in the tables. Loop bodies are emitted by their LoopSum.
  template <class LoadFn>
  void emit_level(Level level, llvm::Type* ty, const Tables& rows, LoadFn load) {
    for (size_t id = 0; id < p_.code.size(); ++id) {
      if (p_.level[id] != level || in_body_[id]) continue;
      if (p_.code[id].op == Prim::LoopSum) emit_loop(static_cast<int>(id), ty, rows, load);
      else emit_one(static_cast<int>(id), ty, rows, load, nullptr);
    }
  }

  // Whether value `id` differs between rows (it depends on the outer index).
  bool row_dependent(int id) const { return row_dep_[id]; }

 private:
  template <class LoadFn>
  void emit_one(int id, llvm::Type* ty, const Tables& rows, LoadFn& load, Value* k) {
    const Instr& in = p_.code[id];
    const size_t n = row_dep_[id] ? rows.size() : 1;
    for (size_t r = 0; r < n; ++r) {
      std::vector<Value*>& vals = *rows[r];
      auto get = [&](int v) { return v < 0 ? nullptr : vals[v]; };
      if (in.op == Prim::Load || in.op == Prim::Index) vals[id] = load(in, k, static_cast<int>(r));
      else if (in.op == Prim::Const) vals[id] = llvm::ConstantFP::get(ty, in.imm);
      else vals[id] = prim(in, get(in.a), get(in.b), get(in.c), ty);
    }
    for (size_t r = n; r < rows.size(); ++r) (*rows[r])[id] = (*rows[0])[id];
  }

  // A counted loop: k from 0 to imm - 1, the body at iteration k, its value added to the accumulator (one per row
  // where it depends on the row), which starts at c, or -0.0 (the exact identity of +). Rows share the values of the
  // body that do not depend on them (a loaded inner vector serves every row). LLVM unrolls it or not, by its size.
  template <class LoadFn>
  void emit_loop(int id, llvm::Type* ty, const Tables& rows, LoadFn& load) {
    const Instr& in = p_.code[id];
    const size_t n = row_dep_[id] ? rows.size() : 1;
    llvm::Function* fn = b_.GetInsertBlock()->getParent();
    llvm::BasicBlock* pre = b_.GetInsertBlock();
    auto* body = llvm::BasicBlock::Create(b_.getContext(), "loop", fn);
    auto* exit = llvm::BasicBlock::Create(b_.getContext(), "loop_done", fn);
    b_.CreateBr(body);
    b_.SetInsertPoint(body);
    llvm::PHINode* k = b_.CreatePHI(b_.getInt64Ty(), 2, "k");
    std::vector<llvm::PHINode*> acc;
    for (size_t r = 0; r < n; ++r) acc.push_back(b_.CreatePHI(ty, 2, "acc"));
    for (int x = in.b; x < id; ++x) emit_one(x, ty, rows, load, k);
    std::vector<Value*> next;
    for (size_t r = 0; r < n; ++r) next.push_back(b_.CreateFAdd(acc[r], (*rows[r])[in.a]));
    Value* k_next = b_.CreateAdd(k, b_.getInt64(1));
    llvm::BasicBlock* latch = b_.GetInsertBlock();
    k->addIncoming(b_.getInt64(0), pre);
    k->addIncoming(k_next, latch);
    for (size_t r = 0; r < n; ++r) {
      acc[r]->addIncoming(in.c >= 0 ? (*rows[r])[in.c] : llvm::ConstantFP::get(ty, -0.0), pre);
      acc[r]->addIncoming(next[r], latch);
    }
    b_.CreateCondBr(b_.CreateICmpSLT(k_next, b_.getInt64(static_cast<int64_t>(in.imm))), body, exit);
    b_.SetInsertPoint(exit);
    for (size_t r = 0; r < rows.size(); ++r) (*rows[r])[id] = next[r < n ? r : 0];
  }

  IRBuilder<>& b_;
  llvm::Module& m_;
  const Program& p_;
  llvm::Type* t_;
  std::vector<char> in_body_, row_dep_;  // per value: inside a loop body; depends on the outer index
  std::map<Prim, int> math_uses_;
  int math_total_ = 0;
  std::map<std::pair<Prim, llvm::Type*>, llvm::Function*> outlined_;
};

// ---- Reductions: the rules of core/reduction_rules.h rendered on IRBuilder, and the CPU's strategy around them ----

// The state of one reduction for one output row, at a width of W lanes (vector loop) or 1 (tails, merged result),
// in the slot order of the rules.
using Regs = std::vector<Value*>;

Value* ir(Val v) { return static_cast<Value*>(v.p); }
Val val(Value* v) { return Val{v}; }
llvm::Type* vec(llvm::Type* t, int w) { return w == 1 ? t : llvm::FixedVectorType::get(t, w); }
int width_of(Value* v) {
  auto* vt = llvm::dyn_cast<llvm::FixedVectorType>(v->getType());
  return vt ? (int)vt->getNumElements() : 1;
}

// Components of a row's state: the formula's, or the weights' for Max_SumShiftExpWeight (one without weights).
int components(const Program& p) {
  return p.reduction == ReductionKind::MaxSumShiftExpWeight ? std::max<int>(1, (int)p.out2.size()) : p.dim_formula;
}

// The CPU's rules: with lists (the K-reductions' heap for large K).
const ReductionRules& cpu_rules(const Program& p, const KernelOptions& o) { return reduction_rules(p.reduction, o.scheme, p.opt, true); }

// The rule builder on IRBuilder: values are scalars or <W x T> vectors; constants take the width `width`.
class IrRuleBuilder final : public RuleBuilder {
 public:
  IrRuleBuilder(IRBuilder<>& b, const Program& p, llvm::Type* t, llvm::Type* acc) : b_(b), t_(t), acc_(acc) {
    for (const OutputSpec& s : output_specs(p)) cols_.push_back(s.cols);
  }
  int width = 1;
  std::vector<Value*> outs;  // for put: the output arrays and the row
  Value* row = nullptr;

  llvm::Type* type(SlotKind k) const { return k == SlotKind::Index ? b_.getInt64Ty() : k == SlotKind::Value ? t_ : acc_; }

  Val constant(SlotKind kind, double x) override {
    llvm::Type* ty = vec(type(kind), width);
    if (kind != SlotKind::Index) return val(llvm::ConstantFP::get(ty, x));
    return val(llvm::ConstantInt::get(ty, x >= (double)kNoIndex ? kNoIndex : (int64_t)x, true));
  }
  Val add(Val a, Val b) override { return val(b_.CreateFAdd(ir(a), ir(b))); }
  Val sub(Val a, Val b) override { return val(b_.CreateFSub(ir(a), ir(b))); }
  Val mul(Val a, Val b) override { return val(b_.CreateFMul(ir(a), ir(b))); }
  Val neg(Val a) override { return val(b_.CreateFNeg(ir(a))); }
  Val abs(Val a) override {
    llvm::Module* m = b_.GetInsertBlock()->getModule();
    return val(b_.CreateCall(llvm::Intrinsic::getDeclaration(m, llvm::Intrinsic::fabs, {ir(a)->getType()}), {ir(a)}));
  }
  Val exp(Val a) override { return val(emit_exp(b_, ir(a))); }
  Val lt(Val a, Val b) override { return val(b_.CreateFCmpOLT(ir(a), ir(b))); }
  Val gt(Val a, Val b) override { return val(b_.CreateFCmpOGT(ir(a), ir(b))); }
  Val eq(Val a, Val b) override { return val(b_.CreateFCmpOEQ(ir(a), ir(b))); }
  Val uno(Val a, Val b) override { return val(b_.CreateFCmpUNO(ir(a), ir(b))); }
  Val both(Val m, Val n) override { return val(b_.CreateAnd(ir(m), ir(n))); }
  Val either(Val m, Val n) override { return val(b_.CreateOr(ir(m), ir(n))); }
  Val negate(Val m) override { return val(b_.CreateNot(ir(m))); }
  Val select(Val m, Val a, Val b) override { return val(b_.CreateSelect(ir(m), ir(a), ir(b))); }
  Val index_lt(Val i, Val j) override { return val(b_.CreateICmpSLT(ir(i), ir(j))); }
  Val to_acc(Val a) override {
    Value* v = ir(a);
    return v->getType()->getScalarType() == acc_ ? a : val(b_.CreateFPExt(v, vec(acc_, width_of(v))));
  }
  Val round_acc(Val a) override { return a; }

  // A conditional branch around `body`, the changed slots joined by PHIs.
  void when(Val m, State& st, const std::vector<int>& slots, const std::function<void()>& body) override {
    llvm::Function* fn = b_.GetInsertBlock()->getParent();
    llvm::BasicBlock* before = b_.GetInsertBlock();
    auto* then = llvm::BasicBlock::Create(b_.getContext(), "insert", fn);
    auto* after = llvm::BasicBlock::Create(b_.getContext(), "inserted", fn);
    b_.CreateCondBr(ir(m), then, after);
    b_.SetInsertPoint(then);
    const std::vector<Val> kept = st.v;
    body();
    llvm::BasicBlock* then_end = b_.GetInsertBlock();
    b_.CreateBr(after);
    b_.SetInsertPoint(after);
    join(st, kept, slots, before, then_end);
  }
  // Where two paths meet: each st.v[k], k in slots, becomes the PHI of kept[k] (coming from a) and st.v[k] (from b).
  void join(State& st, const std::vector<Val>& kept, const std::vector<int>& slots, llvm::BasicBlock* a, llvm::BasicBlock* b) {
    for (int k : slots) {
      llvm::PHINode* phi = b_.CreatePHI(ir(kept[k])->getType(), 2);
      phi->addIncoming(ir(kept[k]), a);
      phi->addIncoming(ir(st.v[k]), b);
      st.v[k] = val(phi);
    }
  }

  void put(int out, int col, int comp, Val v) override { put_value(out, b_.getInt64(col + comp), v); }
  void put_once(int out, int col, Val v) override { put(out, col, 0, v); }
  void put_index(int out, int col, int comp, Val j) override { put_idx(out, b_.getInt64(col + comp), j); }
  void put_at(int out, Val rank, int stride, int comp, Val v, bool index) override {
    Value* col = b_.CreateAdd(b_.CreateMul(ir(rank), b_.getInt64(stride)), b_.getInt64(comp));
    index ? put_idx(out, col, v) : put_value(out, col, v);
  }

  // Lists: stack arrays, allocated once in the entry block (a row re-initialises its lists).
  Val list(SlotKind kind, int n) override {
    llvm::BasicBlock& entry = b_.GetInsertBlock()->getParent()->getEntryBlock();
    IRBuilder<> at(&entry, entry.begin());
    return val(at.CreatePointerCast(at.CreateAlloca(llvm::ArrayType::get(type(kind), n)), llvm::PointerType::getUnqual(type(kind))));
  }
  Val get(Val list, SlotKind kind, Val i) override {
    llvm::Type* et = type(kind);
    return val(b_.CreateLoad(et, b_.CreateInBoundsGEP(et, ir(list), ir(i))));
  }
  void set(Val list, Val i, Val v) override { b_.CreateStore(ir(v), b_.CreateInBoundsGEP(ir(v)->getType(), ir(list), ir(i))); }
  Val index_add(Val i, Val j) override { return val(b_.CreateAdd(ir(i), ir(j))); }
  // header: PHIs of vars, head(); body: body(), back to header; exit: vars hold the header's PHIs.
  void loop(std::vector<Val>& vars, const std::function<Val()>& head, const std::function<void()>& body) override {
    llvm::Function* fn = b_.GetInsertBlock()->getParent();
    llvm::BasicBlock* pre = b_.GetInsertBlock();
    auto* header = llvm::BasicBlock::Create(b_.getContext(), "list_loop", fn);
    auto* inside = llvm::BasicBlock::Create(b_.getContext(), "list_body", fn);
    auto* exit = llvm::BasicBlock::Create(b_.getContext(), "list_done", fn);
    b_.CreateBr(header);
    b_.SetInsertPoint(header);
    std::vector<llvm::PHINode*> phis;
    for (Val& v : vars) {
      phis.push_back(b_.CreatePHI(ir(v)->getType(), 2));
      phis.back()->addIncoming(ir(v), pre);
      v = val(phis.back());
    }
    b_.CreateCondBr(ir(head()), inside, exit);
    b_.SetInsertPoint(inside);
    body();
    for (size_t k = 0; k < vars.size(); ++k) phis[k]->addIncoming(ir(vars[k]), b_.GetInsertBlock());
    keep_rolled(b_.CreateBr(header));
    b_.SetInsertPoint(exit);
    for (size_t k = 0; k < vars.size(); ++k) vars[k] = val(phis[k]);
  }

 private:
  void put_value(int out, Value* col, Val v) {
    Value* x = ir(v);
    if (x->getType() != t_) x = b_.CreateFPTrunc(x, t_);
    write(out, col, x);
  }
  void put_idx(int out, Value* col, Val j) {
    write(out, col, b_.CreateSelect(b_.CreateICmpEQ(ir(j), b_.getInt64(kNoIndex)), b_.getInt64(-1), ir(j)));
  }
  void write(int out, Value* col, Value* v) {
    llvm::Type* et = v->getType();
    Value* idx = b_.CreateAdd(b_.CreateMul(row, b_.getInt64(cols_[out])), col);
    b_.CreateStore(v, b_.CreateInBoundsGEP(et, b_.CreatePointerCast(outs[out], llvm::PointerType::getUnqual(et)), idx));
  }
  IRBuilder<>& b_;
  llvm::Type *t_, *acc_;
  std::vector<int> cols_;
};

// A row's reduction on the CPU: the rules, at the width of the loop that runs them. Reductions of (value, index)
// pairs keep one scalar state per row, also in the vector loop: W candidates are filtered by one vector compare
// (see filter_lanes). The others keep one state per lane, merged at the end of the row.
class CpuReduction {
 public:
  CpuReduction(IRBuilder<>& b, const Program& p, const KernelOptions& o, llvm::Type* t, llvm::Type* acc)
      : b_(b), rules_(cpu_rules(p, o)), ir_(b, p, t, acc) {
    shape_ = empty_state(rules_, components(p), p.opt, p.dim_formula, !p.out2.empty());
    pairs_ = shape_.n > 0 && rules_.pairs();
  }

  // A list slot is the address of its array.
  std::vector<llvm::Type*> types(int w) const {
    std::vector<llvm::Type*> ts;
    for (const Slot& s : keops::state_slots(rules_, shape_.n, shape_.k))
      ts.push_back(s.n ? llvm::PointerType::getUnqual(ir_.type(s.kind)) : vec(ir_.type(s.kind), width(w)));
    return ts;
  }

  // Vector registers a row's state holds in the vector loop: a selection's scalar state waits in memory but for the
  // pair to beat, which the filter compares with.
  int live_vectors(int w) const { return pairs_ ? 1 : static_cast<int>(types(w).size()); }

  Regs init(int w) {
    State st = shape_;
    ir_.width = width(w);
    init_state(ir_, rules_, st);
    return regs(st);
  }

  // Folds the formula's values `f` (and weights `g`) at reduced indices `j` into the state, for the lanes where
  // `lanes` (a <W x i1>, or null: all) is true: the others are outside the interval and leave the state as it was.
  Regs update(const Regs& r, const std::vector<Value*>& f, const std::vector<Value*>& g, Value* j, Value* lanes) {
    State st = state(r);
    if (f.empty()) return r;
    ir_.width = width_of(f[0]);
    if (pairs_ && ir_.width > 1) {
      for (int c = 0; c < st.n; ++c) filter_lanes(st, c, f[c], j, lanes);
      return regs(st);
    }
    std::vector<Val> fv, gv;
    for (Value* x : f) fv.push_back(val(x));
    for (Value* x : g) gv.push_back(val(x));
    rules_.update(ir_, st, fv, gv, val(j));
    Regs next = regs(st);
    if (lanes)
      for (size_t k = 0; k < next.size(); ++k) next[k] = b_.CreateSelect(lanes, next[k], r[k]);
    return next;
  }

  // The end of an interval of j (block sums fold their block into the total).
  Regs flush(const Regs& r) {
    if (r.empty()) return r;
    State st = state(r);
    ir_.width = width_of(r[0]);
    rules_.flush(ir_, st);
    return regs(st);
  }

  // Folds every lane of a W-wide state into a scalar state. Pairs keep one scalar state, which holds the row's
  // result already (a resumed row starts its vector loop from the saved state): `scalar` is then the initial state.
  Regs merge(const Regs& scalar, const Regs& lanes, int w) {
    if (width(w) == 1) return lanes;
    State st = state(scalar);
    ir_.width = 1;
    for (int l = 0; l < w; ++l) {
      Regs lane;
      for (Value* v : lanes) lane.push_back(b_.CreateExtractElement(v, uint64_t(l)));
      rules_.combine(ir_, st, state(lane));
    }
    return regs(st);
  }

  // Writes the finished scalar state of row `i` into the output arrays.
  void store(const Regs& r, const std::vector<Value*>& outs, Value* i) {
    State st = state(r);
    ir_.width = 1;
    ir_.outs = outs;
    ir_.row = i;
    rules_.store(ir_, st);
  }

 private:
  int width(int w) const { return pairs_ ? 1 : w; }
  State state(const Regs& r) const {
    State st = shape_;
    for (size_t k = 0; k < r.size(); ++k) st.v[k] = val(r[k]);
    return st;
  }
  static Regs regs(const State& st) {
    Regs r;
    for (Val v : st.v) r.push_back(ir(v));
    return r;
  }

  // W candidates (vv, vj) of component c against a scalar state: one vector compare with the pair to beat (the
  // best pair, or a K-list's last entry) filters them, and the lanes that pass go to the rules' update_one, in lane
  // order. After the first tiles almost none pass (a row of N values changes its best about log N times, its K best
  // about K log(N/K) times), so a tile costs the formula and one compare.
  void filter_lanes(State& st, int c, Value* vv, Value* vj, Value* lanes) {
    ir_.width = 1;
    const auto [key_s, key_j_s] = rules_.to_beat(ir_, st, c);
    std::vector<int> slots;
    for (int s = 0; s < st.per; ++s) slots.push_back(st.slot(c, s));
    const int w = width_of(vv);
    llvm::Type* mask_t = b_.getIntNTy(w);
    // A superset of the rules' better pair, as cheap as the plain compare: lanes that beat the key or tie it (NaN
    // included) at a smaller index; every lane while the key is NaN (no number yet). update_one decides exactly.
    Value *key = ir(key_s), *key_v = b_.CreateVectorSplat(w, key), *key_j_v = b_.CreateVectorSplat(w, ir(key_j_s));
    Value* better = rules_.max ? b_.CreateFCmpOGT(vv, key_v) : b_.CreateFCmpOLT(vv, key_v);
    Value* pass = b_.CreateOr(better, b_.CreateAnd(b_.CreateFCmpUEQ(vv, key_v), b_.CreateICmpSLT(vj, key_j_v)));
    pass = b_.CreateOr(pass, b_.CreateVectorSplat(w, b_.CreateFCmpUNO(key, key)));
    if (lanes) pass = b_.CreateAnd(pass, lanes);
    Value* mask = b_.CreateBitCast(pass, mask_t);
    llvm::Function* fn = b_.GetInsertBlock()->getParent();
    llvm::BasicBlock* before = b_.GetInsertBlock();
    auto* loop = llvm::BasicBlock::Create(b_.getContext(), "lanes", fn);
    auto* after = llvm::BasicBlock::Create(b_.getContext(), "lanes_done", fn);
    b_.CreateCondBr(b_.CreateICmpNE(mask, llvm::ConstantInt::get(mask_t, 0)), loop, after);
    b_.SetInsertPoint(loop);
    llvm::PHINode* m = b_.CreatePHI(mask_t, 2);
    m->addIncoming(mask, before);
    const std::vector<Val> kept = st.v;
    std::vector<llvm::PHINode*> phis;
    for (int k : slots) {
      phis.push_back(b_.CreatePHI(ir(st.v[k])->getType(), 2));
      phis.back()->addIncoming(ir(st.v[k]), before);
      st.v[k] = val(phis.back());
    }
    Value* lane = b_.CreateBinaryIntrinsic(llvm::Intrinsic::cttz, m, b_.getTrue());
    rules_.update_one(ir_, st, c, val(b_.CreateExtractElement(vv, lane)), val(b_.CreateExtractElement(vj, lane)));
    Value* m_next = b_.CreateAnd(m, b_.CreateSub(m, llvm::ConstantInt::get(mask_t, 1)));
    llvm::BasicBlock* latch = b_.GetInsertBlock();
    m->addIncoming(m_next, latch);
    for (size_t k = 0; k < slots.size(); ++k) phis[k]->addIncoming(ir(st.v[slots[k]]), latch);
    keep_rolled(b_.CreateCondBr(b_.CreateICmpNE(m_next, llvm::ConstantInt::get(mask_t, 0)), loop, after));
    b_.SetInsertPoint(after);
    ir_.join(st, kept, slots, before, latch);
    ir_.width = w;
  }

  IRBuilder<>& b_;
  const ReductionRules& rules_;
  IrRuleBuilder ir_;
  State shape_;
  bool pairs_ = false;
};

// PHI nodes for a state, created at the top of the current block.
std::vector<llvm::PHINode*> state_phis(IRBuilder<>& b, const std::vector<llvm::Type*>& types) {
  std::vector<llvm::PHINode*> phis;
  for (llvm::Type* t : types) phis.push_back(b.CreatePHI(t, 2));
  return phis;
}
Regs as_state(const std::vector<llvm::PHINode*>& phis) { return Regs(phis.begin(), phis.end()); }
void add_incoming(std::vector<llvm::PHINode*>& phis, const Regs& st, llvm::BasicBlock* from) {
  for (size_t k = 0; k < phis.size(); ++k) phis[k]->addIncoming(st[k], from);
}
// The states of a tile's rows, one after the other (n slots each): row r's, and back.
Regs slice(const Regs& st, int r, size_t n) { return Regs(st.begin() + r * n, st.begin() + (r + 1) * n); }
template <class F>
Regs per_row(int rows, F f) {
  Regs all;
  for (int r = 0; r < rows; ++r) {
    Regs one = f(r);
    all.insert(all.end(), one.begin(), one.end());
  }
  return all;
}
template <class T>
std::vector<T> repeat(const std::vector<T>& v, int n) {
  std::vector<T> r;
  for (int k = 0; k < n; ++k) r.insert(r.end(), v.begin(), v.end());
  return r;
}

// Rows per tile: a loaded inner vector then serves that many rows (register tiling, as a GEMM micro-kernel does),
// as long as the rows' live vectors (states, outer values the inner code reads, temporaries) fit the register file
// and the code repeated per row stays small.
int tile_rows(const Program& p, const Emitter& em, int state_vectors, int registers) {
  int per_row_code = 0;
  std::vector<char> read(p.code.size(), 0);
  for (size_t id = 0; id < p.code.size(); ++id) {
    if (p.level[id] != Level::Inner || !em.row_dependent(static_cast<int>(id))) continue;
    ++per_row_code;
    const Instr& in = p.code[id];
    for (int x : {in.a, in.op == Prim::LoopSum ? -1 : in.b, in.c})
      if (x >= 0 && p.level[x] == Level::Outer) read[x] = 1;
  }
  if (per_row_code == 0) return 1;
  const int live = state_vectors + static_cast<int>(std::count(read.begin(), read.end(), 1)) + 2;
  int rows = 8;
  while (rows > 1 && (rows * live > registers || rows * per_row_code > 2048)) rows /= 2;
  return rows;
}

// The kernel: for each tile of R output rows in [start, end) (then single rows for the rest), for each interval
// [j0, j1) of reduced indices, a loop over the tiles of W consecutive j that meet it, lanes outside the interval
// masked off (vector states; selections keep a scalar state and filter the lanes); lanes are merged at the end of the
// rows. The rows of a tile share the inner code that does not depend on them. Inner variables of dim > 1 are read
// from a tile-major copy (tiles of W indices, component by component, padded to whole tiles) so that a vector load
// is W contiguous values; dim-1 ones in place, by masked loads.
void build_kernel(llvm::Module& m, const Program& p, const KernelOptions& o, const std::string& symbol) {
  llvm::LLVMContext& ctx = m.getContext();
  auto fp = [&](Dtype d) { return d == Dtype::F32 ? llvm::Type::getFloatTy(ctx) : llvm::Type::getDoubleTy(ctx); };
  llvm::Type *t = fp(o.dtype), *acc = fp(o.acc);
  llvm::Type* i64 = llvm::Type::getInt64Ty(ctx);
  llvm::Type* ptr = llvm::PointerType::getUnqual(llvm::Type::getInt8Ty(ctx));
  llvm::Type* tptr = llvm::PointerType::getUnqual(t);
  const int w = vector_width(o.dtype);
  llvm::Type* vt = llvm::FixedVectorType::get(t, w);

  // void f(i64 start, i64 end, const i64* intervals, i64 n_intervals, const void** args, void** outs, i64* scratch,
  //        i64 mode): see KernelFn
  auto* fty = llvm::FunctionType::get(llvm::Type::getVoidTy(ctx),
                                      {i64, i64, llvm::PointerType::getUnqual(i64), i64, llvm::PointerType::getUnqual(ptr),
                                       llvm::PointerType::getUnqual(ptr), llvm::PointerType::getUnqual(i64), i64}, false);
  auto* fn = llvm::Function::Create(fty, llvm::Function::ExternalLinkage, symbol, m);
  fn->addFnAttr("target-cpu", host().cpu);
  fn->addFnAttr("target-features", host().features);
  if (host().avx512) {  // without these, LLVM splits 512-bit vectors in two on AVX-512 hosts
    fn->addFnAttr("prefer-vector-width", "512");
    fn->addFnAttr("min-legal-vector-width", "512");
  }
  fn->addFnAttr(llvm::Attribute::NoUnwind);
  auto arg = fn->arg_begin();
  Value *start = &*arg++, *end = &*arg++, *intervals = &*arg++, *n_intervals = &*arg++;
  Value *args = &*arg++, *outs_raw = &*arg++, *scratch = &*arg++, *mode = &*arg++;

  IRBuilder<> b(ctx);
  llvm::FastMathFlags fmf;
  fmf.setAllowContract(true);  // fused multiply-add where the target has it
  b.setFastMathFlags(fmf);
  Emitter em(b, m, p, t);
  CpuReduction red(b, p, o, t, acc);
  const int64_t W = w;
  auto block = [&](const char* name) { return llvm::BasicBlock::Create(ctx, name, fn); };

  // entry: argument and output pointers, parameter-level values (computed once per call).
  b.SetInsertPoint(block("entry"));
  std::vector<Value*> base(p.args.size());
  for (size_t pos = 0; pos < p.args.size(); ++pos)
    base[pos] = b.CreatePointerCast(b.CreateLoad(ptr, b.CreateConstInBoundsGEP1_64(ptr, args, pos)), tptr);
  std::vector<Value*> outs;
  for (size_t k = 0; k < output_specs(p).size(); ++k)
    outs.push_back(b.CreateLoad(ptr, b.CreateConstInBoundsGEP1_64(ptr, outs_raw, k)));
  // Component of a Load: comp, plus k * step in a loop body (k: the loop counter).
  auto comp_of = [&](const Instr& in, Value* k) -> Value* {
    Value* c = b.getInt64(in.comp);
    return k && in.step ? b.CreateAdd(c, b.CreateMul(k, b.getInt64(in.step))) : c;
  };
  auto is_inner = [&](const Instr& in) { return p.args[in.pos].cat != 2 && p.args[in.pos].cat != p.tag; };
  // A parameter, or an outer variable at row `row`: one scalar.
  auto outer_load = [&](const Instr& in, Value* k, Value* row) -> Value* {
    Value* idx = comp_of(in, k);
    if (p.args[in.pos].cat != 2) idx = b.CreateAdd(b.CreateMul(row, b.getInt64(p.args[in.pos].dim)), idx);
    return b.CreateLoad(t, b.CreateInBoundsGEP(t, base[in.pos], idx));
  };
  auto pick = [&](const std::vector<Value*>& vals, const std::vector<int>& ids) {
    std::vector<Value*> r;
    for (int id : ids) r.push_back(vals[id]);
    return r;
  };
  auto tables = [](std::vector<std::vector<Value*>>& v) {
    Emitter::Tables r;
    for (auto& x : v) r.push_back(&x);
    return r;
  };
  std::vector<Value*> params(p.code.size(), nullptr);
  em.emit_level(Level::Param, t, {&params}, [&](const Instr& in, Value* k, int) { return outer_load(in, k, nullptr); });
  Value* lane_ids = llvm::ConstantVector::get([&] {
    std::vector<llvm::Constant*> ids;
    for (int l = 0; l < w; ++l) ids.push_back(llvm::ConstantInt::get(i64, l));
    return ids;
  }());
  const std::vector<llvm::Type*> slot_types = red.types(1);
  const size_t nv = red.types(w).size(), ns = slot_types.size();
  const bool resume_into_vec = red.types(w) == slot_types;  // selections: their vector loop keeps a scalar state

  // Rows [i0, end) in tiles of R while a whole tile fits; returns the first row left and the block after the loop.
  auto rows_loop = [&](int R, Value* i0) -> Value* {
    llvm::BasicBlock* from = b.GetInsertBlock();
    auto* row_head = block("row");
    auto* interval_head = block("interval");
    auto* vec_head = block("vec");
    auto* interval_end = block("interval_end");
    auto* row_end = block("row_end");
    auto* rows_done = block("rows_done");
    const std::vector<llvm::Type*> tv = repeat(red.types(w), R);
    b.CreateCondBr(b.CreateICmpSLE(b.CreateAdd(i0, b.getInt64(R)), end), row_head, rows_done);

    // row: outer-level values for rows i .. i + R - 1.
    b.SetInsertPoint(row_head);
    llvm::PHINode* i = b.CreatePHI(i64, 2, "i");
    i->addIncoming(i0, from);
    std::vector<Value*> row(R);
    std::vector<std::vector<Value*>> scalar(R, params), vec(R);
    for (int r = 0; r < R; ++r) {
      row[r] = r == 0 ? static_cast<Value*>(i) : b.CreateAdd(i, b.getInt64(r));
      em.emit_level(Level::Outer, t, {&scalar[r]}, [&](const Instr& in, Value* k, int) -> Value* {
        return in.op == Prim::Index ? b.CreateSIToFP(row[r], t) : outer_load(in, k, row[r]);
      });
      vec[r].assign(p.code.size(), nullptr);
      for (size_t id = 0; id < p.code.size(); ++id)
        if (p.level[id] != Level::Inner && scalar[r][id]) vec[r][id] = b.CreateVectorSplat(w, scalar[r][id]);
    }
    Regs v_init = per_row(R, [&](int) { return red.init(w); }), s_init = per_row(R, [&](int) { return red.init(1); });
    // Resumed rows (mode & kResume) start from the scalar state saved in scratch by the previous chunk of j. It goes
    // into the vector loop's state where that is a scalar state too (selections: their filter then starts from the
    // row's best so far), else into the scalar state that the lanes are merged into at the end of the row.
    auto slot_address = [&](Value* at_row, size_t k) {
      Value* at = b.CreateAdd(b.CreateMul(b.CreateSub(at_row, start), b.getInt64(int64_t(ns))), b.getInt64(int64_t(k)));
      return b.CreatePointerCast(b.CreateInBoundsGEP(i64, scratch, at), llvm::PointerType::getUnqual(slot_types[k]));
    };
    {
      Regs& resumed = resume_into_vec ? v_init : s_init;
      llvm::BasicBlock* fresh = b.GetInsertBlock();
      auto* resume = block("resume");
      auto* ready = block("row_ready");
      b.CreateCondBr(b.CreateICmpNE(b.CreateAnd(mode, b.getInt64(kResume)), b.getInt64(0)), resume, ready);
      b.SetInsertPoint(resume);
      Regs saved = per_row(R, [&](int r) {
        Regs one;
        for (size_t k = 0; k < ns; ++k) one.push_back(b.CreateLoad(slot_types[k], slot_address(row[r], k)));
        return one;
      });
      b.CreateBr(ready);
      b.SetInsertPoint(ready);
      for (size_t k = 0; k < resumed.size(); ++k) {
        llvm::PHINode* phi = b.CreatePHI(resumed[k]->getType(), 2);
        phi->addIncoming(resumed[k], fresh);
        phi->addIncoming(saved[k], resume);
        resumed[k] = phi;
      }
    }
    llvm::BasicBlock* row_ready = b.GetInsertBlock();
    b.CreateCondBr(b.CreateICmpSGT(n_intervals, b.getInt64(0)), interval_head, row_end);

    // interval k: the tiles of W indices that meet [j0, j1), from the one holding j0; lanes outside are masked off.
    b.SetInsertPoint(interval_head);
    llvm::PHINode* k = b.CreatePHI(i64, 2, "k");
    auto iv_v = state_phis(b, tv);
    k->addIncoming(b.getInt64(0), row_ready);
    add_incoming(iv_v, v_init, row_ready);
    Value* j0 = b.CreateLoad(i64, b.CreateInBoundsGEP(i64, intervals, b.CreateMul(k, b.getInt64(2))));
    Value* j1 = b.CreateLoad(i64, b.CreateInBoundsGEP(i64, intervals, b.CreateAdd(b.CreateMul(k, b.getInt64(2)), b.getInt64(1))));
    Value* jb = b.CreateAnd(j0, b.getInt64(~(W - 1)));
    b.CreateCondBr(b.CreateICmpSLT(j0, j1), vec_head, interval_end);

    // vec: the W indices j .. j + W - 1 of one tile.
    b.SetInsertPoint(vec_head);
    llvm::PHINode* j = b.CreatePHI(i64, 2, "j");
    auto lp_v = state_phis(b, tv);
    j->addIncoming(jb, interval_head);
    add_incoming(lp_v, as_state(iv_v), interval_head);
    Value* j_lanes = b.CreateAdd(b.CreateVectorSplat(w, j), lane_ids);
    Value* lanes = b.CreateAnd(b.CreateICmpSGE(j_lanes, b.CreateVectorSplat(w, j0)),
                               b.CreateICmpSLT(j_lanes, b.CreateVectorSplat(w, j1)));
    em.emit_level(Level::Inner, vt, tables(vec), [&](const Instr& in, Value* k, int r) -> Value* {
      if (in.op == Prim::Index) return b.CreateSIToFP(j_lanes, vt);
      if (!is_inner(in)) return b.CreateVectorSplat(w, outer_load(in, k, row[r]));
      const int dim = p.args[in.pos].dim;
      Value* idx = dim == 1 ? j : b.CreateAdd(b.CreateMul(j, b.getInt64(dim)), b.CreateMul(comp_of(in, k), b.getInt64(W)));
      Value* addr = b.CreatePointerCast(b.CreateInBoundsGEP(t, base[in.pos], idx), llvm::PointerType::getUnqual(vt));
      const llvm::Align align(dtype_size(o.dtype));
      // Tile-major copies are padded to whole tiles; dim-1 variables are read in place, up to their end only.
      if (dim > 1) return b.CreateAlignedLoad(vt, addr, align);
      return b.CreateMaskedLoad(vt, addr, align, lanes, llvm::ConstantFP::get(vt, 0.0));
    });
    Regs v_next = per_row(R, [&](int r) {
      return red.update(slice(as_state(lp_v), r, nv), pick(vec[r], p.out), pick(vec[r], p.out2), j_lanes, lanes);
    });
    Value* j_next = b.CreateAdd(j, b.getInt64(W));
    llvm::BasicBlock* vec_latch = b.GetInsertBlock();
    j->addIncoming(j_next, vec_latch);
    add_incoming(lp_v, v_next, vec_latch);
    b.CreateCondBr(b.CreateICmpSLT(j_next, j1), vec_head, interval_end);

    // interval_end: flush block sums, next interval.
    b.SetInsertPoint(interval_end);
    auto ie_v = state_phis(b, tv);
    add_incoming(ie_v, as_state(iv_v), interval_head);
    add_incoming(ie_v, v_next, vec_latch);
    Regs v_flushed = per_row(R, [&](int r) { return red.flush(slice(as_state(ie_v), r, nv)); });
    Value* k_next = b.CreateAdd(k, b.getInt64(1));
    llvm::BasicBlock* interval_latch = b.GetInsertBlock();
    k->addIncoming(k_next, interval_latch);
    add_incoming(iv_v, v_flushed, interval_latch);
    keep_rolled(b.CreateCondBr(b.CreateICmpSLT(k_next, n_intervals), interval_head, row_end));

    // row_end: merge lanes, store, next tile.
    b.SetInsertPoint(row_end);
    auto re_v = state_phis(b, tv);
    add_incoming(re_v, v_init, row_ready);
    add_incoming(re_v, v_flushed, interval_latch);
    const Regs finished = per_row(R, [&](int r) { return red.merge(slice(s_init, r, ns), slice(as_state(re_v), r, nv), w); });
    // Partial rows (mode & kPartial) save their state for the next chunk of j instead of storing the result.
    auto* save = block("save");
    auto* store = block("store");
    auto* next_row = block("next_row");
    b.CreateCondBr(b.CreateICmpNE(b.CreateAnd(mode, b.getInt64(kPartial)), b.getInt64(0)), save, store);
    b.SetInsertPoint(save);
    for (int r = 0; r < R; ++r)
      for (size_t k = 0; k < ns; ++k) b.CreateStore(finished[r * ns + k], slot_address(row[r], k));
    b.CreateBr(next_row);
    b.SetInsertPoint(store);
    for (int r = 0; r < R; ++r) red.store(slice(finished, r, ns), outs, row[r]);
    b.CreateBr(next_row);
    b.SetInsertPoint(next_row);
    Value* i_next = b.CreateAdd(i, b.getInt64(R));
    i->addIncoming(i_next, next_row);
    keep_rolled(b.CreateCondBr(b.CreateICmpSLE(b.CreateAdd(i_next, b.getInt64(R)), end), row_head, rows_done));

    b.SetInsertPoint(rows_done);
    llvm::PHINode* left = b.CreatePHI(i64, 2, "rows_left");
    left->addIncoming(i0, from);
    left->addIncoming(i_next, next_row);
    return left;
  };

  const int R = tile_rows(p, em, red.live_vectors(w), host().avx512 ? 28 : 14);
  Value* left = rows_loop(R, start);
  if (R > 1) rows_loop(1, left);
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
  // The kernels are vectorised explicitly: the loop and SLP vectorisers would only cost compile time.
  llvm::PipelineTuningOptions tuning;
  tuning.LoopVectorization = false;
  tuning.SLPVectorization = false;
  llvm::PassBuilder pb(host().tm.get(), tuning);
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cgam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cgam, mam);
  pb.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O3).run(m, mam);
}

// Seconds since `t0`, and restarts it (phase timings).
double lap(std::chrono::steady_clock::time_point& t0) {
  const auto t = std::chrono::steady_clock::now();
  const double s = std::chrono::duration<double>(t - t0).count();
  t0 = t;
  return s;
}

// `phases`, if given, receives the seconds of IR generation and of optimisation.
std::unique_ptr<llvm::Module> build_module(llvm::LLVMContext& ctx, const Program& p, const KernelOptions& o,
                                           const std::string& symbol, Phases* phases = nullptr) {
  auto t0 = std::chrono::steady_clock::now();
  auto m = std::make_unique<llvm::Module>(symbol, ctx);
  m->setDataLayout(host().tm->createDataLayout());
  m->setTargetTriple(host().tm->getTargetTriple().str());
  const Program rolled = reroll(p);
  if (phases) phases->emplace_back("reroll", lap(t0));
  build_kernel(*m, rolled, o, symbol);
  if (phases) phases->emplace_back("llvm_ir", lap(t0));
  optimize(*m);
  if (phases) phases->emplace_back("llvm_opt", lap(t0));
  return m;
}

std::string emit_object(llvm::Module& m) {
  llvm::SmallVector<char, 0> buffer;
  llvm::raw_svector_ostream os(buffer);
  llvm::legacy::PassManager pm;
  if (host().tm->addPassesToEmitFile(pm, os, nullptr, kObjectFile))
    internal_failure(__FILE__, __LINE__, "the target cannot emit object files");
  pm.run(m);
  return std::string(buffer.begin(), buffer.end());
}

std::mutex& jit_mutex() {
  static std::mutex* m = new std::mutex();  // never destroyed: kernels held by Python objects may go during exit
  return *m;
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

int state_slots(const Program& p, const KernelOptions& options) {
  const std::vector<Slot> slots = keops::state_slots(cpu_rules(p, options), components(p), p.opt);
  for (const Slot& s : slots)
    if (s.n) return 0;  // lists live on the kernel's stack: they cannot wait in scratch
  return (int)slots.size();
}

const std::string& host_signature() { return host().signature; }

void tile_major(const void* src, void* dst, int64_t n, int dim, int w, size_t elem_size) {
  const auto* in = static_cast<const unsigned char*>(src);
  auto* out = static_cast<unsigned char*>(dst);
  const int64_t tiles = (n + w - 1) / w;
  std::memset(out, 0, tiles * w * dim * elem_size);  // the last tile's padding is read, then masked off: defined
  for (int64_t j = 0; j < n; ++j) {
    const int64_t tile = j / w, lane = j % w;
    for (int c = 0; c < dim; ++c)
      std::memcpy(out + ((tile * dim + c) * w + lane) * elem_size, in + (j * dim + c) * elem_size, elem_size);
  }
}

int vector_width(Dtype dtype) {
  int bytes = host().avx512 ? 64 : host().avx ? 32 : 16;
  return bytes / dtype_size(dtype);
}

std::string compile_object(const Program& p, const KernelOptions& o, const std::string& symbol) {
  std::lock_guard<std::mutex> lock(jit_mutex());
  llvm::LLVMContext ctx;
  return emit_object(*build_module(ctx, p, o, symbol));
}

Phases compile_phases(const Program& p, const KernelOptions& o) {
  static std::atomic<int64_t> counter{0};
  const std::string symbol = "keops_phases_" + std::to_string(counter++);
  Phases phases;
  std::string object;
  {
    std::lock_guard<std::mutex> lock(jit_mutex());
    llvm::LLVMContext ctx;
    auto m = build_module(ctx, p, o, symbol, &phases);
    auto t0 = std::chrono::steady_clock::now();
    object = emit_object(*m);
    phases.emplace_back("codegen", lap(t0));
  }
  auto t0 = std::chrono::steady_clock::now();
  load_object(object, symbol);  // linked, then unlinked as the only owner lets it go
  phases.emplace_back("link", lap(t0));
  return phases;
}

namespace {

// Objects linked now, by symbol: each in its own resource tracker, so that it can be unlinked alone. A symbol is
// defined once in the JIT: a request for it while its code lives shares that code.
struct Linked {
  std::weak_ptr<const LinkedCode> code;
  llvm::orc::ResourceTrackerSP tracker;
  uint64_t id;
};
std::unordered_map<std::string, Linked>& linked() {
  static auto* m = new std::unordered_map<std::string, Linked>();
  return *m;
}

// Removes an object's code from the JIT (caller holds jit_mutex). Never throws (it runs in deleters): a failure
// only leaks the code, and linking the symbol again then reports it.
void unlink(std::unordered_map<std::string, Linked>::iterator it) {
  llvm::consumeError(it->second.tracker->remove());
  linked().erase(it);
}

}  // namespace

std::shared_ptr<const LinkedCode> load_object(const std::string& object, const std::string& symbol) {
  std::lock_guard<std::mutex> lock(jit_mutex());
  static uint64_t next_id = 0;
  if (auto it = linked().find(symbol); it != linked().end()) {
    if (auto live = it->second.code.lock()) return live;
    unlink(it);  // its last owner is going: its deleter, waiting for the lock, will find a newer id and do nothing
  }
  llvm::orc::ResourceTrackerSP tracker = jit().getMainJITDylib().createResourceTracker();
  auto buffer = llvm::MemoryBuffer::getMemBufferCopy(object, symbol);
  if (auto e = jit().addObjectFile(tracker, std::move(buffer))) internal_failure(__FILE__, __LINE__, "linking a kernel: " + check(std::move(e)));
  auto sym = jit().lookup(symbol);
  if (!sym) internal_failure(__FILE__, __LINE__, "looking up a kernel: " + check(sym.takeError()));
  const uint64_t id = next_id++;
  auto* code = new LinkedCode();
#if LLVM_VERSION_MAJOR >= 15
  code->fn = sym->toPtr<KernelFn>();
#else
  code->fn = reinterpret_cast<KernelFn>(sym->getAddress());
#endif
  std::shared_ptr<const LinkedCode> shared(code, [symbol, id](const LinkedCode* c) {
    delete c;
    std::lock_guard<std::mutex> lock(jit_mutex());
    if (auto it = linked().find(symbol); it != linked().end() && it->second.id == id) unlink(it);
  });
  linked()[symbol] = Linked{shared, std::move(tracker), id};
  return shared;
}

int64_t linked_objects() {
  std::lock_guard<std::mutex> lock(jit_mutex());
  return static_cast<int64_t>(linked().size());
}

std::string optimized_ir(const Program& p, const KernelOptions& o) {
  std::lock_guard<std::mutex> lock(jit_mutex());
  llvm::LLVMContext ctx;
  auto m = build_module(ctx, p, o, "keops_inspect");
  std::string text;
  llvm::raw_string_ostream os(text);
  m->print(os, nullptr);
  return os.str();
}

}  // namespace keops::cpu
