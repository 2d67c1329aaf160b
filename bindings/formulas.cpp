// Bindings for the formula layer: parse/print (canonical form) and the operation table, for tests and docs.
#include <pybind11/stl.h>

#include "../core/errors.h"
#include "../core/lower.h"
#include "../core/node.h"
#include "../core/op_table.h"
#include "../core/parser.h"
#include "../core/printer.h"
#include "../core/reduction.h"
#include "bindings.h"

namespace py = pybind11;

namespace {

const keops::ReductionInfo& reduction_of(const std::string& reduction_op) {
  const keops::ReductionOp* op = keops::find_reduction_op(reduction_op);
  if (!op) throw keops::UserError("unknown reduction_op '" + reduction_op + "'");
  return *keops::find_reduction(op->engine);
}

// An accuracy option given to a reduction that does not sum; the message lists the reduction_ops that do.
keops::UserError not_sum_type(const std::string& option, const std::string& reduction_op) {
  std::string sums;
  for (const keops::ReductionOp& op : keops::reduction_ops())
    if (keops::find_reduction(op.engine)->accumulates) sums += (sums.empty() ? "" : ", ") + std::string(op.name);
  return keops::UserError(option + " only applies to sum-type reductions (" + sums + "), not to " + reduction_op);
}

int precision(const std::string& dtype) {  // -1: not a floating dtype
  return dtype == "float16" ? 0 : dtype == "float32" ? 1 : dtype == "float64" ? 2 : -1;
}

}  // namespace

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
  m.def("reductions", [] {
    static const char* grads[] = {"sum", "select", "index", "shift_exp", "zero"};
    py::list out;
    for (const keops::ReductionInfo& r : keops::all_reductions()) {
      py::dict d;
      d["name"] = std::string(r.name);
      d["signature"] = std::string(r.signature);
      d["doc"] = std::string(r.doc);
      py::list outputs;
      for (const keops::OutputLayout& o : r.outputs)
        outputs.append(py::make_tuple(o.indices ? "indices" : "values",
                                      o.cols == keops::Cols::D ? "d" : o.cols == keops::Cols::KD ? "k*d" : "1+g"));
      d["outputs"] = outputs;
      d["selects"] = r.selects;
      d["takes_k"] = r.takes_k;
      d["accumulates"] = r.accumulates;
      std::vector<std::string> schemes;
      for (keops::SumScheme s : {keops::SumScheme::Direct, keops::SumScheme::Block, keops::SumScheme::Kahan})
        if (r.schemes & keops::scheme_bit(s)) schemes.emplace_back(keops::sum_scheme_name(s));
      d["sum_schemes"] = schemes;
      d["grad"] = grads[static_cast<int>(r.grad)];
      out.append(d);
    }
    return out;
  }, "The engine's reduction table: name, signature, outputs (kind, columns), flags, sum schemes, gradient kind.");
  m.def("reduction_ops", [] {
    static const char* formula2[] = {"no", "optional", "required"};
    static const char* post[] = {"raw", "kshape", "logsumexp", "softmax"};
    py::list out;
    for (const keops::ReductionOp& r : keops::reduction_ops()) {
      py::dict d;
      d["name"] = std::string(r.name);
      d["engine"] = std::string(r.engine);
      d["formula2"] = formula2[static_cast<int>(r.formula2)];
      d["post"] = post[static_cast<int>(r.post)];
      d["with_indices"] = r.with_indices.empty() ? py::object(py::none()) : py::object(py::str(std::string(r.with_indices)));
      out.append(d);
    }
    return out;
  }, "Genred's reduction_op names: engine reduction, formula2 (no/optional/required), post-processing, indexed twin.");
  m.def("check_sum_scheme", [](const std::string& reduction_op, const std::string& sum_scheme) {
        const keops::ReductionInfo& r = reduction_of(reduction_op);
        for (keops::SumScheme s : {keops::SumScheme::Direct, keops::SumScheme::Block, keops::SumScheme::Kahan})
          if (!r.accumulates && sum_scheme == keops::sum_scheme_name(s))
            throw not_sum_type("sum_scheme='" + sum_scheme + "'", reduction_op);
        return std::string(keops::sum_scheme_name(keops::parse_sum_scheme(r, sum_scheme, reduction_op)));
      },
      py::arg("reduction_op"), py::arg("sum_scheme"),
      "The scheme sum_scheme selects for a reduction_op (ValueError naming it when it does not implement it).");
  m.def("check_dtype_acc", [](const std::string& reduction_op, const std::string& dtype_acc, const std::string& dtype,
                              const std::string& option) {
        const keops::ReductionInfo& r = reduction_of(reduction_op);
        if (dtype_acc == "auto") return dtype_acc;
        const int acc = precision(dtype_acc), data = dtype.empty() ? acc : precision(dtype);
        if (acc < 0) throw keops::UserError("unknown dtype_acc '" + dtype_acc + "' (expected auto, float16, float32 or float64)");
        if (!r.accumulates) throw not_sum_type(option, reduction_op);
        if (acc < data) throw keops::UserError(option + " is less precise than the " + dtype + " data: use 'auto' or a wider dtype");
        // The data's own dtype is what "auto" means, except for float16 data, which accumulate in float32 by default.
        return acc == data && dtype != "float16" ? std::string("auto") : dtype_acc;
      },
      py::arg("reduction_op"), py::arg("dtype_acc"), py::arg("dtype") = "", py::arg("option") = "dtype_acc",
      "The dtype_acc to request for data of this dtype ('' at construction: only the name and the reduction are "
      "checked); ValueError naming the user's option when it does not apply or is less precise than the data.");
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
      d["out_dim"] = std::string(op.out_dim);
      d["on_complex"] = op.on_complex;
      d["infix"] = std::string(op.infix);
      out.append(d);
    }
    return out;
  }, "The operation table: name, signature, doc, whether code generation exists, accuracy, output dim in words, "
     "whether it is meaningful on complex arguments, infix symbol.");
}
