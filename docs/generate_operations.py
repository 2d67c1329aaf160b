"""Writes docs/operations.md from the engine's operation table (pykeops._engine.operations()).

    python docs/generate_operations.py           # (re)write docs/operations.md
    python docs/generate_operations.py --check   # exit 1 if docs/operations.md differs from what would be written

Signatures come from the table's signature codes (F formula, I int, L list of ints, ? = the rest is optional) and
argument names from the operation's doc string when it spells them (e.g. "Pow(f, m)"), else from ARG_NAMES or
defaults. The output dimension of each operation is the rule in words of its table entry (out_dim). The accuracy
table of the vectorised math functions is copied from the header comment of jit/cpu/vec_math.cpp and the
bounds checked by tests/cpp/test_vec_math.cpp, so that the page follows those files.
"""

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "operations.md"
VEC_MATH = ROOT / "jit" / "cpu" / "vec_math.cpp"
VEC_MATH_TEST = ROOT / "tests" / "cpp" / "test_vec_math.cpp"
VEC_MATH_ANCHOR = "accuracy-of-the-vectorised-math-functions"

# Argument names of the operations whose doc string does not spell them.
ARG_NAMES = {
    "IntCst": ("n",),
    "RatCst": ("p", "q"),
    "IntInv": ("n",),
    "Zero": ("d",),
    "DiffClampInt": ("f", "a", "b"),
    "ComplexSumT": ("f", "d"),
    "TraceOperator": ("f", "v", "w"),
    "SumLinOperator": ("f", "v", "wl", "wr"),
    "GradSoftDTW_SqDist": ("x", "y", "gamma"),
}
DEFAULT_NAMES = ("f", "g", "h")

_TYPES = {"F": "", "I": ": int", "L": ": list"}


def _kinds(signature):
    """[(kind, optional)] from a signature code such as 'FF?F'."""
    kinds, optional = [], False
    for c in signature:
        if c == "?":
            optional = True
        elif c in _TYPES:
            kinds.append((c, optional))
        else:
            raise ValueError(f"unknown signature code {c!r} in {signature!r}")
    return kinds


def _arg_names(name, doc, count):
    match = re.search(rf"\b{re.escape(name)}\(([^()]*)\)", doc)
    if match:
        names = [a.strip(" []") for a in match.group(1).replace("[", ",").split(",")]
        names = [a for a in names if a]
        if len(names) == count and all(re.fullmatch(r"[A-Za-z_]\w*", a) for a in names):
            return names
    if name in ARG_NAMES:
        if len(ARG_NAMES[name]) != count:
            raise ValueError(f"ARG_NAMES[{name!r}] has {len(ARG_NAMES[name])} names, the signature {count}")
        return list(ARG_NAMES[name])
    return None


def signature(op):
    """Readable signature, e.g. 'Pow(f, m: int)' or 'Grad(f, v[, e])'."""
    kinds = _kinds(op["signature"])
    names = _arg_names(op["name"], op["doc"], len(kinds))
    if names is None:
        formulas = iter(DEFAULT_NAMES)
        ints = iter(("m", "n", "k"))
        names = [next(formulas) if k == "F" else next(ints) if k == "I" else "dims" for k, _ in kinds]
    text, opened = "", False
    for i, ((kind, optional), arg) in enumerate(zip(kinds, names)):
        if optional and not opened:
            text += "[" + (", " if i else "")
            opened = True
        elif i:
            text += ", "
        text += arg + _TYPES[kind]
    return f"{op['name']}({text}{']' if opened else ''})"


def _cell(text):
    return text.replace("|", "\\|").replace("\n", " ")


def _accuracy(acc):
    if acc == "see vec_math":
        return f"[see vec_math](#{VEC_MATH_ANCHOR})"
    return acc


def vec_math_comment():
    """Paragraphs of the header comment of jit/cpu/vec_math.cpp (each a list of lines, '// ' removed)."""
    paragraphs, current = [], []
    for line in VEC_MATH.read_text().splitlines():
        if not line.startswith("//"):
            break
        text = line[2:]
        text = text[1:] if text.startswith(" ") else text
        if text.strip():
            current.append(text)
        elif current:
            paragraphs.append(current)
            current = []
    if current:
        paragraphs.append(current)
    return paragraphs


def tested_bounds():
    """{function: {type: bound in ulp}} from the check_function<T>(Fn::f, bound) calls of the C++ test."""
    bounds = {}
    pattern = r"check_function<(float|double)>\(Fn::(\w+),\s*([0-9.eE+-]+)\)"
    for t, fn, bound in re.findall(pattern, VEC_MATH_TEST.read_text()):
        bounds.setdefault(fn, {})["f32" if t == "float" else "f64"] = bound
    return bounds


