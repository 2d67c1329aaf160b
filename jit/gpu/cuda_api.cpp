// The CUDA driver and NVRTC opened with dlopen: probing, device properties, contexts and compilation to cubin.
#include "cuda_api.h"

#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <regex>
#include <sstream>

#include "../../core/errors.h"

namespace keops::gpu {

namespace {

template <class F>
bool resolve(void* lib, F& fn, const char* name) {
  fn = reinterpret_cast<F>(dlsym(lib, name));
  return fn != nullptr;
}

struct DriverState {
  Driver api{};
  bool ok = false;
  std::string why;
  DriverState() {
    void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_GLOBAL);
    if (!lib) {
      const char* e = dlerror();
      why = "no libcuda: the NVIDIA driver library libcuda.so.1 could not be loaded (" + std::string(e ? e : "?") + ")";
      lib = dlopen("libcuda.so", RTLD_NOW | RTLD_GLOBAL);
      if (!lib) return;
      why.clear();
    }
    Driver& d = api;
    bool all = resolve(lib, d.cuInit, "cuInit") && resolve(lib, d.cuDriverGetVersion, "cuDriverGetVersion") &&
               resolve(lib, d.cuDeviceGetCount, "cuDeviceGetCount") && resolve(lib, d.cuDeviceGet, "cuDeviceGet") &&
               resolve(lib, d.cuDeviceGetAttribute, "cuDeviceGetAttribute") &&
               resolve(lib, d.cuDeviceGetName, "cuDeviceGetName") &&
               resolve(lib, d.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain") &&
               resolve(lib, d.cuCtxPushCurrent, "cuCtxPushCurrent_v2") &&
               resolve(lib, d.cuCtxPopCurrent, "cuCtxPopCurrent_v2") &&
               resolve(lib, d.cuModuleLoadData, "cuModuleLoadData") &&
               resolve(lib, d.cuModuleGetFunction, "cuModuleGetFunction") &&
               resolve(lib, d.cuFuncGetAttribute, "cuFuncGetAttribute") &&
               resolve(lib, d.cuLaunchKernel, "cuLaunchKernel") && resolve(lib, d.cuMemAlloc, "cuMemAlloc_v2") &&
               resolve(lib, d.cuMemFree, "cuMemFree_v2") && resolve(lib, d.cuMemcpyHtoD, "cuMemcpyHtoD_v2") &&
               resolve(lib, d.cuMemcpyDtoH, "cuMemcpyDtoH_v2") &&
               resolve(lib, d.cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2") &&
               resolve(lib, d.cuMemsetD8Async, "cuMemsetD8Async") &&
               resolve(lib, d.cuStreamSynchronize, "cuStreamSynchronize") &&
               resolve(lib, d.cuPointerGetAttribute, "cuPointerGetAttribute") &&
               resolve(lib, d.cuGetErrorName, "cuGetErrorName") && resolve(lib, d.cuGetErrorString, "cuGetErrorString");
    if (!all) {
      why = "no libcuda: libcuda.so.1 lacks a driver API entry point the GPU backend needs (driver too old?)";
      return;
    }
    resolve(lib, d.cuMemAllocAsync, "cuMemAllocAsync");  // optional: stream-ordered allocation (CUDA >= 11.2)
    resolve(lib, d.cuMemFreeAsync, "cuMemFreeAsync");
    CUresult r = d.cuInit(0);
    if (r != 0) {
      const char* name = nullptr;
      d.cuGetErrorName(r, &name);
      why = std::string("no device: cuInit failed with ") + (name ? name : std::to_string(r).c_str()) +
            (r == 100 ? " (no CUDA-capable device is detected)" : "");
      return;
    }
    ok = true;
  }
};

DriverState& driver_state() {
  static DriverState* s = new DriverState();  // never unloaded: kernels may run during exit
  return *s;
}

std::mutex& nvrtc_mutex() {
  static std::mutex m;
  return m;
}
std::vector<std::string>& extra_dirs() {
  static std::vector<std::string> dirs;
  return dirs;
}

std::vector<std::string> split_paths(const char* v) {
  std::vector<std::string> out;
  if (!v) return out;
  std::stringstream s(v);
  std::string item;
  while (std::getline(s, item, ':'))
    if (!item.empty()) out.push_back(item);
  return out;
}

// libnvrtc.so* files of a folder (the compiler itself, not its builtins), newest version first.
std::vector<std::string> nvrtc_files_in(const std::string& dir) {
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (name.rfind("libnvrtc.so", 0) == 0) files.push_back(e.path().string());
  }
  std::sort(files.rbegin(), files.rend());
  return files;
}

struct NvrtcState {
  Nvrtc api{};
  bool ok = false;
  std::string why;

