// Reduction rules: each reduction's state slots and its init / update / combine / flush / store, written once over
// a builder that each backend implements (CPU: LLVM IRBuilder, GPU: CUDA text).
#pragma once
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "program.h"
#include "reduction.h"

namespace keops {

// A slot of a reduction state: an accumulator (dtype_acc), a value (the data type on the CPU, the compute type on
// the GPU) or an int64 index; `init` is its initial value (Index slots start at kNoIndex). A slot with n > 0 is a
// list of n such elements held in the builder's memory (see RuleBuilder::list), indexed at run time.
enum class SlotKind : uint8_t { Acc, Value, Index };
struct Slot {
  SlotKind kind = SlotKind::Acc;
  double init = 0;
  int n = 0;
};
// K above which the K-reductions may keep their K best in lists (a heap: O(log K) code and work per winner) rather
// than in 2K scalar slots with an unrolled insertion chain (faster for small K: no memory traffic; and their rows
// keep the CPU's chunks of j, which lists cannot resume yet: kNN K=10, 2e3 x 6e4, D=784 runs 2x faster unrolled).
constexpr int kMaxUnrolledK = 16;
constexpr int64_t kNoIndex = INT64_MAX;  // "no candidate yet": loses every tie; an index output reads -1 for it

// An opaque value of the builder (an llvm::Value*, a CUDA expression).
struct Val {
  void* p = nullptr;
  bool operator==(const Val&) const = default;
};

// The state of one group of n components (the GPU splits large states into groups; the CPU has one): the head
// slots shared by the group, then each component's slots. k: K of the K-reductions; d: the formula's dim (columns
// of an output rank); weights: whether update() receives weights g (Max_SumShiftExpWeight).
struct State {
  std::vector<Val> v;
  int heads = 0, per = 0, n = 0, k = 0, d = 0;
  bool weights = false;
  Val& head(int s) { return v[s]; }
  Val& at(int c, int s) { return v[slot(c, s)]; }
  Val at(int c, int s) const { return v[slot(c, s)]; }
  int slot(int c, int s) const { return heads + c * per + s; }
};

// What the rules need from a backend. The rules are plain C++ over this interface (virtual calls cost nothing
// that matters: they run while generating code, once per kernel), so that one text serves both backends.
class RuleBuilder {
 public:
  virtual ~RuleBuilder() = default;
  virtual Val constant(SlotKind kind, double x) = 0;  // of the slot kind's type (Index: kNoIndex or an integer)
  virtual Val add(Val a, Val b) = 0;
  virtual Val sub(Val a, Val b) = 0;
  virtual Val mul(Val a, Val b) = 0;
  virtual Val neg(Val a) = 0;
  virtual Val abs(Val a) = 0;
  virtual Val exp(Val a) = 0;
  virtual Val lt(Val a, Val b) = 0;   // ordered compares: false on NaN
  virtual Val gt(Val a, Val b) = 0;
  virtual Val eq(Val a, Val b) = 0;
  virtual Val uno(Val a, Val b) = 0;  // a or b is NaN
  virtual Val both(Val m, Val n) = 0;
  virtual Val either(Val m, Val n) = 0;
  virtual Val negate(Val m) = 0;
  virtual Val select(Val m, Val a, Val b) = 0;
  virtual Val index_lt(Val i, Val j) = 0;
  virtual Val to_acc(Val a) = 0;      // a value in the accumulator type
  virtual Val round_acc(Val a) = 0;   // rounded to the accumulator's precision (float16 accumulators on the GPU)
  // Runs `body` (which may change st.v[s], s in slots) only where m holds; afterwards st holds the joined values.
  virtual void when(Val m, State& st, const std::vector<int>& slots, const std::function<void()>& body) = 0;
  // Output `out` of the row, column col + c0 + comp (c0: the group's first component); put_once: column col, by the
  // group of component 0 only; put_index: an index (kNoIndex reads -1).
  virtual void put(int out, int col, int comp, Val v) = 0;
  virtual void put_once(int out, int col, Val v) = 0;
  virtual void put_index(int out, int col, int comp, Val j) = 0;

  // Lists (only for rules built with lists; the defaults refuse). list(): a fresh local array of n elements of a
  // slot kind, which get / set read and write at a run-time Index i; loop(): while head() (which may compute values
  // that body uses) holds, body(); `vars` are the values carried around the loop (read and replaced by head and
  // body; afterwards: their values on exit). put_at: as put / put_index at column rank * stride + comp.
  virtual Val list(SlotKind kind, int n);  // get names the kind again: a list is an opaque address
  virtual Val get(Val list, SlotKind kind, Val i);
  virtual void set(Val list, Val i, Val v);
  virtual Val index_add(Val i, Val j);
  virtual void loop(std::vector<Val>& vars, const std::function<Val()>& head, const std::function<void()>& body);
  virtual void put_at(int out, Val rank, int stride, int comp, Val v, bool index);
};

// One reduction's rules. update() folds the formula's values f (and weights g) at reduced index j; combine() folds
// a state over later indices; flush() ends an interval of j (a tile on the GPU); store() writes the finished state.
class ReductionRules {
 public:
  virtual ~ReductionRules() = default;
  virtual std::vector<Slot> head_slots() const { return {}; }
  virtual std::vector<Slot> component_slots(int k) const = 0;
  virtual void update(RuleBuilder& b, State& st, const std::vector<Val>& f, const std::vector<Val>& g, Val j) const;
  virtual void update_one(RuleBuilder&, State&, int /*c*/, Val /*f*/, Val /*j*/) const {}  // component c
  virtual void combine(RuleBuilder& b, State& st, const State& o) const = 0;
  virtual void flush(RuleBuilder&, State&) const {}
  virtual void store(RuleBuilder& b, State& st) const = 0;
  // Reductions of (value, index) pairs (pairs()): component c's pair (value, index) that a candidate must beat to
  // change the state (the best pair, the K-th best of a K-list), so that a backend may filter candidates before
  // update_one. `max`: larger values win.
  virtual bool pairs() const { return false; }
  virtual std::pair<Val, Val> to_beat(RuleBuilder&, const State&, int) const { return {}; }
  bool max = false;
};

// The rules of a reduction under a summation scheme (every ReductionKind has rules: the switch has no default).
// lists: the K-reductions with K > kMaxUnrolledK keep their K best in lists (for builders that implement them).
const ReductionRules& reduction_rules(ReductionKind kind, SumScheme scheme, int k = 0, bool lists = false);

// A state of `r` for n components, slots unset; its slots in order; its initial values.
State empty_state(const ReductionRules& r, int n, int k, int d, bool weights);
std::vector<Slot> state_slots(const ReductionRules& r, int n, int k);
void init_state(RuleBuilder& b, const ReductionRules& r, State& st);

}  // namespace keops
