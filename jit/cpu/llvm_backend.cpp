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

#include <cstring>
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
      case Prim::Load: case Prim::Index: break;
    }
    KEOPS_ASSERT(false, std::string("no rendering of primitive ") + prim_name(in.op));
  }

  // Emits every instruction of `level` at type `ty`; `load` renders Loads and Index, `operand` fetches lower levels.
  template <class LoadFn>
  void emit_level(Level level, llvm::Type* ty, std::vector<Value*>& vals, LoadFn load) {
    for (size_t id = 0; id < p_.code.size(); ++id) {
      if (p_.level[id] != level) continue;
      const Instr& in = p_.code[id];
      if (in.op == Prim::Load || in.op == Prim::Index) {
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

// The state of one reduction for one output row, at a width of W lanes (vector loop) or 1 (tails, merged result).
// Every reduction is written as init / update(value, index) / merge / store, so that the loop structure is shared.
using State = std::vector<Value*>;

// The slots of one row's reduction state: accumulators, values (data type) and int64 indices.
enum class Slot { Acc, Value, Index };
std::vector<Slot> state_layout(const Program& p, const KernelOptions& o) {
  const int d = p.dim_formula;
  std::vector<Slot> s;
  switch (p.reduction) {
    case ReductionKind::Sum: s.assign(d * (o.scheme == SumScheme::Direct ? 1 : 2), Slot::Acc); break;
    case ReductionKind::MaxSumShiftExpWeight: s.assign(p.dim_out, Slot::Acc); break;
    case ReductionKind::Min: case ReductionKind::Max: s.assign(d, Slot::Value); break;
    case ReductionKind::ArgMin: case ReductionKind::ArgMax: case ReductionKind::MinArgMin: case ReductionKind::MaxArgMax:
      s.assign(d, Slot::Value);
      s.insert(s.end(), d, Slot::Index);
      break;
    case ReductionKind::KMin: case ReductionKind::ArgKMin: case ReductionKind::KMinArgKMin:
      for (int c = 0; c < d * p.opt; ++c) s.push_back(Slot::Value), s.push_back(Slot::Index);
      break;
    case ReductionKind::Zero: break;
  }
  return s;
}

class ReductionCodegen {
 public:
  ReductionCodegen(IRBuilder<>& b, const Program& p, const KernelOptions& o, llvm::Type* t, llvm::Type* acc)
      : b_(b), p_(p), o_(o), t_(t), acc_(acc), i64_(llvm::Type::getInt64Ty(b.getContext())) {}

  // Types of the state slots at a width.
  std::vector<llvm::Type*> types(int w) const {
    std::vector<llvm::Type*> ts;
    for (Slot s : slots()) ts.push_back(vec(s == Slot::Index ? i64_ : s == Slot::Value ? t_ : acc_, width(w)));
    return ts;
  }

  State init(int w) const {
    State st;
    for (Slot s : slots()) st.push_back(initial(s, width(w)));
    if (p_.reduction == ReductionKind::MaxSumShiftExpWeight)  // [m, s...] starts at m = -inf, s = 0
      st[0] = llvm::ConstantFP::getInfinity(vec(acc_, w), true);
    return st;
  }

  // Folds the formula's values `f` (and weights `g`) at reduced indices `j` into the state.
  State update(State st, const std::vector<Value*>& f, const std::vector<Value*>& g, Value* j) {
    const int d = p_.dim_formula;
    switch (p_.reduction) {
      case ReductionKind::Sum:
        for (int c = 0; c < d; ++c) add_sum(st, c, to_acc(f[c]));
        return st;
      case ReductionKind::MaxSumShiftExpWeight: {
        std::vector<Value*> weights;
        for (Value* x : g) weights.push_back(to_acc(x));
        return combine_shift_exp(st, to_acc(f[0]), weights);
      }
      case ReductionKind::Min: case ReductionKind::Max:
        for (int c = 0; c < d; ++c) st[c] = b_.CreateSelect(better_value(f[c], st[c]), f[c], st[c]);
        return st;
      case ReductionKind::ArgMin: case ReductionKind::ArgMax: case ReductionKind::MinArgMin: case ReductionKind::MaxArgMax:
        for (int c = 0; c < d; ++c) {
          auto put = [&, c](State& s, Value* v, Value* jj) {
            Value* take = better_pair(v, jj, s[c], s[d + c]);
            s[c] = b_.CreateSelect(take, v, s[c]);
            s[d + c] = b_.CreateSelect(take, jj, s[d + c]);
          };
          if (f[c]->getType()->isVectorTy()) filter_lanes(st, {c, d + c}, c, d + c, f[c], j, put);
          else put(st, f[c], j);
        }
        return st;
      case ReductionKind::KMin: case ReductionKind::ArgKMin: case ReductionKind::KMinArgKMin:
        for (int c = 0; c < d; ++c) {
          const int last = (c * p_.opt + p_.opt - 1) * 2;  // the list's last (worst) entry
          auto put = [&, c](State& s, Value* v, Value* jj) { insert_k(s, c, v, jj); };
          if (f[c]->getType()->isVectorTy()) filter_lanes(st, list_slots(c), last, last + 1, f[c], j, put);
          else put(st, f[c], j);
        }
        return st;
      case ReductionKind::Zero: return st;
    }
    KEOPS_ASSERT(false, "unknown reduction");
  }

  // Moves a block-sum's block into its total (called at the end of every interval of j).
  State flush(State st) {
    if (p_.reduction != ReductionKind::Sum || o_.scheme != SumScheme::Block) return st;
    for (int c = 0; c < p_.dim_formula; ++c) {
      st[2 * c] = b_.CreateFAdd(st[2 * c], st[2 * c + 1]);
      st[2 * c + 1] = llvm::Constant::getNullValue(st[2 * c + 1]->getType());
    }
    return st;
  }

  // Folds every lane of a W-wide state into a scalar state (selections keep one scalar state: merged as one lane).
  State merge(State scalar, const State& lanes, int w) {
    if (width(w) == 1) return combine(scalar, lanes);
    for (int l = 0; l < w; ++l) {
      State lane;
      for (Value* v : lanes) lane.push_back(b_.CreateExtractElement(v, uint64_t(l)));
      scalar = combine(scalar, lane);
    }
    return scalar;
  }

  // Writes the finished scalar state of row `i` into the output arrays.
  void store(const State& st, const std::vector<Value*>& outs, Value* i) {
    const int d = p_.dim_formula, k = p_.opt;
    auto put = [&](size_t out, int cols, int col, Value* v) {
      llvm::Type* et = v->getType();
      Value* idx = b_.CreateAdd(b_.CreateMul(i, b_.getInt64(cols)), b_.getInt64(col));
      b_.CreateStore(v, b_.CreateInBoundsGEP(et, b_.CreatePointerCast(outs[out], llvm::PointerType::getUnqual(et)), idx));
    };
    auto index_out = [&](Value* j) {  // "no candidate" (empty set, fewer than K) reads -1
      return b_.CreateSelect(b_.CreateICmpEQ(j, b_.getInt64(kNone)), b_.getInt64(-1), j);
    };
    auto value_out = [&](Value* v) {  // a slot that no number filled (NaN only, or no candidate) reads +-inf
      return b_.CreateSelect(b_.CreateFCmpUNO(v, v), llvm::ConstantFP::getInfinity(v->getType(), is_max()), v);
    };
    switch (p_.reduction) {
      case ReductionKind::Sum:
        for (int c = 0; c < d; ++c) put(0, d, c, to_data(sum_value(st, c)));
        return;
      case ReductionKind::MaxSumShiftExpWeight:
        for (size_t c = 0; c < st.size(); ++c) put(0, (int)st.size(), (int)c, to_data(st[c]));
        return;
      case ReductionKind::Min: case ReductionKind::Max:
        for (int c = 0; c < d; ++c) put(0, d, c, st[c]);
        return;
      case ReductionKind::ArgMin: case ReductionKind::ArgMax:
        for (int c = 0; c < d; ++c) put(0, d, c, index_out(st[d + c]));
        return;
      case ReductionKind::MinArgMin: case ReductionKind::MaxArgMax:
        for (int c = 0; c < d; ++c) put(0, d, c, value_out(st[c])), put(1, d, c, index_out(st[d + c]));
        return;
      case ReductionKind::KMin: case ReductionKind::ArgKMin: case ReductionKind::KMinArgKMin: {
        bool values = p_.reduction != ReductionKind::ArgKMin, indices = p_.reduction != ReductionKind::KMin;
        for (int c = 0; c < d; ++c)
          for (int r = 0; r < k; ++r) {
            if (values) put(0, k * d, r * d + c, value_out(st[(c * k + r) * 2]));
            if (indices) put(values ? 1 : 0, k * d, r * d + c, index_out(st[(c * k + r) * 2 + 1]));
          }
        return;
      }
      case ReductionKind::Zero: return;
    }
  }

 private:
  static constexpr int64_t kNone = INT64_MAX;  // index of "no candidate yet": loses every tie

  std::vector<Slot> slots() const { return state_layout(p_, o_); }

  static llvm::Type* vec(llvm::Type* t, int w) { return w == 1 ? t : llvm::FixedVectorType::get(t, w); }

  // Reductions that select (value, index) pairs keep one scalar state per row, also in the vector loop: W candidates
  // are filtered by one vector compare (see filter_lanes). Sums and plain Min/Max keep one state per lane.
  int width(int w) const {
    switch (p_.reduction) {
      case ReductionKind::ArgMin: case ReductionKind::ArgMax: case ReductionKind::MinArgMin: case ReductionKind::MaxArgMax:
      case ReductionKind::KMin: case ReductionKind::ArgKMin: case ReductionKind::KMinArgKMin: return 1;
      default: return w;
    }
  }

  bool is_max() const {
    return p_.reduction == ReductionKind::Max || p_.reduction == ReductionKind::ArgMax || p_.reduction == ReductionKind::MaxArgMax;
  }

  Value* initial(Slot s, int w) const {
    llvm::Type* t = vec(s == Slot::Index ? i64_ : s == Slot::Value ? t_ : acc_, w);
    if (s == Slot::Index) return llvm::ConstantInt::get(t, kNone);
    // Plain Min/Max start at -+inf; (value, index) pairs start at (NaN, kNone), which every candidate beats.
    if (s == Slot::Value && (p_.reduction == ReductionKind::Min || p_.reduction == ReductionKind::Max))
      return llvm::ConstantFP::getInfinity(t, is_max());
    if (s == Slot::Value) return llvm::ConstantFP::getNaN(t);
    return llvm::Constant::getNullValue(t);
  }

  Value* to_acc(Value* v) { return v->getType()->getScalarType() == acc_ ? v : b_.CreateFPExt(v, vec(acc_, width_of(v))); }
  Value* to_data(Value* v) { return v->getType()->getScalarType() == t_ ? v : b_.CreateFPTrunc(v, vec(t_, width_of(v))); }
  static int width_of(Value* v) {
    auto* vt = llvm::dyn_cast<llvm::FixedVectorType>(v->getType());
    return vt ? (int)vt->getNumElements() : 1;
  }

  // Sum slots: direct [acc], block [total, block], kahan [sum, compensation].
  void add_sum(State& st, int c, Value* x) {
    switch (o_.scheme) {
      case SumScheme::Direct: st[c] = b_.CreateFAdd(st[c], x); return;
      case SumScheme::Block: st[2 * c + 1] = b_.CreateFAdd(st[2 * c + 1], x); return;
      case SumScheme::Kahan: {
        Value *sum = st[2 * c], *comp = st[2 * c + 1];
        Value* y = b_.CreateFSub(x, comp);
        Value* t = b_.CreateFAdd(sum, y);
        st[2 * c + 1] = b_.CreateFSub(b_.CreateFSub(t, sum), y);
        st[2 * c] = t;
        return;
      }
    }
  }
  Value* sum_value(const State& st, int c) {
    switch (o_.scheme) {
      case SumScheme::Direct: return st[c];
      case SumScheme::Block: return b_.CreateFAdd(st[2 * c], st[2 * c + 1]);
      case SumScheme::Kahan: return b_.CreateFSub(st[2 * c], st[2 * c + 1]);
    }
    return nullptr;
  }

  // Online log-sum-exp: state [m, s...] absorbs (f, g...) with a single exp: the larger maximum wins and the
  // other side is scaled by exp(-|m - f|). -inf terms add nothing; NaN propagates.
  State combine_shift_exp(State st, Value* f, const std::vector<Value*>& g) {
    Value* m = st[0];
    llvm::Type* ty = m->getType();
    Value* e = emit_exp(b_, b_.CreateFNeg(intrinsic_fabs(b_.CreateFSub(m, f))));
    e = b_.CreateSelect(b_.CreateFCmpOEQ(f, m), llvm::ConstantFP::get(ty, 1.0), e);
    e = b_.CreateSelect(b_.CreateFCmpOEQ(f, llvm::ConstantFP::getInfinity(ty, true)), llvm::ConstantFP::get(ty, 0.0), e);
    Value* bigger = b_.CreateFCmpOGT(f, m);
    for (size_t c = 1; c < st.size(); ++c) {
      Value* gc = g.empty() ? llvm::ConstantFP::get(ty, 1.0) : g[c - 1];
      Value* rescaled = b_.CreateFAdd(b_.CreateFMul(st[c], e), gc);
      Value* added = b_.CreateFAdd(st[c], b_.CreateFMul(gc, e));
      st[c] = b_.CreateSelect(bigger, rescaled, added);
    }
    st[0] = b_.CreateSelect(bigger, f, m);
    return st;
  }
  Value* intrinsic_fabs(Value* x) {
    llvm::Module* m = b_.GetInsertBlock()->getModule();
    return b_.CreateCall(llvm::Intrinsic::getDeclaration(m, llvm::Intrinsic::fabs, {x->getType()}), {x});
  }

  // v beats the current best (NaN never does).
  Value* better_value(Value* v, Value* best) { return is_max() ? b_.CreateFCmpOGT(v, best) : b_.CreateFCmpOLT(v, best); }
  // (v, j) beats (best, best_j): NaN ranks after every number (as in torch.sort), so a strictly better value, a
  // number against NaN, or the same value (NaN against NaN included) at a smaller index. A row of NaN thus reports
  // its first index (torch.argmin's answer) and the values of its pairs read +-inf (see store), as pykeops.
  Value* better_pair(Value* v, Value* j, Value* best, Value* best_j) {
    Value *v_nan = b_.CreateFCmpUNO(v, v), *best_nan = b_.CreateFCmpUNO(best, best);
    Value* same = b_.CreateOr(b_.CreateFCmpOEQ(v, best), b_.CreateAnd(v_nan, best_nan));
    Value* tie = b_.CreateAnd(same, b_.CreateICmpSLT(j, best_j));
    return b_.CreateOr(b_.CreateOr(better_value(v, best), b_.CreateAnd(b_.CreateNot(v_nan), best_nan)), tie);
  }
  // Inserts the scalar pair (v, j) into component c's sorted list of K (value, index) pairs by a compare-and-swap
  // chain, which runs only when the pair beats the last entry (the list is sorted: otherwise it beats none).
  void insert_k(State& st, int c, Value* v, Value* j) {
    const int first = c * p_.opt * 2, last = first + (p_.opt - 1) * 2;
    llvm::Function* fn = b_.GetInsertBlock()->getParent();
    llvm::BasicBlock* before = b_.GetInsertBlock();
    auto* chain = llvm::BasicBlock::Create(b_.getContext(), "insert", fn);
    auto* after = llvm::BasicBlock::Create(b_.getContext(), "inserted", fn);
    b_.CreateCondBr(better_pair(v, j, st[last], st[last + 1]), chain, after);
    b_.SetInsertPoint(chain);
    const State kept = st;
    for (int r = 0; r < p_.opt; ++r) {
      Value *&lv = st[first + 2 * r], *&lj = st[first + 2 * r + 1];
      Value* take = better_pair(v, j, lv, lj);
      Value *nv = b_.CreateSelect(take, v, lv), *nj = b_.CreateSelect(take, j, lj);
      v = b_.CreateSelect(take, lv, v);
      j = b_.CreateSelect(take, lj, j);
      lv = nv;
      lj = nj;
    }
    llvm::BasicBlock* chain_end = b_.GetInsertBlock();
    b_.CreateBr(after);
    b_.SetInsertPoint(after);
    join(st, kept, list_slots(c), before, chain_end);
  }

  // The state slots of component c's K-list.
  std::vector<int> list_slots(int c) const {
    std::vector<int> slots;
    for (int k = c * p_.opt * 2; k < (c + 1) * p_.opt * 2; ++k) slots.push_back(k);
    return slots;
  }

  // Where two paths meet: each st[k], k in slots, becomes the PHI of kept[k] (coming from a) and st[k] (from b).
  void join(State& st, const State& kept, const std::vector<int>& slots, llvm::BasicBlock* a, llvm::BasicBlock* b) {
    for (int k : slots) {
      llvm::PHINode* phi = b_.CreatePHI(kept[k]->getType(), 2);
      phi->addIncoming(kept[k], a);
      phi->addIncoming(st[k], b);
      st[k] = phi;
    }
  }

  // W candidates (vv, vj) against a scalar state: one vector compare with the pair to beat (slots key, key_j: the
  // best pair, or a K-list's last entry) filters them, and the lanes that pass are put in one by one by `put`, in
  // lane order. After the first tiles almost none pass (a row of N values changes its best about log N times, its
  // K best about K log(N/K) times), so a tile costs the formula and one compare. `slots`: what `put` may change.
  template <class Put>
  void filter_lanes(State& st, const std::vector<int>& slots, int key, int key_j, Value* vv, Value* vj, Put put) {
    const int w = static_cast<int>(llvm::cast<llvm::FixedVectorType>(vv->getType())->getNumElements());
    llvm::Type* mask_t = b_.getIntNTy(w);
    // A superset of better_pair, as cheap as the plain compare: lanes that beat the key or tie it (NaN included)
    // at a smaller index; every lane while the key is NaN (no number yet). `put` decides exactly.
    Value *key_v = b_.CreateVectorSplat(w, st[key]), *key_j_v = b_.CreateVectorSplat(w, st[key_j]);
    Value* pass = b_.CreateOr(better_value(vv, key_v), b_.CreateAnd(b_.CreateFCmpUEQ(vv, key_v), b_.CreateICmpSLT(vj, key_j_v)));
    pass = b_.CreateOr(pass, b_.CreateVectorSplat(w, b_.CreateFCmpUNO(st[key], st[key])));
    Value* mask = b_.CreateBitCast(pass, mask_t);
    llvm::Function* fn = b_.GetInsertBlock()->getParent();
    llvm::BasicBlock* before = b_.GetInsertBlock();
    auto* loop = llvm::BasicBlock::Create(b_.getContext(), "lanes", fn);
    auto* after = llvm::BasicBlock::Create(b_.getContext(), "lanes_done", fn);
    b_.CreateCondBr(b_.CreateICmpNE(mask, llvm::ConstantInt::get(mask_t, 0)), loop, after);
    b_.SetInsertPoint(loop);
    llvm::PHINode* m = b_.CreatePHI(mask_t, 2);
    m->addIncoming(mask, before);
    const State kept = st;
    std::vector<llvm::PHINode*> phis;
    for (int k : slots) {
      phis.push_back(b_.CreatePHI(st[k]->getType(), 2));
      phis.back()->addIncoming(st[k], before);
      st[k] = phis.back();
    }
    Value* lane = b_.CreateBinaryIntrinsic(llvm::Intrinsic::cttz, m, b_.getTrue());
    put(st, b_.CreateExtractElement(vv, lane), b_.CreateExtractElement(vj, lane));
    Value* m_next = b_.CreateAnd(m, b_.CreateSub(m, llvm::ConstantInt::get(mask_t, 1)));
    llvm::BasicBlock* latch = b_.GetInsertBlock();
    m->addIncoming(m_next, latch);
    for (size_t k = 0; k < slots.size(); ++k) phis[k]->addIncoming(st[slots[k]], latch);
    b_.CreateCondBr(b_.CreateICmpNE(m_next, llvm::ConstantInt::get(mask_t, 0)), loop, after);
    b_.SetInsertPoint(after);
    join(st, kept, slots, before, latch);
  }

  // Folds one lane's scalar state into a scalar state.
  State combine(State st, const State& lane) {
    const int d = p_.dim_formula;
    switch (p_.reduction) {
      case ReductionKind::Sum:
        for (int c = 0; c < d; ++c) {
          if (o_.scheme == SumScheme::Kahan) {
            add_sum(st, c, lane[2 * c]);
            add_sum(st, c, b_.CreateFNeg(lane[2 * c + 1]));
          } else if (o_.scheme == SumScheme::Block) {
            st[2 * c] = b_.CreateFAdd(st[2 * c], b_.CreateFAdd(lane[2 * c], lane[2 * c + 1]));
          } else {
            st[c] = b_.CreateFAdd(st[c], lane[c]);
          }
        }
        return st;
      case ReductionKind::MaxSumShiftExpWeight: {
        std::vector<Value*> g(lane.begin() + 1, lane.end());
        return combine_shift_exp(st, lane[0], g);
      }
      case ReductionKind::Min: case ReductionKind::Max: case ReductionKind::ArgMin: case ReductionKind::ArgMax:
      case ReductionKind::MinArgMin: case ReductionKind::MaxArgMax:
        if (p_.reduction == ReductionKind::Min || p_.reduction == ReductionKind::Max) {
          for (int c = 0; c < d; ++c) st[c] = b_.CreateSelect(better_value(lane[c], st[c]), lane[c], st[c]);
          return st;
        }
        for (int c = 0; c < d; ++c) {
          Value* take = better_pair(lane[c], lane[d + c], st[c], st[d + c]);
          st[c] = b_.CreateSelect(take, lane[c], st[c]);
          st[d + c] = b_.CreateSelect(take, lane[d + c], st[d + c]);
        }
        return st;
      case ReductionKind::KMin: case ReductionKind::ArgKMin: case ReductionKind::KMinArgKMin:
        for (int c = 0; c < d; ++c)
          for (int r = 0; r < p_.opt; ++r) insert_k(st, c, lane[(c * p_.opt + r) * 2], lane[(c * p_.opt + r) * 2 + 1]);
        return st;
      case ReductionKind::Zero: return st;
    }
    return st;
  }

  IRBuilder<>& b_;
  const Program& p_;
  const KernelOptions& o_;
  llvm::Type *t_, *acc_, *i64_;
};

// PHI nodes for a state, created at the top of the current block.
std::vector<llvm::PHINode*> state_phis(IRBuilder<>& b, const std::vector<llvm::Type*>& types) {
  std::vector<llvm::PHINode*> phis;
  for (llvm::Type* t : types) phis.push_back(b.CreatePHI(t, 2));
  return phis;
}
State as_state(const std::vector<llvm::PHINode*>& phis) { return State(phis.begin(), phis.end()); }
void add_incoming(std::vector<llvm::PHINode*>& phis, const State& st, llvm::BasicBlock* from) {
  for (size_t k = 0; k < phis.size(); ++k) phis[k]->addIncoming(st[k], from);
}

// The kernel: for each output row in [start, end), for each interval [j0, j1) of reduced indices: a scalar loop up
// to the first multiple of W, a loop over W consecutive j at a time (vector state), and the same scalar loop for the
// rest; lanes are merged at the end of the row. Inner variables of dim > 1 are read from a tile-major copy
// (tiles of W indices, component by component) so that a vector load is W contiguous values; dim-1 ones in place.
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
  ReductionCodegen red(b, p, o, t, acc);
  const int64_t W = w;

  auto block = [&](const char* name) { return llvm::BasicBlock::Create(ctx, name, fn); };
  auto* entry = block("entry");
  auto* row_head = block("row");
  auto* interval_head = block("interval");
  auto* scalar_check = block("scalar_check");
  auto* scalar_body = block("scalar_body");
  auto* scalar_exit = block("scalar_exit");
  auto* vec_pre = block("vec_pre");
  auto* vec_head = block("vec");
  auto* vec_exit = block("vec_exit");
  auto* interval_end = block("interval_end");
  auto* row_end = block("row_end");
  auto* done = block("done");

  // entry: argument and output pointers, parameter-level values (computed once per call).
  b.SetInsertPoint(entry);
  std::vector<Value*> base(p.args.size());
  for (size_t pos = 0; pos < p.args.size(); ++pos)
    base[pos] = b.CreatePointerCast(b.CreateLoad(ptr, b.CreateConstInBoundsGEP1_64(ptr, args, pos)), tptr);
  std::vector<Value*> outs;
  for (size_t k = 0; k < output_specs(p).size(); ++k)
    outs.push_back(b.CreateLoad(ptr, b.CreateConstInBoundsGEP1_64(ptr, outs_raw, k)));
  std::vector<Value*> scalar(p.code.size(), nullptr);
  em.emit_level(Level::Param, t, scalar, [&](const Instr& in) {
    return b.CreateLoad(t, b.CreateConstInBoundsGEP1_64(t, base[in.pos], in.comp));
  });
  Value* lane_ids = llvm::ConstantVector::get([&] {
    std::vector<llvm::Constant*> ids;
    for (int l = 0; l < w; ++l) ids.push_back(llvm::ConstantInt::get(i64, l));
    return ids;
  }());
  b.CreateCondBr(b.CreateICmpSLT(start, end), row_head, done);

  // row: outer-level values for row i.
  b.SetInsertPoint(row_head);
  llvm::PHINode* i = b.CreatePHI(i64, 2, "i");
  i->addIncoming(start, entry);
  em.emit_level(Level::Outer, t, scalar, [&](const Instr& in) -> Value* {
    if (in.op == Prim::Index) return b.CreateSIToFP(i, t);
    Value* idx = b.CreateAdd(b.CreateMul(i, b.getInt64(p.args[in.pos].dim)), b.getInt64(in.comp));
    return b.CreateLoad(t, b.CreateInBoundsGEP(t, base[in.pos], idx));
  });
  std::vector<Value*> vec(p.code.size(), nullptr);
  for (size_t id = 0; id < p.code.size(); ++id)
    if (p.level[id] != Level::Inner) vec[id] = b.CreateVectorSplat(w, scalar[id]);
  State v_init = red.init(w), s_init = red.init(1);
  // Resumed rows (mode & kResume) start from the scalar state saved in scratch by the previous chunk of j. It goes
  // into the vector loop's state where that is a scalar state too (selections: their filter then starts from the
  // row's best so far), else into the tails' state.
  const std::vector<llvm::Type*> slot_types = red.types(1);
  State& resumed = red.types(w) == slot_types ? v_init : s_init;
  auto slot_address = [&](Value* row, size_t k) {
    Value* at = b.CreateAdd(b.CreateMul(b.CreateSub(row, start), b.getInt64(int64_t(slot_types.size()))), b.getInt64(int64_t(k)));
    return b.CreatePointerCast(b.CreateInBoundsGEP(i64, scratch, at), llvm::PointerType::getUnqual(slot_types[k]));
  };
  {
    llvm::BasicBlock* fresh = b.GetInsertBlock();
    auto* resume = block("resume");
    auto* ready = block("row_ready");
    b.CreateCondBr(b.CreateICmpNE(b.CreateAnd(mode, b.getInt64(kResume)), b.getInt64(0)), resume, ready);
    b.SetInsertPoint(resume);
    State saved;
    for (size_t k = 0; k < slot_types.size(); ++k) saved.push_back(b.CreateLoad(slot_types[k], slot_address(i, k)));
    b.CreateBr(ready);
    b.SetInsertPoint(ready);
    for (size_t k = 0; k < slot_types.size(); ++k) {
      llvm::PHINode* phi = b.CreatePHI(slot_types[k], 2);
      phi->addIncoming(resumed[k], fresh);
      phi->addIncoming(saved[k], resume);
      resumed[k] = phi;
    }
  }
  llvm::BasicBlock* row_ready = b.GetInsertBlock();
  b.CreateCondBr(b.CreateICmpSGT(n_intervals, b.getInt64(0)), interval_head, row_end);

  // interval k: [j0, j1) = [j0, ja) scalar, [ja, jv) vector, [jv, j1) scalar, with ja the first multiple of W.
  b.SetInsertPoint(interval_head);
  llvm::PHINode* k = b.CreatePHI(i64, 2, "k");
  auto iv_v = state_phis(b, red.types(w)), iv_s = state_phis(b, red.types(1));
  k->addIncoming(b.getInt64(0), row_ready);
  add_incoming(iv_v, v_init, row_ready);
  add_incoming(iv_s, s_init, row_ready);
  Value* j0 = b.CreateLoad(i64, b.CreateInBoundsGEP(i64, intervals, b.CreateMul(k, b.getInt64(2))));
  Value* j1 = b.CreateLoad(i64, b.CreateInBoundsGEP(i64, intervals, b.CreateAdd(b.CreateMul(k, b.getInt64(2)), b.getInt64(1))));
  Value* ja = b.CreateAnd(b.CreateAdd(j0, b.getInt64(W - 1)), b.getInt64(~(W - 1)));
  ja = b.CreateSelect(b.CreateICmpSLT(ja, j1), ja, j1);
  Value* jv = b.CreateAdd(ja, b.CreateAnd(b.CreateSub(j1, ja), b.getInt64(~(W - 1))));
  b.CreateBr(scalar_check);

  // The scalar loop, run twice per interval: phase 0 for the head [j0, ja), phase 1 for the tail [jv, j1).
  b.SetInsertPoint(scalar_check);
  llvm::PHINode* phase = b.CreatePHI(b.getInt1Ty(), 2, "phase");
  llvm::PHINode* js = b.CreatePHI(i64, 2, "js");
  llvm::PHINode* je = b.CreatePHI(i64, 2, "je");
  auto sc_v = state_phis(b, red.types(w)), sc_s = state_phis(b, red.types(1));
  phase->addIncoming(b.getFalse(), interval_head);
  js->addIncoming(j0, interval_head);
  je->addIncoming(ja, interval_head);
  add_incoming(sc_v, as_state(iv_v), interval_head);
  add_incoming(sc_s, as_state(iv_s), interval_head);
  b.CreateCondBr(b.CreateICmpSLT(js, je), scalar_body, scalar_exit);

  auto inner_address = [&](const Instr& in, Value* jj) -> Value* {
    const int dim = p.args[in.pos].dim;
    if (dim == 1) return b.CreateInBoundsGEP(t, base[in.pos], jj);
    // tile-major: ((j / W) * dim + comp) * W + j % W = (j - j % W) * dim + comp * W + j % W
    Value* lane = b.CreateAnd(jj, b.getInt64(W - 1));
    Value* idx = b.CreateAdd(b.CreateMul(b.CreateSub(jj, lane), b.getInt64(dim)), b.getInt64(int64_t(in.comp) * W));
    return b.CreateInBoundsGEP(t, base[in.pos], b.CreateAdd(idx, lane));
  };
  auto pick = [&](const std::vector<Value*>& vals, const std::vector<int>& ids) {
    std::vector<Value*> r;
    for (int id : ids) r.push_back(vals[id]);
    return r;
  };

  b.SetInsertPoint(scalar_body);
  llvm::PHINode* jt = b.CreatePHI(i64, 2, "jt");
  auto sb_s = state_phis(b, red.types(1));
  jt->addIncoming(js, scalar_check);
  add_incoming(sb_s, as_state(sc_s), scalar_check);
  std::vector<Value*> tail_vals = scalar;
  em.emit_level(Level::Inner, t, tail_vals, [&](const Instr& in) -> Value* {
    return in.op == Prim::Index ? b.CreateSIToFP(jt, t) : b.CreateLoad(t, inner_address(in, jt));
  });
  State s_next = red.update(as_state(sb_s), pick(tail_vals, p.out), pick(tail_vals, p.out2), jt);
  Value* jt_next = b.CreateAdd(jt, b.getInt64(1));
  llvm::BasicBlock* scalar_latch = b.GetInsertBlock();
  jt->addIncoming(jt_next, scalar_latch);
  add_incoming(sb_s, s_next, scalar_latch);
  b.CreateCondBr(b.CreateICmpSLT(jt_next, je), scalar_body, scalar_exit);

  b.SetInsertPoint(scalar_exit);
  auto se_s = state_phis(b, red.types(1));
  add_incoming(se_s, as_state(sc_s), scalar_check);
  add_incoming(se_s, s_next, scalar_latch);
  b.CreateCondBr(phase, interval_end, vec_pre);

  b.SetInsertPoint(vec_pre);
  b.CreateCondBr(b.CreateICmpSLT(ja, jv), vec_head, vec_exit);

  // vec: W consecutive j at a time, starting on a tile boundary.
  b.SetInsertPoint(vec_head);
  llvm::PHINode* j = b.CreatePHI(i64, 2, "j");
  auto lp_v = state_phis(b, red.types(w));
  j->addIncoming(ja, vec_pre);
  add_incoming(lp_v, as_state(sc_v), vec_pre);
  Value* j_lanes = b.CreateAdd(b.CreateVectorSplat(w, j), lane_ids);
  em.emit_level(Level::Inner, vt, vec, [&](const Instr& in) -> Value* {
    if (in.op == Prim::Index) return b.CreateSIToFP(j_lanes, vt);
    const int dim = p.args[in.pos].dim;
    Value* idx = dim == 1 ? j : b.CreateAdd(b.CreateMul(j, b.getInt64(dim)), b.getInt64(int64_t(in.comp) * W));
    Value* addr = b.CreatePointerCast(b.CreateInBoundsGEP(t, base[in.pos], idx), llvm::PointerType::getUnqual(vt));
    return b.CreateAlignedLoad(vt, addr, llvm::Align(dtype_size(o.dtype)));
  });
  State v_next = red.update(as_state(lp_v), pick(vec, p.out), pick(vec, p.out2), j_lanes);
  Value* j_next = b.CreateAdd(j, b.getInt64(W));
  llvm::BasicBlock* vec_latch = b.GetInsertBlock();
  j->addIncoming(j_next, vec_latch);
  add_incoming(lp_v, v_next, vec_latch);
  b.CreateCondBr(b.CreateICmpSLT(j_next, jv), vec_head, vec_exit);

  b.SetInsertPoint(vec_exit);
  auto ex_v = state_phis(b, red.types(w));
  add_incoming(ex_v, as_state(sc_v), vec_pre);
  add_incoming(ex_v, v_next, vec_latch);
  phase->addIncoming(b.getTrue(), vec_exit);
  js->addIncoming(jv, vec_exit);
  je->addIncoming(j1, vec_exit);
  add_incoming(sc_v, as_state(ex_v), vec_exit);
  add_incoming(sc_s, as_state(se_s), vec_exit);
  b.CreateBr(scalar_check);

  // interval_end (reached from the tail's scalar_exit): flush block sums, next interval.
  b.SetInsertPoint(interval_end);
  State v_flushed = red.flush(as_state(sc_v)), s_flushed = red.flush(as_state(se_s));
  Value* k_next = b.CreateAdd(k, b.getInt64(1));
  llvm::BasicBlock* interval_latch = b.GetInsertBlock();
  k->addIncoming(k_next, interval_latch);
  add_incoming(iv_v, v_flushed, interval_latch);
  add_incoming(iv_s, s_flushed, interval_latch);
  b.CreateCondBr(b.CreateICmpSLT(k_next, n_intervals), interval_head, row_end);

  // row_end: merge lanes, store, next row.
  b.SetInsertPoint(row_end);
  auto re_v = state_phis(b, red.types(w)), re_s = state_phis(b, red.types(1));
  add_incoming(re_v, v_init, row_ready);
  add_incoming(re_v, v_flushed, interval_latch);
  add_incoming(re_s, s_init, row_ready);
  add_incoming(re_s, s_flushed, interval_latch);
  const State finished = red.merge(as_state(re_s), as_state(re_v), w);
  // Partial rows (mode & kPartial) save their state for the next chunk of j instead of storing the result.
  auto* save = block("save");
  auto* store = block("store");
  auto* next_row = block("next_row");
  b.CreateCondBr(b.CreateICmpNE(b.CreateAnd(mode, b.getInt64(kPartial)), b.getInt64(0)), save, store);
  b.SetInsertPoint(save);
  for (size_t k = 0; k < slot_types.size(); ++k) b.CreateStore(finished[k], slot_address(i, k));
  b.CreateBr(next_row);
  b.SetInsertPoint(store);
  red.store(finished, outs, i);
  b.CreateBr(next_row);
  b.SetInsertPoint(next_row);
  Value* i_next = b.CreateAdd(i, b.getInt64(1));
  i->addIncoming(i_next, b.GetInsertBlock());
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

std::unique_ptr<llvm::Module> build_module(llvm::LLVMContext& ctx, const Program& p, const KernelOptions& o, const std::string& symbol) {
  auto m = std::make_unique<llvm::Module>(symbol, ctx);
  m->setDataLayout(host().tm->createDataLayout());
  m->setTargetTriple(host().tm->getTargetTriple().str());
  build_kernel(*m, p, o, symbol);
  optimize(*m);
  return m;
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

int state_slots(const Program& p, const KernelOptions& options) { return static_cast<int>(state_layout(p, options).size()); }

const std::string& host_signature() { return host().signature; }

void tile_major(const void* src, void* dst, int64_t n, int dim, int w, size_t elem_size) {
  const auto* in = static_cast<const unsigned char*>(src);
  auto* out = static_cast<unsigned char*>(dst);
  const int64_t tiles = (n + w - 1) / w;
  std::memset(out, 0, tiles * w * dim * elem_size);  // the last tile's padding is never reduced, but defined
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
  auto m = build_module(ctx, p, o, symbol);
  llvm::SmallVector<char, 0> buffer;
  llvm::raw_svector_ostream os(buffer);
  llvm::legacy::PassManager pm;
  if (host().tm->addPassesToEmitFile(pm, os, nullptr, kObjectFile))
    internal_failure(__FILE__, __LINE__, "the target cannot emit object files");
  pm.run(*m);
  return std::string(buffer.begin(), buffer.end());
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
