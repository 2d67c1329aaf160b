// Two-level kernel cache and the launch: parse/lower/compile once, then only validate and run.
#include "kernel_cache.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>
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

constexpr const char* kEngineVersion = "keops-jit-2";  // bump when the kernel ABI or layout changes

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

Dtype parse_dtype(const std::string& s, const char* what) {
  if (s == "float32") return Dtype::F32;
  if (s == "float64") return Dtype::F64;
  if (s == "float16") throw NotSupported("float16 is not supported by the CPU backend (use float32 or float64)");
  throw UserError(std::string("unsupported ") + what + " '" + s + "' (expected float32 or float64)");
}

bool sum_type(ReductionKind k) { return k == ReductionKind::Sum || k == ReductionKind::MaxSumShiftExpWeight; }

KernelOptions parse_options(const Program& p, const KernelRequest& r) {
  KernelOptions o;
  o.dtype = parse_dtype(r.dtype, "dtype");
  o.acc = o.dtype;
  if (r.dtype_acc != "auto") {
    Dtype acc = parse_dtype(r.dtype_acc, "dtype_acc");
    if (!sum_type(p.reduction) && acc != o.dtype)
      throw UserError("dtype_acc applies to sum-type reductions (Sum, LogSumExp, SumSoftMaxWeight), not to " + p.reduction_name);
    if (acc == Dtype::F32 && o.dtype == Dtype::F64) throw UserError("dtype_acc=float32 with float64 data would lose precision");
    o.acc = acc;
  }
  if (r.sum_scheme == "auto" || r.sum_scheme == "block_sum") o.scheme = SumScheme::Block;
  else if (r.sum_scheme == "direct_sum") o.scheme = SumScheme::Direct;
  else if (r.sum_scheme == "kahan_scheme") o.scheme = SumScheme::Kahan;
  else throw UserError("unknown sum_scheme '" + r.sum_scheme + "' (expected auto, direct_sum, block_sum or kahan_scheme)");
  if (r.sum_scheme != "auto" && p.reduction != ReductionKind::Sum)
    throw UserError("sum_scheme applies to Sum reductions, not to " + p.reduction_name);
  if (p.reduction != ReductionKind::Sum) o.scheme = SumScheme::Direct;
  return o;
}

// Object code for the program: from the disk cache when present and valid, else compiled and stored.
std::pair<cpu::KernelFn, bool> build(const Program& p, const KernelOptions& o, const std::string& key) {
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
  std::string object = cpu::compile_object(p, o, symbol);
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

// Parses, lowers and checks a request.
std::pair<Program, KernelOptions> prepare(const KernelRequest& r) {
  std::vector<Alias> aliases = parse_aliases(r.aliases);
  Reduction red = parse_reduction(r.formula, aliases);
  Program program = lower(red, argument_table(red, aliases));
  KernelOptions options = parse_options(program, r);
  return {std::move(program), options};
}

std::string kernel_ir(const KernelRequest& r) {
  auto [program, options] = prepare(r);
  return cpu::optimized_ir(program, options);
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
  auto [program, options] = prepare(r);
  std::string program_key = std::string(kEngineVersion) + "\n" + cpu::host_signature() + "\n" + options.text() + "\n" +
                            program.canonical;
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
    cpu::KernelFn fn = nullptr;
    bool from_disk = false;
    if (program.reduction != ReductionKind::Zero) std::tie(fn, from_disk) = build(program, options, program_key);
    kernel = std::make_shared<const Kernel>(std::move(program), options, fn);
    std::lock_guard<std::mutex> g(c.mutex);
    ++(from_disk ? c.stats.disk_hits : c.stats.compiled);
    c.by_program.emplace(program_key, kernel);
  }
  std::lock_guard<std::mutex> g(c.mutex);
  c.by_request.emplace(request_key, kernel);
  return kernel;
}

