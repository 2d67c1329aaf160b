// A persistent pool of worker threads that runs parallel loops over chunks of output rows.
#pragma once
#include <cstdint>
#include <functional>

namespace keops {

// Number of threads used by kernels: PYKEOPS_NUM_THREADS, else OMP_NUM_THREADS, else all cores.
int num_threads();
void set_num_threads(int n);  // n <= 0 restores the default

// Calls body(chunk) for chunk in [0, n_chunks) on up to num_threads() threads; returns when all are done.
// The first exception thrown by a body is rethrown here.
void parallel_for(int64_t n_chunks, const std::function<void(int64_t)>& body);

}  // namespace keops
