// The rules of every reduction: state slots, init / update / combine / flush / store (the semantics live here only).
#include "reduction_rules.h"

#include <cmath>

#include "errors.h"

namespace keops {

namespace {

constexpr double kInf = INFINITY;

// Sum, direct: [s] per component.
class SumRules : public ReductionRules {
 public:
  std::vector<Slot> component_slots(int) const override { return {{SlotKind::Acc, 0}}; }
  void update(RuleBuilder& b, State& st, const std::vector<Val>& f, const std::vector<Val>&, Val) const override {
    for (int c = 0; c < st.n; ++c) st.at(c, 0) = b.round_acc(b.add(st.at(c, 0), b.to_acc(f[c])));
  }
  void combine(RuleBuilder& b, State& st, const State& o) const override {
    for (int c = 0; c < st.n; ++c) st.at(c, 0) = b.round_acc(b.add(st.at(c, 0), o.at(c, 0)));
  }
  void store(RuleBuilder& b, State& st) const override {
    for (int c = 0; c < st.n; ++c) b.put(0, 0, c, st.at(c, 0));
  }
};

// Sum, Kahan: [sum s, compensation e] per component; a state over later indices adds s, then -e.
class KahanRules : public ReductionRules {
 public:
  std::vector<Slot> component_slots(int) const override { return {{SlotKind::Acc, 0}, {SlotKind::Acc, 0}}; }
  static void add(RuleBuilder& b, State& st, int c, Val x) {
    Val &s = st.at(c, 0), &e = st.at(c, 1);
    Val y = b.sub(x, e);
    Val t = b.round_acc(b.add(s, y));
    e = b.round_acc(b.sub(b.sub(t, s), y));
    s = t;
  }
  void update(RuleBuilder& b, State& st, const std::vector<Val>& f, const std::vector<Val>&, Val) const override {
    for (int c = 0; c < st.n; ++c) add(b, st, c, b.to_acc(f[c]));
  }
  void combine(RuleBuilder& b, State& st, const State& o) const override {
    for (int c = 0; c < st.n; ++c) add(b, st, c, o.at(c, 0)), add(b, st, c, b.neg(o.at(c, 1)));
  }
  void store(RuleBuilder& b, State& st) const override {
    for (int c = 0; c < st.n; ++c) b.put(0, 0, c, b.sub(st.at(c, 0), st.at(c, 1)));
  }
};

// Max_SumShiftExpWeight: [m] + [s] per weight component, m = max f, s = sum exp(f - m) g (g = 1 without weights).
// Online, with a single exp: the larger maximum wins and the other side is scaled by exp(-|m - f|); -inf terms
// add nothing; NaN propagates.
class ShiftExpRules : public ReductionRules {
 public:
  std::vector<Slot> head_slots() const override { return {{SlotKind::Acc, -kInf}}; }
  std::vector<Slot> component_slots(int) const override { return {{SlotKind::Acc, 0}}; }
  static void absorb(RuleBuilder& b, State& st, Val f, const std::vector<Val>& g) {
    Val m = st.head(0);
    Val e = b.exp(b.neg(b.abs(b.sub(m, f))));
    e = b.select(b.eq(f, m), b.constant(SlotKind::Acc, 1), e);
    e = b.select(b.eq(f, b.constant(SlotKind::Acc, -kInf)), b.constant(SlotKind::Acc, 0), e);
    Val bigger = b.gt(f, m);
    for (int c = 0; c < st.n; ++c) {
      Val& s = st.at(c, 0);
      s = b.round_acc(b.select(bigger, b.add(b.mul(s, e), g[c]), b.add(s, b.mul(g[c], e))));
    }
    st.head(0) = b.select(bigger, f, m);
  }
  void update(RuleBuilder& b, State& st, const std::vector<Val>& f, const std::vector<Val>& g, Val) const override {
    std::vector<Val> w;
    for (int c = 0; c < st.n; ++c) w.push_back(st.weights ? b.to_acc(g[c]) : b.constant(SlotKind::Acc, 1));
    absorb(b, st, b.to_acc(f[0]), w);
  }
  void combine(RuleBuilder& b, State& st, const State& o) const override {
    std::vector<Val> s;
    for (int c = 0; c < o.n; ++c) s.push_back(o.at(c, 0));
    absorb(b, st, o.v[0], s);
  }
  void store(RuleBuilder& b, State& st) const override {
    b.put_once(0, 0, st.head(0));
    for (int c = 0; c < st.n; ++c) b.put(0, 1, c, st.at(c, 0));
  }
};

// Block sums of any accumulating reduction: per component [total..., block...] (heads likewise); update() goes to
// the block, which flush() folds into the total with the combine rule (the error grows like sqrt(N) blocks instead
// of N terms). A state over later indices is folded as total + block.
class BlockRules : public ReductionRules {
 public:
  explicit BlockRules(const ReductionRules& base) : base_(base) {}
  std::vector<Slot> head_slots() const override { return twice(base_.head_slots()); }
  std::vector<Slot> component_slots(int k) const override { return twice(base_.component_slots(k)); }
  void update(RuleBuilder& b, State& st, const std::vector<Val>& f, const std::vector<Val>& g, Val j) const override {
    State blk = part(st, 1);
    base_.update(b, blk, f, g, j);
    put_part(st, blk, 1);
  }
  void flush(RuleBuilder& b, State& st) const override {
    State total = part(st, 0), blk = part(st, 1);
    base_.combine(b, total, blk);
    init_state(b, base_, blk);
    put_part(st, total, 0);
    put_part(st, blk, 1);
  }
  void combine(RuleBuilder& b, State& st, const State& o) const override {
    State total = part(st, 0), later = part(o, 0);
    base_.combine(b, later, part(o, 1));
    base_.combine(b, total, later);
    put_part(st, total, 0);
  }
  void store(RuleBuilder& b, State& st) const override {
    State total = part(st, 0);
    base_.combine(b, total, part(st, 1));
    base_.store(b, total);
  }

