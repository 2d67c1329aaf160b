// Lowering: reduction -> scalar SSA Program, with value numbering (CSE), constant folding and level tagging.
#include "lower.h"

#include <cmath>
#include <functional>
#include <iterator>

#include "errors.h"
#include "op_table.h"
#include "printer.h"

namespace keops {

namespace {

size_t instr_hash(const Instr& in) {
  size_t h = static_cast<size_t>(in.op);
  for (int64_t v : {int64_t(in.a), int64_t(in.b), int64_t(in.c), int64_t(in.pos), int64_t(in.comp)})
    h = h * 1000003u ^ std::hash<int64_t>()(v);
  return h * 1000003u ^ std::hash<double>()(in.imm);
}

// Every primitive once, in the order of Prim: its name, arity and constant folding (in double; the kernel then rounds
// to its dtype). Transcendental functions do not fold: the result would differ from the kernels' own functions.
struct PrimInfo {
  Prim prim;
  const char* name;
  int arity;
  double (*fold)(double, double) = nullptr;
};
constexpr PrimInfo kPrims[] = {
    {.prim = Prim::Const, .name = "Const", .arity = 0},
    {.prim = Prim::Load, .name = "Load", .arity = 0},
    {.prim = Prim::Add, .name = "Add", .arity = 2, .fold = [](double a, double b) { return a + b; }},
    {.prim = Prim::Sub, .name = "Sub", .arity = 2, .fold = [](double a, double b) { return a - b; }},
    {.prim = Prim::Mul, .name = "Mul", .arity = 2, .fold = [](double a, double b) { return a * b; }},
    {.prim = Prim::Div, .name = "Div", .arity = 2, .fold = [](double a, double b) { return a / b; }},
    {.prim = Prim::Neg, .name = "Neg", .arity = 1, .fold = [](double a, double) { return -a; }},
    {.prim = Prim::Abs, .name = "Abs", .arity = 1, .fold = [](double a, double) { return std::fabs(a); }},
    {.prim = Prim::Sqrt, .name = "Sqrt", .arity = 1, .fold = [](double a, double) { return std::sqrt(a); }},
    {.prim = Prim::Exp, .name = "Exp", .arity = 1},
    {.prim = Prim::Log, .name = "Log", .arity = 1},
    {.prim = Prim::Sin, .name = "Sin", .arity = 1},
    {.prim = Prim::Cos, .name = "Cos", .arity = 1},
    {.prim = Prim::Atan, .name = "Atan", .arity = 1},
    {.prim = Prim::Atan2, .name = "Atan2", .arity = 2},
    {.prim = Prim::Asin, .name = "Asin", .arity = 1},
    {.prim = Prim::Acos, .name = "Acos", .arity = 1},
    {.prim = Prim::Floor, .name = "Floor", .arity = 1},
    {.prim = Prim::Round, .name = "Round", .arity = 1},
    {.prim = Prim::Min, .name = "Min", .arity = 2},
    {.prim = Prim::Max, .name = "Max", .arity = 2},
    {.prim = Prim::IfPos, .name = "IfPos", .arity = 3},
    {.prim = Prim::Select, .name = "Select", .arity = 3},
    {.prim = Prim::Lt, .name = "Lt", .arity = 2},
    {.prim = Prim::Le, .name = "Le", .arity = 2},
    {.prim = Prim::Eq, .name = "Eq", .arity = 2},
    {.prim = Prim::Ne, .name = "Ne", .arity = 2},
    {.prim = Prim::Index, .name = "Index", .arity = 0},
    {.prim = Prim::LoopSum, .name = "LoopSum", .arity = 1},
};
constexpr bool prims_in_order() {
  for (size_t k = 0; k < std::size(kPrims); ++k)
    if (static_cast<size_t>(kPrims[k].prim) != k) return false;
  return true;
}
static_assert(prims_in_order() && std::size(kPrims) == static_cast<size_t>(Prim::LoopSum) + 1,
              "kPrims has one row per Prim, in the enum's order");

const PrimInfo& prim_info(Prim p) { return kPrims[static_cast<size_t>(p)]; }

}  // namespace

const char* prim_name(Prim p) { return prim_info(p).name; }
int prim_arity(Prim p) { return prim_info(p).arity; }

int Lowerer::intern(const Instr& in, Level level) {
  std::vector<int>& same_hash = cse_[instr_hash(in)];
  for (int id : same_hash) if (p_.code[id] == in) return id;
  p_.code.push_back(in);
  p_.level.push_back(level);
  same_hash.push_back(static_cast<int>(p_.code.size()) - 1);
  return same_hash.back();
}

int Lowerer::constant(double v) {
  Instr in{Prim::Const};
  in.imm = v;
  return intern(in, Level::Param);
}

int Lowerer::load(int pos, int comp) {
  KEOPS_ASSERT(pos >= 0 && pos < (int)p_.args.size(), "load of an undeclared argument");
  Instr in{Prim::Load};
  in.pos = pos;
  in.comp = comp;
  const int cat = p_.args[pos].cat;
  return intern(in, cat == 2 ? Level::Param : cat == p_.tag ? Level::Outer : Level::Inner);
}

int Lowerer::index(int cat) {
  Instr in{Prim::Index};
  in.comp = cat;
  return intern(in, cat == p_.tag ? Level::Outer : Level::Inner);
}

int Lowerer::emit(Prim op, int a, int b, int c) {
  const int arity = prim_arity(op);
  const bool ka = a >= 0 && p_.code[a].op == Prim::Const, kb = b >= 0 && p_.code[b].op == Prim::Const;
  const double va = ka ? p_.code[a].imm : 0, vb = kb ? p_.code[b].imm : 0;
  if (ka && (arity == 1 || (arity == 2 && kb)) && prim_info(op).fold) return constant(prim_info(op).fold(va, vb));
  // Identities exact for every input (NaN and inf included; x + 0 may turn -0 into +0, as KeOps's f + 0 -> f).
  if ((op == Prim::Mul || op == Prim::Div) && kb && vb == 1.0) return a;
  if (op == Prim::Mul && ka && va == 1.0) return b;
  if ((op == Prim::Add || op == Prim::Sub) && kb && vb == 0.0) return a;
  if (op == Prim::Add && ka && va == 0.0) return b;
  Level lv = Level::Param;
  for (int x : {a, b, c}) if (x >= 0 && p_.level[x] > lv) lv = p_.level[x];
  return intern(Instr{op, a, b, c}, lv);
}

int Lowerer::sum(const Vals& v) {
  KEOPS_ASSERT(!v.empty(), "sum of an empty vector");
  int s = v[0];
  for (size_t k = 1; k < v.size(); ++k) s = add(s, v[k]);
  return s;
}

Vals Lowerer::lower(NodeRef f) {
  post_order(f, [&](NodeRef n) { return memo_.count(n) > 0; }, [&](NodeRef n) {  // iterative: DAGs may be deep
    const OpInfo& op = n->op();
    if (!op.lower) throw NotSupported("operation " + std::string(op.name) + " is not supported yet");
    std::vector<Vals> args;
    for (NodeRef a : n->args()) args.push_back(memo_.at(a));
    Vals r = op.lower(*this, *n, args);
    KEOPS_ASSERT((int)r.size() == n->dim(), "lowering of " + std::string(op.name) + " gave the wrong number of values");
    memo_.emplace(n, std::move(r));
  });
  return memo_.at(f);
}

Program lower(const Reduction& red, const std::vector<ArgInfo>& args) {
  Program p;
  p.args = args;
  p.reduction = red.info->kind;
  p.reduction_name = std::string(red.info->name);
  p.tag = red.tag;
  p.opt = red.opt;
  p.dim_formula = red.formula ? red.formula->dim() : red.zero_dim;
  p.dim_out = red.dim_out();
  p.canonical = print(red);
  Lowerer L(p);
  if (red.formula) p.out = L.lower(red.formula);
  if (red.formula2) p.out2 = L.lower(red.formula2);
  return p;
}

}  // namespace keops
