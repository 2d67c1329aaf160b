// Parser for the KeOps formula language (Python-expression syntax over KeOps operations) and alias strings.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "node.h"
#include "reduction.h"

namespace keops {

// "x = Vi(3)", "x=Vi(0,3)", "Vj(1,2)", "p = Pm(2)", "v = Var(2,1,1)" (legacy Vx/Vy accepted as Vi/Vj).
// An alias without an explicit position takes its index in the list.
std::vector<Alias> parse_aliases(const std::vector<std::string>& texts);

// A formula over the aliases' names. UserError naming the column and what was expected.
NodeRef parse_formula(std::string_view text, const std::vector<Alias>& aliases = {});

// A reduction such as "Sum_Reduction(Exp(-SqDist(x,y))*b, 0)".
Reduction parse_reduction(std::string_view text, const std::vector<Alias>& aliases = {});

}  // namespace keops
