// Two-level kernel cache and the launch: parse/lower/compile once, then only validate and run.
#include "kernel_cache.h"

#include <algorithm>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <unordered_map>

#include "../core/errors.h"
#include "../core/lower.h"
#include "../core/parser.h"
#include "thread_pool.h"

namespace keops {

namespace {

constexpr const char* kEngineVersion = "keops-jit-1";

struct Cache {
  std::mutex mutex;
  std::unordered_map<std::string, std::shared_ptr<const Kernel>> by_request, by_program;
  CacheStats stats;
  std::string folder;
  bool folder_set = false;
};

Cache& cache() {
  static Cache* c = new Cache();
  return *c;
}

// 128-bit FNV-1a as two 64-bit halves: a stable file name for a key (the key itself is checked on load).
std::string key_digest(const std::string& s) {
  uint64_t h1 = 1469598103934665603ULL, h2 = 1099511628211ULL * 31;
  for (unsigned char c : s) {
    h1 = (h1 ^ c) * 1099511628211ULL;
    h2 = (h2 ^ c) * 0x100000001b3ULL + 0x9e3779b97f4a7c15ULL;
  }
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", (unsigned long long)h1, (unsigned long long)h2);
  return buf;
}

std::string default_folder() {
  if (const char* v = std::getenv("KEOPS_CACHE_FOLDER")) return v;
  if (const char* v = std::getenv("XDG_CACHE_HOME")) return std::string(v) + "/keops-jit";
  if (const char* v = std::getenv("HOME")) return std::string(v) + "/.cache/keops-jit";
  return "";
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) return "";
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// Writes through a temporary file and a rename, so concurrent processes never read half a file.
void write_file(const std::filesystem::path& p, const std::string& data) {
  std::filesystem::path tmp = p;
  tmp += ".tmp" + std::to_string(std::hash<std::string>()(data) ^ reinterpret_cast<uintptr_t>(&data));
  {
    std::ofstream f(tmp, std::ios::binary);
    if (!f) return;
    f.write(data.data(), static_cast<std::streamsize>(data.size()));
    if (!f) return;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, p, ec);
  if (ec) std::filesystem::remove(tmp, ec);
}

Dtype parse_dtype(const std::string& s) {
  if (s == "float32") return Dtype::F32;
  if (s == "float64") return Dtype::F64;
  if (s == "float16") throw NotSupported("float16 is not supported by the CPU backend (use float32 or float64)");
  throw UserError("unsupported dtype '" + s + "' (expected float32 or float64)");
}

void check_options(const Program& p, const KernelRequest& r) {
  if (p.reduction != ReductionKind::Sum)
    throw NotSupported("reduction " + p.reduction_name + " is not supported yet");
  if (r.dtype_acc != "auto" && r.dtype_acc != r.dtype)
    throw NotSupported("dtype_acc='" + r.dtype_acc + "' is not supported yet (accumulation is in the data type)");
  if (r.sum_scheme != "auto")
    throw NotSupported("sum_scheme='" + r.sum_scheme + "' is not supported yet");
}

// Object code for the program: from the disk cache when present and valid, else compiled and stored.
std::pair<cpu::KernelFn, bool> build(const Program& p, Dtype dtype, const std::string& key) {
  std::string digest = key_digest(key);
  std::string symbol = "keops_" + digest;
  std::string folder = cache_folder();
  std::filesystem::path obj, meta;
  if (!folder.empty()) {
    obj = std::filesystem::path(folder) / (digest + ".o");
    meta = std::filesystem::path(folder) / (digest + ".key");
    std::string object = read_file(obj);
    if (!object.empty() && read_file(meta) == key) return {cpu::load_object(object, symbol), true};
  }
  std::string object = cpu::compile_object(p, dtype, symbol);
  if (!folder.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(folder, ec);
    if (!ec) {  // an unwritable cache folder only costs recompilation next time
      write_file(obj, object);
      write_file(meta, key);
    }
  }
  return {cpu::load_object(object, symbol), false};
}

}  // namespace

std::string cache_folder() {
  Cache& c = cache();
  std::lock_guard<std::mutex> g(c.mutex);
  if (!c.folder_set) {
    c.folder = default_folder();
    c.folder_set = true;
  }
  return c.folder;
}

void set_cache_folder(const std::string& path) {
  Cache& c = cache();
  std::lock_guard<std::mutex> g(c.mutex);
  c.folder = path;
  c.folder_set = true;
}

void clear_memory_cache() {
  Cache& c = cache();
  std::lock_guard<std::mutex> g(c.mutex);
  c.by_request.clear();
  c.by_program.clear();
}

CacheStats cache_stats() {
  std::lock_guard<std::mutex> g(cache().mutex);
  return cache().stats;
}

std::shared_ptr<const Kernel> get_kernel(const KernelRequest& r) {
  Cache& c = cache();
  std::string request_key = r.formula + "\n" + r.dtype + "\n" + r.dtype_acc + "\n" + r.sum_scheme;
  for (const std::string& a : r.aliases) request_key += "\n" + a;
  {
    std::lock_guard<std::mutex> g(c.mutex);
    ++c.stats.requests;
    auto it = c.by_request.find(request_key);
    if (it != c.by_request.end()) {
      ++c.stats.memory_hits;
      return it->second;
    }
  }
  Dtype dtype = parse_dtype(r.dtype);
  std::vector<Alias> aliases = parse_aliases(r.aliases);
  Reduction red = parse_reduction(r.formula, aliases);
  Program program = lower(red, argument_table(red, aliases));
  check_options(program, r);
  std::string program_key = std::string(kEngineVersion) + "\n" + cpu::host_signature() + "\n" +
                            std::string(dtype_name(dtype)) + "\n" + program.canonical;
  for (const ArgInfo& a : program.args) program_key += "\n" + std::to_string(a.dim) + "," + std::to_string(a.cat);

  std::shared_ptr<const Kernel> kernel;
  {
    std::lock_guard<std::mutex> g(c.mutex);
    auto it = c.by_program.find(program_key);
    if (it != c.by_program.end()) {
      ++c.stats.memory_hits;
      kernel = it->second;
    }
  }
  if (!kernel) {
    auto [fn, from_disk] = build(program, dtype, program_key);
    kernel = std::make_shared<const Kernel>(std::move(program), dtype, fn);
    std::lock_guard<std::mutex> g(c.mutex);
    ++(from_disk ? c.stats.disk_hits : c.stats.compiled);
    c.by_program.emplace(program_key, kernel);
  }
  std::lock_guard<std::mutex> g(c.mutex);
  c.by_request.emplace(request_key, kernel);
  return kernel;
}

void Kernel::run(const std::vector<uintptr_t>& ptrs, int64_t nx, int64_t ny, uintptr_t out) const {
  const Program& p = program_;
  if (ptrs.size() != p.args.size())
    throw UserError("expected " + std::to_string(p.args.size()) + " arguments, got " + std::to_string(ptrs.size()));
  if (nx < 0 || ny < 0) throw UserError("sizes must be non-negative");
  const int64_t n_outer = p.tag == 0 ? nx : ny, n_inner = p.tag == 0 ? ny : nx;
  const int outer_cat = p.tag, inner_cat = 1 - p.tag;
  const size_t elem = dtype_size(dtype_);
  for (size_t pos = 0; pos < ptrs.size(); ++pos) {
    int64_t rows = p.args[pos].cat == 2 ? 1 : p.args[pos].cat == outer_cat ? n_outer : n_inner;
    if (rows > 0 && ptrs[pos] == 0) throw UserError("argument " + std::to_string(pos) + " is a null pointer");
  }
  if (n_outer == 0) return;
  if (out == 0) throw UserError("the output is a null pointer");

  // Inner variables of dim > 1 are transposed to component-major order so that the kernel reads W consecutive
  // j with one vector load; dim-1 variables already are.
  std::vector<std::vector<unsigned char>> transposed;
  std::vector<const void*> args(ptrs.size());
  for (size_t pos = 0; pos < ptrs.size(); ++pos) {
    args[pos] = reinterpret_cast<const void*>(ptrs[pos]);
    const ArgInfo& a = p.args[pos];
    if (a.cat != inner_cat || a.dim == 1 || n_inner == 0) continue;
    transposed.emplace_back(elem * a.dim * n_inner);
    unsigned char* dst = transposed.back().data();
    const unsigned char* src = static_cast<const unsigned char*>(args[pos]);
    for (int64_t j = 0; j < n_inner; ++j)
      for (int c = 0; c < a.dim; ++c)
        std::memcpy(dst + (c * n_inner + j) * elem, src + (j * a.dim + c) * elem, elem);
    args[pos] = dst;
  }

  // Up to 8 chunks of rows per thread for load balance, each worth at least 64k pairs so that waking
  // threads costs nothing noticeable; small problems run on the calling thread.
  const int64_t pairs = n_outer * std::max<int64_t>(1, n_inner);
  const int64_t want = std::clamp<int64_t>(pairs >> 16, 1, 8 * int64_t(num_threads()));
  const int64_t rows_per_chunk = (n_outer + want - 1) / want;
  const int64_t n_chunks = (n_outer + rows_per_chunk - 1) / rows_per_chunk;
  void* out_ptr = reinterpret_cast<void*>(out);
  cpu::KernelFn fn = fn_;
  parallel_for(n_chunks, [&](int64_t chunk) {
    int64_t start = chunk * rows_per_chunk, end = std::min(n_outer, start + rows_per_chunk);
    fn(start, end, n_inner, n_inner, args.data(), out_ptr);
  });
}

}  // namespace keops
