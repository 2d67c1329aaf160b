// GPU backend, code generation: Program -> CUDA C++ (one rendering per Prim; reduction states from core/reduction_rules).
//
// Kernels (for output rows indexed by the program's tag, reduced index j):
//   <name>_reduce   one thread per output row; a block owns up to BLOCK rows (a "chunk" of rows, from the
//                   block-sparse table or implicit) and walks the chunk's intervals of j in tiles of BLOCK rows of the
//                   inner variables, staged cooperatively in shared memory. 1D scheme: stores the result. 2D scheme
//                   (given a buffer): blockIdx.y selects a slice of the concatenation of the chunk's intervals and the
//                   partial reduction state goes to the buffer ...
//   <name>_combine  ... which one thread per output row folds in order of j (the reductions' combine) and stores.
// Normal mode hoists parameter and row values out of the j loop. Chunk mode (many loaded values per pair) evaluates
// the pair's code in segments that each load at most kChunkWords values (inner components staged per segment,
// outer ones in registers), carrying the few values that cross segments per j in a local array. Reductions with
// large states are split into output groups, each a pass over j with its own small state. Segments and groups that
// repeat up to a shift of components become run-time loops.
#include "cuda_codegen.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <deque>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "../../core/errors.h"
#include "../../core/reduction_rules.h"

namespace keops::gpu {

const char* gpu_dtype_name(GpuDtype d) {
  return d == GpuDtype::F16 ? "float16" : d == GpuDtype::F32 ? "float32" : "float64";
}
int gpu_dtype_size(GpuDtype d) { return d == GpuDtype::F16 ? 2 : d == GpuDtype::F32 ? 4 : 8; }

std::string GpuOptions::text() const {
  return std::string(gpu_dtype_name(dtype)) + "/" + gpu_dtype_name(acc) + "/" +
         (scheme == SumScheme::Direct ? "direct" : scheme == SumScheme::Block ? "block" : "kahan") +
         (fast_math ? "/fast" : "/precise") + (chunks ? "/chunks" : "/nochunks") + "/b" + std::to_string(block);
}

const std::string& cuda_prelude() {
  static const std::string text = R"CUDA(// ---- KeOps GPU prelude: scalar types, conversions and primitives ----
typedef long long kp_i64;
typedef unsigned short kp_half;
#define KP_NONE 9223372036854775807LL
#ifndef KP_HOST_EMULATION
#define KP_DEV __device__ __forceinline__
KP_DEV float kp_h2f(kp_half h) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
KP_DEV kp_half kp_f2h(float f) { kp_half h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }
template <class T> KP_DEV T kp_ldg(const T* p) { return __ldg(p); }
KP_DEV float kp_bits_f(unsigned u) { return __int_as_float((int)u); }
KP_DEV double kp_bits_d(unsigned long long u) { return __longlong_as_double((long long)u); }
#endif

template <class C> KP_DEV C kp_inf();
template <> KP_DEV float kp_inf<float>() { return kp_bits_f(0x7f800000u); }
template <> KP_DEV double kp_inf<double>() { return kp_bits_d(0x7ff0000000000000ull); }
template <class C> KP_DEV C kp_nan();
template <> KP_DEV float kp_nan<float>() { return kp_bits_f(0x7fc00000u); }
template <> KP_DEV double kp_nan<double>() { return kp_bits_d(0x7ff8000000000000ull); }

// Data in memory (float16 as raw bits) -> compute type, and back.
KP_DEV float kp_load(const float* p, kp_i64 k) { return kp_ldg(p + k); }
KP_DEV double kp_load(const double* p, kp_i64 k) { return kp_ldg(p + k); }
KP_DEV float kp_load(const kp_half* p, kp_i64 k) { return kp_h2f(kp_ldg(p + k)); }
template <class V> KP_DEV void kp_put(float* p, kp_i64 k, V v) { p[k] = (float)v; }
template <class V> KP_DEV void kp_put(double* p, kp_i64 k, V v) { p[k] = (double)v; }
template <class V> KP_DEV void kp_put(kp_half* p, kp_i64 k, V v) { p[k] = kp_f2h((float)v); }
KP_DEV void kp_put_index(void* p, kp_i64 k, kp_i64 j) { ((kp_i64*)p)[k] = j == KP_NONE ? -1 : j; }
template <bool H, class A> KP_DEV A kp_acc(A v) { if constexpr (H) return (A)kp_h2f(kp_f2h((float)v)); else return v; }

// Primitives (core/program.h), overloaded on float and double.
KP_DEV float kp_exp(float x) { return expf(x); }      KP_DEV double kp_exp(double x) { return exp(x); }
KP_DEV float kp_log(float x) { return logf(x); }      KP_DEV double kp_log(double x) { return log(x); }
KP_DEV float kp_sin(float x) { return sinf(x); }      KP_DEV double kp_sin(double x) { return sin(x); }
KP_DEV float kp_cos(float x) { return cosf(x); }      KP_DEV double kp_cos(double x) { return cos(x); }
KP_DEV float kp_atan(float x) { return atanf(x); }    KP_DEV double kp_atan(double x) { return atan(x); }
KP_DEV float kp_asin(float x) { return asinf(x); }    KP_DEV double kp_asin(double x) { return asin(x); }
KP_DEV float kp_acos(float x) { return acosf(x); }    KP_DEV double kp_acos(double x) { return acos(x); }
KP_DEV float kp_sqrt(float x) { return sqrtf(x); }    KP_DEV double kp_sqrt(double x) { return sqrt(x); }
KP_DEV float kp_abs(float x) { return fabsf(x); }     KP_DEV double kp_abs(double x) { return fabs(x); }
KP_DEV float kp_floor(float x) { return floorf(x); }  KP_DEV double kp_floor(double x) { return floor(x); }
KP_DEV float kp_round(float x) { return roundf(x); }  KP_DEV double kp_round(double x) { return round(x); }
KP_DEV float kp_atan2(float y, float x) { return atan2f(y, x); }
KP_DEV double kp_atan2(double y, double x) { return atan2(y, x); }
template <class C> KP_DEV C kp_min(C a, C b) { return a != a ? a : (a < b ? a : b); }  // NaN-propagating
template <class C> KP_DEV C kp_max(C a, C b) { return a != a ? a : (a > b ? a : b); }
template <class C> KP_DEV C kp_ifpos(C a, C b, C c) { return a >= C(0) ? b : c; }
template <class C> KP_DEV C kp_select(C a, C b, C c) { return a != C(0) ? b : c; }
template <class C> KP_DEV C kp_lt(C a, C b) { return a < b ? C(1) : C(0); }
template <class C> KP_DEV C kp_le(C a, C b) { return a <= b ? C(1) : C(0); }
template <class C> KP_DEV C kp_eq(C a, C b) { return a == b ? C(1) : C(0); }
template <class C> KP_DEV C kp_ne(C a, C b) { return a != b ? C(1) : C(0); }

struct KpDims {
  kp_i64 n_outer, n_inner, n_batch, n_chunks, n_split, n_rows;  // n_rows = n_batch * n_outer
};
// ---- end of prelude ----
)CUDA";
  return text;
}

