// Reroll pass: chains of Adds over isomorphic terms -> LoopSum with one term as its body; then dead code removal.
#include "reroll.h"

#include <algorithm>
#include <unordered_map>

#include "errors.h"

namespace keops {

namespace {

// Matches terms against a template term t0: each template value is invariant (the same value in every term) or
// variant (the same operation on matched operands; a Load of component comp + d * step in the term at distance d).
class TermMatcher {
 public:
  TermMatcher(const Program& p, int t0, const std::vector<char>& claimed) : p_(p), t0_(t0), claimed_(claimed) {}

  // Whether `t` is the template at distance d >= 1 (d = 1 decides which template values are invariant and the steps).
  bool match(int t, int d) {
    std::unordered_map<int, int> seen;  // template value -> its value in t
    std::vector<std::pair<int, int>> todo{{t0_, t}};
    while (!todo.empty()) {
      auto [x, y] = todo.back();
      todo.pop_back();
      if (auto it = seen.find(x); it != seen.end()) {
        if (it->second != y) return false;
        continue;
      }
      seen.emplace(x, y);
      const bool first = d == 1 && !kind_.count(x);
      if (first) kind_[x] = x == y ? kInvariant : kVariant;
      if (kind_.at(x) == kInvariant) {
        if (x != y) return false;
        continue;
      }
      if (x == y || claimed_[x] || claimed_[y]) return false;
      const Instr &a = p_.code[x], &b = p_.code[y];
      if (a.op != b.op || a.op == Prim::Const || a.op == Prim::Index || a.op == Prim::LoopSum) return false;
      if (a.op == Prim::Load) {
        if (a.pos != b.pos) return false;
        if (first) step_[x] = b.comp - a.comp;
        if (b.comp != a.comp + d * step_.at(x)) return false;
        continue;
      }
      for (auto [u, v] : {std::pair{a.a, b.a}, {a.b, b.b}, {a.c, b.c}}) {
        if ((u < 0) != (v < 0)) return false;
        if (u >= 0) todo.emplace_back(u, v);
      }
    }
    return true;
  }

  // The template's variant values, in program order (the loop body), and the step of each variant Load.
  std::vector<int> body() const {
    std::vector<int> r;
    for (auto [x, k] : kind_) if (k == kVariant) r.push_back(x);
    std::sort(r.begin(), r.end());
    return r;
  }
  int step(int x) const { return step_.count(x) ? step_.at(x) : 0; }

