// CPU backend: the request layer's CPU side (LLVM objects in the disk cache) and the launch on the thread pool.
#include "cpu_kernel.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>

#include <unistd.h>

#include "../../core/errors.h"
#include "../../core/lower.h"
#include "../../core/parser.h"
#include "../disk_cache.h"
#include "../launch_plan.h"
#include "../thread_pool.h"

namespace keops {

namespace {

// Half of a core's L2 (the other half for the rows' data and the rest): at D = 3 (N = 1e6) and D = 100 or 784
// (N = 2e4) this beat 64 KiB and 256 KiB on a Xeon with 2 MiB of L2 (benchmarks in the issue notes).
int64_t default_chunk_bytes() {
  static const int64_t bytes = [] {
    const long l2 = ::sysconf(_SC_LEVEL2_CACHE_SIZE);
    return l2 > 0 ? std::clamp<int64_t>(l2 / 2, int64_t(128) << 10, int64_t(8) << 20) : int64_t(512) << 10;
  }();
  return bytes;
}
std::atomic<int64_t> g_chunk_bytes{0};  // 0: default_chunk_bytes()

Dtype cpu_dtype(const std::string& s) { return s == "float64" ? Dtype::F64 : Dtype::F32; }

// The CPU side of the request layer (see KernelCache).
struct CpuBackend {
  using Request = KernelRequest;
  using Options = KernelOptions;
  using Kernel = CpuKernel;
  static constexpr std::string_view kName = "CPU";
  static constexpr std::string_view kDtypes[] = {"float32", "float64"};
  static std::string request_suffix(const Request&) { return ""; }
  static Options options(const Program&, const RequestOptions& c, const Request&) {
    return {cpu_dtype(c.dtype), cpu_dtype(c.acc), c.scheme};
  }
  static std::string program_key(const Program& p, const Options& o) {
    return keops::program_key("keops-jit", cpu::host_signature() + "\n" + o.text(), p);
  }
  static std::shared_ptr<const Kernel> make(Program p, const Options& o, const std::string& key, KernelCache<CpuBackend>& cache) {
    std::shared_ptr<const cpu::LinkedCode> code;
    if (p.reduction != ReductionKind::Zero) {
      const std::string symbol = "keops_" + key_digest(key);
      CachedBinary b = cached_binary(key, ".o", ".key", [&] { return std::pair{cpu::compile_object(p, o, symbol), std::string()}; });
      cache.count_build(b.from_disk);
      code = cpu::load_object(b.data, symbol);
    } else {
      cache.count_build(false);
    }
    return std::make_shared<const Kernel>(std::move(p), o, std::move(code));
  }
};

KernelCache<CpuBackend>& cache() {
  static auto* c = new KernelCache<CpuBackend>();
  return *c;
}

}  // namespace

std::shared_ptr<const CpuKernel> get_cpu_kernel(const KernelRequest& r) { return cache().get(r); }

std::string kernel_ir(const KernelRequest& r) {
  auto [program, common] = prepare_request(r, CpuBackend::kName, CpuBackend::kDtypes);
  return cpu::optimized_ir(program, CpuBackend::options(program, common, r));
}

cpu::Phases kernel_phases(const KernelRequest& r) {
  using Clock = std::chrono::steady_clock;
  auto t0 = Clock::now();
  auto seconds = [&] {
    const auto t = Clock::now();
    const double s = std::chrono::duration<double>(t - t0).count();
    t0 = t;
    return s;
  };
  const std::vector<Alias> aliases = parse_aliases(r.aliases);
  const Reduction red = parse_reduction(r.formula, aliases);
  cpu::Phases phases{{"parse", seconds()}};
  Program lowered = lower(red, argument_table(red, aliases));
  phases.emplace_back("lower", seconds());
  auto [program, common] = prepare_request(r, CpuBackend::kName, CpuBackend::kDtypes);  // the options, checked
  for (auto& ph : cpu::compile_phases(lowered, CpuBackend::options(program, common, r))) phases.push_back(ph);
  return phases;
}

CacheStats cache_stats() { return cache().stats(); }
void clear_memory_cache() { cache().clear(); }

namespace {

// Splits intervals into pieces of `period` indices, so that block sums are flushed that often.
void split_for_block_sum(std::vector<RowBlock>& blocks, std::vector<int64_t>& intervals, int64_t period) {
  std::vector<int64_t> out;
  for (RowBlock& b : blocks) {
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

int64_t chunk_bytes() {
  const int64_t n = g_chunk_bytes.load();
  return n > 0 ? n : default_chunk_bytes();
}
void set_chunk_bytes(int64_t n) { g_chunk_bytes = std::max<int64_t>(n, 0); }

void CpuKernel::run(const Launch& L) const {
  const Program& p = program_;
  const size_t nargs = p.args.size(), nb = L.batch.size();
  const auto [n_batch, n_outer, n_inner] = check_launch(p, outputs_.size(), L);
  if (n_outer == 0 || n_batch == 0) return;
  const int outer_cat = p.tag, inner_cat = 1 - p.tag;
  const size_t elem = dtype_size(options_.dtype);
  if (!code_) {  // Zero_Reduction
    for (size_t o = 0; o < L.outs.size(); ++o)
      std::memset(reinterpret_cast<void*>(L.outs[o]), 0, n_batch * n_outer * outputs_[o].cols * elem);
    return;
  }

  const int64_t n_sets = range_sets(L, n_batch);
  struct Plan {
    std::vector<RowBlock> blocks;
    std::vector<int64_t> intervals;
  };
  std::vector<Plan> plans(n_sets);
  for (int64_t set = 0; set < n_sets; ++set) {
    Plan& pl = plans[set];
    if (L.ranges.empty()) {
      pl.intervals = {0, n_inner};
      pl.blocks.push_back({0, n_outer, 0, n_inner > 0 ? 1 : 0});
    } else {
      pl.blocks = plan_ranges(p, L, set, n_outer, n_inner, pl.intervals);
    }
    if (p.reduction == ReductionKind::Sum && options_.scheme == SumScheme::Block) {
      // Flush period: about sqrt(N) as in KeOps, but at least 32 vectors (each lane already sums only every W-th
      // term) and whole vectors, so that pieces have no scalar tails and the per-piece overhead stays small.
      const int64_t w = cpu::vector_width(options_.dtype);
      int64_t period = static_cast<int64_t>(std::sqrt(static_cast<double>(std::max<int64_t>(n_inner, 1))));
      period = std::max<int64_t>(32 * w, (period + w - 1) / w * w);
      split_for_block_sum(pl.blocks, pl.intervals, period);
    }
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

  // Tasks: (batch, rows, intervals), each worth at least ~64k pairs, up to 8 per thread for load balance, and at
  // most ~64M pairs (tens of ms), so that an interruption is seen soon (each task also stops between chunks of j).
  struct Task {
    int64_t batch, r0, r1;
    const RowBlock* block;
    const int64_t* intervals;
  };
  auto length = [&](const Plan& pl, const RowBlock& b) {
    int64_t len = 0;
    for (int64_t k = b.first; k < b.first + b.count; ++k) len += pl.intervals[2 * k + 1] - pl.intervals[2 * k];
    return len;
  };
  int64_t total = 0;
  for (int64_t bi = 0; bi < n_batch; ++bi)
    for (const RowBlock& b : plans[n_sets == 1 ? 0 : bi].blocks)
      total += (b.r1 - b.r0) * std::max<int64_t>(length(plans[n_sets == 1 ? 0 : bi], b), 1);
  const int64_t target = std::clamp<int64_t>(total / (8 * int64_t(num_threads())), 1 << 16, 1 << 26);
  std::vector<Task> tasks;
  for (int64_t bi = 0; bi < n_batch; ++bi) {
    const Plan& pl = plans[n_sets == 1 ? 0 : bi];
    for (const RowBlock& b : pl.blocks) {
      // A multiple of 8 rows where there are that many: the kernel evaluates tiles of up to 8 rows together.
      const int64_t rows = (std::max<int64_t>(1, target / std::max<int64_t>(length(pl, b), 1)) + 7) / 8 * 8;
      for (int64_t r = b.r0; r < b.r1; r += rows)
        tasks.push_back({bi, r, std::min(b.r1, r + rows), &b, pl.intervals.data() + 2 * b.first});
    }
  }
  // Cache blocking: a task whose rows each read more inner-variable data than a core's cache holds runs chunk by
  // chunk of j, every row of the task on one chunk before the next (the rows' states wait in scratch), so that a
  // chunk is read from memory once per task instead of once per row.
  int64_t inner_bytes = 0;  // per reduced index
  for (const ArgInfo& a : p.args)
    if (a.cat == inner_cat) inner_bytes += a.dim * static_cast<int64_t>(elem);
  const int64_t w = cpu::vector_width(options_.dtype);
  const int64_t chunk = std::max<int64_t>(w, chunk_bytes() / std::max<int64_t>(inner_bytes, 1) / w * w);
  const int64_t slots = cpu::state_slots(p, options_);
  const cpu::KernelFn fn = code_->fn;
  std::atomic<bool> stop{false};  // set once interrupted: running tasks return at their next chunk of j
  std::function<bool()> poll;       // only for launches long enough to be worth the caller's waiting (> ~1 ms)
  if (L.interrupted && total > (int64_t(1) << 22)) poll = [&] { return stop = stop || L.interrupted(); };
  parallel_for(static_cast<int64_t>(tasks.size()), [&](int64_t t) {
    if (stop) return;
    const Task& task = tasks[t];
    const void* const* args = batch_args[task.batch].data();
    void* const* outs = batch_outs[task.batch].data();
    const int64_t n = task.block->count, *iv = task.intervals;
    int64_t lo = INT64_MAX, hi = 0, len = 0;
    for (int64_t k = 0; k < n; ++k) {
      lo = std::min(lo, iv[2 * k]);
      hi = std::max(hi, iv[2 * k + 1]);
      len += iv[2 * k + 1] - iv[2 * k];
    }
    if (slots == 0 || task.r1 - task.r0 < 2 || len <= chunk) {
      fn(task.r0, task.r1, iv, n, args, outs, nullptr, 0);
      return;
    }
    // The intervals cut at multiples of `chunk`: window c holds the pieces in [c * chunk, (c + 1) * chunk).
    const int64_t first = lo / chunk;
    std::vector<std::vector<int64_t>> cut(static_cast<size_t>((hi - 1) / chunk - first + 1));
    for (int64_t k = 0; k < n; ++k)
      for (int64_t j0 = iv[2 * k]; j0 < iv[2 * k + 1];) {
        const int64_t j1 = std::min(iv[2 * k + 1], (j0 / chunk + 1) * chunk);
        cut[static_cast<size_t>(j0 / chunk - first)].insert(cut[static_cast<size_t>(j0 / chunk - first)].end(), {j0, j1});
        j0 = j1;
      }
    std::vector<std::vector<int64_t>> windows;
    for (auto& pieces : cut)
      if (!pieces.empty()) windows.push_back(std::move(pieces));
    std::vector<int64_t> scratch(static_cast<size_t>((task.r1 - task.r0) * slots));
    for (size_t q = 0; q < windows.size() && !stop; ++q) {
      const int64_t mode = (q > 0 ? cpu::kResume : 0) | (q + 1 < windows.size() ? cpu::kPartial : 0);
      fn(task.r0, task.r1, windows[q].data(), static_cast<int64_t>(windows[q].size() / 2), args, outs, scratch.data(), mode);
    }
  }, poll);
}

}  // namespace keops
