// Bindings for the formula layer: parse/print (canonical form) and the operation table, for tests and docs.
#include <pybind11/stl.h>

#include "../core/lower.h"
#include "../core/node.h"
#include "../core/op_table.h"
#include "../core/parser.h"
#include "../core/printer.h"
#include "../core/reduction.h"
#include "bindings.h"

namespace py = pybind11;

void define_formulas(py::module_& m) {
  m.def("parse", [](const std::string& formula, const std::vector<std::string>& aliases) {
        auto a = keops::parse_aliases(aliases);
        if (formula.find("_Reduction") != std::string::npos) return keops::print(keops::parse_reduction(formula, a));
        return keops::print(keops::parse_formula(formula, a));
      },
      py::arg("formula"), py::arg("aliases") = std::vector<std::string>{},
      "Canonical printed form of a formula or reduction (ValueError with the column on a syntax error).");
  m.def("formula_dim", [](const std::string& formula, const std::vector<std::string>& aliases) {
        return keops::parse_formula(formula, keops::parse_aliases(aliases))->dim();
      },
      py::arg("formula"), py::arg("aliases") = std::vector<std::string>{});
  m.def("reduction_signature", [](const std::string& reduction, const std::vector<std::string>& aliases) {
        const auto parsed = keops::parse_aliases(aliases);
        const auto red = keops::parse_reduction(reduction, parsed);
        py::dict d;
        std::vector<int> dims, cats;
        for (const keops::ArgInfo& a : keops::argument_table(red, parsed)) {
          dims.push_back(a.dim);
          cats.push_back(a.cat);
        }
        d["nargs"] = dims.size();
        d["arg_dims"] = dims;
        d["arg_cats"] = cats;
        d["dim_out"] = red.dim_out();
        d["tag"] = red.tag;
        return d;
      },
      py::arg("reduction"), py::arg("aliases") = std::vector<std::string>{},
      "Arguments (dims, categories), output columns and output category of a reduction, without generating code.");
  m.def("operations", [] {
    py::list out;
    for (const keops::OpInfo& op : keops::all_ops()) {
      py::dict d;
      d["name"] = std::string(op.name);
      d["signature"] = std::string(op.signature);
      d["doc"] = std::string(op.doc);
      // Operations without a lowering but with a rewrite (the autodiff ones) resolve at construction.
      d["supported"] = op.lower != nullptr || op.simplify != nullptr;
      d["accuracy"] = std::string(op.accuracy);
      out.append(d);
    }
    return out;
  }, "The operation table: name, signature, doc, whether code generation exists, accuracy.");
}
