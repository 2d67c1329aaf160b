// Launch validation and block-sparse planning (jit/launch_plan), on hand-made launches: no kernel is compiled.
#include <cstdint>
#include <string>
#include <vector>

#include "catch.hpp"
#include "core/errors.h"
#include "jit/launch_plan.h"

using namespace keops;

namespace {

Program program(ReductionKind kind, const char* name, int tag = 0, int k = 0) {
  Program p;
  p.args = {{3, 0}, {3, 1}, {1, 2}};  // x_i, y_j, a parameter
  p.reduction = kind;
  p.reduction_name = name;
  p.tag = tag;
  p.opt = k;
  p.dim_formula = 1;
  p.dim_out = k > 0 ? k : 1;
  return p;
}

Launch launch(int64_t nx, int64_t ny) {
  static float data[64];
  const auto a = reinterpret_cast<uintptr_t>(data);
  Launch L;
  L.args = {a, a, a};
  L.nx = nx;
  L.ny = ny;
  L.outs = {a};
  return L;
}

// A Launch holding the six KeOps arrays (only the first three, the i side, matter for tag 0).
struct Ranges {
  std::vector<int64_t> ranges_i, slices_i, redranges_j, ranges_j{0, 1}, slices_j{0}, redranges_i{0, 1};
  void attach(Launch& L, int64_t sets = 1) const {
    L.ranges = {reinterpret_cast<uintptr_t>(ranges_i.data()), reinterpret_cast<uintptr_t>(slices_i.data()),
                reinterpret_cast<uintptr_t>(redranges_j.data()), reinterpret_cast<uintptr_t>(ranges_j.data()),
                reinterpret_cast<uintptr_t>(slices_j.data()), reinterpret_cast<uintptr_t>(redranges_i.data())};
    const int64_t per = sets;
    L.range_counts = {int64_t(ranges_i.size()) / 2 / per, int64_t(redranges_j.size()) / 2 / per, 1, 1};
    L.range_sets = sets;
  }
};

}  // namespace

TEST_CASE("check_launch: sizes by tag, and each malformed launch named") {
  const Program p = program(ReductionKind::Sum, "Sum_Reduction");
  LaunchSizes s = check_launch(p, 1, launch(5, 7));
  CHECK(s.n_batch == 1);
  CHECK(s.n_outer == 5);
  CHECK(s.n_inner == 7);
  s = check_launch(program(ReductionKind::Sum, "Sum_Reduction", 1), 1, launch(5, 7));
  CHECK(s.n_outer == 7);
  CHECK(s.n_inner == 5);

  Launch L = launch(5, 7);
  L.args.pop_back();
  CHECK_THROWS_WITH(check_launch(p, 1, L), "expected 3 arguments, got 2");
  CHECK_THROWS_WITH(check_launch(p, 2, launch(5, 7)), "expected 2 output arrays, got 1");
  CHECK_THROWS_WITH(check_launch(p, 1, launch(-1, 7)), "sizes must be non-negative");
  L = launch(5, 7);
  L.args[1] = 0;
  CHECK_THROWS_WITH(check_launch(p, 1, L), "argument 1 is a null pointer");
  L = launch(5, 0);
  L.args[1] = 0;  // no j rows: nothing is read from it
  CHECK_NOTHROW(check_launch(p, 1, L));
  L = launch(5, 7);
  L.outs = {0};
  CHECK_THROWS_WITH(check_launch(p, 1, L), "an output is a null pointer");
  L = launch(0, 7);
  L.outs = {0};  // nothing to write
  CHECK_NOTHROW(check_launch(p, 1, L));
}

TEST_CASE("check_launch: batch shapes broadcast, counted in n_batch") {
  const Program p = program(ReductionKind::Sum, "Sum_Reduction");
  Launch L = launch(2, 3);
  L.batch = {4, 5};
  L.arg_batch = {{4, 5}, {1, 5}, {1, 1}};
  CHECK(check_launch(p, 1, L).n_batch == 20);
  L.arg_batch = {{4, 5}, {2, 5}, {1, 1}};
  CHECK_THROWS_WITH(check_launch(p, 1, L), "an argument's batch shape does not broadcast to the batch shape");
  L.arg_batch = {{4, 5}, {5}, {1, 1}};
  CHECK_THROWS_WITH(check_launch(p, 1, L), "every argument's batch shape must have 2 entries");
  L.arg_batch = {{4, 5}};
  CHECK_THROWS_WITH(check_launch(p, 1, L), "arg_batch needs one shape per argument");
  L.arg_batch.clear();
  L.batch = {4, -1};
  CHECK_THROWS_WITH(check_launch(p, 1, L), "batch dimensions must be non-negative");
  L.batch = {4, 0};  // an empty batch: outputs need not exist
  L.outs = {0};
  CHECK(check_launch(p, 1, L).n_batch == 0);
}