namespace {

struct Block {  // output rows [r0, r1) reduced over intervals[first, first + count) of the interval list
  int64_t r0, r1, first, count;
};

// Row blocks and their intervals of reduced indices: everything, or the KeOps block-sparse ranges (validated).
void plan_blocks(const Program& p, const Launch& L, int64_t n_outer, int64_t n_inner, std::vector<Block>& blocks,
                 std::vector<int64_t>& intervals) {
  if (L.ranges.empty()) {
    intervals = {0, n_inner};
    blocks.push_back({0, n_outer, 0, n_inner > 0 ? 1 : 0});
    return;
  }
  if (L.ranges.size() != 6 || L.range_counts.size() != 4) throw UserError("ranges must be 6 arrays (KeOps block-sparse format)");
  const int side = p.tag == 0 ? 0 : 3;  // output indexed by i: ranges_i, slices_i, redranges_j
  const int64_t n_ranges = L.range_counts[side == 0 ? 0 : 2], n_red = L.range_counts[side == 0 ? 1 : 3];
  auto arr = [&](int k) { return reinterpret_cast<const int64_t*>(L.ranges[side + k]); };
  const int64_t *ranges = arr(0), *slices = arr(1), *red = arr(2);
  if (n_ranges < 0 || n_red < 0 || ((n_ranges > 0 && (!ranges || !slices)) || (n_red > 0 && !red)))
    throw UserError("ranges: invalid array");
  const char* names[] = {"ranges_i", "slices_i", "redranges_j", "ranges_j", "slices_j", "redranges_i"};
  std::string where = std::string(names[side]) + "/" + names[side + 1] + "/" + names[side + 2];
  for (int64_t r = 0; r < n_red; ++r)
    if (red[2 * r] < 0 || red[2 * r + 1] < red[2 * r] || red[2 * r + 1] > n_inner)
      throw UserError("ranges: " + std::string(names[side + 2]) + "[" + std::to_string(r) + "] = [" + std::to_string(red[2 * r]) +
                      ", " + std::to_string(red[2 * r + 1]) + ") is not a valid range of [0, " + std::to_string(n_inner) + ")");
  std::vector<std::pair<int64_t, int64_t>> covered;
  int64_t prev = 0;
  for (int64_t k = 0; k < n_ranges; ++k) {
    int64_t r0 = ranges[2 * k], r1 = ranges[2 * k + 1], s1 = slices[k];
    if (r0 < 0 || r1 < r0 || r1 > n_outer)
      throw UserError("ranges: " + std::string(names[side]) + "[" + std::to_string(k) + "] = [" + std::to_string(r0) + ", " +
                      std::to_string(r1) + ") is not a valid range of [0, " + std::to_string(n_outer) + ")");
    if (s1 < prev || s1 > n_red)
      throw UserError("ranges: " + std::string(names[side + 1]) + " must be non-decreasing and at most " + std::to_string(n_red) +
                      " (" + where + ")");
    intervals.insert(intervals.end(), red + 2 * prev, red + 2 * s1);
    blocks.push_back({r0, r1, prev, s1 - prev});
    covered.push_back({r0, r1});
    prev = s1;
  }
  // Rows in no range get the neutral value: blocks without intervals.
  std::sort(covered.begin(), covered.end());
  int64_t row = 0;
  for (auto [r0, r1] : covered) {
    if (r0 < row && r0 < r1) throw UserError("ranges: output ranges of " + std::string(names[side]) + " overlap");
    if (r0 > row) blocks.push_back({row, r0, 0, 0});
    row = std::max(row, r1);
  }
  if (row < n_outer) blocks.push_back({row, n_outer, 0, 0});
}

// Splits intervals into pieces of `period` indices, so that block sums are flushed that often.
void split_for_block_sum(std::vector<Block>& blocks, std::vector<int64_t>& intervals, int64_t period) {
  std::vector<int64_t> out;
  for (Block& b : blocks) {
    int64_t first = static_cast<int64_t>(out.size()) / 2;
    for (int64_t k = b.first; k < b.first + b.count; ++k)
      for (int64_t j = intervals[2 * k]; j < intervals[2 * k + 1]; j += period) {
        out.push_back(j);
        out.push_back(std::min(j + period, intervals[2 * k + 1]));
      }
    b.count = static_cast<int64_t>(out.size()) / 2 - first;
    b.first = first;
  }
  intervals = std::move(out);
}

}  // namespace