 private:
  static std::vector<Slot> twice(std::vector<Slot> s) {
    const size_t n = s.size();
    for (size_t k = 0; k < n; ++k) s.push_back(s[k]);
    return s;
  }
  // Half h (0 total, 1 block) of a state, as a state of the base rules.
  static State part(const State& st, int h) {
    State p = st;
    p.heads = st.heads / 2, p.per = st.per / 2;
    p.v.clear();
    for (int s = 0; s < p.heads; ++s) p.v.push_back(st.v[h * p.heads + s]);
    for (int c = 0; c < st.n; ++c)
      for (int s = 0; s < p.per; ++s) p.v.push_back(st.at(c, h * p.per + s));
    return p;
  }
  static void put_part(State& st, const State& p, int h) {
    for (int s = 0; s < p.heads; ++s) st.v[h * p.heads + s] = p.v[s];
    for (int c = 0; c < st.n; ++c)
      for (int s = 0; s < p.per; ++s) st.at(c, h * p.per + s) = p.at(c, s);
  }
  const ReductionRules& base_;
};

// A value slot that no number filled (NaN only, or no candidate) reads +-inf.
Val value_out(RuleBuilder& b, Val v, bool max) {
  return b.select(b.uno(v, v), b.constant(SlotKind::Value, max ? -kInf : kInf), v);
}
Val better(RuleBuilder& b, Val v, Val best, bool max) { return max ? b.gt(v, best) : b.lt(v, best); }
// (v, j) beats (best, best_j): NaN ranks after every number (as in torch.sort), so a strictly better value, a number
// against NaN, or the same value (NaN against NaN included) at a smaller index. A row of NaN thus reports its first
// index (torch.argmin's answer) and the values of its pairs read +-inf, as pykeops.
Val better_pair(RuleBuilder& b, Val v, Val j, Val best, Val best_j, bool max) {
  Val v_nan = b.uno(v, v), best_nan = b.uno(best, best);
  Val same = b.either(b.eq(v, best), b.both(v_nan, best_nan));
  Val tie = b.both(same, b.index_lt(j, best_j));
  return b.either(b.either(better(b, v, best, max), b.both(b.negate(v_nan), best_nan)), tie);
}

// Min / Max per component: [v], starting at +-inf; NaN values never win.
class MinMaxRules : public ReductionRules {
 public:
  explicit MinMaxRules(bool is_max) { max = is_max; }
  std::vector<Slot> component_slots(int) const override { return {{SlotKind::Value, max ? -kInf : kInf}}; }
  void update_one(RuleBuilder& b, State& st, int c, Val f, Val) const override {
    Val& v = st.at(c, 0);
    v = b.select(better(b, f, v, max), f, v);
  }
  void combine(RuleBuilder& b, State& st, const State& o) const override {
    for (int c = 0; c < st.n; ++c) update_one(b, st, c, o.at(c, 0), Val{});
  }
  void store(RuleBuilder& b, State& st) const override {
    for (int c = 0; c < st.n; ++c) b.put(0, 0, c, st.at(c, 0));
  }
};

// ArgMin / ArgMax (indices in output 0) and Min_ArgMin / Max_ArgMax (values in 0, indices in 1): per component the
// best pair [v, i], starting at (NaN, kNoIndex), which every candidate beats.
class ArgRules : public ReductionRules {
 public:
  ArgRules(bool is_max, bool values) : values_(values) { max = is_max; }
  std::vector<Slot> component_slots(int) const override { return {{SlotKind::Value, NAN}, {SlotKind::Index, 0}}; }
  void update_one(RuleBuilder& b, State& st, int c, Val f, Val j) const override {
    Val &v = st.at(c, 0), &i = st.at(c, 1);
    Val take = better_pair(b, f, j, v, i, max);
    v = b.select(take, f, v);
    i = b.select(take, j, i);
  }
  void combine(RuleBuilder& b, State& st, const State& o) const override {
    for (int c = 0; c < st.n; ++c) update_one(b, st, c, o.at(c, 0), o.at(c, 1));
  }
  void store(RuleBuilder& b, State& st) const override {
    for (int c = 0; c < st.n; ++c) {
      if (values_) b.put(0, 0, c, value_out(b, st.at(c, 0), max));
      b.put_index(values_ ? 1 : 0, 0, c, st.at(c, 1));
    }
  }
  bool pairs() const override { return true; }
  std::pair<Val, Val> to_beat(RuleBuilder&, const State& st, int c) const override { return {st.at(c, 0), st.at(c, 1)}; }

