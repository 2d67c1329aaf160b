// Canonical printer: parse(print(f)) is the same interned node.
#pragma once
#include <string>

#include "node.h"
#include "reduction.h"

namespace keops {

std::string print(NodeRef f);
std::string print(const Reduction& r);

}  // namespace keops
