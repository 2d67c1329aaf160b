// Recursive-descent parser of formulas, reductions and aliases, with Python's operator precedence.
#include "parser.h"

#include <pthread.h>

#include <cctype>
#include <cstdio>
#include <exception>
#include <optional>
#include <unordered_map>

#include "differentiate.h"
#include "errors.h"
#include "op_table.h"

namespace keops {

namespace {

// Stack of the parsing thread: under 2.8 KiB per nesting level of the descent (a level of parentheses is seven
// frames; measured with GCC -O2 as the peak RSS of 262000 levels, nodes and tokens included), 8 KiB leaves room
// for sanitizer builds. The 2 GiB are reserved address space: only the touched part is ever mapped.
constexpr size_t kParserStackBytes = size_t{kMaxNesting} * kStackPerNesting;
// Texts this short nest at most this deep (unary() per character at most): parsed on the caller's stack, which they
// take under 2 MiB of even in ASan builds (~7 KiB a level there: 1200 levels overflowed the fuzzer's 8 MiB stack).
constexpr size_t kShallowText = 256;

// The character starting at s[k], for messages: a whole UTF-8 sequence and its code point, so that the
// message stays valid UTF-8, or the byte in hex when it starts no valid sequence.
std::string character_at(std::string_view s, size_t k) {
  const unsigned char c = static_cast<unsigned char>(s[k]);
  char hex[16];
  if (c < 0x80) return std::isprint(c) ? "'" + std::string(1, static_cast<char>(c)) + "'" : (snprintf(hex, sizeof hex, "byte 0x%02X", c), hex);
  const size_t n = c >= 0xF0 && c < 0xF5 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
  uint32_t cp = n == 2 ? c & 0x1F : n == 3 ? c & 0x0F : c & 0x07;
  bool valid = n > 0 && k + n <= s.size();
  for (size_t t = 1; valid && t < n; ++t) {
    const unsigned char d = static_cast<unsigned char>(s[k + t]);
    valid = (d & 0xC0) == 0x80;
    cp = (cp << 6) | (d & 0x3F);
  }
  valid = valid && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF) && cp >= (n == 3 ? 0x800u : n == 4 ? 0x10000u : 0u);
  if (!valid) return snprintf(hex, sizeof hex, "byte 0x%02X", c), std::string(hex) + " (not UTF-8)";
  snprintf(hex, sizeof hex, "U+%04X", cp);
  return "'" + std::string(s.substr(k, n)) + "' (" + hex + ")";
}

// A decimal literal as int64; UserError naming it when it does not fit (never a narrowed value).
int64_t int_literal(const std::string& text, const std::string& what) {
  int64_t v = 0;
  for (char c : text)
    if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, c - '0', &v))
      throw UserError(what + ": integer " + text + " does not fit in 64 bits");
  return v;
}

// Runs fn on a thread with a stack large enough for kMaxNesting levels of the recursive descent below;
// false when no such thread can be created.
template <class F>
bool run_on_large_stack(F& fn) {
  struct Call {
    F* fn;
    std::exception_ptr error;
  } call{&fn, nullptr};
  auto body = [](void* p) -> void* {
    Call* c = static_cast<Call*>(p);
    try {
      (*c->fn)();
    } catch (...) {
      c->error = std::current_exception();
    }
    return nullptr;
  };
  pthread_attr_t attr;
  if (pthread_attr_init(&attr) != 0) return false;
  pthread_t thread;
  const bool started = pthread_attr_setstacksize(&attr, kParserStackBytes) == 0 &&
                       pthread_create(&thread, &attr, body, &call) == 0;
  pthread_attr_destroy(&attr);
  if (!started) return false;
  pthread_join(thread, nullptr);
  if (call.error) std::rethrow_exception(call.error);
  return true;
}

enum class Tok { Ident, Int, Float, Op, End };

struct Token {
  Tok kind;
  std::string text;
  int col;  // 1-based
};

