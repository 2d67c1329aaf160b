// CUDA driver and NVRTC entry points, opened with dlopen at run time: no CUDA header or library at build time.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace keops::gpu {

// The driver API's handle types, as opaque values (the ABI of cuda.h).
using CUresult = int;
using CUdevice = int;
using CUcontext = void*;
using CUmodule = void*;
using CUfunction = void*;
using CUstream = void*;
using CUdeviceptr = unsigned long long;

// The driver functions the GPU backend uses, resolved from libcuda.so.1 (versioned names where cuda.h has them).
struct Driver {
  CUresult (*cuInit)(unsigned);
  CUresult (*cuDriverGetVersion)(int*);
  CUresult (*cuDeviceGetCount)(int*);
  CUresult (*cuDeviceGet)(CUdevice*, int);
  CUresult (*cuDeviceGetAttribute)(int*, int, CUdevice);
  CUresult (*cuDeviceGetName)(char*, int, CUdevice);
  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext*, CUdevice);
  CUresult (*cuCtxPushCurrent)(CUcontext);
  CUresult (*cuCtxPopCurrent)(CUcontext*);
  CUresult (*cuModuleLoadData)(CUmodule*, const void*);
  CUresult (*cuModuleGetFunction)(CUfunction*, CUmodule, const char*);
  CUresult (*cuFuncGetAttribute)(int*, int, CUfunction);
  CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream,
                             void**, void**);
  CUresult (*cuMemAlloc)(CUdeviceptr*, size_t);
  CUresult (*cuMemFree)(CUdeviceptr);
  CUresult (*cuMemAllocAsync)(CUdeviceptr*, size_t, CUstream);  // null on drivers before 11.2
  CUresult (*cuMemFreeAsync)(CUdeviceptr, CUstream);
  CUresult (*cuMemcpyHtoD)(CUdeviceptr, const void*, size_t);
  CUresult (*cuMemcpyDtoH)(void*, CUdeviceptr, size_t);
  CUresult (*cuMemcpyHtoDAsync)(CUdeviceptr, const void*, size_t, CUstream);
  CUresult (*cuMemsetD8Async)(CUdeviceptr, unsigned char, size_t, CUstream);
  CUresult (*cuStreamSynchronize)(CUstream);
  CUresult (*cuPointerGetAttribute)(void*, int, CUdeviceptr);
  CUresult (*cuGetErrorName)(CUresult, const char**);
  CUresult (*cuGetErrorString)(CUresult, const char**);
};

// Attribute numbers of cuda.h used here.
enum : int {
  kAttrMaxThreadsPerBlock = 1,
  kAttrMaxSharedMemoryPerBlock = 8,
  kAttrMultiprocessorCount = 16,
  kAttrComputeCapabilityMajor = 75,
  kAttrComputeCapabilityMinor = 76,
  kAttrMemoryPoolsSupported = 115,
  kFuncAttrNumRegs = 4,
  kFuncAttrLocalSizeBytes = 3,
  kPointerAttrDeviceOrdinal = 9,
};

// libcuda.so.1 loaded and cuInit(0) done, once per process; nullptr when either fails (`why` says which).
const Driver* driver(std::string* why = nullptr);

// Throws NotSupported (naming the call and the driver's error) unless r is CUDA_SUCCESS.
void check(CUresult r, const char* what);

// The device's properties that the launch heuristics and the compiler need.
struct DeviceInfo {
  int ordinal = 0, sm = 0, multiprocessors = 0, max_threads = 0, max_shared = 0;
  bool memory_pools = false;
  std::string name;
};
const DeviceInfo& device_info(int ordinal);  // NotSupported when the device does not exist

// Pushes the device's primary context (the one torch uses) for the lifetime of the object.
class ContextGuard {
 public:
  explicit ContextGuard(int ordinal);
  ~ContextGuard();
  ContextGuard(const ContextGuard&) = delete;
  ContextGuard& operator=(const ContextGuard&) = delete;
};

// Plain device memory on a device's primary context (host-mode transfers when torch is absent). Copies are
// synchronous; synchronize() waits for a stream.
uint64_t device_alloc(int ordinal, size_t bytes);
void device_free(int ordinal, uint64_t ptr);
void copy_to_device(int ordinal, uint64_t dst, const void* src, size_t bytes);
void copy_to_host(int ordinal, void* dst, uint64_t src, size_t bytes);
void synchronize(int ordinal, uintptr_t stream);

// NVRTC: the compiler, searched in KEOPS_NVRTC (a file), the folders of set_library_dirs() (the Python package passes
// the nvidia-cuda-nvrtc wheel's), $CUDA_HOME, $CUDA_PATH, /usr/local/cuda, then the loader's default path.
struct Nvrtc {
  int (*nvrtcVersion)(int*, int*);
  int (*nvrtcGetNumSupportedArchs)(int*);
  int (*nvrtcGetSupportedArchs)(int*);
  int (*nvrtcCreateProgram)(void**, const char*, const char*, int, const char* const*, const char* const*);
  int (*nvrtcCompileProgram)(void*, int, const char* const*);
  int (*nvrtcGetProgramLogSize)(void*, size_t*);
  int (*nvrtcGetProgramLog)(void*, char*);
  int (*nvrtcGetCUBINSize)(void*, size_t*);
  int (*nvrtcGetCUBIN)(void*, char*);
  int (*nvrtcGetPTXSize)(void*, size_t*);
  int (*nvrtcGetPTX)(void*, char*);
  int (*nvrtcDestroyProgram)(void**);
  const char* (*nvrtcGetErrorString)(int);
  std::string path;
  int major = 0, minor = 0;
  std::vector<int> archs;  // supported sm numbers, e.g. 75, 80, 86, 89, 90, ...
};
const Nvrtc* nvrtc(std::string* why = nullptr);
void set_library_dirs(const std::vector<std::string>& dirs);  // before the first nvrtc() call takes effect

// ptxas's resource report for one kernel (from --ptxas-options=-v).
struct KernelResources {
  int registers = -1, stack_bytes = -1, spill_stores = -1, spill_loads = -1, shared_bytes = 0;
};

struct CompileResult {
  std::string binary;    // cubin, or PTX text when the device is newer than NVRTC knows (the driver then JITs it)
  bool cubin = true;
  std::string arch;      // "sm_90" or "compute_90"
  std::string log;
  std::map<std::string, KernelResources> resources;  // by kernel name
  double seconds = 0;
};

// Compiles CUDA source for compute capability `sm` (e.g. 80). Throws InternalError with NVRTC's log on failure.
// ptx_only: stop at PTX for compute_<sm> (front end and NVVM only, no ptxas: a quicker check that the source compiles).
CompileResult compile(const std::string& source, int sm, bool fast_math, bool verbose_ptxas, bool ptx_only = false);

// Whether the GPU backend can run, and if not, what is missing (no libcuda / no device / no libnvrtc).
struct Status {
  bool driver = false, nvrtc = false;
  int devices = 0, driver_version = 0;
  std::string driver_reason, nvrtc_reason, nvrtc_path, nvrtc_version;
  bool available() const { return driver && nvrtc && devices > 0; }
  std::string reason() const;  // "" when available
};
Status status();

}  // namespace keops::gpu
