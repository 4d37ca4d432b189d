"""SEQ102 python-loop-over-array: per-row arithmetic in a Python loop that NumPy would vectorise."""

from __future__ import annotations

import libcst as cst

from seqlint.analysis import effects
from seqlint.analysis.dataflow import FILE, MEMORY
from seqlint.analysis.hotpath import Phase, walk
from seqlint.analysis.tables import elementwise_numpy
from seqlint.findings import Applicability, Edit
from seqlint.fixes import make_fix
from seqlint.rules.base import Invalid, Rule

_ARITH = (
    cst.Add, cst.Subtract, cst.Multiply, cst.Divide, cst.FloorDivide, cst.Modulo, cst.Power,
)
_ARITH_AUG = (
    cst.AddAssign, cst.SubtractAssign, cst.MultiplyAssign, cst.DivideAssign, cst.FloorDivideAssign,
    cst.ModuloAssign, cst.PowerAssign,
)
_AUG_TO_OP = {
    cst.AddAssign: "+", cst.SubtractAssign: "-", cst.MultiplyAssign: "*", cst.DivideAssign: "/",
    cst.FloorDivideAssign: "//", cst.ModuloAssign: "%", cst.PowerAssign: "**",
}
# Builtins a numeric loop body may call without doing anything NumPy could not do on the whole array.
_NUMERIC_BUILTINS = {"abs", "min", "max", "float", "int", "round", "len", "range", "enumerate", "zip", "pow"}
_LIST_METHODS = {"append", "extend"}


