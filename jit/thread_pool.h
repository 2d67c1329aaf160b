// A persistent pool of worker threads that runs parallel loops over chunks of output rows.
#pragma once
#include <cstdint>
#include <functional>
#include <stdexcept>

namespace keops {

// Number of threads used by kernels: PYKEOPS_NUM_THREADS, else OMP_NUM_THREADS, else all cores.
int num_threads();
void set_num_threads(int n);  // n <= 0 restores the default

// Thrown by parallel_for when its `interrupted` callback said so: the chunks not started yet were not run.
struct Interrupted : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Calls body(chunk) for chunk in [0, n_chunks) on up to num_threads() threads; returns when all are done.
// The first exception thrown by a body is rethrown here.
// With `interrupted` (e.g. a check for Ctrl-C, which must run on the calling thread), the calling thread only
// waits while the workers run the chunks, and calls it about every 50 ms; once it returns true (or throws), no
// further chunk starts, and when the running ones are done Interrupted (or its exception) is thrown.
void parallel_for(int64_t n_chunks, const std::function<void(int64_t)>& body,
                  const std::function<bool()>& interrupted = nullptr);

}  // namespace keops
