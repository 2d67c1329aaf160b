// The C++ tests' reference reducer: every reduction of a lowered Program, in double, by sorting candidates.
// Independent of the engine's reduction rules (core/reduction*.cpp): sums and log-sum-exp are computed directly,
// selections by one stable order (NaN after every number, ties to the smaller index), so it catches their bugs.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "core/program.h"
#include "program_eval.h"

namespace keops::test {

struct Ranges {  // KeOps block-sparse description, host arrays
  std::vector<int64_t> ranges_i, slices_i, red_j, ranges_j, slices_j, red_i;
};

// Reference output rows of every reduction in double from eval_pair: NaN skipped by Min/Max/Arg*/KMin values, ranked
// after every number by indices (a slot no number fills reads +-inf at the first unlisted NaN), ties to the smallest
// index, -1 without a candidate, [m, s...] for log-sum-exp. values/indices laid out as the kernel's outputs.
struct RefOut {
  std::vector<double> values;
  std::vector<int64_t> indices;
  std::vector<std::vector<std::pair<double, int64_t>>> sorted;  // per (row, component): candidates, best first
};

inline RefOut reference(const Program& p, const std::vector<std::vector<double>>& args, int64_t nx, int64_t ny,
                        const std::vector<int64_t>& batch = {}, const std::vector<std::vector<int64_t>>& arg_batch = {},
                        const Ranges* ranges = nullptr, int64_t range_sets = 1) {
  const int64_t n_out = p.tag == 0 ? nx : ny, n_red = p.tag == 0 ? ny : nx;
  const int d = p.dim_formula, K = p.opt;
  const bool is_max = p.reduction == ReductionKind::Max || p.reduction == ReductionKind::ArgMax ||
                      p.reduction == ReductionKind::MaxArgMax;
  int64_t n_batch = 1;
  for (int64_t b : batch) n_batch *= b;
  RefOut r;
  std::vector<int64_t> index(batch.size(), 0);
  for (int64_t bi = 0; bi < n_batch; ++bi) {
    std::vector<std::vector<double>> slice(p.args.size());
    for (size_t pos = 0; pos < p.args.size(); ++pos) {
      const ArgInfo& a = p.args[pos];
      const int64_t rows = a.cat == 2 ? 1 : a.cat == 0 ? nx : ny, size = rows * a.dim;
      int64_t offset = 0, stride = size;
      for (int64_t k = static_cast<int64_t>(batch.size()) - 1; k >= 0; --k) {
        const int64_t own = arg_batch.empty() ? batch[k] : arg_batch[pos][k];
        if (own != 1) offset += index[k] * stride;
        stride *= own;
      }
      slice[pos].assign(args[pos].begin() + offset, args[pos].begin() + offset + size);
    }
    for (int64_t o = 0; o < n_out; ++o) {
      std::vector<std::pair<int64_t, int64_t>> ivs = {{0, n_red}};
      if (ranges) {
        const auto& rg_all = p.tag == 0 ? ranges->ranges_i : ranges->ranges_j;
        const auto& sl_all = p.tag == 0 ? ranges->slices_i : ranges->slices_j;
        const auto& rd_all = p.tag == 0 ? ranges->red_j : ranges->red_i;
        // per-batch patterns are stacked: this batch's set
        const int64_t set = range_sets == 1 ? 0 : bi, nr = sl_all.size() / range_sets, nred = rd_all.size() / 2 / range_sets;
        const int64_t* rg = rg_all.data() + set * 2 * nr;
        const int64_t* sl = sl_all.data() + set * nr;
        const int64_t* rd = rd_all.data() + set * 2 * nred;
        ivs.clear();
        for (int64_t k = 0; k < nr; ++k)
          if (rg[2 * k] <= o && o < rg[2 * k + 1])
            for (int64_t q = k ? sl[k - 1] : 0; q < sl[k]; ++q) ivs.push_back({rd[2 * q], rd[2 * q + 1]});
      }
      std::vector<std::vector<std::pair<double, int64_t>>> cand(d), nans(d);
      std::vector<double> sum(p.out.size() + p.out2.size(), 0.0);
      double m = -INFINITY;
      std::vector<std::pair<double, std::vector<double>>> terms;
      for (auto [j0, j1] : ivs)
        for (int64_t s = j0; s < j1; ++s) {
          auto v = p.tag == 0 ? eval_pair(p, slice, o, s) : eval_pair(p, slice, s, o);
          for (size_t c = 0; c < sum.size(); ++c) sum[c] += v[c];
          for (int c = 0; c < d; ++c)
            if (std::isnan(v[c])) nans[c].push_back({is_max ? -INFINITY : INFINITY, s});
            else cand[c].push_back({v[c], s});
          if (p.reduction == ReductionKind::MaxSumShiftExpWeight) {
            terms.push_back({v[0], std::vector<double>(v.begin() + 1, v.end())});
            m = std::max(m, v[0]);
          }
        }
      for (int c = 0; c < d; ++c) {
        std::sort(cand[c].begin(), cand[c].end(), [&](auto& a, auto& b) {
          return a.first != b.first ? (is_max ? a.first > b.first : a.first < b.first) : a.second < b.second;
        });
        cand[c].insert(cand[c].end(), nans[c].begin(), nans[c].end());  // in index order, after every number
      }
      switch (p.reduction) {
        case ReductionKind::Sum:
          for (int c = 0; c < d; ++c) r.values.push_back(sum[c]);
          break;
        case ReductionKind::MaxSumShiftExpWeight: {
          const size_t dg = p.dim_out - 1;
          std::vector<double> s(dg, 0.0);
          for (auto& [f, g] : terms)
            for (size_t c = 0; c < dg; ++c) s[c] += std::exp(f - m) * (g.empty() ? 1.0 : g[c]);
          r.values.push_back(m);
          r.values.insert(r.values.end(), s.begin(), s.end());
          break;
        }
        case ReductionKind::KMin: case ReductionKind::ArgKMin: case ReductionKind::KMinArgKMin:
          for (int q = 0; q < K; ++q)
            for (int c = 0; c < d; ++c) {
              const bool has = q < static_cast<int>(cand[c].size());
              r.values.push_back(has ? cand[c][q].first : INFINITY);
              r.indices.push_back(has ? cand[c][q].second : -1);
            }
          for (auto& cs : cand) r.sorted.push_back(cs);
          break;
        case ReductionKind::Zero: for (int c = 0; c < d; ++c) r.values.push_back(0); break;
        default:
          for (int c = 0; c < d; ++c) {
            r.values.push_back(cand[c].empty() ? (is_max ? -INFINITY : INFINITY) : cand[c][0].first);
            r.indices.push_back(cand[c].empty() ? -1 : cand[c][0].second);
          }
          for (auto& cs : cand) r.sorted.push_back(cs);
      }
    }
    for (int64_t k = static_cast<int64_t>(batch.size()) - 1; k >= 0 && ++index[k] == batch[k]; --k) index[k] = 0;
  }
  return r;
}

}  // namespace keops::test