class PythonLoopOverArray(Rule):
    code = "SEQ102"
    name = "python-loop-over-array"
    summary = "Python loop over the rows of an array doing arithmetic NumPy can vectorise"
    fix_availability = "sometimes"
    docs = """
## What it does
Flags, in per-batch code (`__getitem__` and what it calls), a `for`/`while` loop or a list
comprehension that walks the rows or elements of an array (`for i in range(len(batch))`,
`for row in batch`, `[r * 2 for r in batch]`) and only does arithmetic on them: operators,
comparisons, NumPy ufuncs and numeric builtins. The loop must walk data (rows of the dataset or of
what was read), not settings or shapes; nested loops are reported once, at the outermost. Loops that
read files per sample are SEQ201's; loops calling other functions (a resize, an augmentation) are not
flagged here.

## Why is this bad?
Each Python iteration costs around a microsecond of interpreter overhead before any arithmetic is
done, and the arithmetic itself runs on one row at a time, without SIMD. The same expression applied
to the whole array runs in compiled code, commonly 10-100x faster, on every batch.

## Example
```python
batch = np.array(self.x[lo:hi])
for i in range(len(batch)):
    batch[i] = batch[i] * 2
```

## Use instead
```python
batch = np.array(self.x[lo:hi])
batch[:] = batch * 2
```

## Fix safety
The fix handles the loop `for i in range(len(a))` (or `range(a.shape[0])`, `enumerate(a)`) whose body
is the single statement `a[i] = <expression of a[i]>` or `a[i] <op>= <expression>`, where the
expression uses operators, comparisons and element-wise NumPy functions, no other `[i]` and no other
use of `a`. It becomes `a[:] = <expression of a>`, which writes the same values into the same array
(with the same casting to `a`'s dtype).
It is **safe** when `a` is assigned from a NumPy call in the same function, so it is an ndarray; otherwise
**unsafe**: for a Python list `a * 2` repeats the list instead of doubling its items.
"""

    valid = [
        # Already vectorised.
        """
import numpy as np
import keras

class Gen(keras.utils.PyDataset):
    def __getitem__(self, idx):
        batch = np.array(self.x[idx])
        return batch * 2
""",
        # Loop reading files per sample: SEQ201's business, not this rule's.
        """
import cv2
import numpy as np
from keras.utils import Sequence

class Gen(Sequence):
    def __getitem__(self, idx):
        out = np.zeros((len(self.files), 32, 32, 3))
        for i, path in enumerate(self.files):
            out[i] = cv2.imread(path) / 255.0
        return out
""",
        # Loop calling a non-numpy function (augmentation/resize) and building paths from strings.
        """
import numpy as np
from tensorflow.keras.utils import Sequence

class Gen(Sequence):
    def __getitem__(self, idx):
        names = ["img/" + n for n in self.names[idx]]
        rows = [self.augment(r) for r in self.x[idx]]
        return np.stack(rows), names
""",
        # Loop in __init__ runs once; not per batch.
        """
import numpy as np
from keras.utils import PyDataset

class Gen(PyDataset):
    def __init__(self, x, **kwargs):
        super().__init__(**kwargs)
        for i in range(len(x)):
            x[i] = x[i] * 2
        self.x = x

    def __getitem__(self, idx):
        return self.x[idx]
""",
        # A non-Keras class with a __getitem__ loop.
        """
class Matrix:
    def __getitem__(self, idx):
        row = self.rows[idx]
        for j in range(len(row)):
            row[j] = row[j] * 2
        return row
""",
    ]

    invalid = [
        Invalid(
            """import numpy as np
import keras


class Gen(keras.utils.PyDataset):
    def __getitem__(self, idx):
        batch = np.array(self.x[idx * 32:(idx + 1) * 32])
        for i in range(len(batch)):  # double every row
            batch[i] = batch[i] * 2
        return batch
""",
            expected=[(8, 9)],
            fixed="""import numpy as np
import keras


class Gen(keras.utils.PyDataset):
    def __getitem__(self, idx):
        batch = np.array(self.x[idx * 32:(idx + 1) * 32])
        batch[:] = batch * 2  # double every row
        return batch
""",
            runs="""
import numpy as np
gen = Gen.__new__(Gen)
gen.x = np.arange(140, dtype=np.int16).reshape(70, 2)
result = [gen[i] for i in range(3)]
""",
        ),
        # Augmented assignment, shape-based range, provenance unknown (unsafe fix), ufunc call.
        Invalid(
            """import numpy as np
from tensorflow.keras.utils import Sequence as KSeq

class Gen(KSeq):
    def __getitem__(self, idx):
        x = self.x[idx]
        for i in range(x.shape[0]):
            x[i] -= np.sqrt(x[i]) + self.offset
        return x
""",
            expected=[7],
            fixed="""import numpy as np
from tensorflow.keras.utils import Sequence as KSeq

class Gen(KSeq):
    def __getitem__(self, idx):
        x = self.x[idx]
        x[:] = x - (np.sqrt(x) + self.offset)
        return x
""",
            runs="""
import numpy as np
gen = Gen.__new__(Gen)
gen.x = np.arange(24, dtype=np.float64).reshape(4, 3, 2)
gen.offset = 0.5
result = [gen[i] for i in range(4)] + [gen.x]
""",
        ),
        # In a helper called from __getitem__: a row loop with append, a while loop, a comprehension.
        Invalid(
            """import numpy as np
import tensorflow as tf

def scale_rows(rows, k):
    out = []
    for r in rows:
        out.append(r * k)
    return np.array(out)

class Gen(tf.keras.utils.Sequence):
    def _norm(self, b):
        i = 0
        while i < len(b):
            b[i] = b[i] / self.std
            i += 1
        return np.array([v - self.mean for v in b])

    def __getitem__(self, idx):
        return scale_rows(self._norm(self.x[idx]), 2)

    def __len__(self):
        return len(self.x)
""",
            expected=[6, 13, 16],
        ),
    ]

    def check(self, ctx):
        flow = ctx.dataflow
        for func, _seq, _path in ctx.functions_in_phase(Phase.BATCH):
            skip: set[int] = set()
            for node in walk(func.body):
                if id(node) in skip:
                    continue
                finding = None
                if isinstance(node, cst.For):
                    element = _loop_element(ctx, node)
                    if element and _over_data(flow, func, node, element) and _arithmetic_only(ctx, node.body, element) \
                            and not _exits(node.body):
                        finding = ctx.report(
                            self,
                            node,
                            f"Python loop over `{ctx.code(node.iter)}` does element-wise arithmetic; "
                            "apply it to the whole array",
                            fix=_fix(ctx, node, func),
                        )
                elif isinstance(node, cst.While):
                    index = _while_index(node)
                    if index and _over_data(flow, func, node, index) and _arithmetic_only(ctx, node.body, index) \
                            and not _exits(node.body):
                        finding = ctx.report(
                            self, node,
                            "Python `while` loop over array elements does element-wise arithmetic; "
                            "apply it to the whole array",
                        )
                elif isinstance(node, (cst.ListComp, cst.GeneratorExp)):
                    comp = node.for_in
                    if comp.inner_for_in is not None or comp.ifs:
                        continue
                    element = _loop_element(ctx, comp)
                    if element and _over_data(flow, func, comp, element) and _arithmetic_only(ctx, node.elt, element):
                        finding = ctx.report(
                            self, node,
                            f"comprehension over `{ctx.code(comp.iter)}` does element-wise arithmetic "
                            "row by row; apply it to the whole array",
                        )
                if finding is not None:
                    skip.update(id(n) for n in walk(node))  # nested loops belong to this finding
                    yield finding