 private:
  enum Kind { kInvariant, kVariant };
  const Program& p_;
  int t0_;
  const std::vector<char>& claimed_;
  std::unordered_map<int, Kind> kind_;
  std::unordered_map<int, int> step_;
};

struct Loop {
  int top;               // the chain value the loop replaces
  int init;              // the partial sum before the loop, or -1
  int trip;
  std::vector<int> body; // template values, in program order (the last is the term)
  std::vector<int> steps;
};

// Values that other values or the outputs use, and how many times.
std::vector<int> use_counts(const Program& p) {
  std::vector<int> uses(p.code.size(), 0);
  for (const Instr& in : p.code)
    for (int x : {in.a, in.b, in.c}) if (x >= 0) ++uses[x];
  for (int x : p.out) ++uses[x];
  for (int x : p.out2) ++uses[x];
  return uses;
}

}  // namespace

Program reroll(const Program& p, int min_trip) {
  const int n = static_cast<int>(p.code.size());
  const std::vector<int> uses = use_counts(p);
  // A chain link: an Add whose only use is as the left operand of the next Add.
  std::vector<int> next(n, -1);
  for (int id = 0; id < n; ++id) {
    const Instr& in = p.code[id];
    if (in.op == Prim::Add && p.code[in.a].op == Prim::Add && uses[in.a] == 1) next[in.a] = id;
  }
  std::vector<char> claimed(n, 0);  // values in a loop's terms: a later (enclosing) chain may not loop over them
  std::vector<Loop> loops;
  for (int top = 0; top < n; ++top) {
    if (p.code[top].op != Prim::Add || next[top] >= 0) continue;
    // partial[k]: the sum of terms 0..k; terms[k]: term k.
    std::vector<int> partial, terms;
    for (int s = top;; s = p.code[s].a) {
      partial.push_back(s);
      terms.push_back(p.code[s].b);
      if (p.code[s].a < 0 || p.code[p.code[s].a].op != Prim::Add || next[p.code[s].a] != s) {
        partial.push_back(p.code[s].a);
        terms.push_back(p.code[s].a);
        break;
      }
    }
    std::reverse(partial.begin(), partial.end());
    std::reverse(terms.begin(), terms.end());
    const int m = static_cast<int>(terms.size());
    for (int lo = 0; lo + min_trip <= m;) {
      TermMatcher tm(p, terms[lo], claimed);
      int hi = lo + 1;
      while (hi < m && tm.match(terms[hi], hi - lo)) ++hi;
      std::vector<int> body = tm.body();
      if (hi - lo < min_trip || body.empty() || body.back() != terms[lo]) {
        ++lo;
        continue;
      }
      Loop L{partial[hi - 1], lo > 0 ? partial[lo - 1] : -1, hi - lo, body, {}};
      for (int x : body) L.steps.push_back(tm.step(x));
      // An enclosing chain may not loop over this loop (bodies do not nest): its links and body are claimed.
      for (int k = lo; k < hi; ++k) claimed[partial[k]] = 1;
      for (int x : body) claimed[x] = 1;
      loops.push_back(std::move(L));
      lo = hi;
    }
  }
  if (loops.empty()) return p;

  // Rebuild: each loop's body and LoopSum go where its top was; then keep what the outputs need.
  std::unordered_map<int, const Loop*> at_top;
  for (const Loop& L : loops) at_top[L.top] = &L;
  Program r = p;
  r.code.clear();
  r.level.clear();
  std::vector<int> map(n, -1);
  auto put = [&](Instr in, Level lv) {
    for (int* x : {&in.a, &in.b, &in.c}) if (*x >= 0) *x = map[*x];
    r.code.push_back(in);
    r.level.push_back(lv);
    return static_cast<int>(r.code.size()) - 1;
  };
  std::vector<int> loop_of;  // per new value: the LoopSum owning it, or -1
  for (int id = 0; id < n; ++id) {
    auto it = at_top.find(id);
    if (it == at_top.end()) {
      map[id] = put(p.code[id], p.level[id]);
      continue;
    }
    const Loop& L = *it->second;
    Level lv = L.init >= 0 ? p.level[L.init] : Level::Param;
    for (int x : L.body) lv = std::max(lv, p.level[x]);
    for (int x : L.body)  // invariant operands keep their (earlier) values
      for (int y : {p.code[x].a, p.code[x].b, p.code[x].c}) if (y >= 0) lv = std::max(lv, p.level[y]);
    const int first = static_cast<int>(r.code.size());
    std::unordered_map<int, int> saved;
    for (size_t k = 0; k < L.body.size(); ++k) {
      Instr in = p.code[L.body[k]];
      in.step = L.steps[k];
      saved[L.body[k]] = map[L.body[k]];
      map[L.body[k]] = put(in, lv);
    }
    Instr sum{Prim::LoopSum};
    sum.a = map[L.body.back()];
    sum.b = first;
    sum.c = L.init >= 0 ? map[L.init] : -1;
    sum.imm = L.trip;
    r.code.push_back(sum);
    r.level.push_back(lv);
    map[id] = static_cast<int>(r.code.size()) - 1;
    for (auto [x, old] : saved) map[x] = old;  // outside the loop, a template value is its straight-line self
  }
  for (int& x : r.out) x = map[x];
  for (int& x : r.out2) x = map[x];

  // Dead code removal: from the outputs; a live LoopSum keeps its whole body.
  const int rn = static_cast<int>(r.code.size());
  std::vector<char> live(rn, 0);
  for (int x : r.out) live[x] = 1;
  for (int x : r.out2) live[x] = 1;
  for (int id = rn - 1; id >= 0; --id) {
    if (!live[id]) continue;
    const Instr& in = r.code[id];
    if (in.op == Prim::LoopSum) {
      for (int x = in.b; x < id; ++x) live[x] = 1;
      live[in.a] = 1;
      if (in.c >= 0) live[in.c] = 1;
    } else {
      for (int x : {in.a, in.b, in.c}) if (x >= 0) live[x] = 1;
    }
  }
  Program d = r;
  d.code.clear();
  d.level.clear();
  std::vector<int> dmap(rn, -1);
  for (int id = 0; id < rn; ++id) {
    if (!live[id]) continue;
    Instr in = r.code[id];
    for (int* x : {&in.a, &in.b, &in.c}) if (*x >= 0) *x = dmap[*x];
    d.code.push_back(in);
    d.level.push_back(r.level[id]);
    dmap[id] = static_cast<int>(d.code.size()) - 1;
  }
  for (int& x : d.out) x = dmap[x];
  for (int& x : d.out2) x = dmap[x];
  return d;
}

}  // namespace keops