TEST_CASE("check_launch: K above the reduced size, and arg reductions over nothing") {
  CHECK_THROWS_WITH(check_launch(program(ReductionKind::KMin, "KMin_Reduction", 0, 8), 1, launch(5, 7)),
                    "KMin_Reduction: K = 8 is larger than the number of reduced elements (7)");
  CHECK_NOTHROW(check_launch(program(ReductionKind::ArgKMin, "ArgKMin_Reduction", 0, 7), 1, launch(5, 7)));
  CHECK_THROWS_WITH(check_launch(program(ReductionKind::ArgMin, "ArgMin_Reduction"), 1, launch(5, 0)),
                    "ArgMin_Reduction over an empty set: there is no index to return");
  CHECK_NOTHROW(check_launch(program(ReductionKind::Min, "Min_Reduction"), 1, launch(5, 0)));  // +inf, no index
}

TEST_CASE("plan_ranges: rows and their intervals; rows in no range get a block without intervals") {
  const Program p = program(ReductionKind::Sum, "Sum_Reduction");
  // rows [0, 2) reduce over j in [0, 3) and [5, 6); rows [4, 6) over [2, 4); rows [2, 4) and [6, 8) in no range.
  Ranges r;
  r.ranges_i = {0, 2, 4, 6};
  r.slices_i = {2, 3};
  r.redranges_j = {0, 3, 5, 6, 2, 4};
  Launch L = launch(8, 6);
  r.attach(L);
  std::vector<int64_t> intervals;
  const std::vector<RowBlock> blocks = plan_ranges(p, L, 0, 8, 6, intervals);
  CHECK(intervals == std::vector<int64_t>{0, 3, 5, 6, 2, 4});
  REQUIRE(blocks.size() == 4);
  CHECK((blocks[0].r0 == 0 && blocks[0].r1 == 2 && blocks[0].first == 0 && blocks[0].count == 2));
  CHECK((blocks[1].r0 == 4 && blocks[1].r1 == 6 && blocks[1].first == 2 && blocks[1].count == 1));
  CHECK((blocks[2].r0 == 2 && blocks[2].r1 == 4 && blocks[2].count == 0));
  CHECK((blocks[3].r0 == 6 && blocks[3].r1 == 8 && blocks[3].count == 0));
}

TEST_CASE("plan_ranges: per-batch range sets are read at their own offsets") {
  const Program p = program(ReductionKind::Sum, "Sum_Reduction");
  Ranges r;  // two sets of one range each: set 0 reduces rows [0, 4) over [0, 1), set 1 over [1, 3)
  r.ranges_i = {0, 4, 0, 4};
  r.slices_i = {1, 1};
  r.redranges_j = {0, 1, 1, 3};
  Launch L = launch(4, 3);
  r.attach(L, 2);
  std::vector<int64_t> intervals;
  plan_ranges(p, L, 0, 4, 3, intervals);
  CHECK(intervals == std::vector<int64_t>{0, 1});
  plan_ranges(p, L, 1, 4, 3, intervals);
  CHECK(intervals == std::vector<int64_t>{1, 3});
}

TEST_CASE("plan_ranges: out-of-bounds, decreasing and overlapping ranges are UserErrors naming the array") {
  const Program p = program(ReductionKind::Sum, "Sum_Reduction");
  auto plan = [&](Ranges r) {
    Launch L = launch(8, 6);
    r.attach(L);
    std::vector<int64_t> intervals;
    plan_ranges(p, L, 0, 8, 6, intervals);
  };
  Ranges r;
  r.ranges_i = {0, 2};
  r.slices_i = {1};
  r.redranges_j = {0, 7};
  CHECK_THROWS_WITH(plan(r), "ranges: redranges_j[0] = [0, 7) is not a valid range of [0, 6)");
  r.redranges_j = {0, 3};
  r.ranges_i = {0, 9};
  CHECK_THROWS_WITH(plan(r), "ranges: ranges_i[0] = [0, 9) is not a valid range of [0, 8)");
  r.ranges_i = {0, 2, 2, 4};
  r.slices_i = {1, 0};
  r.redranges_j = {0, 3};
  CHECK_THROWS_WITH(plan(r), Catch::Contains("slices_i must be non-decreasing"));
  r.ranges_i = {0, 3, 2, 4};
  r.slices_i = {1, 1};
  CHECK_THROWS_WITH(plan(r), "ranges: output ranges of ranges_i overlap");
  CHECK_THROWS_AS(plan(r), UserError);
}
