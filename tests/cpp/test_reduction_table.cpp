// The reduction table's rules: every reduction of all_reductions() has a rule set for each sum scheme it takes, and
// it renders on the CPU builder (LLVM IR) and on the GPU builder (CUDA text).
#include <string>

#include "catch.hpp"
#include "core/lower.h"
#include "core/parser.h"
#include "core/reduction_rules.h"
#include "jit/cpu/llvm_backend.h"
#include "jit/gpu/cuda_codegen.h"

using namespace keops;

namespace {

Program program_of(const ReductionInfo& r) {
  std::string text;
  if (r.kind == ReductionKind::Zero) text = std::string(r.name) + "(3,0)";
  else if (r.takes_k) text = std::string(r.name) + "(Var(0,2,0)-Var(1,2,1),3,0)";
  else if (r.kind == ReductionKind::MaxSumShiftExpWeight) text = std::string(r.name) + "(Var(0,1,0)*Var(1,1,1),0,Var(2,3,1)*Var(1,1,1))";
  else text = std::string(r.name) + "(Var(0,2,0)-Var(1,2,1),0)";
  Reduction red = parse_reduction(text);
  return lower(red, argument_table(red, {}));
}

}  // namespace

TEST_CASE("every reduction has rules that render on the CPU and the GPU builders") {
  for (const ReductionInfo& r : all_reductions()) {
    const unsigned schemes = r.schemes ? r.schemes : scheme_bit(SumScheme::Direct);
    for (SumScheme s : {SumScheme::Direct, SumScheme::Block, SumScheme::Kahan}) {
      if (!(schemes & scheme_bit(s))) continue;
      INFO(std::string(r.name) + " " + std::string(sum_scheme_name(s)));
      const ReductionRules& rules = reduction_rules(r.kind, s);
      CHECK((r.selects && r.kind != ReductionKind::Min && r.kind != ReductionKind::Max) ==
            rules.pairs());
      const Program p = program_of(r);
      KernelOptions ko;
      ko.scheme = s;
      CHECK(cpu::optimized_ir(p, ko).find("define") != std::string::npos);
      CHECK(cpu::state_slots(p, ko) == (int)state_slots(rules, p.reduction == ReductionKind::MaxSumShiftExpWeight ? 3 : p.dim_formula, p.opt).size());
      gpu::GpuOptions go;
      go.scheme = s;
      const gpu::CudaSource src = gpu::generate_cuda(p, go, "t");
      if (r.kind == ReductionKind::Zero) CHECK(src.body.empty());
      else CHECK(src.body.find("KP_DEV void update(const C* f, const C* g, kp_i64 j)") != std::string::npos);
    }
  }
}

TEST_CASE("Max_SumShiftExpWeight takes block_sum; Kahan stays Sum-only") {
  const ReductionInfo* lse = find_reduction("Max_SumShiftExpWeight_Reduction");
  REQUIRE(lse != nullptr);
  CHECK(parse_sum_scheme(*lse, "block_sum", "LogSumExp") == SumScheme::Block);
  CHECK(parse_sum_scheme(*lse, "auto", "LogSumExp") == SumScheme::Direct);
  CHECK_THROWS(parse_sum_scheme(*lse, "kahan_scheme", "LogSumExp"));
}