def vec_math_section():
    lines = ["## Accuracy of the vectorised math functions", ""]
    lines += [
        "The CPU backend computes Exp, Log, Sin, Cos, Atan, Atan2, Asin and Acos with its own vectorised code",
        "(`jit/cpu/vec_math.cpp`), whose header comment says:",
        "",
    ]
    paragraphs = vec_math_comment()
    for para in paragraphs:
        if not para[0].lower().startswith(("accuracy", "method", "sin/cos")):
            continue
        prose = [line for line in para if not line.startswith("  ")]
        table = [line[2:] for line in para if line.startswith("  ")]
        lines.append("> " + " ".join(line.strip() for line in prose))
        lines.append("")
        if table and any("RESULTS_TABLE" in line for line in table):
            lines += ["> *(the measured maxima are not recorded in `jit/cpu/vec_math.cpp` yet; the bounds below are",
                      "> those the C++ test enforces)*", ""]
        elif table:
            lines += ["```"] + table + ["```", ""]
    bounds = tested_bounds()
    if bounds:
        lines += [
            "Bounds enforced by `tests/cpp/test_vec_math.cpp` (maximum error in ulp over its sample of each function,",
            "vector widths and optimisation levels):",
            "",
            "| function | float32 | float64 |",
            "|---|---|---|",
        ]
        for fn, b in bounds.items():
            lines.append(f"| {fn} | {b.get('f32', '')} | {b.get('f64', '')} |")
        lines.append("")
    return lines


def render(operations=None):
    """The text of docs/operations.md."""
    if operations is None:
        from pykeops import _engine

        operations = _engine.operations()
    pending = [op["name"] for op in operations if not op["supported"]]
    lines = [
        "# Operations of the formula language",
        "",
        "<!-- Generated by docs/generate_operations.py from pykeops._engine.operations(): do not edit by hand. -->",
        "",
        f"The {len(operations)} operations that KeOps formulas (Genred strings, and the formulas LazyTensors build)",
        "may use, in the order of the engine's operation table. In signatures, `f`, `g`, ... are formulas,",
        "`: int` and `: list` arguments are integer constants and lists of them written in the formula",
        "(`Pow(x, 3)`, `TensorDot(a, b, [2,3], [3], [1], [0])`), and arguments in brackets are optional.",
        "Element-wise operations of several arguments broadcast arguments of dim 1. A complex vector of n entries",
        "is a real vector of dim 2n, real and imaginary parts interleaved.",
        "",
        "Python floats cannot appear in formulas: pass them as `Pm` parameters (LazyTensor does so), or use",
        "`IntCst`, `RatCst`, `IntInv`.",
        "",
    ]
    if pending:
        lines += [
            f"Operations marked *parse only* ({', '.join(pending)}) are accepted by the parser",
            "but compile only once symbolic differentiation is available.",
            "",
        ]
    lines += ["| operation | output dim | meaning | accuracy |", "|---|---|---|---|"]
    for op in operations:
        meaning = op["doc"] + ("" if op["supported"] else " *parse only*")
        lines.append(
            f"| `{_cell(signature(op))}` | {_cell(op['out_dim'])} | {_cell(meaning)} | "
            f"{_cell(_accuracy(op['accuracy']))} |"
        )
    lines += ["", "Accuracy: empty where the result is exact or a composition of correctly rounded IEEE operations.", ""]
    lines += REDUCTIONS_NAN
    lines += vec_math_section()
    return "\n".join(lines).rstrip("\n") + "\n"


# How the selecting reductions treat NaN (engine: jit/cpu/llvm_backend.cpp, jit/gpu/cuda_codegen.cpp).
REDUCTIONS_NAN = [
    "## NaN in Min, Max, ArgMin, ArgMax, Min_ArgMin, Max_ArgMax, KMin, ArgKMin, KMin_ArgKMin",
    "",
    "Values skip NaN, as in KeOps: a value that no number fills (a row of NaN, or fewer numbers than K) reads",
    "+inf (-inf for Max). Indices rank NaN after every number, ties going to the smaller index: a row of NaN",
    "gives its first index (0 without ranges), as `torch.argmin` and `numpy.argmin` do, and ArgKMin lists its",
    "NaN entries by index after its numbers, as a stable `torch.sort` does. The index is -1 only where the",
    "reduced set has no element to give (an empty range, or fewer elements than K).",
    "",
    "## Gradients of Min, Max and KMin at ties",
    "",
    "The gradient of a selected value flows to the one index the reduction selected: among equal values the",
    "smallest index, the one ArgMin and ArgKMin report (the rule of `torch.min(dim)`); the other equal candidates",
    "get none. The torch autograd and the engine's `Grad_WithSavedForward` / `Diff_WithSavedForward` follow it; the",
    "engine compares `RowIndex` with the saved indices, so it needs the saved output with its indices (the layout",
    "of Min_ArgMin, Max_ArgMax, KMin_ArgKMin; exact for indices below 2^24 in float32). Given the values alone,",
    "it cannot tell equal candidates apart, and every candidate equal to a selected value receives that slot's",
    "gradient.",
    "",
]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/operations.md is not up to date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(f"{OUTPUT.relative_to(ROOT)} is stale: run `python docs/generate_operations.py`", file=sys.stderr)
            return 1
        print(f"{OUTPUT.relative_to(ROOT)} is up to date")
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
