"""SEQ306 len-drops-last-batch: `__len__` rounds the number of batches down."""

from __future__ import annotations

import libcst as cst

from seqlint.analysis.hotpath import walk
from seqlint.findings import Applicability
from seqlint.fixes import ensure_import, make_fix, replace
from seqlint.rules.base import Invalid, Rule

_FLOORS = {"numpy.floor", "math.floor"}


class LenDropsLastBatch(Rule):
    code = "SEQ306"
    name = "len-drops-last-batch"
    summary = "`__len__` rounds down: the last partial batch is never yielded"
    fix_availability = "sometimes"
    docs = """
## What it does
Flags a Keras Sequence/PyDataset whose `__len__` computes the number of batches with floor division
(`len(x) // batch_size`, `int(len(x) / batch_size)`, `np.floor(...)`), directly, through a local
variable, or through an attribute set in `__init__`.

## Why is this bad?
Keras asks `__len__` how many batches an epoch has and never requests the others. With 1000 samples
and a batch size of 32, floor division gives 31 batches: the last 8 samples are silently skipped in
every epoch, and with `shuffle=False` they are never seen at all (nor evaluated or predicted).

A class that means to drop the remainder says so: when `__len__` reads an attribute or variable
whose name contains `drop` (`self.drop_remainder`, `drop_last`), the rule stays silent.

## Example
```python
class Batches(keras.utils.PyDataset):
    def __len__(self):
        return len(self.x) // self.batch_size
```

## Use instead
```python
import math

class Batches(keras.utils.PyDataset):
    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)
```
`__getitem__` must then cope with a shorter last batch (slicing does).

## Fix safety
The fix replaces the expression with `math.ceil(a / b)` and adds `import math`. It is **unsafe**: the
epoch gains a batch, and code that assumes full batches must cope with a shorter last one.

Arrays allocated per batch with the batch size (`np.empty((self.batch_size, *self.dim))`, `np.zeros`,
`np.ones`, `np.full`), as the well-known Stanford `DataGenerator` does, would leave rows of the new last
batch uninitialised: garbage labels that crash `to_categorical`, or silently train on garbage. The fix
sizes them by the batch's real row count instead (`len(list_IDs_temp)`, the sequence the loop filling
their rows runs over). When it cannot tell that count (no loop filling the rows, or a loop over
`range(self.batch_size)`, or a `reshape` to the batch size), no fix is offered and the finding says why.
"""

    valid = [
        # Rounds up already.
        """
import math
from keras.utils import PyDataset

class Gen(PyDataset):
    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)
""",
        # The class documents that it drops the remainder.
        """
import keras

class Gen(keras.utils.PyDataset):
    def __init__(self, x, batch_size, drop_remainder=False, **kwargs):
        super().__init__(**kwargs)
        self.x, self.batch_size, self.drop_remainder = x, batch_size, drop_remainder

    def __len__(self):
        if self.drop_remainder:
            return len(self.x) // self.batch_size
        return -(-len(self.x) // self.batch_size)
""",
        # Integer ceiling idioms.
        """
from tensorflow.keras.utils import Sequence

class Gen(Sequence):
    def __len__(self):
        return (len(self.x) + self.batch_size - 1) // self.batch_size
""",
        """
import numpy as np
from tensorflow import keras

class Gen(keras.utils.Sequence):
    def __len__(self):
        return int(np.ceil(len(self.x) / float(self.batch_size)))
""",
        # Not a Keras Sequence: collections.abc.Sequence and typing.Sequence are left alone.
        """
from collections.abc import Sequence

class Pages(Sequence):
    def __getitem__(self, i):
        return self.items[i]

    def __len__(self):
        return len(self.items) // self.page_size
""",
        """
import typing as t

class Pages(t.Sequence):
    def __getitem__(self, i):
        return self.items[i]

    def __len__(self):
        return len(self.items) // self.page_size
""",
    ]

    invalid = [
        Invalid(
            """import numpy as np
from keras.utils import Sequence


class Gen(Sequence):
    def __len__(self):
        return len(self.x) // self.batch_size  # batches
""",
            expected=[(7, 16)],
            fixed="""import numpy as np
from keras.utils import Sequence
import math


class Gen(Sequence):
    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)  # batches
""",
        ),
        # `import tensorflow as tf` then tf.keras.utils.Sequence; int(a / b); math already imported.
        Invalid(
            """import math
import tensorflow as tf

class Gen(tf.keras.utils.Sequence):
    def __len__(self):
        return int(len(self.files) / self.batch_size)
""",
            expected=[6],
            fixed="""import math
import tensorflow as tf

class Gen(tf.keras.utils.Sequence):
    def __len__(self):
        return math.ceil(len(self.files) / self.batch_size)
""",
        ),
        # np.floor wrapped in int(), through a local variable, in an indirect subclass.
        Invalid(
            '''"""Data."""
import numpy as np
from tensorflow.keras.utils import Sequence as S

class Base(S):
    pass

class Gen(Base):
    def __len__(self):
        n = int(np.floor(self.n / self.bs))
        return n
''',
            expected=[10],
            fixed='''"""Data."""
import numpy as np
from tensorflow.keras.utils import Sequence as S
import math

class Base(S):
    pass

class Gen(Base):
    def __len__(self):
        n = math.ceil(self.n / self.bs)
        return n
''',
        ),
        # Computed once in __init__, returned by __len__; notebook code without imports.
        Invalid(
            """class Gen(Sequence):
    def __init__(self, x, bs):
        self.x = x
        self.steps = len(x) // bs

    def __getitem__(self, i):
        return self.x[i]

    def __len__(self):
        return self.steps
""",
            expected=[4],
            fixed="""import math
class Gen(Sequence):
    def __init__(self, x, bs):
        self.x = x
        self.steps = math.ceil(len(x) / bs)

    def __getitem__(self, i):
        return self.x[i]

    def __len__(self):
        return self.steps
""",
        ),
    ]

    def check(self, ctx):
        for seq in ctx.sequences:
            length = seq.own_methods.get("__len__")
            if length is None or _mentions_drop(length):
                continue
            init = seq.methods.get("__init__")
            for node in walk(length.body):
                if isinstance(node, cst.Return) and node.value is not None:
                    found = _floored(ctx, _origin(node.value, length, init))
                    if found is None:
                        continue
                    expr, num, den = found
                    text = f"math.ceil({ctx.code(num)} / {ctx.code(den)})"
                    sizing = _full_batch_assumptions(ctx, seq, den)
                    message = (f"`{seq.name}.__len__` rounds `{ctx.code(num)} / {ctx.code(den)}` down: "
                               "the last partial batch is never yielded")
                    if sizing.blocker is not None:
                        # Rounding up would hand the new last batch to code that assumes a full one.
                        yield ctx.report(self, expr, message, hint=(
                            f"No automatic fix: {sizing.blocker}. Make the batch code handle a shorter "
                            f"last batch, then round up with `{text}`."))
                        continue
                    edits = [replace(ctx, expr, text), ensure_import(ctx, "math")]
                    edits += [replace(ctx, node, new) for node, new in sizing.resized]
                    what = "the epoch gains the last partial batch"
                    if sizing.resized:
                        what += "; arrays allocated with the batch size take the batch's real row count"
                    fix = make_fix(Applicability.UNSAFE, f"Round up: `{text}` ({what})", edits)
                    yield ctx.report(self, expr, message, fix=fix)