  bool try_load(const std::string& path, std::vector<std::string>& tried) {
    tried.push_back(path);
    void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) return false;
    Nvrtc& n = api;
    bool all = resolve(lib, n.nvrtcVersion, "nvrtcVersion") &&
               resolve(lib, n.nvrtcCreateProgram, "nvrtcCreateProgram") &&
               resolve(lib, n.nvrtcCompileProgram, "nvrtcCompileProgram") &&
               resolve(lib, n.nvrtcGetProgramLogSize, "nvrtcGetProgramLogSize") &&
               resolve(lib, n.nvrtcGetProgramLog, "nvrtcGetProgramLog") && resolve(lib, n.nvrtcGetPTXSize, "nvrtcGetPTXSize") &&
               resolve(lib, n.nvrtcGetPTX, "nvrtcGetPTX") && resolve(lib, n.nvrtcDestroyProgram, "nvrtcDestroyProgram") &&
               resolve(lib, n.nvrtcGetErrorString, "nvrtcGetErrorString");
    if (!all) {
      dlclose(lib);
      return false;
    }
    resolve(lib, n.nvrtcGetCUBINSize, "nvrtcGetCUBINSize");  // CUDA >= 11.1
    resolve(lib, n.nvrtcGetCUBIN, "nvrtcGetCUBIN");
    resolve(lib, n.nvrtcGetNumSupportedArchs, "nvrtcGetNumSupportedArchs");
    resolve(lib, n.nvrtcGetSupportedArchs, "nvrtcGetSupportedArchs");
    n.nvrtcVersion(&n.major, &n.minor);
    if (n.nvrtcGetNumSupportedArchs && n.nvrtcGetSupportedArchs) {
      int count = 0;
      n.nvrtcGetNumSupportedArchs(&count);
      n.archs.resize(count);
      if (count > 0) n.nvrtcGetSupportedArchs(n.archs.data());
    }
    Dl_info info{};
    n.path = dladdr(reinterpret_cast<void*>(n.nvrtcVersion), &info) && info.dli_fname ? info.dli_fname : path;
    ok = true;
    return true;
  }