std::vector<Token> tokenize(std::string_view s, const std::string& what) {
  static const char* two_char_ops[] = {"**", "<=", ">=", "==", "!="};
  std::vector<Token> out;
  size_t k = 0;
  while (k < s.size()) {
    char c = s[k];
    int col = static_cast<int>(k) + 1;
    if (std::isspace(static_cast<unsigned char>(c))) { ++k; continue; }
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t e = k;
      while (e < s.size() && (std::isalnum(static_cast<unsigned char>(s[e])) || s[e] == '_')) ++e;
      out.push_back({Tok::Ident, std::string(s.substr(k, e - k)), col});
      k = e;
      continue;
    }
    if (std::isdigit(static_cast<unsigned char>(c)) || (c == '.' && k + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[k + 1])))) {
      size_t e = k;
      bool is_float = false;
      while (e < s.size() && std::isdigit(static_cast<unsigned char>(s[e]))) ++e;
      if (e < s.size() && s[e] == '.') { is_float = true; ++e; while (e < s.size() && std::isdigit(static_cast<unsigned char>(s[e]))) ++e; }
      if (e < s.size() && (s[e] == 'e' || s[e] == 'E')) {
        size_t f = e + 1;
        if (f < s.size() && (s[f] == '+' || s[f] == '-')) ++f;
        if (f < s.size() && std::isdigit(static_cast<unsigned char>(s[f]))) {
          is_float = true;
          e = f;
          while (e < s.size() && std::isdigit(static_cast<unsigned char>(s[e]))) ++e;
        }
      }
      out.push_back({is_float ? Tok::Float : Tok::Int, std::string(s.substr(k, e - k)), col});
      k = e;
      continue;
    }
    bool matched = false;
    for (const char* op : two_char_ops)
      if (s.substr(k, 2) == op) {
        out.push_back({Tok::Op, op, col});
        k += 2;
        matched = true;
        break;
      }
    if (matched) continue;
    if (std::string_view("+-*/|<>()[],=").find(c) != std::string_view::npos) {
      out.push_back({Tok::Op, std::string(1, c), col});
      ++k;
      continue;
    }
    throw UserError(what + ": column " + std::to_string(col) + ": unexpected character " + character_at(s, k));
  }
  out.push_back({Tok::End, "", static_cast<int>(s.size()) + 1});
  return out;
}

// A parsed sub-expression: Python ints stay ints until a formula needs them (then IntCst), as in KeOps.
struct Value {
  enum Kind { Formula, Int, List, Red } kind;
  NodeRef f = nullptr;
  int64_t i = 0;
  IntList list;
  Reduction red;
  int col = 0;
};

class Parser {
 public:
  Parser(std::string_view text, const std::vector<Alias>& aliases, std::string what, int max_nesting)
      : toks_(tokenize(text, what)), what_(std::move(what)), max_nesting_(max_nesting) {
    for (const Alias& a : aliases)
      if (!a.name.empty()) names_[a.name] = &a;
  }

  Value parse_all() {
    Value v = expr();
    if (peek().kind != Tok::End) fail(peek(), "expected an operator or the end of the formula");
    if (v.kind == Value::Red) v.red.written_vars = std::move(written_vars_);
    return v;
  }

 private:
  const Token& peek() const { return toks_[pos_]; }
  const Token& next() { return toks_[pos_++]; }
  bool accept(const char* op) {
    if (peek().kind == Tok::Op && peek().text == op) { ++pos_; return true; }
    return false;
  }
  void expect(const char* op) {
    if (!accept(op)) fail(peek(), std::string("expected '") + op + "'");
  }
  [[noreturn]] void fail(const Token& t, const std::string& msg) const {
    std::string found = t.kind == Tok::End ? "the end of the formula" : "'" + t.text + "'";
    throw UserError(what_ + ": column " + std::to_string(t.col) + ": " + msg + ", found " + found);
  }
  [[noreturn]] void fail_at(int col, const std::string& msg) const {
    throw UserError(what_ + ": column " + std::to_string(col) + ": " + msg);
  }
  [[noreturn]] void overflow(int col, const std::string& expr) const {
    fail_at(col, "integer overflow: " + expr + " does not fit in 64 bits");
  }

  NodeRef formula(const Value& v) {
    switch (v.kind) {
      case Value::Formula: return v.f;
      case Value::Int: return int_cst(v.i);
      case Value::List: fail_at(v.col, "a list is not a formula");
      case Value::Red: fail_at(v.col, "a reduction cannot be used inside a formula");
    }
    KEOPS_ASSERT(false, "unreachable");
  }

  // Builds a node, adding the column to the operation's own error message.
  NodeRef build(int col, std::string_view op, std::vector<NodeRef> args, IntList ints = {}, std::vector<IntList> lists = {}) {
    try {
      NodeRef n = make(op, std::move(args), ints, std::move(lists));
      if (op == "Var") written_vars_.push_back(ints);  // after make: a valid Var
      return n;
    } catch (const UserError& e) {
      fail_at(col, e.what());
    }
  }

