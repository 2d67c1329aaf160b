// Test helper: a straightforward double-precision evaluation of a lowered Program, the reference for kernels.
#pragma once
#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "core/errors.h"
#include "core/lower.h"
#include "core/parser.h"
#include "core/program.h"

namespace keops::test {

// The lowered program of a reduction string over alias strings.
inline Program lowered(const std::string& red, const std::vector<std::string>& aliases) {
  auto a = parse_aliases(aliases);
  Reduction r = parse_reduction(red, a);
  return lower(r, argument_table(r, a));
}

// args[pos]: row-major data as the kernels take it (i: (nx, dim), j: (ny, dim), parameters (dim)).
inline std::vector<double> eval_pair(const Program& p, const std::vector<std::vector<double>>& args, int64_t i, int64_t j) {
  std::vector<double> v(p.code.size());
  std::vector<char> in_body(p.code.size(), 0);
  for (size_t id = 0; id < p.code.size(); ++id)
    if (p.code[id].op == Prim::LoopSum) std::fill(in_body.begin() + p.code[id].b, in_body.begin() + id, 1);
  std::function<void(size_t, int64_t)> one_ref;  // the loop case calls back into one
  auto one = [&](size_t id, int64_t k) {
    const Instr& in = p.code[id];
    double a = in.a >= 0 ? v[in.a] : 0, b = in.b >= 0 ? v[in.b] : 0, c = in.c >= 0 ? v[in.c] : 0;
    switch (in.op) {
      case Prim::Const: v[id] = in.imm; break;
      case Prim::Load: {
        int cat = p.args[in.pos].cat;
        int64_t row = cat == 2 ? 0 : cat == 0 ? i : j;
        v[id] = args[in.pos][row * p.args[in.pos].dim + in.comp + k * in.step];
        break;
      }
      case Prim::Add: v[id] = a + b; break;
      case Prim::Sub: v[id] = a - b; break;
      case Prim::Mul: v[id] = a * b; break;
      case Prim::Div: v[id] = a / b; break;
      case Prim::Neg: v[id] = -a; break;
      case Prim::Abs: v[id] = std::fabs(a); break;
      case Prim::Sqrt: v[id] = std::sqrt(a); break;
      case Prim::Exp: v[id] = std::exp(a); break;
      case Prim::Log: v[id] = std::log(a); break;
      case Prim::Sin: v[id] = std::sin(a); break;
      case Prim::Cos: v[id] = std::cos(a); break;
      case Prim::Atan: v[id] = std::atan(a); break;
      case Prim::Atan2: v[id] = std::atan2(a, b); break;
      case Prim::Asin: v[id] = std::asin(a); break;
      case Prim::Acos: v[id] = std::acos(a); break;
      case Prim::Floor: v[id] = std::floor(a); break;
      case Prim::Round: v[id] = std::round(a); break;
      case Prim::Min: v[id] = std::isnan(a) ? a : (a < b ? a : b); break;
      case Prim::Max: v[id] = std::isnan(a) ? a : (a > b ? a : b); break;
      case Prim::IfPos: v[id] = a >= 0 ? b : c; break;
      case Prim::Select: v[id] = a != 0 ? b : c; break;
      case Prim::Lt: v[id] = a < b; break;
      case Prim::Le: v[id] = a <= b; break;
      case Prim::Eq: v[id] = a == b; break;
      case Prim::Ne: v[id] = a != b; break;
      case Prim::Index: v[id] = static_cast<double>(in.comp == 0 ? i : j); break;
      case Prim::LoopSum: {  // the loop's body, iteration by iteration; the sum from c (or -0.0), left to right
        double s = in.c >= 0 ? c : -0.0;
        for (int64_t kk = 0; kk < static_cast<int64_t>(in.imm); ++kk) {
          for (int x = in.b; x < static_cast<int>(id); ++x) one_ref(x, kk);
          s += v[in.a];
        }
        v[id] = s;
        break;
      }
    }
  };
  one_ref = one;
  for (size_t id = 0; id < p.code.size(); ++id)
    if (!in_body[id]) one(id, 0);
  std::vector<double> out;  // the formula's components, then those of formula2 (if any)
  for (int o : p.out) out.push_back(v[o]);
  for (int o : p.out2) out.push_back(v[o]);
  return out;
}

// Sum reduction of the program over the reduced index, for every output row.
inline std::vector<double> eval_sum(const Program& p, const std::vector<std::vector<double>>& args, int64_t nx, int64_t ny) {
  int64_t n_out = p.tag == 0 ? nx : ny, n_red = p.tag == 0 ? ny : nx;
  size_t d = p.out.size();
  std::vector<double> out(n_out * d, 0.0);
  for (int64_t r = 0; r < n_out; ++r)
    for (int64_t s = 0; s < n_red; ++s) {
      auto v = p.tag == 0 ? eval_pair(p, args, r, s) : eval_pair(p, args, s, r);
      for (size_t k = 0; k < d; ++k) out[r * d + k] += v[k];
    }
  return out;
}

}  // namespace keops::test