  explicit NvrtcState(const std::vector<std::string>& dirs) {
    std::vector<std::string> tried;
    if (const char* f = std::getenv("KEOPS_NVRTC"))
      if (try_load(f, tried)) return;
    std::vector<std::string> folders = dirs;
    for (const std::string& d : split_paths(std::getenv("KEOPS_GPU_LIBRARY_PATH"))) folders.push_back(d);
    for (const char* var : {"CUDA_HOME", "CUDA_PATH"})
      if (const char* v = std::getenv(var))
        for (const char* sub : {"/lib64", "/lib", "/targets/x86_64-linux/lib"}) folders.push_back(std::string(v) + sub);
    folders.push_back("/usr/local/cuda/lib64");
    folders.push_back("/usr/local/cuda/targets/x86_64-linux/lib");
    for (const std::string& dir : folders)
      for (const std::string& file : nvrtc_files_in(dir))
        if (try_load(file, tried)) return;
    for (const char* name : {"libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so.11.1"})
      if (try_load(name, tried)) return;
    why = "no libnvrtc: the CUDA runtime compiler was not found (install the nvidia-cuda-nvrtc wheel, set CUDA_HOME, or "
          "point KEOPS_NVRTC to libnvrtc.so); searched";
    for (size_t k = 0; k < folders.size(); ++k) why += (k ? ", " : " ") + folders[k];
    why += " and the loader's default path";
  }
};

NvrtcState*& nvrtc_state() {
  static NvrtcState* s = nullptr;
  return s;
}

std::string error_text(CUresult r) {
  const Driver* d = driver();
  const char *name = nullptr, *text = nullptr;
  if (d) {
    d->cuGetErrorName(r, &name);
    d->cuGetErrorString(r, &text);
  }
  return std::string(name ? name : ("error " + std::to_string(r)).c_str()) + (text ? std::string(": ") + text : "");
}

// Parses ptxas -v output into per-kernel resource figures.
std::map<std::string, KernelResources> parse_ptxas(const std::string& log) {
  std::map<std::string, KernelResources> out;
  std::istringstream s(log);
  std::string line, current;
  static const std::regex entry(R"(Compiling entry function '([^']+)')"), props(R"(Function properties for (\S+))"),
      frame(R"((\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads)"),
      regs(R"(Used (\d+) registers)"), smem(R"((\d+) bytes smem)");
  std::smatch m;
  while (std::getline(s, line)) {
    if (std::regex_search(line, m, entry) || std::regex_search(line, m, props)) {
      current = m[1];
      out[current];
    } else if (!current.empty() && std::regex_search(line, m, frame)) {
      KernelResources& r = out[current];
      r.stack_bytes = std::stoi(m[1]);
      r.spill_stores = std::stoi(m[2]);
      r.spill_loads = std::stoi(m[3]);
    } else if (!current.empty() && std::regex_search(line, m, regs)) {
      out[current].registers = std::stoi(m[1]);
      if (std::regex_search(line, m, smem)) out[current].shared_bytes = std::stoi(m[1]);
    }
  }
  return out;
}

}  // namespace

const Driver* driver(std::string* why) {
  DriverState& s = driver_state();
  if (!s.ok && why) *why = s.why;
  return s.ok ? &s.api : nullptr;
}

void check(CUresult r, const char* what) {
  if (r != 0) throw NotSupported(std::string("CUDA driver call ") + what + " failed: " + error_text(r));
}

const DeviceInfo& device_info(int ordinal) {
  static std::mutex mutex;
  static std::map<int, DeviceInfo> infos;
  std::lock_guard<std::mutex> g(mutex);
  if (auto it = infos.find(ordinal); it != infos.end()) return it->second;
  std::string why;
  const Driver* d = driver(&why);
  if (!d) throw NotSupported("no GPU backend: " + why);
  int count = 0;
  check(d->cuDeviceGetCount(&count), "cuDeviceGetCount");
  if (ordinal < 0 || ordinal >= count)
    throw UserError("GPU device " + std::to_string(ordinal) + " does not exist (this machine has " + std::to_string(count) +
                    " CUDA device" + (count == 1 ? "" : "s") + ")");
  CUdevice dev = 0;
  check(d->cuDeviceGet(&dev, ordinal), "cuDeviceGet");
  DeviceInfo info;
  info.ordinal = ordinal;
  auto attr = [&](int a) {
    int v = 0;
    check(d->cuDeviceGetAttribute(&v, a, dev), "cuDeviceGetAttribute");
    return v;
  };
  info.sm = attr(kAttrComputeCapabilityMajor) * 10 + attr(kAttrComputeCapabilityMinor);
  info.multiprocessors = attr(kAttrMultiprocessorCount);
  info.max_threads = attr(kAttrMaxThreadsPerBlock);
  info.max_shared = attr(kAttrMaxSharedMemoryPerBlock);
  int pools = 0;
  info.memory_pools = d->cuMemAllocAsync && d->cuDeviceGetAttribute(&pools, kAttrMemoryPoolsSupported, dev) == 0 && pools;
  char name[256] = {0};
  d->cuDeviceGetName(name, sizeof name, dev);
  info.name = name;
  return infos.emplace(ordinal, info).first->second;
}

