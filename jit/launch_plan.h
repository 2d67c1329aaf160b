// What CPU and GPU launches share: validating a Launch against its program, and planning block-sparse ranges.
#pragma once
#include <cstdint>
#include <vector>

#include "../core/program.h"
#include "launch.h"

namespace keops {

// Checks counts, batch shapes, null pointers, K against the reduced size and arg-reductions over nothing
// (UserError naming the problem). Outputs are checked only when there is something to write.
LaunchSizes check_launch(const Program& p, size_t n_outputs, const Launch& L);

struct RowBlock {  // output rows [r0, r1) reduced over intervals [first, first + count) of the interval array
  int64_t r0, r1, first, count;
};

// The rows and their intervals of reduced indices for range set `set` of the KeOps block-sparse ranges (validated:
// bounds, non-decreasing slices, overlapping output ranges); rows in no range get a block without intervals.
// `intervals` receives the pairs [j0, j1) that blocks index into.
// The number of range sets of a launch of `n_batch` batches: 1 without ranges or with one pattern for all, else
// n_batch (UserError otherwise).
int64_t range_sets(const Launch& L, int64_t n_batch);

std::vector<RowBlock> plan_ranges(const Program& p, const Launch& L, int64_t set, int64_t n_outer, int64_t n_inner,
                                  std::vector<int64_t>& intervals);

}  // namespace keops