const char* cuda_prim_pattern(Prim p) {
  switch (p) {  // no default: a Prim without a rendering fails the build (-Werror=switch on this file)
    case Prim::Const: case Prim::Load: case Prim::Index: case Prim::LoopSum: return nullptr;
    case Prim::Add: return "($a + $b)";
    case Prim::Sub: return "($a - $b)";
    case Prim::Mul: return "($a * $b)";
    case Prim::Div: return "($a / $b)";
    case Prim::Neg: return "(-$a)";
    case Prim::Abs: return "kp_abs($a)";
    case Prim::Sqrt: return "kp_sqrt($a)";
    case Prim::Exp: return "kp_exp($a)";
    case Prim::Log: return "kp_log($a)";
    case Prim::Sin: return "kp_sin($a)";
    case Prim::Cos: return "kp_cos($a)";
    case Prim::Atan: return "kp_atan($a)";
    case Prim::Atan2: return "kp_atan2($a, $b)";
    case Prim::Asin: return "kp_asin($a)";
    case Prim::Acos: return "kp_acos($a)";
    case Prim::Floor: return "kp_floor($a)";
    case Prim::Round: return "kp_round($a)";
    case Prim::Min: return "kp_min($a, $b)";
    case Prim::Max: return "kp_max($a, $b)";
    case Prim::IfPos: return "kp_ifpos($a, $b, $c)";
    case Prim::Select: return "kp_select($a, $b, $c)";
    case Prim::Lt: return "kp_lt($a, $b)";
    case Prim::Le: return "kp_le($a, $b)";
    case Prim::Eq: return "kp_eq($a, $b)";
    case Prim::Ne: return "kp_ne($a, $b)";
  }
  return nullptr;
}

std::string render_prim(Prim p, const std::string& a, const std::string& b, const std::string& c) {
  const char* pattern = cuda_prim_pattern(p);
  KEOPS_ASSERT(pattern, std::string("no CUDA rendering of primitive ") + prim_name(p));
  std::string out;
  for (const char* s = pattern; *s; ++s) {
    if (*s == '$' && (s[1] == 'a' || s[1] == 'b' || s[1] == 'c')) {
      out += s[1] == 'a' ? a : s[1] == 'b' ? b : c;
      ++s;
    } else {
      out += *s;
    }
  }
  return out;
}

namespace {

std::string num(int64_t v) { return std::to_string(v); }

// A double constant as an exact C++ expression of type t (C by default).
std::string literal(double v, const std::string& t = "C") {
  if (std::isnan(v)) return "kp_nan<" + t + ">()";
  if (std::isinf(v)) return v > 0 ? "kp_inf<" + t + ">()" : "(-kp_inf<" + t + ">())";
  char buf[64];
  std::snprintf(buf, sizeof buf, "(%a)", v);
  return t + buf;
}

// The rule builder on CUDA text: every computed value becomes a const local of the member function being rendered;
// state members, arguments and the locals of a conditional region are names. Types: A accumulator, C compute,
// I index (kp_i64), B bool.
class CudaRuleBuilder final : public RuleBuilder {
 public:
  CudaRuleBuilder(std::ostringstream& s, bool half_acc, const std::vector<int>& cols) : s_(s), half_(half_acc), cols_(cols) {}
  std::string ind = "    ";

  static const char* type_name(char t) { return t == 'A' ? "A" : t == 'C' ? "C" : t == 'I' ? "kp_i64" : "bool"; }
  static char slot_type(SlotKind k) { return k == SlotKind::Acc ? 'A' : k == SlotKind::Value ? 'C' : 'I'; }
  // A name; `assignable`: a member or a region variable, which a later assignment may change.
  Val name(const std::string& text, char type, bool assignable = false) {
    vals_.push_back({text, type, assignable});
    return Val{&vals_.back()};
  }
  const std::string& text(Val v) const { return at(v).text; }

  Val constant(SlotKind kind, double x) override {
    if (kind == SlotKind::Index) return name("KP_NONE", 'I');
    const char* t = kind == SlotKind::Acc ? "A" : "C";
    return name(literal(x, t), slot_type(kind));
  }
  Val add(Val a, Val b) override { return op("(" + text(a) + " + " + text(b) + ")", a); }
  Val sub(Val a, Val b) override { return op("(" + text(a) + " - " + text(b) + ")", a); }
  Val mul(Val a, Val b) override { return op("(" + text(a) + " * " + text(b) + ")", a); }
  Val neg(Val a) override { return op("(-" + text(a) + ")", a); }
  Val abs(Val a) override { return op("kp_abs(" + text(a) + ")", a); }
  Val exp(Val a) override { return op("kp_exp(" + text(a) + ")", a); }
  Val lt(Val a, Val b) override { return local("(" + text(a) + " < " + text(b) + ")", 'B'); }
  Val gt(Val a, Val b) override { return local("(" + text(a) + " > " + text(b) + ")", 'B'); }
  Val eq(Val a, Val b) override { return local("(" + text(a) + " == " + text(b) + ")", 'B'); }
  Val uno(Val a, Val b) override {
    return local(a == b ? "(" + text(a) + " != " + text(a) + ")"
                        : "(" + text(a) + " != " + text(a) + " || " + text(b) + " != " + text(b) + ")", 'B');
  }
  Val both(Val m, Val n) override { return local("(" + text(m) + " && " + text(n) + ")", 'B'); }
  Val either(Val m, Val n) override { return local("(" + text(m) + " || " + text(n) + ")", 'B'); }
  Val negate(Val m) override { return local("(!" + text(m) + ")", 'B'); }
  Val select(Val m, Val a, Val b) override { return op("(" + text(m) + " ? " + text(a) + " : " + text(b) + ")", a); }
  Val index_lt(Val i, Val j) override { return local("(" + text(i) + " < " + text(j) + ")", 'B'); }
  Val to_acc(Val a) override { return at(a).type == 'A' ? a : local("A(" + text(a) + ")", 'A'); }
  Val round_acc(Val a) override { return half_ ? local("kp_acc<true>(" + text(a) + ")", 'A') : a; }