  Value formula_value(NodeRef f, int col) { return Value{Value::Formula, f, 0, {}, {}, col}; }

  Value expr() {  // comparisons: lowest precedence, not chained
    Value a = bitor_();
    const Token& t = peek();
    if (t.kind == Tok::Op && (t.text == "<" || t.text == ">" || t.text == "<=" || t.text == ">=")) {
      std::string op = next().text;
      Value b = bitor_();
      NodeRef x = formula(a), y = formula(b);
      if (op == "<") return formula_value(build(t.col, "LessThan", {x, y}), a.col);
      if (op == ">") return formula_value(build(t.col, "LessThan", {y, x}), a.col);
      if (op == "<=") return formula_value(build(t.col, "LessOrEqual", {x, y}), a.col);
      return formula_value(build(t.col, "LessOrEqual", {y, x}), a.col);
    }
    if (t.kind == Tok::Op && (t.text == "==" || t.text == "!="))
      fail(t, "'==' and '!=' are not operations of the formula language (use Equal(f, g) or NotEqual(f, g))");
    return a;
  }

  Value bitor_() {
    Value a = arith();
    while (peek().kind == Tok::Op && peek().text == "|") {
      int col = next().col;
      Value b = arith();
      a = formula_value(build(col, "Scalprod", {formula(a), formula(b)}), a.col);
    }
    return a;
  }

  Value arith() {
    Value a = term();
    while (peek().kind == Tok::Op && (peek().text == "+" || peek().text == "-")) {
      const Token& t = next();
      Value b = term();
      if (a.kind == Value::Int && b.kind == Value::Int) {
        const int64_t x = a.i;
        if (t.text == "+" ? __builtin_add_overflow(x, b.i, &a.i) : __builtin_sub_overflow(x, b.i, &a.i))
          overflow(t.col, std::to_string(x) + " " + t.text + " " + std::to_string(b.i));
        continue;
      }
      a = formula_value(build(t.col, t.text == "+" ? "Add" : "Subtract", {formula(a), formula(b)}), a.col);
    }
    return a;
  }

  Value term() {
    Value a = unary();
    while (peek().kind == Tok::Op && (peek().text == "*" || peek().text == "/")) {
      const Token& t = next();
      Value b = unary();
      if (a.kind == Value::Int && b.kind == Value::Int) {
        if (t.text == "/") fail_at(t.col, "dividing two integers gives a float, and formulas take no float constants (use IntInv(n) or RatCst(p, q))");
        const int64_t x = a.i;
        if (__builtin_mul_overflow(x, b.i, &a.i)) overflow(t.col, std::to_string(x) + " * " + std::to_string(b.i));
        continue;
      }
      a = formula_value(build(t.col, t.text == "*" ? "Mult" : "Divide", {formula(a), formula(b)}), a.col);
    }
    return a;
  }

  // Every recursion of the descent goes through unary(): its depth is the nesting depth of the text.
  Value unary() {
    const Token& t = peek();
    struct Depth {
      int& d;
      ~Depth() { --d; }
    } depth{++nesting_};
    if (nesting_ > max_nesting_)
      fail_at(t.col, "the formula is nested more than " + std::to_string(max_nesting_) +
                         " levels deep (parentheses, calls, lists and signs)");
    if (t.kind == Tok::Op && (t.text == "-" || t.text == "+")) {
      next();
      Value v = unary();
      if (t.text == "+") return v;
      if (v.kind == Value::Int) {
        if (__builtin_sub_overflow(int64_t{0}, v.i, &v.i)) overflow(t.col, "-(" + std::to_string(INT64_MIN) + ")");
        v.col = t.col;
        return v;
      }
      return formula_value(build(t.col, "Minus", {formula(v)}), t.col);
    }
    return power();
  }

  Value power() {
    Value base = atom();
    if (peek().kind == Tok::Op && peek().text == "**") {
      const Token& t = next();
      Value e = unary();
      if (e.kind != Value::Int) fail_at(e.col, "the exponent of '**' must be an integer (use Powf(f, g) for other exponents)");
      if (base.kind == Value::Int) {
        if (e.i < 0) fail_at(e.col, "a negative integer power of an integer is a float");
        int64_t r = 1, b = base.i;  // by squaring, at most 63 steps
        bool over = false;
        for (int64_t n = e.i; n > 0; n >>= 1) {
          if (n & 1) over = over || __builtin_mul_overflow(r, b, &r);
          if (n > 1) over = over || __builtin_mul_overflow(b, b, &b);
        }
        if (over) overflow(t.col, std::to_string(base.i) + " ** " + std::to_string(e.i));
        base.i = r;
        return base;
      }
      NodeRef f = formula(base);
      return formula_value(e.i == 2 ? build(t.col, "Square", {f}) : build(t.col, "Pow", {f}, {e.i}), base.col);
    }
    return base;
  }