ContextGuard::ContextGuard(int ordinal) {
  static std::mutex mutex;
  static std::map<int, CUcontext> contexts;  // primary contexts, retained once and never released
  const Driver* d = driver();
  KEOPS_ASSERT(d, "ContextGuard without a driver");
  CUcontext ctx = nullptr;
  {
    std::lock_guard<std::mutex> g(mutex);
    auto it = contexts.find(ordinal);
    if (it == contexts.end()) {
      device_info(ordinal);  // validates the ordinal
      CUdevice dev = 0;
      check(d->cuDeviceGet(&dev, ordinal), "cuDeviceGet");
      check(d->cuDevicePrimaryCtxRetain(&ctx, dev), "cuDevicePrimaryCtxRetain");
      contexts.emplace(ordinal, ctx);
    } else {
      ctx = it->second;
    }
  }
  check(d->cuCtxPushCurrent(ctx), "cuCtxPushCurrent");
}

ContextGuard::~ContextGuard() {
  CUcontext popped = nullptr;
  driver()->cuCtxPopCurrent(&popped);
}

namespace {
const Driver& driver_or_throw() {
  std::string why;
  const Driver* d = driver(&why);
  if (!d) throw NotSupported("no GPU backend: " + why);
  return *d;
}
}  // namespace

uint64_t device_alloc(int ordinal, size_t bytes) {
  const Driver& d = driver_or_throw();
  ContextGuard g(ordinal);
  CUdeviceptr p = 0;
  check(d.cuMemAlloc(&p, std::max<size_t>(bytes, 1)), "cuMemAlloc");
  return p;
}

void device_free(int ordinal, uint64_t ptr) {
  const Driver& d = driver_or_throw();
  ContextGuard g(ordinal);
  check(d.cuMemFree(ptr), "cuMemFree");
}

void copy_to_device(int ordinal, uint64_t dst, const void* src, size_t bytes) {
  const Driver& d = driver_or_throw();
  ContextGuard g(ordinal);
  if (bytes) check(d.cuMemcpyHtoD(dst, src, bytes), "cuMemcpyHtoD");
}

void copy_to_host(int ordinal, void* dst, uint64_t src, size_t bytes) {
  const Driver& d = driver_or_throw();
  ContextGuard g(ordinal);
  if (bytes) check(d.cuMemcpyDtoH(dst, src, bytes), "cuMemcpyDtoH");
}

void synchronize(int ordinal, uintptr_t stream) {
  const Driver& d = driver_or_throw();
  ContextGuard g(ordinal);
  check(d.cuStreamSynchronize(reinterpret_cast<CUstream>(stream)), "cuStreamSynchronize");
}

void set_library_dirs(const std::vector<std::string>& dirs) {
  std::lock_guard<std::mutex> g(nvrtc_mutex());
  extra_dirs() = dirs;
  // A failed search is retried with the new folders; a loaded compiler stays.
  if (nvrtc_state() && !nvrtc_state()->ok) {
    delete nvrtc_state();
    nvrtc_state() = nullptr;
  }
}

const Nvrtc* nvrtc(std::string* why) {
  std::lock_guard<std::mutex> g(nvrtc_mutex());
  if (!nvrtc_state()) nvrtc_state() = new NvrtcState(extra_dirs());
  NvrtcState* s = nvrtc_state();
  if (!s->ok && why) *why = s->why;
  return s->ok ? &s->api : nullptr;
}