 private:
  bool values_;
};

// KMin / ArgKMin / KMin_ArgKMin: per component the K smallest pairs [v_0, i_0, ..., v_K-1, i_K-1], sorted, each
// starting at (NaN, kNoIndex). A pair is inserted by a compare-and-swap chain, which runs only when it beats the
// last entry (the list is sorted: otherwise it beats none). Output rank r of component c is column r * d + c.
class KMinRules : public ReductionRules {
 public:
  KMinRules(bool values, bool indices) : values_(values), indices_(indices) {}
  std::vector<Slot> component_slots(int k) const override {
    std::vector<Slot> s;
    for (int r = 0; r < k; ++r) s.push_back({SlotKind::Value, NAN}), s.push_back({SlotKind::Index, 0});
    return s;
  }
  void update_one(RuleBuilder& b, State& st, int c, Val v, Val j) const override {
    std::vector<int> slots;
    for (int s = 0; s < st.per; ++s) slots.push_back(st.slot(c, s));
    const int last = st.k - 1;
    b.when(better_pair(b, v, j, st.at(c, 2 * last), st.at(c, 2 * last + 1), false), st, slots, [&] {
      for (int r = 0; r < st.k; ++r) {
        Val &lv = st.at(c, 2 * r), &lj = st.at(c, 2 * r + 1);
        Val take = better_pair(b, v, j, lv, lj, false);
        Val nv = b.select(take, v, lv), nj = b.select(take, j, lj);
        v = b.select(take, lv, v);
        j = b.select(take, lj, j);
        lv = nv;
        lj = nj;
      }
    });
  }
  void combine(RuleBuilder& b, State& st, const State& o) const override {
    for (int c = 0; c < st.n; ++c)
      for (int r = 0; r < st.k; ++r) update_one(b, st, c, o.at(c, 2 * r), o.at(c, 2 * r + 1));
  }
  void store(RuleBuilder& b, State& st) const override {
    for (int c = 0; c < st.n; ++c)
      for (int r = 0; r < st.k; ++r) {
        if (values_) b.put(0, r * st.d, c, value_out(b, st.at(c, 2 * r), false));
        if (indices_) b.put_index(values_ ? 1 : 0, r * st.d, c, st.at(c, 2 * r + 1));
      }
  }
  bool pairs() const override { return true; }
  std::pair<Val, Val> to_beat(RuleBuilder&, const State& st, int c) const override {
    return {st.at(c, 2 * (st.k - 1)), st.at(c, 2 * (st.k - 1) + 1)};
  }

