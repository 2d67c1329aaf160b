// Lowering: reduction -> scalar SSA Program, with value numbering (CSE), constant folding and level tagging.
#include "lower.h"

#include <cmath>
#include <functional>
#include <optional>

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

// Folds a primitive over constants, in double (the kernel then rounds to its dtype).
std::optional<double> fold(Prim op, double a, double b) {
  switch (op) {
    case Prim::Add: return a + b;
    case Prim::Sub: return a - b;
    case Prim::Mul: return a * b;
    case Prim::Div: return a / b;
    case Prim::Neg: return -a;
    case Prim::Abs: return std::fabs(a);
    case Prim::Sqrt: return std::sqrt(a);
    default: return std::nullopt;  // transcendental folding would differ from the kernels' own functions
  }
}

}  // namespace

const char* prim_name(Prim p) {
  static const char* names[] = {"Const", "Load", "Add", "Sub", "Mul", "Div", "Neg", "Abs", "Sqrt", "Exp", "Log",
                                "Sin", "Cos", "Atan", "Atan2", "Asin", "Acos", "Floor", "Round", "Min", "Max",
                                "IfPos", "Select", "Lt", "Le", "Eq", "Ne"};  // in the order of Prim
  return names[static_cast<int>(p)];
}

int prim_arity(Prim p) {
  switch (p) {
    case Prim::Const: case Prim::Load: return 0;
    case Prim::Add: case Prim::Sub: case Prim::Mul: case Prim::Div: case Prim::Atan2: case Prim::Min:
    case Prim::Max: case Prim::Lt: case Prim::Le: case Prim::Eq: case Prim::Ne: return 2;
    case Prim::IfPos: case Prim::Select: return 3;
    default: return 1;
  }
}

int Lowerer::constant(double v) {
  Instr in{Prim::Const};
  in.imm = v;
  size_t h = instr_hash(in);
  for (int id : cse_[h]) if (p_.code[id] == in) return id;
  p_.code.push_back(in);
  p_.level.push_back(Level::Param);
  int id = static_cast<int>(p_.code.size()) - 1;
  cse_[h].push_back(id);
  return id;
}

int Lowerer::load(int pos, int comp) {
  Instr in{Prim::Load};
  in.pos = pos;
  in.comp = comp;
  size_t h = instr_hash(in);
  for (int id : cse_[h]) if (p_.code[id] == in) return id;
  KEOPS_ASSERT(pos < (int)p_.args.size(), "load of an undeclared argument");
  int cat = p_.args[pos].cat;
  Level lv = cat == 2 ? Level::Param : cat == p_.tag ? Level::Outer : Level::Inner;
  p_.code.push_back(in);
  p_.level.push_back(lv);
  int id = static_cast<int>(p_.code.size()) - 1;
  cse_[h].push_back(id);
  return id;
}

int Lowerer::emit(Prim op, int a, int b, int c) {
  const int arity = prim_arity(op);
  const bool ka = a >= 0 && p_.code[a].op == Prim::Const, kb = b >= 0 && p_.code[b].op == Prim::Const;
  const double va = ka ? p_.code[a].imm : 0, vb = kb ? p_.code[b].imm : 0;
  if (ka && (arity == 1 || (arity == 2 && kb)))
    if (auto r = fold(op, va, vb)) return constant(*r);
  // Identities exact for every input (NaN and inf included; x + 0 may turn -0 into +0, as KeOps's f + 0 -> f).
  if ((op == Prim::Mul || op == Prim::Div) && kb && vb == 1.0) return a;
  if (op == Prim::Mul && ka && va == 1.0) return b;
  if ((op == Prim::Add || op == Prim::Sub) && kb && vb == 0.0) return a;
  if (op == Prim::Add && ka && va == 0.0) return b;
  Instr in{op, a, b, c};
  size_t h = instr_hash(in);
  for (int id : cse_[h]) if (p_.code[id] == in) return id;
  Level lv = Level::Param;
  for (int x : {a, b, c}) if (x >= 0 && p_.level[x] > lv) lv = p_.level[x];
  p_.code.push_back(in);
  p_.level.push_back(lv);
  int id = static_cast<int>(p_.code.size()) - 1;
  cse_[h].push_back(id);
  return id;
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