CompileResult compile(const std::string& source, int sm, bool fast_math, bool verbose_ptxas, bool ptx_only) {
  std::string why;
  const Nvrtc* n = nvrtc(&why);
  if (!n) throw NotSupported("no GPU backend: " + why);
  CompileResult result;
  // A device newer than this NVRTC: PTX for the newest architecture it knows, which the driver compiles further.
  int target = sm;
  result.cubin = n->nvrtcGetCUBIN != nullptr && !ptx_only;
  if (!n->archs.empty() && std::find(n->archs.begin(), n->archs.end(), sm) == n->archs.end()) {
    int best = -1;
    for (int a : n->archs)
      if (a <= sm) best = std::max(best, a);
    if (best < 0)
      throw NotSupported("NVRTC " + std::to_string(n->major) + "." + std::to_string(n->minor) + " (" + n->path +
                         ") cannot compile for sm_" + std::to_string(sm) + ": its oldest architecture is sm_" +
                         std::to_string(n->archs.front()));
    target = best;
    result.cubin = false;
  }
  result.arch = (result.cubin ? "sm_" : "compute_") + std::to_string(target);
  std::vector<std::string> opts = {"--gpu-architecture=" + result.arch, "-std=c++17", "-default-device"};
  if (fast_math) opts.push_back("-use_fast_math");
  if (verbose_ptxas && result.cubin) opts.push_back("--ptxas-options=-v");
  std::vector<const char*> copts;
  for (const std::string& o : opts) copts.push_back(o.c_str());

  void* prog = nullptr;
  int r = n->nvrtcCreateProgram(&prog, source.c_str(), "keops_kernel.cu", 0, nullptr, nullptr);
  if (r != 0) internal_failure(__FILE__, __LINE__, std::string("nvrtcCreateProgram: ") + n->nvrtcGetErrorString(r));
  auto start = std::chrono::steady_clock::now();
  int rc = n->nvrtcCompileProgram(prog, static_cast<int>(copts.size()), copts.data());
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  size_t log_size = 0;
  n->nvrtcGetProgramLogSize(prog, &log_size);
  result.log.resize(log_size);
  if (log_size) n->nvrtcGetProgramLog(prog, result.log.data());
  while (!result.log.empty() && (result.log.back() == '\0' || result.log.back() == '\n')) result.log.pop_back();
  if (rc != 0) {
    n->nvrtcDestroyProgram(&prog);
    internal_failure(__FILE__, __LINE__,
                     std::string("NVRTC failed to compile the generated CUDA source for ") + result.arch + " (" +
                         n->nvrtcGetErrorString(rc) + "):\n" + result.log);
  }
  size_t size = 0;
  if (result.cubin) {
    n->nvrtcGetCUBINSize(prog, &size);
    result.binary.resize(size);
    n->nvrtcGetCUBIN(prog, result.binary.data());
  } else {
    n->nvrtcGetPTXSize(prog, &size);
    result.binary.resize(size);
    n->nvrtcGetPTX(prog, result.binary.data());
  }
  n->nvrtcDestroyProgram(&prog);
  result.resources = parse_ptxas(result.log);
  return result;
}

std::string Status::reason() const {
  if (!driver) return driver_reason;
  if (devices == 0) return "no device: the CUDA driver reports no GPU";
  if (!nvrtc) return nvrtc_reason;
  return "";
}

Status status() {
  Status s;
  std::string why;
  if (const Driver* d = driver(&why)) {
    s.driver = true;
    d->cuDriverGetVersion(&s.driver_version);
    if (d->cuDeviceGetCount(&s.devices) != 0) s.devices = 0;
  } else {
    s.driver_reason = why;
  }
  why.clear();
  if (s.devices == 0) {  // no GPU: leave the compiler unloaded (it is only probed when it could be used)
    s.nvrtc_reason = "not probed: no GPU";
    return s;
  }
  if (const Nvrtc* n = nvrtc(&why)) {
    s.nvrtc = true;
    s.nvrtc_path = n->path;
    s.nvrtc_version = std::to_string(n->major) + "." + std::to_string(n->minor);
  } else {
    s.nvrtc_reason = why;
  }
  return s;
}

}  // namespace keops::gpu
