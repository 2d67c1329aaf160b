// Canonical printer of formulas and reductions (full parentheses around infix operations).
#include "printer.h"

#include "op_table.h"

namespace keops {

namespace {

void print_list(std::string& out, const IntList& l) {
  out += '[';
  for (size_t k = 0; k < l.size(); ++k) out += (k ? "," : "") + std::to_string(l[k]);
  out += ']';
}

// Arguments in signature order, stopping at the first absent optional one.
void print_args(std::string& out, std::string_view sig, const std::vector<NodeRef>& fs, const IntList& is,
                const std::vector<IntList>& ls) {
  size_t f = 0, i = 0, l = 0;
  bool first = true;
  out += '(';
  for (char c : sig) {
    if (c == '?') continue;
    bool present = c == 'F' ? f < fs.size() : c == 'I' ? i < is.size() : l < ls.size();
    if (!present) break;
    if (!first) out += ',';
    first = false;
    if (c == 'F') out += print(fs[f++]);
    else if (c == 'I') out += std::to_string(is[i++]);
    else print_list(out, ls[l++]);
  }
  out += ')';
}

}  // namespace

std::string print(NodeRef f) {
  const OpInfo& op = f->op();
  if (!op.infix.empty()) return "(" + print(f->arg(0)) + " " + std::string(op.infix) + " " + print(f->arg(1)) + ")";
  std::string out(op.name);
  print_args(out, op.signature, f->args(), f->ints(), f->lists());
  return out;
}

std::string print(const Reduction& r) {
  std::string out(r.info->name);
  if (r.info->kind == ReductionKind::Zero) {
    print_args(out, r.info->signature, {}, {r.zero_dim, r.tag}, {});
    return out;
  }
  // Signatures put the formula first, then K (K-reductions), the tag, then formula2: interleave accordingly.
  out += "(" + print(r.formula);
  if (r.info->signature == "FII") out += "," + std::to_string(r.opt);
  out += "," + std::to_string(r.tag);
  if (r.formula2) out += "," + print(r.formula2);
  out += ")";
  return out;
}

}  // namespace keops