void Kernel::run(const Launch& L) const {
  const Program& p = program_;
  const size_t nargs = p.args.size(), nb = L.batch.size();
  if (L.args.size() != nargs)
    throw UserError("expected " + std::to_string(nargs) + " arguments, got " + std::to_string(L.args.size()));
  if (L.outs.size() != outputs_.size())
    throw UserError("expected " + std::to_string(outputs_.size()) + " output arrays, got " + std::to_string(L.outs.size()));
  if (L.nx < 0 || L.ny < 0) throw UserError("sizes must be non-negative");
  if (!L.arg_batch.empty() && L.arg_batch.size() != nargs) throw UserError("arg_batch needs one shape per argument");
  int64_t n_batch = 1;
  for (int64_t bdim : L.batch) {
    if (bdim < 0) throw UserError("batch dimensions must be non-negative");
    n_batch *= bdim;
  }
  for (const auto& ab : L.arg_batch) {
    if (ab.size() != nb) throw UserError("every argument's batch shape must have " + std::to_string(nb) + " entries");
    for (size_t k = 0; k < nb; ++k)
      if (ab[k] != 1 && ab[k] != L.batch[k]) throw UserError("an argument's batch shape does not broadcast to the batch shape");
  }
  const int64_t n_outer = p.tag == 0 ? L.nx : L.ny, n_inner = p.tag == 0 ? L.ny : L.nx;
  const int outer_cat = p.tag, inner_cat = 1 - p.tag;
  const size_t elem = dtype_size(options_.dtype);
  for (size_t pos = 0; pos < nargs; ++pos) {
    int64_t rows = p.args[pos].cat == 2 ? 1 : p.args[pos].cat == outer_cat ? n_outer : n_inner;
    if (rows > 0 && n_batch > 0 && L.args[pos] == 0) throw UserError("argument " + std::to_string(pos) + " is a null pointer");
  }
  if (n_outer == 0 || n_batch == 0) return;
  for (uintptr_t o : L.outs)
    if (o == 0) throw UserError("an output is a null pointer");
  const bool k_red = p.reduction == ReductionKind::KMin || p.reduction == ReductionKind::ArgKMin ||
                     p.reduction == ReductionKind::KMinArgKMin;
  if (k_red && p.opt > n_inner)
    throw UserError(p.reduction_name + ": K = " + std::to_string(p.opt) + " is larger than the number of reduced elements (" +
                    std::to_string(n_inner) + ")");
  const bool arg_red = k_red || p.reduction == ReductionKind::ArgMin || p.reduction == ReductionKind::ArgMax ||
                       p.reduction == ReductionKind::MinArgMin || p.reduction == ReductionKind::MaxArgMax;
  if (arg_red && n_inner == 0 && L.ranges.empty())
    throw UserError(p.reduction_name + " over an empty set: there is no index to return");
  if (!fn_) {  // Zero_Reduction
    for (size_t o = 0; o < L.outs.size(); ++o)
      std::memset(reinterpret_cast<void*>(L.outs[o]), 0, n_batch * n_outer * outputs_[o].cols * elem);
    return;
  }

  std::vector<Block> blocks;
  std::vector<int64_t> intervals;
  plan_blocks(p, L, n_outer, n_inner, blocks, intervals);
  if (p.reduction == ReductionKind::Sum && options_.scheme == SumScheme::Block) {
    // Flush period: about sqrt(N) as in KeOps, but at least 32 vectors (each lane already sums only every W-th
    // term) and whole vectors, so that pieces have no scalar tails and the per-piece overhead stays small.
    const int64_t w = cpu::vector_width(options_.dtype);
    int64_t period = static_cast<int64_t>(std::sqrt(static_cast<double>(std::max<int64_t>(n_inner, 1))));
    period = std::max<int64_t>(32 * w, (period + w - 1) / w * w);
    split_for_block_sum(blocks, intervals, period);
  }

  // Per batch: argument pointers (inner variables of dim > 1 transposed once per distinct slice) and outputs.
  std::vector<std::vector<const void*>> batch_args(n_batch, std::vector<const void*>(nargs));
  std::vector<std::vector<void*>> batch_outs(n_batch, std::vector<void*>(L.outs.size()));
  std::map<std::pair<size_t, int64_t>, std::vector<unsigned char>> transposed;
  std::vector<int64_t> index(nb, 0);
  for (int64_t bi = 0; bi < n_batch; ++bi) {
    for (size_t pos = 0; pos < nargs; ++pos) {
      const ArgInfo& a = p.args[pos];
      const int64_t rows = a.cat == 2 ? 1 : a.cat == outer_cat ? n_outer : n_inner;
      int64_t offset = 0, stride = rows * a.dim;  // in elements, over the argument's own batch shape
      for (int64_t k = static_cast<int64_t>(nb) - 1; k >= 0; --k) {
        int64_t own = L.arg_batch.empty() ? L.batch[k] : L.arg_batch[pos][k];
        if (own != 1) offset += index[k] * stride;
        stride *= own;
      }
      const unsigned char* src = reinterpret_cast<const unsigned char*>(L.args[pos]) + offset * elem;
      batch_args[bi][pos] = src;
      if (a.cat != inner_cat || a.dim == 1 || n_inner == 0) continue;
      auto [it, fresh] = transposed.try_emplace({pos, offset});
      if (fresh) {  // tile-major, so that the kernel reads W consecutive j with one contiguous vector load
        const int w = cpu::vector_width(options_.dtype);
        it->second.resize(elem * a.dim * ((n_inner + w - 1) / w) * w);
        cpu::tile_major(src, it->second.data(), n_inner, a.dim, w, elem);
      }
      batch_args[bi][pos] = it->second.data();
    }
    for (size_t o = 0; o < L.outs.size(); ++o) {
      size_t oelem = outputs_[o].indices ? sizeof(int64_t) : elem;
      batch_outs[bi][o] = reinterpret_cast<unsigned char*>(L.outs[o]) + bi * n_outer * outputs_[o].cols * oelem;
    }
    for (int64_t k = static_cast<int64_t>(nb) - 1; k >= 0 && ++index[k] == L.batch[k]; --k) index[k] = 0;
  }

  // Tasks: (batch, rows, intervals), each worth at least ~64k pairs, up to 8 per thread for load balance.
  struct Task {
    int64_t batch, r0, r1;
    const Block* block;
  };
  int64_t total = 0;
  for (const Block& b : blocks) {
    int64_t len = 0;
    for (int64_t k = b.first; k < b.first + b.count; ++k) len += intervals[2 * k + 1] - intervals[2 * k];
    total += (b.r1 - b.r0) * std::max<int64_t>(len, 1);
  }
  total *= n_batch;
  const int64_t target = std::max<int64_t>(1 << 16, total / (8 * int64_t(num_threads())));
  std::vector<Task> tasks;
  for (int64_t bi = 0; bi < n_batch; ++bi)
    for (const Block& b : blocks) {
      int64_t len = 0;
      for (int64_t k = b.first; k < b.first + b.count; ++k) len += intervals[2 * k + 1] - intervals[2 * k];
      const int64_t rows = std::max<int64_t>(1, target / std::max<int64_t>(len, 1));
      for (int64_t r = b.r0; r < b.r1; r += rows) tasks.push_back({bi, r, std::min(b.r1, r + rows), &b});
    }
  cpu::KernelFn fn = fn_;
  parallel_for(static_cast<int64_t>(tasks.size()), [&](int64_t t) {
    const Task& task = tasks[t];
    fn(task.r0, task.r1, intervals.data() + 2 * task.block->first, task.block->count, batch_args[task.batch].data(),
       batch_outs[task.batch].data());
  });
}

}  // namespace keops