  // `if (m) { body }`, the slots held in variables of the region.
  void when(Val m, State& st, const std::vector<int>& slots, const std::function<void()>& body) override {
    std::vector<Val> vars;
    for (int k : slots) {
      const std::string w = "w" + std::to_string(next_++);
      s_ << ind << type_name(at(st.v[k]).type) << " " << w << " = " << text(st.v[k]) << ";\n";
      vars.push_back(st.v[k] = name(w, at(st.v[k]).type, true));
    }
    s_ << ind << "if (" << text(m) << ") {\n";
    ind += "  ";
    body();
    std::vector<Val> targets = vars;
    assign(st, slots, targets);
    ind.resize(ind.size() - 2);
    s_ << ind << "}\n";
    for (size_t q = 0; q < slots.size(); ++q) st.v[slots[q]] = vars[q];
  }
  // Writes st.v[slots[q]] into targets[q] where they differ (assignable sources are read before any write).
  void assign(State& st, const std::vector<int>& slots, const std::vector<Val>& targets) {
    for (size_t q = 0; q < slots.size(); ++q) {
      Val& v = st.v[slots[q]];
      if (v != targets[q] && at(v).assignable) v = local(text(v), at(v).type);
    }
    for (size_t q = 0; q < slots.size(); ++q)
      if (st.v[slots[q]] != targets[q]) s_ << ind << text(targets[q]) << " = " << text(st.v[slots[q]]) << ";\n";
  }

  void put(int out, int col, int comp, Val v) override {
    s_ << ind << "kp_put((T*)o" << out << ", " << address(out, col + comp) << " + col0, " << text(v) << ");\n";
  }
  void put_once(int out, int col, Val v) override {
    s_ << ind << "if (col0 == 0) kp_put((T*)o" << out << ", " << address(out, col) << ", " << text(v) << ");\n";
  }
  void put_index(int out, int col, int comp, Val j) override {
    s_ << ind << "kp_put_index(o" << out << ", " << address(out, col + comp) << " + col0, " << text(j) << ");\n";
  }

 private:
  struct Expr {
    std::string text;
    char type;
    bool assignable = false;
  };
  const Expr& at(Val v) const { return *static_cast<const Expr*>(v.p); }
  Val local(const std::string& expr, char type) {
    const std::string t = "t" + std::to_string(next_++);
    s_ << ind << "const " << type_name(type) << " " << t << " = " << expr << ";\n";
    return name(t, type);
  }
  Val op(const std::string& expr, Val like) { return local(expr, at(like).type); }
  std::string address(int out, int col) const {
    return "row * " + std::to_string(cols_[out]) + " + " + std::to_string(col);
  }
  std::ostringstream& s_;
  bool half_;
  const std::vector<int>& cols_;
  std::deque<Expr> vals_;
  int next_ = 0;
};



// One pass over j with its own state: formula components [c0, c0 + n) (for log-sum-exp: weight components).
struct Group {
  int c0 = 0, n = 0;
  std::vector<int> f, g;  // value ids fed to update()
};

struct Run {  // components [lo, hi] of inner argument `pos`, staged at `offset` of the staged row
  int pos, lo, hi, offset;
};
struct Segment {
  std::vector<int> code;           // non-Load, non-Const instructions, in order
  std::set<int> loads;             // Load values used here (inner ones staged for this segment)
  std::vector<Run> runs;           // staged inner components
  int width = 0;                   // staged components per j
  std::vector<int> restore, save;  // carried values read at the start / written at the end
};

// The evaluation of one group: hoisted values (normal mode), then segments of per-pair code.
struct GroupPlan {
  Group group;
  std::vector<int> hoisted;  // normal mode: values computed once per row, before the j loop (Loads included)
  std::vector<Segment> segments;
  std::map<int, int> slot;   // carried value -> slot
  int carries = 0;
};

class Generator {
 public:
  Generator(const Program& p, const GpuOptions& o, const std::string& name) : p_(p), o_(o), name_(name) {}

  CudaSource run() {
    CudaSource src;
    src.prelude = cuda_prelude();
    KernelLayout& L = src.layout;
    L.name = name_;
    L.nargs = static_cast<int>(p_.args.size());
    if (p_.reduction == ReductionKind::Zero) return src;
    make_groups();
    chunked_ = decide_chunked();
    for (const Group& g : groups_) plans_.push_back(plan(g));
    block_ = choose_block();
    L.block = block_;
    L.chunked = chunked_;
    L.groups = static_cast<int>(groups_.size());
    for (const GroupPlan& gp : plans_) {
      L.segments = std::max(L.segments, static_cast<int>(gp.segments.size()));
      L.carries = std::max(L.carries, gp.carries);
    }
    L.shared_bytes = block_ * std::max(1, max_width()) * csize();
    int stride = 0;
    for (const GroupPlan& gp : plans_) stride += state_bound(gp.group);
    L.state_stride = (stride + 7) / 8 * 8;
    src.body = emit(L);
    return src;
  }

 private:
  const Program& p_;
  const GpuOptions& o_;
  std::string name_;
  std::vector<Group> groups_;
  std::vector<GroupPlan> plans_;
  bool chunked_ = false;
  int block_ = 0;

  bool lse() const { return p_.reduction == ReductionKind::MaxSumShiftExpWeight; }
  GpuDtype ctype() const { return o_.dtype == GpuDtype::F64 ? GpuDtype::F64 : GpuDtype::F32; }
  int csize() const { return gpu_dtype_size(ctype()); }
  int cwords() const { return csize() / 4; }
  int awords() const { return o_.acc == GpuDtype::F64 ? 2 : 1; }
  const ReductionRules& rules() const { return reduction_rules(p_.reduction, o_.scheme); }

  // 32-bit words of state per grouped component.
  int words_per_component() const {
    int words = 0;
    for (const Slot& s : rules().component_slots(p_.opt))
      words += s.kind == SlotKind::Acc ? awords() : s.kind == SlotKind::Value ? cwords() : 2;
    return words;
  }

  void make_groups() {
    constexpr int kStateWords = 64;
    const int total = lse() ? std::max<int>(1, static_cast<int>(p_.out2.size())) : p_.dim_formula;
    const int per = std::max(1, kStateWords / words_per_component());
    const int count = (total + per - 1) / per;
    const int size = (total + count - 1) / count;
    for (int c0 = 0; c0 < total; c0 += size) {
      Group g;
      g.c0 = c0;
      g.n = std::min(size, total - c0);
      if (lse()) {
        g.f = {p_.out[0]};
        for (int k = 0; k < g.n && !p_.out2.empty(); ++k) g.g.push_back(p_.out2[c0 + k]);
      } else {
        g.f.assign(p_.out.begin() + c0, p_.out.begin() + c0 + g.n);
      }
      groups_.push_back(g);
    }
  }

