// The request layer of both backends: request -> (Program, options), memory cache by exact request and by canonical
// program, disk cache of compiled binaries, stats. Backends supply only rendering, compilation and the launch.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../core/program.h"
#include "../core/reduction.h"

namespace keops {

struct KernelRequest {
  std::string formula;               // full reduction string, e.g. "Sum_Reduction(Exp(-SqDist(x,y))*b,0)"
  std::vector<std::string> aliases;  // "x = Vi(3)", ...
  std::string dtype = "float32";
  std::string dtype_acc = "auto";
  std::string sum_scheme = "auto";
};

// The options every backend has, checked: data and accumulator types by name, and the summation scheme.
struct RequestOptions {
  std::string dtype, acc;
  SumScheme scheme = SumScheme::Block;
};

// Parses and lowers the request and checks its options: `dtypes` are the data types that the backend (`backend`
// in messages, e.g. "CPU") supports; dtype_acc "auto" is the data type, but at least float32.
std::pair<Program, RequestOptions> prepare_request(const KernelRequest& r, std::string_view backend,
                                                   std::span<const std::string_view> dtypes);

// The exact-request part of a memory-cache key (backends append their own options).
std::string request_key(const KernelRequest& r);

// A canonical program key (also the disk cache's): the backend's tag, kSourceHash (code from other code generators
// is never loaded), the backend's options, the canonical formula, the arguments' dims and categories.
std::string program_key(std::string_view tag, const std::string& options, const Program& p);

struct CacheStats {
  int64_t requests = 0, memory_hits = 0, disk_hits = 0, compiled = 0;
  int64_t memory_entries = 0;  // kernels held in memory now (by canonical program)
};

// How the last kernel lookup (or GPU binary) on this thread was served: "memory", "disk", "compiled", or "generated"
// (a GPU kernel's source, compiled per architecture at its first run). Per thread, so that the Python side can say
// what its own lookup did while other threads look up kernels too.
inline thread_local const char* last_lookup = "memory";

// Disk cache folder: KEOPS_CACHE_FOLDER, else $XDG_CACHE_HOME/keops-jit or ~/.cache/keops-jit; "" disables it.
std::string cache_folder();
void set_cache_folder(const std::string& path);

// A compiled binary from the disk cache under `key` (files <digest><data_ext> and <digest><meta_ext>), else from
// build() and stored; `info` is the entry's info line. An unwritable cache folder only costs recompilation later.
struct CachedBinary {
  std::string data, info;
  bool from_disk = false;
};
CachedBinary cached_binary(const std::string& key, const char* data_ext, const char* meta_ext,
                           const std::function<std::pair<std::string, std::string>()>& build);

// The two-level memory cache of one backend. B supplies the types Request (a KernelRequest plus the backend's
// options), Options and Kernel, kName and kDtypes (for prepare_request), and the functions request_suffix(Request)
// (its own options in the exact-request key), options(Program, RequestOptions, Request) (checks them: UserError),
// program_key(Program, Options) and make(Program, Options, key, cache) (renders, maybe compiles: count_build; not under the lock).
template <class B>
class KernelCache {
 public:
  using Kernel = typename B::Kernel;

  std::shared_ptr<const Kernel> get(const typename B::Request& r) {
    const std::string rkey = request_key(r) + "\n" + B::request_suffix(r);
    {
      std::lock_guard<std::mutex> g(mutex_);
      ++stats_.requests;
      if (auto it = by_request_.find(rkey); it != by_request_.end()) {
        ++stats_.memory_hits;
        last_lookup = "memory";
        return it->second;
      }
    }
    auto [program, common] = prepare_request(r, B::kName, B::kDtypes);
    const typename B::Options options = B::options(program, common, r);
    const std::string pkey = B::program_key(program, options);
    std::shared_ptr<const Kernel> kernel;
    {
      std::lock_guard<std::mutex> g(mutex_);
      if (auto it = by_program_.find(pkey); it != by_program_.end()) {
        ++stats_.memory_hits;
        last_lookup = "memory";
        kernel = it->second;
      }
    }
    if (!kernel) {
      last_lookup = "generated";  // count_build says "disk" or "compiled" where make() builds a binary
      std::shared_ptr<const Kernel> made = B::make(std::move(program), options, pkey, *this);
      std::lock_guard<std::mutex> g(mutex_);
      kernel = by_program_.emplace(pkey, std::move(made)).first->second;
    }
    std::lock_guard<std::mutex> g(mutex_);
    by_request_.emplace(rkey, kernel);
    return kernel;
  }

  // Counts a binary read from disk or compiled.
  void count_build(bool from_disk) {
    last_lookup = from_disk ? "disk" : "compiled";
    std::lock_guard<std::mutex> g(mutex_);
    ++(from_disk ? stats_.disk_hits : stats_.compiled);
  }

  CacheStats stats() {
    std::lock_guard<std::mutex> g(mutex_);
    CacheStats s = stats_;
    s.memory_entries = static_cast<int64_t>(by_program_.size());
    return s;
  }

  // Forgets the kernels in memory; each is freed (its code unlinked or unloaded) when its last user lets it go.
  void clear() {
    std::lock_guard<std::mutex> g(mutex_);
    by_request_.clear();
    by_program_.clear();
  }

 private:
  std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<const Kernel>> by_request_, by_program_;
  CacheStats stats_;
};

}  // namespace keops
