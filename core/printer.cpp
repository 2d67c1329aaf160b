// Canonical printer of formulas and reductions (full parentheses around infix operations).
#include "printer.h"

#include "op_table.h"

namespace keops {

namespace {

std::string list_text(const IntList& l) {
  std::string out = "[";
  for (size_t k = 0; k < l.size(); ++k) out += (k ? "," : "") + std::to_string(l[k]);
  return out + "]";
}

// A piece of printed output: a formula still to print, or text.
struct Piece {
  NodeRef node;
  std::string text;
};

// Appends f to out without recursion (formulas may be 1e5 nodes deep), in one pass over the output.
void print_to(std::string& out, NodeRef root) {
  std::vector<Piece> todo{{root, {}}};
  std::vector<Piece> pieces;
  while (!todo.empty()) {
    Piece p = std::move(todo.back());
    todo.pop_back();
    if (!p.node) {
      out += p.text;
      continue;
    }
    const Node& f = *p.node;
    const OpInfo& op = f.op();
    pieces.clear();
    if (!op.infix.empty()) {
      pieces = {{nullptr, "("}, {f.arg(0), {}}, {nullptr, " " + std::string(op.infix) + " "}, {f.arg(1), {}}, {nullptr, ")"}};
    } else {
      // Arguments in signature order, stopping at the first absent optional one.
      std::string head(op.name);
      head += '(';
      pieces.push_back({nullptr, std::move(head)});
      size_t nf = 0, ni = 0, nl = 0;
      bool first = true;
      for (char c : op.signature) {
        if (c == '?') continue;
        bool present = c == 'F' ? nf < f.args().size() : c == 'I' ? ni < f.ints().size() : nl < f.lists().size();
        if (!present) break;
        if (!first) pieces.push_back({nullptr, ","});
        first = false;
        if (c == 'F') pieces.push_back({f.arg(nf++), {}});
        else if (c == 'I') pieces.push_back({nullptr, std::to_string(f.ints()[ni++])});
        else pieces.push_back({nullptr, list_text(f.lists()[nl++])});
      }
      pieces.push_back({nullptr, ")"});
    }
    for (auto it = pieces.rbegin(); it != pieces.rend(); ++it) todo.push_back(std::move(*it));
  }
}

}  // namespace

std::string print(NodeRef f) {
  std::string out;
  print_to(out, f);
  return out;
}

std::string print(const Reduction& r) {
  std::string out(r.info->name);
  if (r.info->kind == ReductionKind::Zero) return out + "(" + std::to_string(r.zero_dim) + "," + std::to_string(r.tag) + ")";
  // Signatures put the formula first, then K (K-reductions), the tag, then formula2: interleave accordingly.
  out += "(";
  print_to(out, r.formula);
  if (r.info->signature == "FII") out += "," + std::to_string(r.opt);
  out += "," + std::to_string(r.tag);
  if (r.formula2) {
    out += ",";
    print_to(out, r.formula2);
  }
  out += ")";
  return out;
}

}  // namespace keops