  Value atom() {
    const Token& t = next();
    switch (t.kind) {
      case Tok::Int:
        return Value{Value::Int, nullptr, int_literal(t.text, what_ + ": column " + std::to_string(t.col)), {}, {}, t.col};
      case Tok::Float:
        fail_at(t.col, "float literal " + t.text +
                           ": formulas take no float constants; pass them as parameters (Pm) or use IntInv(n) / RatCst(p, q)");
      case Tok::Ident: return identifier(t);
      case Tok::Op:
        if (t.text == "(") {
          Value v = expr();
          expect(")");
          return v;
        }
        if (t.text == "[") return list(t);
        fail(t, "expected a formula");
      case Tok::End: fail(t, "expected a formula");
    }
    KEOPS_ASSERT(false, "unreachable");
  }

  Value list(const Token& open) {
    Value v{Value::List, nullptr, 0, {}, {}, open.col};
    if (accept("]")) return v;
    do {
      Value e = unary();
      if (e.kind != Value::Int) fail_at(e.col, "lists may only contain integers");
      v.list.push_back(e.i);
    } while (accept(","));
    expect("]");
    return v;
  }

  std::vector<Value> call_args() {
    std::vector<Value> args;
    expect("(");
    if (accept(")")) return args;
    do args.push_back(expr());
    while (accept(","));
    expect(")");
    return args;
  }

  int64_t int_arg(const Value& v, const std::string& fn, size_t k) {
    if (v.kind != Value::Int) fail_at(v.col, fn + ": argument " + std::to_string(k + 1) + " must be an integer");
    return v.i;
  }

  Value identifier(const Token& t) {
    const std::string& name = t.text;
    bool is_call = peek().kind == Tok::Op && peek().text == "(";
    if (!is_call) {
      auto it = names_.find(name);
      if (it != names_.end()) return formula_value(build(t.col, "Var", {}, {it->second->pos, it->second->dim, it->second->cat}), t.col);
      if (find_op(name) || find_reduction(name) || name == "Grad_WithSavedForward" || name == "Diff_WithSavedForward")
        fail_at(t.col, "'" + name + "' is an operation and needs arguments");
      fail_at(t.col, "unknown name '" + name + "' (not an alias nor an operation)");
    }
    if (name == "Vi" || name == "Vj" || name == "Pm") {
      std::vector<Value> args = call_args();
      if (args.size() != 2) fail_at(t.col, name + "(pos, dim) inside a formula needs 2 integer arguments");
      int cat = name == "Vi" ? 0 : name == "Vj" ? 1 : 2;
      return formula_value(build(t.col, "Var", {}, {int_arg(args[0], name, 0), int_arg(args[1], name, 1), cat}), t.col);
    }
    if (const ReductionInfo* r = find_reduction(name)) return reduction(t, *r);
    if (name == "Grad_WithSavedForward" || name == "Diff_WithSavedForward") return saved_forward(t);
    const OpInfo* op = find_op(name);
    if (!op) fail_at(t.col, "unknown operation '" + name + "'");
    std::vector<Value> args = call_args();
    std::vector<NodeRef> fs;
    IntList is;
    std::vector<IntList> ls;
    size_t k = 0;
    bool optional = false;
    for (char c : op->signature) {
      if (c == '?') { optional = true; continue; }
      if (k >= args.size()) {
        if (optional) break;
        fail_at(t.col, name + ": too few arguments (signature " + signature_text(op->signature) + ")");
      }
      const Value& v = args[k];
      if (c == 'F') fs.push_back(formula(v));
      else if (c == 'I') is.push_back(int_arg(v, name, k));
      else {
        if (v.kind != Value::List) fail_at(v.col, name + ": argument " + std::to_string(k + 1) + " must be a list of integers");
        ls.push_back(v.list);
      }
      ++k;
    }
    if (k < args.size()) fail_at(args[k].col, name + ": too many arguments (signature " + signature_text(op->signature) + ")");
    return formula_value(build(t.col, name, std::move(fs), std::move(is), std::move(ls)), t.col);
  }

