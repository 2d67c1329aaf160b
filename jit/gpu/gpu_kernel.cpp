// GPU backend: kernel cache (requests, programs, cubins per architecture on disk), launch planning and the driver
// runtime that runs the generated kernels on a stream.
#include "gpu_kernel.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>
#include <set>

#include "../../core/errors.h"
#include "../disk_cache.h"
#include "../launch_plan.h"

namespace keops::gpu {

namespace {

GpuDtype gpu_dtype(const std::string& s) { return s == "float16" ? GpuDtype::F16 : s == "float64" ? GpuDtype::F64 : GpuDtype::F32; }

std::string program_key(const Program& p, const GpuOptions& o) {
  return keops::program_key("keops-gpu", o.text(), p);
}

// The GPU side of the request layer (see KernelCache): compilation happens later, per architecture (binary()).
struct GpuBackend {
  using Request = GpuRequest;
  using Options = GpuOptions;
  using Kernel = GpuKernel;
  static constexpr std::string_view kName = "GPU";
  static constexpr std::string_view kDtypes[] = {"float16", "float32", "float64"};
  static std::string request_suffix(const Request& r) {
    return (r.fast_math ? "fast" : "precise") + std::string(r.chunks ? "/chunks" : "") + "/" + std::to_string(r.block);
  }
  static Options options(const Program&, const RequestOptions& c, const Request& r) {
    if (r.block < 0 || r.block > 1024 || (r.block % 32 != 0 && r.block > 32))
      throw UserError("block must be 0 (automatic), at most 32, or a multiple of 32 up to 1024");
    return {gpu_dtype(c.dtype), gpu_dtype(c.acc), c.scheme, r.fast_math, r.chunks, r.block};
  }
  static std::string program_key(const Program& p, const Options& o) { return gpu::program_key(p, o); }
  static std::shared_ptr<const Kernel> make(Program p, const Options& o, const std::string& key, KernelCache<GpuBackend>&) {
    return std::make_shared<const GpuKernel>(std::move(p), o, "keops_" + key_digest(key));
  }
};

KernelCache<GpuBackend>& cache() {
  static auto* c = new KernelCache<GpuBackend>();
  return *c;
}

// ---- launch planning -----------------------------------------------------------------------------------------

// The kernels' Batch structure: nb, shape[8], stride[pos][8] (elements; 0 where the argument broadcasts), with
// batch axes of size 1 dropped and neighbouring axes merged where every argument allows it.
std::vector<int64_t> batch_table(const Program& p, const Launch& L, int64_t n_outer, int64_t n_inner, int max_dims) {
  const size_t nargs = p.args.size();
  const size_t width = 1 + max_dims + std::max<size_t>(1, nargs) * max_dims;
  std::vector<int64_t> table(width, 0);
  // Per kept axis: size, and per argument whether it has its own extent along it.
  std::vector<int64_t> shape;
  std::vector<std::vector<char>> own;  // [axis][pos]
  for (size_t k = 0; k < L.batch.size(); ++k) {
    if (L.batch[k] == 1) continue;
    std::vector<char> o(nargs);
    for (size_t pos = 0; pos < nargs; ++pos) o[pos] = L.arg_batch.empty() || L.arg_batch[pos][k] != 1;
    if (!shape.empty() && own.back() == o) {
      shape.back() *= L.batch[k];
    } else {
      shape.push_back(L.batch[k]);
      own.push_back(o);
    }
  }
  if (static_cast<int>(shape.size()) > max_dims)
    throw NotSupported("the GPU backend supports at most " + std::to_string(max_dims) + " independent batch dimensions, got " +
                       std::to_string(shape.size()));
  const int nb = static_cast<int>(shape.size());
  table[0] = nb;
  for (int k = 0; k < nb; ++k) table[1 + k] = shape[k];
  for (size_t pos = 0; pos < nargs; ++pos) {
    const ArgInfo& a = p.args[pos];
    int64_t stride = (a.cat == 2 ? 1 : a.cat == p.tag ? n_outer : n_inner) * a.dim;
    for (int k = nb - 1; k >= 0; --k) {
      if (own[k][pos]) {
        table[1 + max_dims + pos * max_dims + k] = stride;
        stride *= shape[k];
      }
    }
  }
  return table;
}

struct Dims {  // = KpDims of the prelude
  int64_t n_outer, n_inner, n_batch, n_chunks, n_split, n_rows;
};

// ---- the CUDA driver runtime ---------------------------------------------------------------------------------

class CudaRuntime : public Runtime {
 public:
  CudaRuntime(const DeviceInfo& info, CUstream stream, const std::map<std::string, CUfunction>& functions)
      : d_(*driver()), info_(info), stream_(stream), functions_(functions) {}
  uint64_t alloc(size_t bytes) override {
    CUdeviceptr p = 0;
    if (info_.memory_pools) check(d_.cuMemAllocAsync(&p, bytes, stream_), "cuMemAllocAsync");
    else check(d_.cuMemAlloc(&p, bytes), "cuMemAlloc");
    return p;
  }
  void release(uint64_t p) override {
    if (info_.memory_pools) {
      check(d_.cuMemFreeAsync(p, stream_), "cuMemFreeAsync");
    } else {
      check(d_.cuStreamSynchronize(stream_), "cuStreamSynchronize");
      check(d_.cuMemFree(p), "cuMemFree");
    }
  }
  void upload(uint64_t dst, const void* src, size_t bytes) override {
    check(d_.cuMemcpyHtoDAsync(dst, src, bytes, stream_), "cuMemcpyHtoDAsync");
  }
  void zero(uint64_t dst, size_t bytes) override { check(d_.cuMemsetD8Async(dst, 0, bytes, stream_), "cuMemsetD8Async"); }
  void launch(const std::string& kernel, unsigned gx, unsigned gy, unsigned block, void** params) override {
    auto it = functions_.find(kernel);
    KEOPS_ASSERT(it != functions_.end(), "unknown kernel " + kernel);
    check(d_.cuLaunchKernel(it->second, gx, gy, 1, block, 1, 1, 0, stream_, params, nullptr), "cuLaunchKernel");
  }
  int multiprocessors() const override { return info_.multiprocessors; }