  // Values the group needs, in program order.
  std::vector<int> needed(const Group& g) const {
    std::vector<char> mark(p_.code.size(), 0);
    std::vector<int> stack(g.f.begin(), g.f.end());
    stack.insert(stack.end(), g.g.begin(), g.g.end());
    while (!stack.empty()) {
      int v = stack.back();
      stack.pop_back();
      if (mark[v]) continue;
      mark[v] = 1;
      for (int x : {p_.code[v].a, p_.code[v].b, p_.code[v].c})
        if (x >= 0) stack.push_back(x);
    }
    std::vector<int> out;
    for (size_t id = 0; id < p_.code.size(); ++id)
      if (mark[id]) out.push_back(static_cast<int>(id));
    return out;
  }

  bool is_inner_load(int v) const { return p_.code[v].op == Prim::Load && p_.level[v] == Level::Inner; }

  // Chunk mode when a group would load more than ~1.5 chunks of values per pair (registers + staged row).
  bool decide_chunked() const {
    int worst = 0;
    for (const Group& g : groups_) {
      std::set<int> inner_args;
      int other = 0;
      for (int v : needed(g)) {
        if (p_.code[v].op != Prim::Load) continue;
        if (is_inner_load(v)) inner_args.insert(p_.code[v].pos);
        else ++other;
      }
      int staged = 0;
      for (int a : inner_args) staged += p_.args[a].dim;
      worst = std::max(worst, (staged + other) * cwords());
    }
    const bool fits_shared = 32 * worst / std::max(1, cwords()) * csize() <= 48 * 1024;
    return (o_.chunks && worst > kChunkWords * 3 / 2) || !fits_shared;
  }

  GroupPlan plan(const Group& g) const {
    GroupPlan gp;
    gp.group = g;
    std::vector<int> need = needed(g);
    if (!chunked_) {
      Segment seg;
      for (int v : need) {
        const Instr& in = p_.code[v];
        if (in.op == Prim::Const) continue;
        if (p_.level[v] != Level::Inner) gp.hoisted.push_back(v);
        else if (in.op == Prim::Load) seg.loads.insert(v);
        else seg.code.push_back(v);
      }
      gp.segments.push_back(seg);
    } else {
      gp.segments = segment(g);
    }
    for (Segment& s : gp.segments) layout_segment(s);
    assign_carries(gp);
    return gp;
  }

  // Chunk mode: depth-first post-order from the group's outputs (a chain of sums becomes term, add, term, add...),
  // cut into segments whose distinct loaded values fit in kChunkWords 32-bit words.
  std::vector<Segment> segment(const Group& g) const {
    std::vector<int> order;
    std::vector<char> state(p_.code.size(), 0);  // 0 new, 1 open, 2 done
    std::vector<int> roots(g.f.begin(), g.f.end());
    roots.insert(roots.end(), g.g.begin(), g.g.end());
    for (int r : roots) {
      std::vector<int> stack = {r};
      while (!stack.empty()) {
        int v = stack.back();
        if (state[v] == 2) { stack.pop_back(); continue; }
        if (state[v] == 0) {
          state[v] = 1;
          const Instr& in = p_.code[v];
          for (int x : {in.c, in.b, in.a})  // a ends on top: visited first
            if (x >= 0 && state[x] == 0) stack.push_back(x);
          continue;
        }
        state[v] = 2;
        stack.pop_back();
        if (p_.code[v].op != Prim::Const && p_.code[v].op != Prim::Load) order.push_back(v);
      }
    }
    std::vector<Segment> segs(1);
    auto cost = [&](const Segment& s, const std::set<int>& extra) {
      int count = static_cast<int>(s.loads.size());
      for (int v : extra) count += !s.loads.count(v);
      return count * cwords();
    };
    for (int v : order) {
      std::set<int> loads;
      for (int x : {p_.code[v].a, p_.code[v].b, p_.code[v].c})
        if (x >= 0 && p_.code[x].op == Prim::Load) loads.insert(x);
      if (!segs.back().code.empty() && cost(segs.back(), loads) > kChunkWords) segs.emplace_back();
      segs.back().code.push_back(v);
      segs.back().loads.insert(loads.begin(), loads.end());
    }
    // Outputs that are loads themselves are read in the last segment, where the update happens.
    for (int r : roots)
      if (p_.code[r].op == Prim::Load) segs.back().loads.insert(r);
    return segs;
  }

  // Staged runs: whole rows in normal mode (contiguous, coalesced copies); in chunk mode, the runs of consecutive
  // components that the segment reads.
  void layout_segment(Segment& s) const {
    std::map<int, std::set<int>> comps;
    for (int v : s.loads)
      if (is_inner_load(v)) comps[p_.code[v].pos].insert(p_.code[v].comp);
    s.width = 0;
    for (auto& [pos, cs] : comps) {
      if (!chunked_) {
        s.runs.push_back({pos, 0, p_.args[pos].dim - 1, s.width});
        s.width += p_.args[pos].dim;
        continue;
      }
      for (int c : cs) {
        if (!s.runs.empty() && s.runs.back().pos == pos && s.runs.back().hi == c - 1) {
          s.runs.back().hi = c;
        } else {
          s.runs.push_back({pos, c, c, s.width});
        }
        ++s.width;
      }
    }
  }

  // Values defined in one segment and used in a later one (or fed to the update from an earlier one) get a slot of
  // the per-j carry array; a slot is reused once its value's last reader segment has started.
  void assign_carries(GroupPlan& gp) const {
    const int n = static_cast<int>(gp.segments.size());
    if (n <= 1) return;
    std::map<int, int> def;
    for (int s = 0; s < n; ++s)
      for (int v : gp.segments[s].code) def[v] = s;
    std::map<int, int> last;
    std::map<int, std::set<int>> readers;
    for (int s = 0; s < n; ++s)
      for (int v : gp.segments[s].code)
        for (int x : {p_.code[v].a, p_.code[v].b, p_.code[v].c})
          if (x >= 0 && def.count(x) && def[x] < s) readers[x].insert(s);
    for (int r : gp.group.f) if (def.count(r) && def[r] < n - 1) readers[r].insert(n - 1);
    for (int r : gp.group.g) if (def.count(r) && def[r] < n - 1) readers[r].insert(n - 1);
    std::vector<int> free_from;  // per slot: the segment from which it is free
    for (auto& [v, segs] : readers) {
      const int d = def[v], u = *segs.rbegin();
      int slot = -1;
      for (size_t k = 0; k < free_from.size(); ++k)
        if (free_from[k] <= d) { slot = static_cast<int>(k); break; }
      if (slot < 0) {
        slot = static_cast<int>(free_from.size());
        free_from.push_back(0);
      }
      free_from[slot] = u;
      gp.slot[v] = slot;
      gp.segments[d].save.push_back(v);
      for (int s : segs) gp.segments[s].restore.push_back(v);
    }
    gp.carries = static_cast<int>(free_from.size());
  }