_ALLOCATORS = {"numpy.empty", "numpy.zeros", "numpy.ones", "numpy.full"}


class _Sizing:
    """What rounding up needs besides `math.ceil`: allocations to resize, or why it cannot be done."""

    def __init__(self) -> None:
        self.resized: list[tuple[cst.CSTNode, str]] = []  # (batch-size node in a shape, row count code)
        self.blocker: str | None = None


def _full_batch_assumptions(ctx, seq, den: cst.BaseExpression) -> _Sizing:
    """Find per-batch code that assumes every batch holds `den` rows (`self.batch_size`)."""
    sizing = _Sizing()
    size = _bare_code(ctx, den)
    if not size.startswith("self."):
        return sizing  # a local or a literal: its uses in other methods are not this value
    for func in ctx.batch_functions(seq):
        sizes = _names_for(ctx, func, size)
        for node in walk(func.body):
            if isinstance(node, cst.Call):
                qual = ctx.qualified_name(node)
                if qual in _ALLOCATORS:
                    first = _first_dimension(node)
                    if first is None or _bare_code(ctx, first) not in sizes:
                        continue
                    target = _assigned_name(ctx, node)
                    count = _row_count(ctx, func, target, node) if target else None
                    if count is None:
                        sizing.blocker = (f"`{ctx.code(node.func)}(...)` allocates `{size}` rows per batch "
                                          "and seqlint cannot tell how many the last batch fills")
                        return sizing
                    sizing.resized.append((first, count))
                elif isinstance(node.func, cst.Attribute) and node.func.attr.value == "reshape" and any(
                        _bare_code(ctx, arg.value) in sizes for arg in node.args):
                    sizing.blocker = f"`{ctx.code(node)}` reshapes to `{size}` rows"
                    return sizing
            elif isinstance(node, cst.For) and any(_is_range_of(ctx, node.iter, s) for s in sizes):
                sizing.blocker = f"a loop over `{ctx.code(node.iter)}` expects full batches"
                return sizing
    return sizing