 private:
  const Driver& d_;
  const DeviceInfo& info_;
  CUstream stream_;
  const std::map<std::string, CUfunction>& functions_;
};

}  // namespace

GpuKernel::GpuKernel(Program program, GpuOptions options, std::string name)
    : program_(std::move(program)), options_(options), outputs_(output_specs(program_)) {
  key_ = program_key(program_, options_);
  source_ = generate_cuda(program_, options_, name);
}

const CompileResult& GpuKernel::binary(int sm) const {
  std::lock_guard<std::mutex> g(mutex_);
  if (auto it = binaries_.find(sm); it != binaries_.end()) return *it->second;
  KEOPS_ASSERT(program_.reduction != ReductionKind::Zero, "Zero_Reduction has no kernels");
  std::string why;
  const Nvrtc* n = nvrtc(&why);
  if (!n) throw NotSupported("no GPU backend: " + why);
  const std::string file_key = key_ + "\nsm_" + std::to_string(sm) + "\nnvrtc " + std::to_string(n->major) + "." +
                               std::to_string(n->minor);
  // The entry's info line: "cubin" or "ptx" and the architecture compiled for.
  CachedBinary b = cached_binary(file_key, ".cubin", ".gpukey", [&] {
    CompileResult r = compile(source_.full(), sm, options_.fast_math, false);
    return std::pair{std::move(r.binary), (r.cubin ? "cubin " : "ptx ") + r.arch};
  });
  cache().count_build(b.from_disk);
  auto result = std::make_unique<CompileResult>();
  std::istringstream info(b.info);
  std::string kind;
  info >> kind >> result->arch;
  result->cubin = kind == "cubin";
  result->binary = std::move(b.data);
  return *binaries_.emplace(sm, std::move(result)).first->second;
}

const GpuKernel::Loaded& GpuKernel::loaded(int ordinal) const {
  {
    std::lock_guard<std::mutex> g(mutex_);
    if (auto it = modules_.find(ordinal); it != modules_.end()) return *it->second;
  }
  const DeviceInfo& info = device_info(ordinal);
  const CompileResult& bin = binary(info.sm);
  std::lock_guard<std::mutex> g(mutex_);
  if (auto it = modules_.find(ordinal); it != modules_.end()) return *it->second;
  const Driver& d = *driver();
  auto l = std::make_unique<Loaded>();
  if (CUresult r = d.cuModuleLoadData(&l->module, bin.binary.data()); r != 0) {
    int driver_version = 0;
    d.cuDriverGetVersion(&driver_version);
    const Nvrtc* n = nvrtc();
    std::string why;
    try {
      check(r, "cuModuleLoadData");
    } catch (const NotSupported& e) {
      why = e.what();
    }
    throw NotSupported(why + " (" + bin.arch + " code from NVRTC " + (n ? std::to_string(n->major) + "." + std::to_string(n->minor) + " at " + n->path : "?") +
                       "; the driver supports CUDA " + std::to_string(driver_version / 1000) + "." +
                       std::to_string(driver_version % 1000 / 10) +
                       ": an NVRTC newer than the driver produces code it cannot load; point KEOPS_NVRTC to an older libnvrtc)");
  }
  for (const char* suffix : {"_reduce", "_combine"}) {
    std::string name = layout().name + suffix;
    CUfunction f = nullptr;
    check(d.cuModuleGetFunction(&f, l->module, name.c_str()), "cuModuleGetFunction");
    l->functions[name] = f;
  }
  return *modules_.emplace(ordinal, std::move(l)).first->second;
}

LaunchReport GpuKernel::run(const Launch& L, int ordinal, uintptr_t stream, Scheme scheme) const {
  std::string why;
  if (!driver(&why)) throw NotSupported("no GPU backend: " + why);
  const DeviceInfo& info = device_info(ordinal);
  ContextGuard context(ordinal);
  static const std::map<std::string, CUfunction> none;
  const auto& functions = program_.reduction == ReductionKind::Zero ? none : loaded(ordinal).functions;
  CudaRuntime rt(info, reinterpret_cast<CUstream>(stream), functions);
  return launch(L, rt, scheme);
}

LaunchReport GpuKernel::launch(const Launch& L, Runtime& rt, Scheme scheme) const {
  const Program& p = program_;
  const KernelLayout& K = layout();
  LaunchReport report;
  report.scheme = "none";
  const auto [n_batch, n_outer, n_inner] = check_launch(p, outputs_.size(), L);
  if (n_outer == 0 || n_batch == 0) return report;
  const size_t elem = gpu_dtype_size(options_.dtype);
  if (p.reduction == ReductionKind::Zero) {
    for (size_t o = 0; o < L.outs.size(); ++o)
      rt.zero(L.outs[o], n_batch * n_outer * outputs_[o].cols * (outputs_[o].indices ? sizeof(int64_t) : elem));
    return report;
  }

  // Row blocks: at most BLOCK rows of one batch, each with its intervals of j. Without ranges they are implicit
  // (n_chunks per batch); with ranges, a table of (batch, r0, r1, first interval, interval count).
  const int block = K.block;
  std::vector<int64_t> chunk_table, intervals;
  const int64_t n_chunks = (n_outer + block - 1) / block;
  int64_t row_blocks = n_chunks * n_batch, total_len = row_blocks * n_inner;
  if (!L.ranges.empty()) {
    const int64_t n_sets = range_sets(L, n_batch);
    total_len = 0;
    for (int64_t set = 0; set < n_sets; ++set) {
      std::vector<int64_t> ivs;
      const std::vector<RowBlock> planned = plan_ranges(p, L, set, n_outer, n_inner, ivs);
      const int64_t base = static_cast<int64_t>(intervals.size()) / 2;
      intervals.insert(intervals.end(), ivs.begin(), ivs.end());
      for (int64_t b = n_sets == 1 ? 0 : set; b < (n_sets == 1 ? n_batch : set + 1); ++b)
        for (const RowBlock& c : planned) {
          int64_t len = 0;
          for (int64_t k = c.first; k < c.first + c.count; ++k) len += ivs[2 * k + 1] - ivs[2 * k];
          for (int64_t r = c.r0; r < c.r1; r += block) {
            chunk_table.insert(chunk_table.end(), {b, r, std::min(c.r1, r + block), base + c.first, c.count});
            total_len += len;
          }
        }
    }
    row_blocks = static_cast<int64_t>(chunk_table.size()) / 5;
  }
  if (row_blocks == 0) return report;
  const std::vector<int64_t> batch = batch_table(p, L, n_outer, n_inner, K.max_batch_dims);

  // Scheme: 1D when the row blocks fill the device; else split j across blocks (2D) so that every
  // multiprocessor gets several blocks, each with at least a few tiles of j to reduce.
  const int64_t sms = std::max(1, rt.multiprocessors());
  const int64_t avg_len = total_len / row_blocks;
  int64_t split = 1;
  if (scheme != Scheme::OneD) {
    const int64_t by_device = (4 * sms + row_blocks - 1) / row_blocks;
    const int64_t by_work = std::max<int64_t>(1, avg_len / (4 * int64_t(block)));
    split = std::min({by_device, by_work, int64_t(65535)});
    if (scheme == Scheme::Auto && row_blocks >= 2 * sms) split = 1;
    // Partial states: at most ~256 MiB.
    const int64_t rows_total = n_batch * n_outer;
    const int64_t cap = std::max<int64_t>(1, (int64_t(256) << 20) / std::max<int64_t>(1, rows_total * K.state_stride));
    split = std::max<int64_t>(1, std::min(split, cap));
  }
  const bool two_d = scheme == Scheme::TwoD || split > 1;
  if (row_blocks > 0x7fffffff) throw NotSupported("too many row blocks for one GPU launch");

  // One device allocation for the tables and the partial states.
  const size_t table_bytes = (chunk_table.size() + intervals.size()) * sizeof(int64_t);
  const size_t partial_bytes = two_d ? size_t(split) * size_t(n_batch * n_outer) * K.state_stride : 0;
  const size_t scratch = (table_bytes + 255) / 256 * 256 + partial_bytes;
  uint64_t base = scratch ? rt.alloc(scratch) : 0;
  uint64_t chunks_ptr = 0, ivs_ptr = 0, partial_ptr = 0;
  try {
    if (!chunk_table.empty()) {
      std::vector<int64_t> tables(chunk_table);
      tables.insert(tables.end(), intervals.begin(), intervals.end());
      rt.upload(base, tables.data(), table_bytes);
      chunks_ptr = base;
      ivs_ptr = intervals.empty() ? 0 : base + chunk_table.size() * sizeof(int64_t);  // empty: never read
    }
    if (two_d) partial_ptr = base + (table_bytes + 255) / 256 * 256;
    Dims dims{n_outer, n_inner, n_batch, std::max<int64_t>(n_chunks, 1), split, n_batch * n_outer};
    std::vector<uint64_t> ptrs(L.args.begin(), L.args.end());
    uint64_t o0 = L.outs[0], o1 = L.outs.size() > 1 ? L.outs[1] : 0;
    std::vector<void*> params = {&dims, &chunks_ptr, &ivs_ptr, const_cast<int64_t*>(batch.data()), &partial_ptr};
    for (uint64_t& a : ptrs) params.push_back(&a);
    params.push_back(&o0);
    params.push_back(&o1);
    // The reduce kernel runs the 1D scheme when `partial` is null, else writes the 2D partial states.
    rt.launch(K.name + "_reduce", static_cast<unsigned>(row_blocks), static_cast<unsigned>(split), block, params.data());
    if (two_d) {
      std::vector<void*> cparams = {&dims, &partial_ptr, &o0, &o1};
      const int64_t cblocks = (n_batch * n_outer + K.combine_block - 1) / K.combine_block;
      rt.launch(K.name + "_combine", static_cast<unsigned>(cblocks), 1, K.combine_block, cparams.data());
    }
  } catch (...) {
    if (base) rt.release(base);
    throw;
  }
  if (base) rt.release(base);
  report.scheme = two_d ? "2D" : "1D";
  report.blocks = row_blocks;
  report.splits = split;
  report.scratch_bytes = scratch;
  return report;
}

std::shared_ptr<const GpuKernel> get_gpu_kernel(const GpuRequest& r) { return cache().get(r); }

CompileCheck compile_check(const std::vector<GpuRequest>& requests, int sm, bool verbose_ptxas, bool ptx_only) {
  CompileCheck check;
  std::string source = cuda_prelude();
  std::set<std::string> seen;
  bool fast_math = requests.empty() || requests.front().fast_math;
  for (const GpuRequest& r : requests) {
    auto k = get_gpu_kernel(r);
    check.kernels.push_back(k);
    if (r.fast_math != fast_math) throw UserError("compile_check: every request must have the same use_fast_math");
    if (seen.insert(k->layout().name).second) source += k->source().body;
  }
  check.result = compile(source, sm, fast_math, verbose_ptxas, ptx_only);
  return check;
}

CacheStats gpu_cache_stats() { return cache().stats(); }
void clear_gpu_memory_cache() { cache().clear(); }

}  // namespace keops::gpu