  int max_width() const {
    int w = 0;
    for (const GroupPlan& gp : plans_)
      for (const Segment& s : gp.segments) w = std::max(w, s.width);
    return w;
  }

  int choose_block() const {
    if (o_.block > 0) return o_.block;
    int block = chunked_ ? 64 : 192;
    while (block > 32 && block * std::max(1, max_width()) * csize() > 48 * 1024) block -= 32;
    return block;
  }

  // Upper bound of sizeof(state) of a group: every slot padded to 8 bytes, plus 8.
  int state_bound(const Group& g) const { return 8 * (int)state_slots(rules(), g.n, p_.opt).size() + 8; }

  // The state of a group of n components: the rules rendered as the members the kernels call (init, update,
  // tile_end, combine, store); it depends on n only, so that groups of one size share it.
  std::string state_type(const Group& g) const { return "St" + num(g.n); }
  std::string render_state(const Group& g) const {
    const ReductionRules& r = rules();
    const State shape = empty_state(r, g.n, p_.opt, p_.dim_formula, !p_.out2.empty());
    const std::vector<Slot> slots = state_slots(r, g.n, p_.opt);
    std::vector<int> cols, all;
    for (const OutputSpec& o : output_specs(p_)) cols.push_back(o.cols);
    for (size_t k = 0; k < slots.size(); ++k) all.push_back((int)k);
    const std::string name = state_type(g);
    std::ostringstream s;
    s << "struct " << name << " {\n";
    for (size_t k = 0; k < slots.size(); ++k)
      s << "  " << CudaRuleBuilder::type_name(CudaRuleBuilder::slot_type(slots[k].kind)) << " x" << k << ";\n";
    auto member = [&](const std::string& signature, bool assigns, const std::function<void(CudaRuleBuilder&, State&)>& body) {
      s << "  KP_DEV " << signature << " {\n";
      CudaRuleBuilder cb(s, o_.acc == GpuDtype::F16, cols);
      State st = shape;
      std::vector<Val> members;
      for (size_t k = 0; k < slots.size(); ++k)
        members.push_back(st.v[k] = cb.name("x" + num(k), CudaRuleBuilder::slot_type(slots[k].kind), true));
      body(cb, st);
      if (assigns) cb.assign(st, all, members);
      s << "  }\n";
    };
    member("void init()", true, [&](CudaRuleBuilder& cb, State& st) { init_state(cb, r, st); });
    member("void update(const C* f, const C* g, kp_i64 j)", true, [&](CudaRuleBuilder& cb, State& st) {
      std::vector<Val> f, w;
      for (size_t k = 0; k < g.f.size(); ++k) f.push_back(cb.name("f[" + num(k) + "]", 'C'));
      for (size_t k = 0; k < g.g.size(); ++k) w.push_back(cb.name("g[" + num(k) + "]", 'C'));
      r.update(cb, st, f, w, cb.name("j", 'I'));
    });
    member("void tile_end()", true, [&](CudaRuleBuilder& cb, State& st) { r.flush(cb, st); });
    member("void combine(const " + name + "& o)", true, [&](CudaRuleBuilder& cb, State& st) {
      State o = shape;
      for (size_t k = 0; k < slots.size(); ++k) o.v[k] = cb.name("o.x" + num(k), CudaRuleBuilder::slot_type(slots[k].kind));
      r.combine(cb, st, o);
    });
    member("void store(void* o0, void* o1, kp_i64 row, int col0) const", false,
           [&](CudaRuleBuilder& cb, State& st) { r.store(cb, st); });
    s << "};\n";
    return s.str();
  }

  std::string val(int v) const {
    const Instr& in = p_.code[v];
    return in.op == Prim::Const ? literal(in.imm) : "v" + num(v);
  }

  std::string instr(int v) const {
    const Instr& in = p_.code[v];
    auto opnd = [&](int x) { return x < 0 ? std::string() : val(x); };
    if (in.op == Prim::Index) return "const C v" + num(v) + " = (C)(" + (p_.level[v] == Level::Inner ? "jt + jj" : "rr") + ");";
    return "const C v" + num(v) + " = " + render_prim(in.op, opnd(in.a), opnd(in.b), opnd(in.c)) + ";";
  }

  // ---- loops over isomorphic segments and groups ----
  // Consecutive segments (or groups) whose code is the same up to a constant shift of the loaded components of each
  // argument (a long Sum over components cut in chunks, or output groups of F * V) are emitted once, in a run-time
  // loop whose counter shifts the components: the kernel's size and NVRTC's time stay those of one chunk.
  using Base = std::map<int, int>;            // argument -> smallest loaded component (origin of relative components)
  using Shift = std::map<int, std::string>;   // argument -> component shift, a C++ expression of the loop counters
  struct Unit {
    size_t first = 0, count = 1;
    std::map<int, int> delta;                 // per argument: components added per iteration
  };

  void add_base(Base& base, int v) const {
    const Instr& in = p_.code[v];
    auto [it, fresh] = base.try_emplace(in.pos, in.comp);
    it->second = std::min(it->second, in.comp);
  }
  Base segment_base(const Segment& s) const {
    Base base;
    for (int v : s.loads) add_base(base, v);
    return base;
  }
  Base group_base(const GroupPlan& gp) const {
    Base base;
    for (const Segment& s : gp.segments)
      for (int v : s.loads) add_base(base, v);
    for (int v : gp.hoisted)
      if (p_.code[v].op == Prim::Load) add_base(base, v);
    for (int v : gp.group.f) if (p_.code[v].op == Prim::Load) add_base(base, v);
    for (int v : gp.group.g) if (p_.code[v].op == Prim::Load) add_base(base, v);
    return base;
  }

  // Describes operand v as seen from segment s of group gp: a local, a restored carry, a hoisted value, a constant
  // or a load (relative to `base`).
  std::string operand_key(int v, const Segment* s, const GroupPlan& gp, const Base& base) const {
    const Instr& in = p_.code[v];
    if (in.op == Prim::Const) {
      char buf[40];
      std::snprintf(buf, sizeof buf, "k%a", in.imm);
      return buf;
    }
    if (in.op == Prim::Load) return "L" + num(in.pos) + "," + num(in.comp - base.at(in.pos)) + "," + num(int(p_.level[v]));
    if (s) {
      for (size_t k = 0; k < s->code.size(); ++k)
        if (s->code[k] == v) return "l" + num(k);
      for (size_t k = 0; k < s->restore.size(); ++k)
        if (s->restore[k] == v) return "r" + num(k);
    }
    for (size_t k = 0; k < gp.hoisted.size(); ++k)
      if (gp.hoisted[k] == v) return "h" + num(k);
    return "?" + num(v);  // unreachable for well-formed plans; never equal across segments
  }

