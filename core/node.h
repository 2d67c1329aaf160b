// Formula IR: immutable, hash-consed nodes created only through make(), so equal formulas are one node.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

namespace keops {

struct OpInfo;
class Node;
using NodeRef = const Node*;
using IntList = std::vector<int64_t>;

// Limits every formula obeys (UserError beyond them), so that dimension arithmetic never overflows an int
// (products of two dimensions fit in int64) and a hostile formula cannot exhaust memory or the stack.
inline constexpr int64_t kMaxDim = int64_t{1} << 20;       // dimension of any formula, alias or K * dim
inline constexpr int64_t kMaxPosition = int64_t{1} << 20;  // argument position of a variable
// Nesting depth of parentheses, calls and signs. ASan builds (make test-sanitize, make fuzz) take less: ASan cannot
// clean up after an exception unwinds a stack over 64 MiB (google/sanitizers#189) and then reports false errors.
#if defined(__SANITIZE_ADDRESS__)
#define KEOPS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KEOPS_ASAN 1
#endif
#endif
#ifdef KEOPS_ASAN
inline constexpr int kMaxNesting = 1 << 10;
inline constexpr size_t kStackPerNesting = 49152;  // GCC ASan frames: over 16 KiB a level of Concat(
#else
inline constexpr int kMaxNesting = 1 << 18;
inline constexpr size_t kStackPerNesting = 8192;
#endif

// Variable categories, as in KeOps: indexed by i, indexed by j, or a parameter.
enum Cat : int { CAT_I = 0, CAT_J = 1, CAT_P = 2 };

// What identifies a node before it is interned: operation, formula arguments, integer and list parameters.
struct NodeKey {
  const OpInfo* op = nullptr;
  std::vector<NodeRef> args;
  IntList ints;                  // e.g. Var(pos,dim,cat), IntCst(n), Zero(d), Pow's m, Elem's index
  std::vector<IntList> lists;    // e.g. TensorDot's dimension lists
  bool operator==(const NodeKey&) const = default;
};

class Node {
 public:
  const OpInfo& op() const { return *key_.op; }
  const std::vector<NodeRef>& args() const { return key_.args; }
  NodeRef arg(size_t k) const { return key_.args[k]; }
  const IntList& ints() const { return key_.ints; }
  const std::vector<IntList>& lists() const { return key_.lists; }
  int dim() const { return dim_; }
  size_t hash() const { return hash_; }
  bool is(std::string_view op_name) const;
  const NodeKey& key() const { return key_; }

 private:
  friend NodeRef intern(NodeKey key, int dim);
  Node(NodeKey key, int dim, size_t hash) : key_(std::move(key)), dim_(dim), hash_(hash) {}
  NodeKey key_;
  int dim_;
  size_t hash_;
};

// The factory: checks the operation's signature and dimensions (UserError naming the operation),
// applies its construction-time simplification, then interns.
NodeRef make(const OpInfo& op, std::vector<NodeRef> args, IntList ints = {}, std::vector<IntList> lists = {});
NodeRef make(std::string_view op_name, std::vector<NodeRef> args, IntList ints = {},
             std::vector<IntList> lists = {});

// Interning without checks or rewrites; only make() and the tests should call it.
NodeRef intern(NodeKey key, int dim);

NodeRef var(int64_t pos, int64_t dim, int64_t cat);
NodeRef int_cst(int64_t n);
NodeRef zero(int64_t dim);

// Number of distinct nodes interned so far (for tests and reports).
size_t interned_count();

// Number of distinct nodes reachable from f (the size of the DAG).
size_t dag_size(NodeRef f);

// Calls visit(n) once for each node reachable from root, arguments before their users, without recursion
// (a flat sum of 1e5 terms is a DAG 1e5 deep). Nodes with skip(n) true are neither visited nor entered.
template <class Skip, class Visit>
void post_order(NodeRef root, Skip&& skip, Visit&& visit) {
  if (!root || skip(root)) return;
  std::unordered_set<NodeRef> done;
  std::vector<std::pair<NodeRef, size_t>> path{{root, 0}};
  while (!path.empty()) {
    auto& [n, k] = path.back();
    if (k < n->args().size()) {
      NodeRef a = n->arg(k++);
      if (!done.count(a) && !skip(a)) path.push_back({a, 0});
    } else {
      NodeRef m = n;
      path.pop_back();
      done.insert(m);
      visit(m);
    }
  }
}

}  // namespace keops