  static std::string signature_text(std::string_view sig) {
    std::string out = "(";
    bool first = true, optional = false;
    for (char c : sig) {
      if (c == '?') { optional = true; out += "["; continue; }
      if (!first) out += ", ";
      first = false;
      out += c == 'F' ? "formula" : c == 'I' ? "int" : "list";
    }
    return out + (optional ? "])" : ")");
  }

  Value reduction(const Token& t, const ReductionInfo& info) {
    std::vector<Value> args = call_args();
    Value v{Value::Red, nullptr, 0, {}, {}, t.col};
    Reduction& r = v.red;
    r.info = &info;
    auto need = [&](size_t lo, size_t hi) {
      if (args.size() < lo || args.size() > hi)
        fail_at(t.col, std::string(info.name) + ": expected arguments " + signature_text(info.signature));
    };
    std::string name(info.name);
    // Integers are checked before they become ints: K * dim and the dimension within kMaxDim, the tag 0 or 1.
    auto tag = [&](size_t k) {
      const int64_t v = int_arg(args[k], name, k);
      if (v != 0 && v != 1)
        fail_at(args[k].col, name + ": the tag must be 0 (output indexed by i) or 1 (by j), got " + std::to_string(v));
      return static_cast<int>(v);
    };
    if (info.kind == ReductionKind::Zero) {
      need(2, 2);
      const int64_t d = int_arg(args[0], name, 0);
      if (d <= 0 || d > kMaxDim)
        fail_at(args[0].col, name + ": dimension must be in [1, " + std::to_string(kMaxDim) + "], got " + std::to_string(d));
      r.zero_dim = static_cast<int>(d);
      r.tag = tag(1);
    } else if (info.signature == "FII") {
      need(3, 3);
      r.formula = formula(args[0]);
      const int64_t K = int_arg(args[1], name, 1);
      if (K <= 0) fail_at(args[1].col, name + ": K must be positive, got " + std::to_string(K));
      if (K > kMaxDim / r.formula->dim())
        fail_at(args[1].col, name + ": K = " + std::to_string(K) + " times the formula's dimension " +
                                 std::to_string(r.formula->dim()) + " exceeds the limit " + std::to_string(kMaxDim));
      r.opt = static_cast<int>(K);
      r.tag = tag(2);
    } else {
      bool weighted = info.kind == ReductionKind::MaxSumShiftExpWeight;
      need(2, weighted ? 3 : 2);
      r.formula = formula(args[0]);
      r.tag = tag(1);
      if (args.size() == 3) r.formula2 = formula(args[2]);
      if (weighted && r.formula->dim() != 1)
        fail_at(args[0].col, name + ": the formula must be scalar, got dimension " + std::to_string(r.formula->dim()));
    }
    return v;
  }

  // Grad_WithSavedForward(red, v, gradin, f0) and Diff_WithSavedForward(red, v, u, f0): the gradient (or
  // differential) of a reduction, itself a reduction, resolved here (see differentiate.h).
  Value saved_forward(const Token& t) {
    const std::string& name = t.text;
    const bool is_grad = name == "Grad_WithSavedForward";
    std::vector<Value> args = call_args();
    if (args.size() != 4)
      fail_at(t.col, name + ": expected arguments (reduction, variable, " + (is_grad ? "gradient input" : "direction") +
                         ", saved forward output)");
    if (args[0].kind != Value::Red) fail_at(args[0].col, name + ": the first argument must be a reduction");
    NodeRef v = formula(args[1]), w = formula(args[2]), f0 = formula(args[3]);
    Value out{Value::Red, nullptr, 0, {}, {}, t.col};
    try {
      out.red = is_grad ? grad_reduction(args[0].red, v, w, f0) : diff_reduction(args[0].red, v, w, f0);
    } catch (const UserError& e) {
      fail_at(t.col, e.what());
    }
    return out;
  }

  std::vector<Token> toks_;
  size_t pos_ = 0;
  std::string what_;
  int max_nesting_;
  int nesting_ = 0;
  std::unordered_map<std::string, const Alias*> names_;
  std::vector<IntList> written_vars_;  // every Var built, for the argument list (see Reduction::written_vars)
};

}  // namespace