def _names_for(ctx, func: cst.FunctionDef, size: str) -> set[str]:
    """`size` and the local names the function gives it (`bs = self.cfg["batch_size"]`, assigned once)."""
    assigned: dict[str, list] = {}
    for node in walk(func.body):
        if isinstance(node, cst.Assign):
            for target in node.targets:
                if isinstance(target.target, cst.Name):
                    assigned.setdefault(target.target.value, []).append(node.value)
        elif isinstance(node, (cst.AugAssign, cst.AnnAssign, cst.For)) and isinstance(node.target, cst.Name):
            assigned.setdefault(node.target.value, []).append(None)
    return {size} | {name for name, values in assigned.items()
                     if len(values) == 1 and values[0] is not None and _bare_code(ctx, values[0]) == size}


def _first_dimension(call: cst.Call) -> cst.BaseExpression | None:
    """The first dimension of `np.empty(shape, ...)` / `np.empty(shape=...)`."""
    shape = None
    for arg in call.args:
        if arg.keyword is None and not arg.star:
            shape = arg.value
            break
        if arg.keyword is not None and arg.keyword.value == "shape":
            shape = arg.value
            break
    # `(self.batch_size,) + self.img_size + (3,)`: the shape's first part is the leftmost tuple's
    while isinstance(shape, cst.BinaryOperation) and isinstance(shape.operator, cst.Add):
        shape = shape.left
    if isinstance(shape, (cst.Tuple, cst.List)):
        if not shape.elements or isinstance(shape.elements[0], cst.StarredElement):
            return None
        return shape.elements[0].value
    return shape


def _assigned_name(ctx, call: cst.Call) -> str | None:
    statement = ctx.parent(call)
    if isinstance(statement, cst.Assign) and len(statement.targets) == 1 and isinstance(statement.targets[0].target, cst.Name):
        return statement.targets[0].target.value
    return None


def _is_range_of(ctx, expr: cst.BaseExpression, size: str) -> bool:
    return (isinstance(expr, cst.Call) and ctx.qualified_name(expr) == "range"
            and any(_bare_code(ctx, arg.value) == size for arg in expr.args))


def _bare_code(ctx, expr: cst.BaseExpression) -> str:
    """The expression's code without the parentheses around it: `(self.batch_size)` is `self.batch_size`."""
    if getattr(expr, "lpar", None):
        expr = expr.with_changes(lpar=[], rpar=[])
    return ctx.code(expr)


def _row_count(ctx, func: cst.FunctionDef, array: str, allocation: cst.Call) -> str | None:
    """Code for how many rows the batch really fills: `len(S)` when a loop over `enumerate(S)` or
    `range(len(S))` writes `array[i]` (or `array[i, ...]`), S known before the allocation."""
    allocated_at = ctx.position(allocation)[0].row
    for node in walk(func.body):
        if not isinstance(node, cst.For):
            continue
        index, source = _loop_index(ctx, node)
        if index is None or not _writes_rows(node, array, index):
            continue
        if isinstance(source, cst.Name) and not _bound_before(ctx, func, source.value, allocated_at):
            return None
        return f"len({ctx.code(source)})"
    return None