  std::string segment_key(const Segment& s, const GroupPlan& gp, const Base& base, bool last) const {
    std::ostringstream k;
    k << "W" << s.width << "|";
    for (const Run& r : s.runs) {
      if (chunked_) k << "R" << r.pos << "," << r.lo - base.at(r.pos) << "," << r.hi - base.at(r.pos) << "," << r.offset << "|";
      else k << "R" << r.pos << "," << r.offset << "|";
    }
    std::vector<std::string> loads;
    for (int v : s.loads) loads.push_back(operand_key(v, &s, gp, base));
    std::sort(loads.begin(), loads.end());
    for (const std::string& l : loads) k << l << "|";
    for (int v : s.restore) k << "r" << gp.slot.at(v) << "|";
    for (int v : s.code) {
      const Instr& in = p_.code[v];
      k << "i" << int(in.op) << (in.op == Prim::Index ? "c" + num(in.comp) : "");
      for (int x : {in.a, in.b, in.c})
        if (x >= 0) k << "," << operand_key(x, &s, gp, base);
      k << "|";
    }
    for (int v : s.save) k << "s" << operand_key(v, &s, gp, base) << ">" << gp.slot.at(v) << "|";
    if (last) {
      k << "U";
      for (int v : gp.group.f) k << "," << operand_key(v, &s, gp, base);
      k << ";";
      for (int v : gp.group.g) k << "," << operand_key(v, &s, gp, base);
    }
    return k.str();
  }

  std::string group_key(const GroupPlan& gp) const {
    const Base base = group_base(gp);
    std::string k = state_type(gp.group) + "#" + num(gp.carries) + "#";
    for (int v : gp.hoisted) {
      const Instr& in = p_.code[v];
      k += "H" + num(int(in.op)) + (in.op == Prim::Index ? "c" + num(in.comp) : "");
      if (in.op == Prim::Load) k += operand_key(v, nullptr, gp, base);
      for (int x : {in.a, in.b, in.c})
        if (x >= 0) k += "," + operand_key(x, nullptr, gp, base);
      k += "|";
    }
    for (size_t si = 0; si < gp.segments.size(); ++si)
      k += "#" + segment_key(gp.segments[si], gp, base, si + 1 == gp.segments.size());
    return k;
  }

  // Groups consecutive equal keys whose bases move by a constant step into loops.
  static std::vector<Unit> runs(const std::vector<std::string>& keys, const std::vector<Base>& bases) {
    std::vector<Unit> units;
    auto step = [&](size_t a, size_t b) {
      std::map<int, int> d;
      for (auto& [pos, c] : bases[b]) d[pos] = c - bases[a].at(pos);
      return d;
    };
    for (size_t i = 0; i < keys.size();) {
      Unit u;
      u.first = i;
      size_t j = i + 1;
      if (j < keys.size() && keys[j] == keys[i]) {
        u.delta = step(i, j);
        while (j < keys.size() && keys[j] == keys[i] && step(j - 1, j) == u.delta) ++j;
      }
      u.count = j - i;
      if (u.count == 1) u.delta.clear();
      units.push_back(u);
      i = j;
    }
    return units;
  }

  static Shift compose(const Shift& outer, const std::map<int, int>& delta, const std::string& counter) {
    Shift sh = outer;
    for (auto& [pos, d] : delta) {
      if (d == 0) continue;
      const std::string term = counter + " * " + num(d);
      auto [it, fresh] = sh.try_emplace(pos, term);
      if (!fresh) it->second += " + " + term;
    }
    return sh;
  }

  std::string comp_expr(int pos, int comp, const Shift& sh) const {
    auto it = sh.find(pos);
    return it == sh.end() ? num(comp) : "(" + num(comp) + " + " + it->second + ")";
  }

  // A parameter or outer (row) Load.
  std::string row_load(int v, const Shift& sh) const {
    const Instr& in = p_.code[v];
    const std::string c = comp_expr(in.pos, in.comp, sh);
    const std::string at = p_.level[v] == Level::Param ? c : "rr * " + num(p_.args[in.pos].dim) + " + " + c;
    return "const C v" + num(v) + " = kp_load(P" + num(in.pos) + ", " + at + ");";
  }

  // An inner Load, from the staged tile. Chunk mode stages shifted runs (constant index); normal mode stages whole
  // rows (shifted index).
  std::string inner_load(int v, const Segment& s, const Shift& sh) const {
    const Instr& in = p_.code[v];
    for (const Run& r : s.runs)
      if (r.pos == in.pos && r.lo <= in.comp && in.comp <= r.hi) {
        const int idx = r.offset + in.comp - r.lo;
        const std::string at = chunked_ ? num(idx) : comp_expr(in.pos, idx, sh);
        return "const C v" + num(v) + " = sm_[jj * " + num(std::max(1, s.width)) + " + " + at + "];";
      }
    KEOPS_ASSERT(false, "inner load without a staged run");
  }

  std::string update_call(const Group& g) const {
    std::string f = "{ const C f_[" + num(g.f.size()) + "] = {";
    for (size_t k = 0; k < g.f.size(); ++k) f += (k ? ", " : "") + val(g.f[k]);
    f += "}; ";
    std::string gargs = "(const C*)0";
    if (!g.g.empty()) {
      f += "const C g_[" + num(g.g.size()) + "] = {";
      for (size_t k = 0; k < g.g.size(); ++k) f += (k ? ", " : "") + val(g.g[k]);
      f += "}; ";
      gargs = "g_";
    }
    return f + "st.update(f_, " + gargs + ", jt + jj); }";
  }

  // One segment for a tile of j: stage its inner components, load its row values, evaluate every j of the tile.
  void emit_segment(std::ostringstream& s, const GroupPlan& gp, const Segment& seg, bool last, const Shift& sh,
                    const std::string& ind) const {
    const std::string in1 = ind + "  ", in2 = in1 + "  ";
    const int width = std::max(1, seg.width);
    if (!seg.runs.empty()) {
      s << ind << "__syncthreads();\n";
      for (const Run& r : seg.runs) {
        const int w = r.hi - r.lo + 1, dim = p_.args[r.pos].dim;
        const std::string lo = chunked_ ? comp_expr(r.pos, r.lo, sh) : num(r.lo);
        if (w == 1) {
          s << ind << "for (int e = threadIdx.x; e < n; e += BLOCK) sm_[e * " << width << " + " << r.offset << "] = kp_load(P"
            << r.pos << ", (jt + e) * " << dim << " + " << lo << ");\n";
        } else {
          s << ind << "for (int e = threadIdx.x; e < n * " << w << "; e += BLOCK) { const int r_ = e / " << w << ", q_ = e - r_ * "
            << w << "; sm_[r_ * " << width << " + " << r.offset << " + q_] = kp_load(P" << r.pos << ", (jt + r_) * " << dim
            << " + " << lo << " + q_); }\n";
        }
      }
      s << ind << "__syncthreads();\n";
    }
    s << ind << "if (active) {\n";
    if (chunked_)
      for (int v : seg.loads)
        if (!is_inner_load(v)) s << in1 << row_load(v, sh) << "\n";
    s << in1 << "for (int jj = 0; jj < n; ++jj) {\n";
    for (int v : seg.restore) s << in2 << "const C v" << v << " = carry_[jj * NCARRY + " << gp.slot.at(v) << "];\n";
    for (int v : seg.loads)
      if (is_inner_load(v)) s << in2 << inner_load(v, seg, sh) << "\n";
    for (int v : seg.code) s << in2 << instr(v) << "\n";
    for (int v : seg.save) s << in2 << "carry_[jj * NCARRY + " << gp.slot.at(v) << "] = v" << v << ";\n";
    if (last) s << in2 << update_call(gp.group) << "\n";
    s << in1 << "}\n" << ind << "}\n";
  }

