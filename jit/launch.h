// One call of a compiled kernel, as both backends take it: buffers, sizes, batch shapes and block-sparse ranges.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "../core/program.h"

namespace keops {

// Data addresses of C-contiguous arrays (host memory for the CPU, device memory for the GPU; ranges are host arrays).
struct Launch {
  std::vector<uintptr_t> args;                // per argument position
  int64_t nx = 0, ny = 0;
  std::vector<uintptr_t> outs;                // per output_specs() entry: batch + (n_out, cols)
  std::vector<int64_t> batch;                 // broadcast batch shape B (may be empty)
  std::vector<std::vector<int64_t>> arg_batch;  // per argument: its batch shape, len(B) entries of 1 or B[k]
  std::vector<uintptr_t> ranges;              // empty or the 6 KeOps block-sparse int64 arrays
  std::vector<int64_t> range_counts;          // [n ranges_i, n redranges_j, n ranges_j, n redranges_i]
  int64_t range_sets = 1;                     // 1: one pattern for every batch; else one per batch, stacked
  // CPU: polled on the calling thread about every 50 ms while the workers run (see parallel_for); true stops the
  // launch (the outputs are then undefined) with Interrupted. The bindings check Python's signals (Ctrl-C) here.
  // Not used by the GPU: its launch is queued asynchronously (one kernel, maybe a combine) and cannot be cut short.
  std::function<bool()> interrupted;
};

struct LaunchSizes {
  int64_t n_batch = 1, n_outer = 0, n_inner = 0;
};

}  // namespace keops