std::vector<Alias> parse_aliases(const std::vector<std::string>& texts) {
  std::vector<Alias> out;
  for (size_t k = 0; k < texts.size(); ++k) {
    const std::string& text = texts[k];
    std::string what = "alias '" + text + "'";
    std::vector<Token> t = tokenize(text, what);
    size_t p = 0;
    Alias a;
    if (t.size() > 2 && t[0].kind == Tok::Ident && t[1].kind == Tok::Op && t[1].text == "=") {
      a.name = t[0].text;
      p = 2;
    }
    auto bad = [&](const std::string& msg) -> UserError {
      return UserError(what + ": " + msg + " (expected e.g. 'x = Vi(3)', 'x = Vj(1,3)', 'p = Pm(2)' or 'x = Var(0,3,0)')");
    };
    if (t[p].kind != Tok::Ident) throw bad("expected Vi, Vj, Pm or Var");
    std::string kind = t[p].text;
    if (kind == "Vx") kind = "Vi";
    if (kind == "Vy") kind = "Vj";
    int cat = kind == "Vi" ? 0 : kind == "Vj" ? 1 : kind == "Pm" ? 2 : kind == "Var" ? -1 : -2;
    if (cat == -2) throw bad("unknown declaration '" + kind + "'");
    ++p;
    if (!(t[p].kind == Tok::Op && t[p].text == "(")) throw bad("expected '('");
    ++p;
    IntList v;
    while (true) {
      bool neg = t[p].kind == Tok::Op && t[p].text == "-";
      if (neg) ++p;
      if (t[p].kind != Tok::Int) throw bad("expected an integer");
      const int64_t x = int_literal(t[p].text, what);
      v.push_back(neg ? -x : x);
      ++p;
      if (t[p].kind == Tok::Op && t[p].text == ",") { ++p; continue; }
      break;
    }
    if (!(t[p].kind == Tok::Op && t[p].text == ")") || t[p + 1].kind != Tok::End) throw bad("expected ')' at the end");
    int64_t pos, dim, c = cat;  // range-checked before they become ints
    if (cat == -1) {
      if (v.size() != 3) throw bad("Var needs (pos, dim, cat)");
      pos = v[0], dim = v[1], c = v[2];
    } else if (v.size() == 1) {
      pos = static_cast<int64_t>(k), dim = v[0];
    } else if (v.size() == 2) {
      pos = v[0], dim = v[1];
    } else {
      throw bad(kind + " takes (dim) or (pos, dim)");
    }
    if (pos < 0) throw bad("negative position");
    if (pos >= kMaxPosition) throw bad("position " + std::to_string(pos) + " exceeds the limit " + std::to_string(kMaxPosition - 1));
    if (dim <= 0) throw bad("dimension must be positive");
    if (dim > kMaxDim) throw bad("dimension " + std::to_string(dim) + " exceeds the limit " + std::to_string(kMaxDim));
    if (c < 0 || c > 2) throw bad("category must be 0, 1 or 2");
    a.pos = static_cast<int>(pos), a.dim = static_cast<int>(dim), a.cat = static_cast<int>(c);
    for (const Alias& b : out)
      if (!a.name.empty() && b.name == a.name) throw bad("name '" + a.name + "' is declared twice");
    out.push_back(a);
  }
  return out;
}

namespace {

// Parses on a thread with a large stack when the text could nest deeper than the caller's stack allows;
// without such a thread, within a nesting limit that the usual 8 MiB stack of a thread holds.
Value parse_text(std::string_view text, const std::vector<Alias>& aliases, const char* what) {
  Value v;
  auto run = [&, max_nesting = kMaxNesting] { v = Parser(text, aliases, what, max_nesting).parse_all(); };
  if (text.size() > kShallowText && run_on_large_stack(run)) return v;
  return Parser(text, aliases, what, static_cast<int>(kShallowText)).parse_all();
}

}  // namespace

NodeRef parse_formula(std::string_view text, const std::vector<Alias>& aliases) {
  Value v = parse_text(text, aliases, "formula");
  if (v.kind == Value::Red) throw UserError("formula: expected a formula, got a reduction");
  if (v.kind == Value::List) throw UserError("formula: expected a formula, got a list");
  return v.kind == Value::Int ? int_cst(v.i) : v.f;
}

Reduction parse_reduction(std::string_view text, const std::vector<Alias>& aliases) {
  Value v = parse_text(text, aliases, "reduction");
  if (v.kind != Value::Red)
    throw UserError("reduction: expected a reduction such as Sum_Reduction(formula, 0) at the top level");
  return v.red;
}

}  // namespace keops