  // One group: its state, hoisted row values, the walk over its intervals and tiles, and the store (1D) or the
  // partial state (2D). `sh` shifts components (group loops); col0 / offset are C++ expressions.
  void emit_group(std::ostringstream& s, size_t gi, const Shift& sh, const std::string& col0, const std::string& offset,
                  const std::string& ind) const {
    const GroupPlan& gp = plans_[gi];
    const std::string in1 = ind + "  ", in2 = in1 + "  ", in3 = in2 + "  ", in4 = in3 + "  ";
    s << ind << "{\n";
    s << in1 << "State" << gi << " st;\n" << in1 << "st.init();\n";
    for (int v : gp.hoisted) s << in1 << (p_.code[v].op == Prim::Load ? row_load(v, sh) : instr(v)) << "\n";
    s << in1 << "kp_i64 skip = skip0, take = take0;\n";
    s << in1 << "for (kp_i64 k = 0; k < icount && take > 0; ++k) {\n";
    s << in2 << "kp_i64 j0 = ivs ? ivs[2 * (ifirst + k)] : 0, j1 = ivs ? ivs[2 * (ifirst + k) + 1] : d.n_inner;\n";
    s << in2 << "if (j1 - j0 <= skip) { skip -= j1 - j0; continue; }\n";
    s << in2 << "j0 += skip;\n" << in2 << "skip = 0;\n";
    s << in2 << "if (j1 - j0 > take) j1 = j0 + take;\n" << in2 << "take -= j1 - j0;\n";
    s << in2 << "for (kp_i64 jt = j0; jt < j1; jt += BLOCK) {\n";
    s << in3 << "const int n = (int)(j1 - jt < BLOCK ? j1 - jt : BLOCK);\n";
    std::vector<std::string> keys;
    std::vector<Base> bases;
    for (size_t si = 0; si < gp.segments.size(); ++si) {
      const bool last = si + 1 == gp.segments.size();
      keys.push_back(last ? "last" : segment_key(gp.segments[si], gp, segment_base(gp.segments[si]), false));
      bases.push_back(segment_base(gp.segments[si]));
    }
    for (const Unit& u : runs(keys, bases)) {
      const bool last = u.first + 1 == gp.segments.size();
      if (gp.segments.size() > 1)
        s << in3 << "// segment" << (u.count > 1 ? "s " + num(u.first) + ".." + num(u.first + u.count - 1) : " " + num(u.first))
          << "\n";
      if (u.count == 1) {
        emit_segment(s, gp, gp.segments[u.first], last, sh, in3);
      } else {
        s << in3 << "for (int s_ = 0; s_ < " << u.count << "; ++s_) {\n";
        emit_segment(s, gp, gp.segments[u.first], false, compose(sh, u.delta, "s_"), in4);
        s << in3 << "}\n";
      }
    }
    s << in3 << "if (active) st.tile_end();\n";
    s << in2 << "}\n" << in1 << "}\n";
    s << in1 << "if (active) {\n";
    s << in2 << "if (split) *(State" << gi << "*)(partial + ((kp_i64)blockIdx.y * d.n_rows + orow) * STATE_STRIDE + " << offset
      << ") = st;\n";
    s << in2 << "else st.store(o0, o1, orow, " << col0 << ");\n";
    s << in1 << "}\n" << ind << "}\n";
  }

  int state_offset(size_t gi) const {
    int off = 0;
    for (size_t k = 0; k < gi; ++k) off += state_bound(plans_[k].group);
    return off;
  }

  std::vector<Unit> group_units() const {
    std::vector<std::string> keys;
    std::vector<Base> bases;
    for (const GroupPlan& gp : plans_) {
      keys.push_back(group_key(gp));
      bases.push_back(group_base(gp));
    }
    return runs(keys, bases);
  }

