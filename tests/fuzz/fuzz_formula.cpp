// libFuzzer target: aliases + formula -> parse, dims, simplify, print/re-parse, Grad/Diff, lowering; checks invariants.
//
// Input: every line but the last is an alias ("x = Vi(3)"); the last line is a formula over them, or a whole
// reduction ("Sum_Reduction(f, 0)", "Grad_WithSavedForward(...)"). A formula is reduced by Sum_Reduction(f, 0).
// Only the engine's user-error exceptions (UserError, NotSupported) are an expected outcome; any other exception,
// a crash, a sanitizer report or a violated property below aborts and is a finding.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/differentiate.h"
#include "core/errors.h"
#include "core/lower.h"
#include "core/reroll.h"
#include "core/op_table.h"
#include "core/parser.h"
#include "core/printer.h"
#include "core/reduction.h"

using namespace keops;

namespace {

// Bounds of the harness itself, so that one input stays well under libFuzzer's -timeout and -rss_limit_mb:
// printing is linear in the size of the formula's tree, which can be exponential in the size of its DAG.
constexpr size_t kMaxTree = 20000;   // nodes of the expanded tree that we print and re-parse
constexpr int kMaxDim = 4096;        // largest dimension of a node that we lower (scalar code is linear in it)
constexpr int64_t kMaxPos = 1000;    // largest argument position for the extra variables of Grad/Diff
constexpr size_t kMaxVars = 4;       // variables we differentiate with respect to

[[noreturn]] void finding(const std::string& what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_formula: %s\n%s\n", what.c_str(), detail.substr(0, 4000).c_str());
  std::abort();
}

// Size of f as a tree (shared subformulas counted at each use), saturated at kMaxTree + 1.
size_t tree_size(NodeRef f, std::unordered_map<NodeRef, size_t>& memo) {
  auto it = memo.find(f);
  if (it != memo.end()) return it->second;
  size_t n = 1;
  for (NodeRef a : f->args()) n = std::min(kMaxTree + 1, n + tree_size(a, memo));
  memo.emplace(f, n);
  return n;
}
bool printable(NodeRef f) {
  std::unordered_map<NodeRef, size_t> memo;
  return !f || tree_size(f, memo) <= kMaxTree;
}

// Walks the DAG once: the distinct Vars, the largest dimension and the largest Var position.
struct Scan {
  std::vector<NodeRef> vars;
  int max_dim = 0;
  int64_t max_pos = -1;
};
void scan(NodeRef f, Scan& s, std::unordered_set<NodeRef>& seen) {
  if (!f || !seen.insert(f).second) return;
  s.max_dim = std::max(s.max_dim, f->dim());
  if (f->is("Var")) {
    s.vars.push_back(f);
    s.max_pos = std::max(s.max_pos, f->ints()[0]);
  }
  for (NodeRef a : f->args()) scan(a, s, seen);
}
Scan scan(std::initializer_list<NodeRef> fs) {
  Scan s;
  std::unordered_set<NodeRef> seen;
  for (NodeRef f : fs) scan(f, s, seen);
  return s;
}

// Printed sums nest one parenthesis per term, possibly deeper than the parser's limit of this ASan build
// (core/node.h): normal builds' limit covers them.
bool too_deep(const UserError& e) {
  return std::string_view(e.what()).find("is nested more than") != std::string_view::npos;
}

// print(f) parses back to the same interned node.
void check_round_trip(NodeRef f) {
  if (!printable(f)) return;
  const std::string text = print(f);
  NodeRef g = nullptr;
  try {
    g = parse_formula(text);
  } catch (const UserError& e) {
    if (too_deep(e)) return;
    finding("printed formula does not parse back", text + "\n" + e.what());
  }
  if (g != f) finding("printed formula parses to a different node", text + "\n" + print(g));
}

void check_round_trip(const Reduction& r) {
  if (!printable(r.formula) || !printable(r.formula2)) return;
  const std::string text = print(r);
  Reduction s;
  try {
    s = parse_reduction(text);
  } catch (const UserError& e) {
    if (too_deep(e)) return;
    finding("printed reduction does not parse back", text + "\n" + e.what());
  }
  if (s.info != r.info || s.formula != r.formula || s.formula2 != r.formula2 || s.tag != r.tag || s.opt != r.opt ||
      s.zero_dim != r.zero_dim)
    finding("printed reduction parses to a different reduction", text + "\n" + print(s));
}

// What every backend relies on: SSA order, operands and loads in range, one output value per component.
void check_program(const Program& p, const Reduction& r) {
  const auto bad = [&](const std::string& what) { finding("invalid lowered program: " + what, p.canonical); };
  if (p.code.size() != p.level.size()) bad("levels and code differ in size");
  for (size_t id = 0; id < p.code.size(); ++id) {
    const Instr& in = p.code[id];
    const int arity = prim_arity(in.op), ops[3] = {in.a, in.b, in.c};
    for (int k = 0; k < 3; ++k) {
      if (k < arity && (ops[k] < 0 || ops[k] >= (int)id)) bad("operand out of order at " + std::to_string(id));
      if (k < arity && p.level[ops[k]] > p.level[id]) bad("level below an operand's at " + std::to_string(id));
    }
    if (in.op == Prim::Load &&
        (in.pos < 0 || in.pos >= (int)p.args.size() || in.comp < 0 || in.comp >= p.args[in.pos].dim))
      bad("load out of range at " + std::to_string(id));
  }
  if (r.info->kind != ReductionKind::Zero && (int)p.out.size() != p.dim_formula)
    bad("output size differs from the formula's dimension");
  for (int v : p.out) if (v < 0 || v >= (int)p.code.size()) bad("output value out of range");
  for (int v : p.out2) if (v < 0 || v >= (int)p.code.size()) bad("second output value out of range");
  if (p.dim_out != r.dim_out() || p.dim_out <= 0) bad("output columns");
  int cols = 0;
  for (const OutputSpec& o : output_specs(p)) cols += o.cols;
  if (r.info->kind != ReductionKind::MaxSumShiftExpWeight && cols != p.dim_out) bad("output specs and columns differ");
}

// The loops of reroll() (see program.h): contiguous bodies before their LoopSum, not nested, body values used only
// in their body (or as its term), every iteration's loads in range, and the same outputs.
void check_rerolled(const Program& p, const Program& straight) {
  const auto bad = [&](const std::string& what) { finding("invalid rerolled program: " + what, p.canonical); };
  std::vector<int> owner(p.code.size(), -1);
  for (size_t id = 0; id < p.code.size(); ++id) {
    const Instr& in = p.code[id];
    if (in.op != Prim::LoopSum) continue;
    if (in.b < 0 || in.a < in.b || in.a >= (int)id || in.imm < 1 || (in.c >= in.b)) bad("loop bounds at " + std::to_string(id));
    for (int x = std::max(in.b, 0); x < (int)id; ++x) {
      if (owner[x] >= 0 || p.code[x].op == Prim::LoopSum) bad("nested loop at " + std::to_string(id));
      owner[x] = (int)id;
      const Instr& l = p.code[x];
      const int64_t last = l.comp + (int64_t(in.imm) - 1) * l.step;
      if (l.op == Prim::Load && (std::min<int64_t>(l.comp, last) < 0 || std::max<int64_t>(l.comp, last) >= p.args[l.pos].dim))
        bad("loop load out of range at " + std::to_string(x));
    }
  }
  for (size_t id = 0; id < p.code.size(); ++id) {
    const Instr& in = p.code[id];
    for (int x : {in.a, in.op == Prim::LoopSum ? -1 : in.b, in.c})
      if (x >= 0 && owner[x] >= 0 && owner[x] != owner[id] && !(in.op == Prim::LoopSum && x == in.a && owner[x] == (int)id))
        bad("body value used outside its loop at " + std::to_string(id));
  }
  for (int v : p.out) if (v < 0 || v >= (int)p.code.size() || owner[v] >= 0) bad("output inside a loop");
  if (p.out.size() != straight.out.size() || p.out2.size() != straight.out2.size()) bad("outputs differ");
}

void lower_and_check(const Reduction& r, const std::vector<Alias>& aliases) {
  if (!printable(r.formula) || !printable(r.formula2)) return;  // lower() prints the canonical form
  if (scan({r.formula, r.formula2}).max_dim > kMaxDim || r.dim_out() > kMaxDim) return;
  const std::vector<ArgInfo> args = argument_table(r, aliases);
  const Program p = lower(r, args);
  check_program(p, r);
  check_rerolled(reroll(p, 2), p);
}

Reduction sum_reduction(NodeRef f, int tag) {
  Reduction r;
  r.info = find_reduction("Sum_Reduction");
  r.formula = f;
  r.tag = tag;
  return r;
}

// Runs one step that may reject its input as a user error; anything else escapes (a finding).
template <class Fn>
void attempt(Fn&& fn) {
  try {
    fn();
  } catch (const UserError&) {
  } catch (const NotSupported&) {
  }
}

// Grad and Diff of f with respect to each of its variables: dims, round trip, the text form, lowering.
void differentiate_all(NodeRef f, const std::vector<Alias>& aliases) {
  const Scan s = scan({f});
  int64_t next = s.max_pos;
  for (const Alias& a : aliases) next = std::max<int64_t>(next, a.pos);
  if (++next > kMaxPos) return;
  for (size_t k = 0; k < s.vars.size() && k < kMaxVars; ++k) {
    NodeRef v = s.vars[k];
    const int cat = static_cast<int>(v->ints()[2]);
    attempt([&] {
      NodeRef e = var(next, f->dim(), cat == CAT_J ? CAT_I : CAT_J);
      NodeRef g = grad(f, v, e);
      if (g->dim() != v->dim()) finding("Grad has the wrong dimension", print(v) + "\n" + std::to_string(g->dim()));
      if (printable(f) && printable(g)) {
        NodeRef t = parse_formula("Grad(" + print(f) + "," + print(v) + "," + print(e) + ")");
        if (t != g) finding("Grad written as text differs from grad()", print(f) + "\n" + print(v));
      }
      check_round_trip(g);
      lower_and_check(sum_reduction(g, cat == CAT_J ? 1 : 0), aliases);
    });
    attempt([&] {
      NodeRef u = var(next, v->dim(), cat);
      NodeRef d = diff(f, v, u);
      if (d->dim() != f->dim()) finding("Diff has the wrong dimension", print(v) + "\n" + std::to_string(d->dim()));
      check_round_trip(d);
      lower_and_check(sum_reduction(d, 0), aliases);
    });
  }
}

// Gradients of a whole reduction (as Grad_WithSavedForward), with respect to each variable.
void differentiate_reduction(const Reduction& r, const std::vector<Alias>& aliases) {
  if (!r.formula || r.dim_out() > kMaxDim) return;
  const Scan s = scan({r.formula, r.formula2});
  int64_t next = s.max_pos;
  for (const Alias& a : aliases) next = std::max<int64_t>(next, a.pos);
  if (next + 2 > kMaxPos) return;
  for (size_t k = 0; k < s.vars.size() && k < kMaxVars; ++k)
    attempt([&] {
      NodeRef gin = var(next + 1, r.dim_out(), r.tag), f0 = var(next + 2, r.dim_out(), r.tag);
      Reduction g = grad_reduction(r, s.vars[k], gin, f0);
      check_round_trip(g);
      lower_and_check(g, aliases);
    });
}

std::vector<std::string> split_lines(std::string_view in) {
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t k = 0; k <= in.size(); ++k)
    if (k == in.size() || in[k] == '\n') {
      lines.emplace_back(in.substr(start, k - start));
      start = k + 1;
    }
  return lines;
}

bool is_reduction_text(const std::string& s) {
  return s.find("_Reduction") != std::string::npos || s.find("WithSavedForward") != std::string::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> lines = split_lines(std::string_view(reinterpret_cast<const char*>(data), size));
  const std::string text = lines.back();
  lines.pop_back();
  attempt([&] {
    const std::vector<Alias> aliases = parse_aliases(lines);
    if (is_reduction_text(text)) {
      const Reduction r = parse_reduction(text, aliases);
      check_round_trip(r);
      attempt([&] { lower_and_check(r, aliases); });
      differentiate_reduction(r, aliases);
      if (r.formula) differentiate_all(r.formula, aliases);
      return;
    }
    NodeRef f = parse_formula(text, aliases);
    check_round_trip(f);
    attempt([&] { lower_and_check(sum_reduction(f, 0), aliases); });
    differentiate_all(f, aliases);
  });
  return 0;
}
