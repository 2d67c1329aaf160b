// Validation of launches and planning of block-sparse ranges, shared by the CPU and GPU backends.
#include "launch_plan.h"

#include <algorithm>
#include <string>
#include <utility>

#include "../core/errors.h"

namespace keops {

LaunchSizes check_launch(const Program& p, size_t n_outputs, const Launch& L) {
  const size_t nargs = p.args.size(), nb = L.batch.size();
  if (L.args.size() != nargs)
    throw UserError("expected " + std::to_string(nargs) + " arguments, got " + std::to_string(L.args.size()));
  if (L.outs.size() != n_outputs)
    throw UserError("expected " + std::to_string(n_outputs) + " output arrays, got " + std::to_string(L.outs.size()));
  if (L.nx < 0 || L.ny < 0) throw UserError("sizes must be non-negative");
  if (!L.arg_batch.empty() && L.arg_batch.size() != nargs) throw UserError("arg_batch needs one shape per argument");
  LaunchSizes s;
  for (int64_t bdim : L.batch) {
    if (bdim < 0) throw UserError("batch dimensions must be non-negative");
    s.n_batch *= bdim;
  }
  for (const auto& ab : L.arg_batch) {
    if (ab.size() != nb) throw UserError("every argument's batch shape must have " + std::to_string(nb) + " entries");
    for (size_t k = 0; k < nb; ++k)
      if (ab[k] != 1 && ab[k] != L.batch[k]) throw UserError("an argument's batch shape does not broadcast to the batch shape");
  }
  s.n_outer = p.tag == 0 ? L.nx : L.ny;
  s.n_inner = p.tag == 0 ? L.ny : L.nx;
  for (size_t pos = 0; pos < nargs; ++pos) {
    const int64_t rows = p.args[pos].cat == 2 ? 1 : p.args[pos].cat == p.tag ? s.n_outer : s.n_inner;
    if (rows > 0 && s.n_batch > 0 && L.args[pos] == 0) throw UserError("argument " + std::to_string(pos) + " is a null pointer");
  }
  if (s.n_outer == 0 || s.n_batch == 0) return s;
  for (uintptr_t o : L.outs)
    if (o == 0) throw UserError("an output is a null pointer");
  const bool k_red = p.reduction == ReductionKind::KMin || p.reduction == ReductionKind::ArgKMin ||
                     p.reduction == ReductionKind::KMinArgKMin;
  if (k_red && p.opt > s.n_inner)
    throw UserError(p.reduction_name + ": K = " + std::to_string(p.opt) + " is larger than the number of reduced elements (" +
                    std::to_string(s.n_inner) + ")");
  const bool arg_red = k_red || p.reduction == ReductionKind::ArgMin || p.reduction == ReductionKind::ArgMax ||
                       p.reduction == ReductionKind::MinArgMin || p.reduction == ReductionKind::MaxArgMax;
  if (arg_red && s.n_inner == 0 && L.ranges.empty())
    throw UserError(p.reduction_name + " over an empty set: there is no index to return");
  return s;
}

int64_t range_sets(const Launch& L, int64_t n_batch) {
  if (L.ranges.empty() || L.range_sets == 1) return 1;
  if (L.range_sets != n_batch)
    throw UserError("ranges: expected one block-sparse pattern, or one per batch (" + std::to_string(n_batch) + "), got " +
                    std::to_string(L.range_sets));
  return n_batch;
}

std::vector<RowBlock> plan_ranges(const Program& p, const Launch& L, int64_t set, int64_t n_outer, int64_t n_inner,
                                  std::vector<int64_t>& intervals) {
  if (L.ranges.size() != 6 || L.range_counts.size() != 4) throw UserError("ranges must be 6 arrays (KeOps block-sparse format)");
  const int side = p.tag == 0 ? 0 : 3;  // output indexed by i: ranges_i, slices_i, redranges_j
  const int64_t n_ranges = L.range_counts[side == 0 ? 0 : 2], n_red = L.range_counts[side == 0 ? 1 : 3];
  // Range set `set` of stacked per-batch patterns: arrays of (count, 2), (count,), (count, 2) each.
  const int64_t stride[3] = {2 * n_ranges, n_ranges, 2 * n_red};
  auto arr = [&](int k) { return reinterpret_cast<const int64_t*>(L.ranges[side + k]) + set * stride[k]; };
  const int64_t *ranges = arr(0), *slices = arr(1), *red = arr(2);
  if (n_ranges < 0 || n_red < 0 || ((n_ranges > 0 && (!ranges || !slices)) || (n_red > 0 && !red)))
    throw UserError("ranges: invalid array");
  const char* names[] = {"ranges_i", "slices_i", "redranges_j", "ranges_j", "slices_j", "redranges_i"};
  const std::string where = std::string(names[side]) + "/" + names[side + 1] + "/" + names[side + 2];
  for (int64_t r = 0; r < n_red; ++r)
    if (red[2 * r] < 0 || red[2 * r + 1] < red[2 * r] || red[2 * r + 1] > n_inner)
      throw UserError("ranges: " + std::string(names[side + 2]) + "[" + std::to_string(r) + "] = [" + std::to_string(red[2 * r]) +
                      ", " + std::to_string(red[2 * r + 1]) + ") is not a valid range of [0, " + std::to_string(n_inner) + ")");
  std::vector<RowBlock> blocks;
  std::vector<std::pair<int64_t, int64_t>> covered;
  int64_t prev = 0;
  for (int64_t k = 0; k < n_ranges; ++k) {
    const int64_t r0 = ranges[2 * k], r1 = ranges[2 * k + 1], s1 = slices[k];
    if (r0 < 0 || r1 < r0 || r1 > n_outer)
      throw UserError("ranges: " + std::string(names[side]) + "[" + std::to_string(k) + "] = [" + std::to_string(r0) + ", " +
                      std::to_string(r1) + ") is not a valid range of [0, " + std::to_string(n_outer) + ")");
    if (s1 < prev || s1 > n_red)
      throw UserError("ranges: " + std::string(names[side + 1]) + " must be non-decreasing and at most " + std::to_string(n_red) +
                      " (" + where + ")");
    blocks.push_back({r0, r1, prev, s1 - prev});
    covered.push_back({r0, r1});
    prev = s1;
  }
  // Rows in no range get the neutral value: blocks without intervals.
  std::sort(covered.begin(), covered.end());
  int64_t row = 0;
  for (auto [r0, r1] : covered) {
    if (r0 < row && r0 < r1) throw UserError("ranges: output ranges of " + std::string(names[side]) + " overlap");
    if (r0 > row) blocks.push_back({row, r0, 0, 0});
    row = std::max(row, r1);
  }
  if (row < n_outer) blocks.push_back({row, n_outer, 0, 0});
  intervals.assign(red, red + 2 * n_red);
  return blocks;
}

}  // namespace keops