  std::string emit(const KernelLayout& L) const {
    std::ostringstream s;
    const int nargs = static_cast<int>(p_.args.size());
    const char* T = o_.dtype == GpuDtype::F16 ? "kp_half" : o_.dtype == GpuDtype::F32 ? "float" : "double";
    const char* C = ctype() == GpuDtype::F64 ? "double" : "float";
    const char* A = o_.acc == GpuDtype::F64 ? "double" : "float";
    s << "\n// ---- " << p_.canonical << "  [" << o_.text() << "] ----\n";
    s << "namespace kp_" << name_ << " {\n";
    s << "typedef " << T << " T;  // data\ntypedef " << C << " C;  // computation\ntypedef " << A << " A;  // accumulation\n";
    s << "constexpr int BLOCK = " << block_ << ";\n";
    s << "constexpr int NCARRY = " << std::max(1, L.carries) << ";\n";
    s << "constexpr kp_i64 STATE_STRIDE = " << L.state_stride << ";\n";
    std::set<std::string> rendered;
    for (size_t gi = 0; gi < plans_.size(); ++gi) {
      if (rendered.insert(state_type(plans_[gi].group)).second) s << render_state(plans_[gi].group);
      s << "typedef " << state_type(plans_[gi].group) << " State" << gi << ";\n";
      s << "static_assert(sizeof(State" << gi << ") <= " << state_bound(plans_[gi].group) << ", \"state bound\");\n";
    }
    s << "struct Batch { kp_i64 nb; kp_i64 shape[" << L.max_batch_dims << "]; kp_i64 stride[" << std::max(1, nargs) << "]["
      << L.max_batch_dims << "]; };\n";
    s << "KP_DEV kp_i64 batch_offset(const Batch& bt, kp_i64 b, int pos) {\n"
         "  kp_i64 off = 0;\n"
         "  for (int k = (int)bt.nb - 1; k >= 0; --k) { const kp_i64 q = b / bt.shape[k]; off += (b - q * bt.shape[k]) * bt.stride[pos][k]; b = q; }\n"
         "  return off;\n}\n";
    s << "}  // namespace kp_" << name_ << "\n";
    const std::string ns = "kp_" + name_ + "::";
    // The reduction kernel: 1D when `partial` is null, else the 2D scheme's partial states (blockIdx.y = j slice).
    std::string params = "const KpDims d, const kp_i64* __restrict__ chunks, const kp_i64* __restrict__ ivs, const " + ns +
                         "Batch bt, char* __restrict__ partial";
    for (int a = 0; a < nargs; ++a) params += ", const " + ns + "T* __restrict__ a" + num(a);
    params += ", void* __restrict__ o0, void* __restrict__ o1";
    // Launch bounds only where needed to launch at all: with them ptxas trades registers for occupancy and spills;
    // up to 256 threads a block fits any register count.
    const std::string bounds = block_ > 256 ? "__launch_bounds__(" + num(block_) + ") " : "";
    s << "extern \"C\" __global__ void " << bounds << name_ << "_reduce(" << params << ") {\n";
    s << "  using namespace kp_" << name_ << ";\n";
    s << "  const bool split = partial != 0;\n";
    s << "  // this block's rows [r0, r1) of batch b and their intervals: from the block-sparse table, or implicit\n";
    s << "  const kp_i64 blk = blockIdx.x;\n";
    s << "  kp_i64 b, r0, r1, ifirst, icount;\n";
    s << "  if (chunks) { const kp_i64* c = chunks + 5 * blk; b = c[0]; r0 = c[1]; r1 = c[2]; ifirst = c[3]; icount = c[4]; }\n";
    s << "  else { b = blk / d.n_chunks; r0 = (blk - b * d.n_chunks) * BLOCK; r1 = r0 + BLOCK < d.n_outer ? r0 + BLOCK : d.n_outer; "
         "ifirst = 0; icount = 1; }\n";
    s << "  const kp_i64 row = r0 + threadIdx.x, rr = row < r1 ? row : r0, orow = b * d.n_outer + row;\n";
    s << "  const bool active = row < r1;\n";
    for (int a = 0; a < nargs; ++a) s << "  const T* __restrict__ P" << a << " = a" << a << " + (bt.nb ? batch_offset(bt, b, " << a << ") : 0);\n";
    s << "  // 2D scheme: this block's slice of the concatenation of its intervals\n";
    s << "  kp_i64 skip0 = 0, take0 = KP_NONE;\n";
    s << "  if (split) {\n";
    s << "    kp_i64 len = 0;\n";
    s << "    for (kp_i64 k = 0; k < icount; ++k) len += ivs ? ivs[2 * (ifirst + k) + 1] - ivs[2 * (ifirst + k)] : d.n_inner;\n";
    s << "    skip0 = len * (kp_i64)blockIdx.y / d.n_split;\n";
    s << "    take0 = len * ((kp_i64)blockIdx.y + 1) / d.n_split - skip0;\n";
    s << "  }\n";
    s << "  __shared__ C sm_[BLOCK * " << std::max(1, max_width()) << "];\n";
    if (L.carries) s << "  C carry_[BLOCK * NCARRY];  // values crossing segments, per j of the tile\n";
    for (const Unit& u : group_units()) {
      const Group& g = plans_[u.first].group;
      const std::string off = num(state_offset(u.first));
      s << "  // group" << (u.count > 1 ? "s " + num(u.first) + ".." + num(u.first + u.count - 1) : " " + num(u.first))
        << ": columns from " << g.c0 << (plans_[u.first].segments.size() > 1 ? ", " + num(plans_[u.first].segments.size()) + " segments" : "")
        << "\n";
      if (u.count == 1) {
        emit_group(s, u.first, {}, num(g.c0), off, "  ");
      } else {
        s << "  for (int g_ = 0; g_ < " << u.count << "; ++g_)\n";
        emit_group(s, u.first, compose({}, u.delta, "g_"), num(g.c0) + " + g_ * " + num(g.n),
                   off + " + g_ * " + num(state_bound(g)), "  ");
      }
    }
    s << "}\n";
    // Combine (2D): one thread per output row folds the partial states in order of j and stores.
    s << "extern \"C\" __global__ void " << name_
      << "_combine(const KpDims d, const char* __restrict__ partial, void* __restrict__ o0, void* __restrict__ o1) {\n";
    s << "  using namespace kp_" << name_ << ";\n";
    s << "  const kp_i64 orow = (kp_i64)blockIdx.x * " << L.combine_block << " + threadIdx.x;\n";
    s << "  if (orow >= d.n_rows) return;\n";
    for (const Unit& u : group_units()) {
      const Group& g = plans_[u.first].group;
      const std::string st = "State" + num(u.first);
      std::string off = num(state_offset(u.first)), col0 = num(g.c0);
      std::string ind = "  ";
      if (u.count > 1) {
        s << "  for (int g_ = 0; g_ < " << u.count << "; ++g_)\n";
        off += " + g_ * " + num(state_bound(g));
        col0 += " + g_ * " + num(g.n);
        ind = "    ";
      }
      s << ind << "{ " << st << " st = *(const " << st << "*)(partial + orow * STATE_STRIDE + " << off << ");\n";
      s << ind << "  for (kp_i64 q = 1; q < d.n_split; ++q) st.combine(*(const " << st << "*)(partial + (q * d.n_rows + orow) * STATE_STRIDE + "
        << off << "));\n";
      s << ind << "  st.store(o0, o1, orow, " << col0 << "); }\n";
    }
    s << "}\n";
    // Host emulation (tests): entry points taking the cuLaunchKernel parameter array.
    s << "#ifdef KP_HOST_EMULATION\n";
    s << "extern \"C\" void " << name_ << "_reduce_host(void** p) { " << name_ << "_reduce(*(KpDims*)p[0], *(const kp_i64**)p[1], "
      << "*(const kp_i64**)p[2], *(" << ns << "Batch*)p[3], *(char**)p[4]";
    for (int a = 0; a < nargs; ++a) s << ", *(const " << ns << "T**)p[" << 5 + a << "]";
    s << ", *(void**)p[" << 5 + nargs << "], *(void**)p[" << 6 + nargs << "]); }\n";
    s << "extern \"C\" void " << name_ << "_combine_host(void** p) { " << name_
      << "_combine(*(KpDims*)p[0], *(const char**)p[1], *(void**)p[2], *(void**)p[3]); }\n";
    s << "#endif\n";
    return s.str();
  }
};

}  // namespace

CudaSource generate_cuda(const Program& p, const GpuOptions& o, const std::string& name) {
  return Generator(p, o, name).run();
}

}  // namespace keops::gpu
