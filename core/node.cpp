// Interning table and the node factory.
#include "node.h"

#include <deque>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "errors.h"
#include "op_table.h"

namespace keops {

namespace {

size_t mix(size_t h, size_t v) { return h ^ (v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2)); }

size_t hash_key(const NodeKey& k) {
  size_t h = std::hash<const void*>()(k.op);
  for (NodeRef a : k.args) h = mix(h, a->hash());
  for (int64_t v : k.ints) h = mix(h, std::hash<int64_t>()(v));
  for (const IntList& l : k.lists) {
    h = mix(h, l.size());
    for (int64_t v : l) h = mix(h, std::hash<int64_t>()(v));
  }
  return h;
}

struct KeyHash {
  size_t operator()(const NodeKey* k) const { return hash_key(*k); }
};
struct KeyEq {
  bool operator()(const NodeKey* a, const NodeKey* b) const { return *a == *b; }
};

// Nodes live for the whole process: formulas are small and shared by every kernel built from them.
struct InternTable {
  std::mutex mutex;
  std::deque<Node> storage;
  std::unordered_map<const NodeKey*, NodeRef, KeyHash, KeyEq> index;
};

InternTable& table() {
  static InternTable* t = new InternTable();  // never destroyed: nodes may be used during exit
  return *t;
}

}  // namespace

bool Node::is(std::string_view op_name) const { return key_.op->name == op_name; }

NodeRef intern(NodeKey key, int dim) {
  InternTable& t = table();
  std::lock_guard<std::mutex> lock(t.mutex);
  auto it = t.index.find(&key);
  if (it != t.index.end()) return it->second;
  size_t h = hash_key(key);
  t.storage.push_back(Node(std::move(key), dim, h));
  NodeRef n = &t.storage.back();
  t.index.emplace(&n->key(), n);
  return n;
}

NodeRef make(const OpInfo& op, std::vector<NodeRef> args, IntList ints, std::vector<IntList> lists) {
  NodeKey key{&op, std::move(args), std::move(ints), std::move(lists)};
  check_signature(key);
  int dim = op.dim(key);
  if (dim <= 0) throw UserError(std::string(op.name) + ": output dimension must be positive, got " + std::to_string(dim));
  if (dim > kMaxDim)
    throw UserError(std::string(op.name) + ": output dimension " + std::to_string(dim) + " exceeds the limit " +
                    std::to_string(kMaxDim));
  if (op.simplify) {
    if (NodeRef s = op.simplify(key, dim)) {
      KEOPS_ASSERT(s->dim() == dim, "simplification of " + std::string(op.name) + " changed the dimension");
      return s;
    }
  }
  return intern(std::move(key), dim);
}

NodeRef make(std::string_view op_name, std::vector<NodeRef> args, IntList ints, std::vector<IntList> lists) {
  const OpInfo* op = find_op(op_name);
  KEOPS_ASSERT(op != nullptr, "unknown operation " + std::string(op_name));
  return make(*op, std::move(args), std::move(ints), std::move(lists));
}

NodeRef var(int64_t pos, int64_t dim, int64_t cat) { return make("Var", {}, {pos, dim, cat}); }
NodeRef int_cst(int64_t n) { return make("IntCst", {}, {n}); }
NodeRef zero(int64_t dim) { return make("Zero", {}, {dim}); }

size_t interned_count() {
  std::lock_guard<std::mutex> lock(table().mutex);
  return table().storage.size();
}

size_t dag_size(NodeRef f) {
  std::unordered_set<NodeRef> seen;
  std::vector<NodeRef> stack{f};
  while (!stack.empty()) {
    NodeRef n = stack.back();
    stack.pop_back();
    if (!seen.insert(n).second) continue;
    for (NodeRef a : n->args()) stack.push_back(a);
  }
  return seen.size();
}

void internal_failure(const char* file, int line, const std::string& what) {
  throw InternalError(std::string("internal error at ") + file + ":" + std::to_string(line) + ": " + what);
}

}  // namespace keops