def _over_data(flow, func, loop, element: set[str]) -> bool:
    """The loop walks data (the dataset or what was read), not a list of settings or shapes."""
    data = {MEMORY, FILE}
    iterable = getattr(loop, "iter", None)
    if iterable is not None and flow.taint(func, iterable) & data:
        return True
    body = loop.body if not isinstance(loop, cst.CompFor) else None
    for node in walk(body if body is not None else loop):
        if isinstance(node, cst.Subscript) and any(_uses(el, element) for el in node.slice) \
                and flow.taint(func, node.value) & data:
            return True
    return False


def _names(node) -> set[str]:
    return {n.value for n in walk(node) if isinstance(n, cst.Name)}


def _loop_element(ctx, loop) -> set[str] | None:
    """Names bound to a row/element (or its index) by the loop, or None when it is not a row loop."""
    target, iterable = loop.target, loop.iter
    if isinstance(iterable, cst.Call):
        qual = ctx.qualified_name(iterable.func)
        if qual == "range":
            return _names(target) if isinstance(target, cst.Name) else None
        if qual == "enumerate" and isinstance(target, cst.Tuple):
            return _names(target)
        if qual == "zip":
            return _names(target)
        return None  # os.listdir(...), glob(...), some function: not rows of an array
    if isinstance(iterable, (cst.Name, cst.Attribute, cst.Subscript)):
        return _names(target)
    return None


def _while_index(loop: cst.While) -> set[str] | None:
    test = loop.test
    if isinstance(test, cst.Comparison) and isinstance(test.left, cst.Name):
        return {test.left.value}
    return None


def _exits(body) -> bool:
    return any(isinstance(n, (cst.Return, cst.Break, cst.Yield, cst.Raise)) for n in walk(body))


def _uses(node, names: set[str]) -> bool:
    return any(isinstance(n, cst.Name) and n.value in names for n in walk(node))


def _arithmetic_only(ctx, body, element: set[str]) -> bool:
    """Arithmetic on the loop's elements and nothing NumPy could not do on the whole array."""
    arithmetic = False
    for node in walk(body):
        if isinstance(node, cst.Call):
            if not _allowed_call(ctx, node):
                return False
        elif isinstance(node, (cst.SimpleString, cst.FormattedString, cst.ConcatenatedString)):
            return False  # string building (paths, labels), not numbers
        elif isinstance(node, (cst.With, cst.Try, cst.FunctionDef, cst.Lambda)):
            return False
        elif isinstance(node, cst.BinaryOperation) and isinstance(node.operator, _ARITH):
            arithmetic = arithmetic or _uses(node, element)
        elif isinstance(node, cst.AugAssign) and isinstance(node.operator, _ARITH_AUG):
            arithmetic = arithmetic or (_uses(node.target, element) and isinstance(node.target, cst.Subscript)) \
                or _uses(node.value, element) and not isinstance(node.target, cst.Name)
    return arithmetic


def _allowed_call(ctx, call: cst.Call) -> bool:
    qual = ctx.qualified_name(call.func)
    if qual is not None and (effects.is_io_call(qual) or effects.is_random_call(qual)):
        return False
    if qual in _NUMERIC_BUILTINS or (qual is not None and effects.is_pure_numpy(qual)):
        return True
    if isinstance(call.func, cst.Attribute):
        method = call.func.attr.value
        receiver = ctx.code(call.func.value)
        if receiver == "self" or receiver.startswith("self."):
            return False
        return method in _LIST_METHODS or effects.is_pure_array_method(method)
    return False


def _covers_all_rows(ctx, loop: cst.For, array: str) -> str | None:
    """The index name when the loop visits every row of `array` in order."""
    iterable = loop.iter
    if not isinstance(iterable, cst.Call):
        return None
    qual = ctx.qualified_name(iterable.func)
    args = [a.value for a in iterable.args]
    if qual == "enumerate" and len(args) == 1 and ctx.code(args[0]) == array:
        target = loop.target
        if isinstance(target, cst.Tuple) and len(target.elements) == 2 and isinstance(target.elements[0].value, cst.Name):
            return target.elements[0].value.value
        return None
    if qual != "range" or not isinstance(loop.target, cst.Name):
        return None
    if len(args) == 2 and ctx.code(args[0]) == "0":
        args = args[1:]
    if len(args) != 1:
        return None
    bound = ctx.code(args[0]).replace(" ", "")
    if bound in (f"len({array})", f"{array}.shape[0]"):
        return loop.target.value
    return None