 private:
  bool values_, indices_;
};

Val index(RuleBuilder& b, int64_t i) { return b.constant(SlotKind::Index, (double)i); }
// for (r = 0; r < n; ++r) body(r), with K kept in the loop.
void for_range(RuleBuilder& b, Val n, const std::function<void(Val)>& body) {
  std::vector<Val> vars{index(b, 0)};
  b.loop(vars, [&] { return b.index_lt(vars[0], n); }, [&] {
    body(vars[0]);
    vars[0] = b.index_add(vars[0], index(b, 1));
  });
}

// The same reductions for large K: per component two lists [values, indices] holding the K best pairs as a heap
// whose root (entry 0) is the worst of them, the pair a candidate must beat; a winner replaces the root and sinks
// (O(log K) compares), and store() sorts the heap in place (heapsort) before writing it. The order of pairs is
// better_pair's, a total order (indices differ), so the K best and their output order are those of KMinRules.
class KHeapRules : public ReductionRules {
 public:
  KHeapRules(bool values, bool indices) : values_(values), indices_(indices) {}
  std::vector<Slot> component_slots(int k) const override { return {{SlotKind::Value, NAN, k}, {SlotKind::Index, 0, k}}; }
  void update_one(RuleBuilder& b, State& st, int c, Val v, Val j) const override {
    Val vals = st.at(c, 0), idx = st.at(c, 1), root = index(b, 0);
    b.when(better_pair(b, v, j, b.get(vals, SlotKind::Value, root), b.get(idx, SlotKind::Index, root), false), st, {}, [&] {
      sink(b, vals, idx, index(b, st.k), v, j);
    });
  }
  void combine(RuleBuilder& b, State& st, const State& o) const override {
    for (int c = 0; c < st.n; ++c)
      for_range(b, index(b, st.k), [&](Val r) { update_one(b, st, c, b.get(o.at(c, 0), SlotKind::Value, r), b.get(o.at(c, 1), SlotKind::Index, r)); });
  }
  void store(RuleBuilder& b, State& st) const override {
    for (int c = 0; c < st.n; ++c) {
      Val vals = st.at(c, 0), idx = st.at(c, 1), root = index(b, 0);
      // Heapsort: the root (the worst of the first e + 1) goes to entry e, entry e sinks from the root.
      std::vector<Val> vars{index(b, st.k - 1)};
      b.loop(vars, [&] { return b.index_lt(root, vars[0]); }, [&] {
        Val e = vars[0], v = b.get(vals, SlotKind::Value, e), j = b.get(idx, SlotKind::Index, e);
        b.set(vals, e, b.get(vals, SlotKind::Value, root));
        b.set(idx, e, b.get(idx, SlotKind::Index, root));
        sink(b, vals, idx, e, v, j);
        vars[0] = b.index_add(e, index(b, -1));
      });
      for_range(b, index(b, st.k), [&](Val r) {
        if (values_) b.put_at(0, r, st.d, c, value_out(b, b.get(vals, SlotKind::Value, r), false), false);
        if (indices_) b.put_at(values_ ? 1 : 0, r, st.d, c, b.get(idx, SlotKind::Index, r), true);
      });
    }
  }
  bool pairs() const override { return true; }
  std::pair<Val, Val> to_beat(RuleBuilder& b, const State& st, int c) const override {
    return {b.get(st.at(c, 0), SlotKind::Value, index(b, 0)), b.get(st.at(c, 1), SlotKind::Index, index(b, 0))};
  }