def _loop_index(ctx, loop: cst.For) -> tuple[str | None, cst.BaseExpression | None]:
    """(index variable, sequence it counts) for `for i, v in enumerate(S)` and `for i in range(len(S))`."""
    iterable = loop.iter
    if not isinstance(iterable, cst.Call) or not iterable.args:
        return None, None
    qual = ctx.qualified_name(iterable)
    first = iterable.args[0].value
    if qual == "enumerate" and isinstance(loop.target, cst.Tuple) and loop.target.elements:
        index = loop.target.elements[0].value
        if isinstance(index, cst.Name) and len(iterable.args) == 1:
            return index.value, first
    if (qual == "range" and len(iterable.args) == 1 and isinstance(loop.target, cst.Name)
            and isinstance(first, cst.Call) and ctx.qualified_name(first) == "len" and len(first.args) == 1):
        return loop.target.value, first.args[0].value
    return None, None


def _writes_rows(loop: cst.For, array: str, index: str) -> bool:
    for node in walk(loop.body):
        targets = node.targets if isinstance(node, cst.Assign) else ()
        for target in targets:
            sub = target.target
            if (isinstance(sub, cst.Subscript) and isinstance(sub.value, cst.Name) and sub.value.value == array
                    and sub.slice and isinstance(sub.slice[0].slice, cst.Index)
                    and isinstance(sub.slice[0].slice.value, cst.Name) and sub.slice[0].slice.value.value == index):
                return True
    return False


def _bound_before(ctx, func: cst.FunctionDef, name: str, row: int) -> bool:
    params = func.params
    if any(p.name.value == name for p in (*params.posonly_params, *params.params, *params.kwonly_params)):
        return True
    for node in walk(func.body):
        if isinstance(node, cst.Assign) and any(
                isinstance(t.target, cst.Name) and t.target.value == name for t in node.targets):
            if ctx.position(node)[0].row < row:
                return True
    return False


def _mentions_drop(func: cst.FunctionDef) -> bool:
    for node in walk(func.body):
        if isinstance(node, cst.Name) and "drop" in node.value.lower():
            return True
        if isinstance(node, cst.Attribute) and "drop" in node.attr.value.lower():
            return True
    return False


def _assigned_value(func: cst.FunctionDef | None, target) -> cst.BaseExpression | None:
    """The value of the single assignment to `target` (a Name, or `self.attr`) in the function."""
    if func is None:
        return None
    values = []
    for node in walk(func.body):
        if isinstance(node, cst.Assign) and len(node.targets) == 1:
            tgt = node.targets[0].target
            if target(tgt):
                values.append(node.value)
        elif isinstance(node, cst.AnnAssign) and node.value is not None and target(node.target):
            values.append(node.value)
    return values[0] if len(values) == 1 else None


def _origin(expr: cst.BaseExpression, length: cst.FunctionDef, init: cst.FunctionDef | None):
    """Follow `return n` to `n = ...` in __len__, and `return self.steps` to `self.steps = ...` in __init__."""
    if isinstance(expr, cst.Name):
        name = expr.value
        return _assigned_value(length, lambda t: isinstance(t, cst.Name) and t.value == name) or expr
    if isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name) and expr.value.value == "self":
        attr = expr.attr.value

        def is_attr(t) -> bool:
            return isinstance(t, cst.Attribute) and isinstance(t.value, cst.Name) and t.value.value == "self" and t.attr.value == attr

        return _assigned_value(init, is_attr) or expr
    return expr


def _floored(ctx, expr):
    """(expression to replace, numerator, denominator) when `expr` rounds a division down."""
    if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.FloorDivide):
        if _is_ceiling_idiom(expr.left):
            return None
        return expr, expr.left, expr.right
    if isinstance(expr, cst.Call) and len(expr.args) == 1 and expr.args[0].keyword is None:
        inner = expr.args[0].value
        qual = ctx.qualified_name(expr.func)
        if qual == "int":
            if isinstance(inner, cst.BinaryOperation) and isinstance(inner.operator, cst.Divide):
                return expr, inner.left, inner.right
            found = _floored(ctx, inner)
            return (expr, found[1], found[2]) if found else None
        if qual in _FLOORS and isinstance(inner, cst.BinaryOperation) and isinstance(inner.operator, cst.Divide):
            return expr, inner.left, inner.right
    return None


def _is_ceiling_idiom(numerator: cst.BaseExpression) -> bool:
    # (n + bs - 1) // bs rounds up on purpose.
    return isinstance(numerator, cst.BinaryOperation) and isinstance(numerator.operator, (cst.Add, cst.Subtract))
