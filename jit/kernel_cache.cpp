// The request layer shared by the backends: request parsing and option checks, cache keys, the disk cache folder.
#include "kernel_cache.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <tuple>

#include "../core/errors.h"
#include "../core/lower.h"
#include "../core/parser.h"
#include "disk_cache.h"

namespace keops {

namespace {

struct DtypeRow {
  std::string_view name;
  int size;
};
constexpr DtypeRow kDtypeTable[] = {{"float16", 2}, {"float32", 4}, {"float64", 8}};

// The size of a dtype the backend supports: NotSupported for a known one it lacks, UserError for any other name.
int dtype_size(const std::string& s, const char* what, std::string_view backend, std::span<const std::string_view> dtypes) {
  std::string expected;
  for (size_t i = 0; i < dtypes.size(); ++i) expected += (i == 0 ? "" : i + 1 == dtypes.size() ? " or " : ", ") + std::string(dtypes[i]);
  const auto row = std::find_if(std::begin(kDtypeTable), std::end(kDtypeTable), [&](const DtypeRow& d) { return d.name == s; });
  if (row == std::end(kDtypeTable))
    throw UserError(std::string("unsupported ") + what + " '" + s + "' (expected " + expected + ")");
  if (std::find(dtypes.begin(), dtypes.end(), s) == dtypes.end())
    throw NotSupported(s + " is not supported by the " + std::string(backend) + " backend (use " + expected + ")");
  return row->size;
}

std::string default_folder() {
  if (const char* v = std::getenv("KEOPS_CACHE_FOLDER")) return v;
  if (const char* v = std::getenv("XDG_CACHE_HOME")) return std::string(v) + "/keops-jit";
  if (const char* v = std::getenv("HOME")) return std::string(v) + "/.cache/keops-jit";
  return "";
}

struct Folder {
  std::mutex mutex;
  std::string path;
  bool set = false;
};
Folder& folder() {
  static Folder* f = new Folder();
  return *f;
}

}  // namespace

std::pair<Program, RequestOptions> prepare_request(const KernelRequest& r, std::string_view backend,
                                                   std::span<const std::string_view> dtypes) {
  std::vector<Alias> aliases = parse_aliases(r.aliases);
  Reduction red = parse_reduction(r.formula, aliases);
  Program program = lower(red, argument_table(red, aliases));
  RequestOptions o;
  const int size = dtype_size(r.dtype, "dtype", backend, dtypes);
  o.dtype = r.dtype;
  o.acc = size < 4 ? "float32" : r.dtype;  // half-precision data accumulate in float32 by default
  const ReductionInfo& info = *find_reduction(program.reduction_name);
  if (r.dtype_acc != "auto") {
    const int acc_size = dtype_size(r.dtype_acc, "dtype_acc", backend, dtypes);
    if (!info.accumulates && r.dtype_acc != r.dtype)
      throw UserError("dtype_acc applies to sum-type reductions (Sum, LogSumExp, SumSoftMaxWeight), not to " +
                      program.reduction_name);
    if (acc_size < size) throw UserError("dtype_acc=" + r.dtype_acc + " with " + r.dtype + " data would lose precision");
    o.acc = r.dtype_acc;
  }
  o.scheme = parse_sum_scheme(info, r.sum_scheme, program.reduction_name);
  return {std::move(program), o};
}

std::string request_key(const KernelRequest& r) {
  std::string key = r.formula + "\n" + r.dtype + "\n" + r.dtype_acc + "\n" + r.sum_scheme;
  for (const std::string& a : r.aliases) key += "\n" + a;
  return key;
}

std::string program_key(std::string_view tag, const std::string& options, const Program& p) {
  std::string key = std::string(tag) + " " + kSourceHash + "\n" + options + "\n" + p.canonical;
  for (const ArgInfo& a : p.args) key += "\n" + std::to_string(a.dim) + "," + std::to_string(a.cat);
  return key;
}

std::string cache_folder() {
  Folder& f = folder();
  std::lock_guard<std::mutex> g(f.mutex);
  if (!f.set) {
    f.path = default_folder();
    f.set = true;
  }
  return f.path;
}

void set_cache_folder(const std::string& path) {
  Folder& f = folder();
  std::lock_guard<std::mutex> g(f.mutex);
  f.path = path;
  f.set = true;
}

CachedBinary cached_binary(const std::string& key, const char* data_ext, const char* meta_ext,
                           const std::function<std::pair<std::string, std::string>()>& build) {
  const std::string dir = cache_folder(), digest = key_digest(key);
  std::filesystem::path data, meta;
  CachedBinary b;
  if (!dir.empty()) {
    data = std::filesystem::path(dir) / (digest + data_ext);
    meta = std::filesystem::path(dir) / (digest + meta_ext);
    b.data = read_entry(data, meta, key, &b.info);
    if (!b.data.empty()) {
      b.from_disk = true;
      return b;
    }
  }
  std::tie(b.data, b.info) = build();
  if (!dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (!ec) write_entry(data, meta, key, b.data, b.info);
  }
  return b;
}

}  // namespace keops