 private:
  // Puts (v, j) in the hole at the root of the heap of the first n entries: while it beats the worse child, that
  // child moves up into the hole.
  static void sink(RuleBuilder& b, Val vals, Val idx, Val n, Val v, Val j) {
    Val zero = index(b, 0), one = index(b, 1);
    std::vector<Val> vars{zero};
    Val wv, wj, w;
    b.loop(vars, [&] {
      Val c1 = b.index_add(b.index_add(vars[0], vars[0]), one), c2 = b.index_add(c1, one);
      Val has1 = b.index_lt(c1, n), has2 = b.index_lt(c2, n);
      Val i1 = b.select(has1, c1, zero), i2 = b.select(has2, c2, zero);  // in bounds: read, then ignored
      Val v1 = b.get(vals, SlotKind::Value, i1), j1 = b.get(idx, SlotKind::Index, i1), v2 = b.get(vals, SlotKind::Value, i2), j2 = b.get(idx, SlotKind::Index, i2);
      Val second = b.both(has2, better_pair(b, v1, j1, v2, j2, false));
      w = b.select(second, c2, c1), wv = b.select(second, v2, v1), wj = b.select(second, j2, j1);
      return b.both(has1, better_pair(b, v, j, wv, wj, false));
    }, [&] {
      b.set(vals, vars[0], wv);
      b.set(idx, vars[0], wj);
      vars[0] = w;
    });
    b.set(vals, vars[0], v);
    b.set(idx, vars[0], j);
  }
  bool values_, indices_;
};

// Zero_Reduction: no state (the launch zero-fills its output).
class ZeroRules : public ReductionRules {
 public:
  std::vector<Slot> component_slots(int) const override { return {}; }
  void combine(RuleBuilder&, State&, const State&) const override {}
  void store(RuleBuilder&, State&) const override {}
};

}  // namespace

Val RuleBuilder::list(SlotKind, int) { KEOPS_ASSERT(false, "this builder has no lists"); }
Val RuleBuilder::get(Val, SlotKind, Val) { KEOPS_ASSERT(false, "this builder has no lists"); }
void RuleBuilder::set(Val, Val, Val) { KEOPS_ASSERT(false, "this builder has no lists"); }
Val RuleBuilder::index_add(Val, Val) { KEOPS_ASSERT(false, "this builder has no lists"); }
void RuleBuilder::loop(std::vector<Val>&, const std::function<Val()>&, const std::function<void()>&) {
  KEOPS_ASSERT(false, "this builder has no loops");
}
void RuleBuilder::put_at(int, Val, int, int, Val, bool) { KEOPS_ASSERT(false, "this builder has no lists"); }

void ReductionRules::update(RuleBuilder& b, State& st, const std::vector<Val>& f, const std::vector<Val>&, Val j) const {
  for (int c = 0; c < st.n; ++c) update_one(b, st, c, f[c], j);
}

const ReductionRules& reduction_rules(ReductionKind kind, SumScheme scheme, int k, bool lists) {
  static const SumRules sum;
  static const KahanRules kahan;
  static const BlockRules block_sum(sum);
  static const ShiftExpRules shift_exp;
  static const BlockRules block_shift_exp(shift_exp);
  static const MinMaxRules min(false), max(true);
  static const ArgRules arg_min(false, false), arg_max(true, false), min_arg_min(false, true), max_arg_max(true, true);
  static const KMinRules kmin(true, false), arg_kmin(false, true), kmin_arg_kmin(true, true);
  static const KHeapRules kmin_heap(true, false), arg_kmin_heap(false, true), kmin_arg_kmin_heap(true, true);
  static const ZeroRules zero;
  using K = ReductionKind;
  const bool heap = lists && k > kMaxUnrolledK;
  switch (kind) {  // no default: a ReductionKind without rules fails the build (-Werror=switch)
    case K::Sum: return scheme == SumScheme::Kahan ? (const ReductionRules&)kahan : scheme == SumScheme::Block ? (const ReductionRules&)block_sum : sum;
    case K::MaxSumShiftExpWeight:  // Kahan is Sum-only: parse_sum_scheme refuses it, the rules run it as direct
      return scheme == SumScheme::Block ? (const ReductionRules&)block_shift_exp : shift_exp;
    case K::Min: return min;
    case K::Max: return max;
    case K::ArgMin: return arg_min;
    case K::ArgMax: return arg_max;
    case K::MinArgMin: return min_arg_min;
    case K::MaxArgMax: return max_arg_max;
    case K::KMin: return heap ? (const ReductionRules&)kmin_heap : kmin;
    case K::ArgKMin: return heap ? (const ReductionRules&)arg_kmin_heap : arg_kmin;
    case K::KMinArgKMin: return heap ? (const ReductionRules&)kmin_arg_kmin_heap : kmin_arg_kmin;
    case K::Zero: return zero;
  }
  KEOPS_ASSERT(false, "unknown reduction kind");
}

std::vector<Slot> state_slots(const ReductionRules& r, int n, int k) {
  std::vector<Slot> s = r.head_slots();
  const std::vector<Slot> per = r.component_slots(k);
  for (int c = 0; c < n; ++c) s.insert(s.end(), per.begin(), per.end());
  return s;
}

State empty_state(const ReductionRules& r, int n, int k, int d, bool weights) {
  State st;
  st.heads = (int)r.head_slots().size(), st.per = (int)r.component_slots(k).size();
  st.n = n, st.k = k, st.d = d, st.weights = weights;
  st.v.resize(st.heads + n * st.per);
  return st;
}

void init_state(RuleBuilder& b, const ReductionRules& r, State& st) {
  const std::vector<Slot> slots = state_slots(r, st.n, st.k);
  for (size_t s = 0; s < slots.size(); ++s) {
    const double init = slots[s].kind == SlotKind::Index ? (double)kNoIndex : slots[s].init;
    if (slots[s].n == 0) {
      st.v[s] = b.constant(slots[s].kind, init);
      continue;
    }
    Val list = st.v[s] = b.list(slots[s].kind, slots[s].n);
    for_range(b, index(b, slots[s].n), [&](Val r) { b.set(list, r, b.constant(slots[s].kind, init)); });
  }
}

}  // namespace keops