class _Unindex(cst.CSTTransformer):
    """a[i] -> a."""

    def __init__(self, ctx, array: str, index: str):
        self.ctx, self.array, self.index = ctx, array, index

    def leave_Subscript(self, original, updated):
        if (
            isinstance(original.value, cst.Name)
            and original.value.value == self.array
            and len(original.slice) == 1
            and isinstance(original.slice[0].slice, cst.Index)
            and isinstance(original.slice[0].slice.value, cst.Name)
            and original.slice[0].slice.value.value == self.index
        ):
            return cst.Name(self.array, lpar=updated.lpar, rpar=updated.rpar)
        return updated


def _fix(ctx, loop: cst.For, func):
    if loop.orelse is not None or not isinstance(loop.body, cst.IndentedBlock) or len(loop.body.body) != 1:
        return None
    line = loop.body.body[0]
    if not isinstance(line, cst.SimpleStatementLine) or len(line.body) != 1:
        return None
    stmt = line.body[0]
    if isinstance(stmt, cst.Assign) and len(stmt.targets) == 1:
        target, value, op = stmt.targets[0].target, stmt.value, None
    elif isinstance(stmt, cst.AugAssign) and type(stmt.operator) in _AUG_TO_OP:
        target, value, op = stmt.target, stmt.value, _AUG_TO_OP[type(stmt.operator)]
    else:
        return None
    if not (isinstance(target, cst.Subscript) and isinstance(target.value, cst.Name)):
        return None
    array = target.value.value
    index = _covers_all_rows(ctx, loop, array)
    if index is None or ctx.code(target).replace(" ", "") != f"{array}[{index}]":
        return None
    if not _elementwise(ctx, value):
        return None
    new_value = value.visit(_Unindex(ctx, array, index))
    if index in _names(new_value):
        return None  # another `[i]` or the index itself in the arithmetic
    whole_uses = sum(1 for n in walk(value) if isinstance(n, cst.Name) and n.value == array)
    indexed_uses = sum(
        1 for n in walk(value) if isinstance(n, cst.Subscript) and ctx.code(n).replace(" ", "") == f"{array}[{index}]"
    )
    if whole_uses != indexed_uses:
        return None  # `a` used whole (a.max()) while the loop changes it row by row
    text = cst.Module([]).code_for_node(new_value)
    if op is not None:
        if not isinstance(new_value, (cst.Name, cst.Attribute, cst.Integer, cst.Float, cst.Call, cst.Subscript)):
            text = f"({text})"
        text = f"{array} {op} {text}"
    applicability = Applicability.SAFE if _is_ndarray(ctx, func, array, loop) else Applicability.UNSAFE
    # The loop header's comment moves to the new line; everything after the statement stays as it was.
    header_comment = loop.body.header.comment
    suffix = f"  {header_comment.value}" if header_comment is not None else ""
    start, _ = ctx.position(loop)
    _, body_end = ctx.position(stmt)
    return make_fix(
        applicability,
        f"Vectorise: `{array}[:] = {text}`",
        [Edit(f"{array}[:] = {text}{suffix}", start, body_end)],
    )


def _elementwise(ctx, value) -> bool:
    for node in walk(value):
        if isinstance(node, cst.Call):
            qual = ctx.qualified_name(node.func)
            if qual not in elementwise_numpy():
                return False
        elif isinstance(node, (cst.Lambda, cst.ListComp, cst.GeneratorExp, cst.DictComp, cst.SetComp)):
            return False
    return True


def _is_ndarray(ctx, func, array: str, loop) -> bool:
    """True when the last assignment of `array` before the loop is a NumPy call."""
    loop_row = ctx.position(loop)[0].row
    value = None
    for node in walk(func.body):
        if isinstance(node, cst.Assign) and len(node.targets) == 1:
            t = node.targets[0].target
            if isinstance(t, cst.Name) and t.value == array and ctx.position(node)[0].row < loop_row:
                value = node.value
    if not isinstance(value, cst.Call):
        return False
    qual = ctx.qualified_name(value.func) or ""
    return qual.startswith("numpy.") and qual not in {"numpy.ndarray.tolist"}
