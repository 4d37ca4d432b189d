"""SEQ103 growing-array-in-loop: an array grown with np.append/np.concatenate/... inside a loop."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import libcst as cst

from seqlint.analysis.hotpath import Phase, names_in, walk
from seqlint.findings import Applicability, Fix
from seqlint.fixes import insert_lines_after, insert_lines_before, make_fix, replace
from seqlint.noqa import parse_noqa
from seqlint.rules.base import Invalid, Rule

_GROWERS = {
    "numpy.append", "numpy.concatenate", "numpy.vstack", "numpy.hstack", "numpy.stack",
    "numpy.row_stack", "numpy.column_stack", "numpy.dstack",
}
# Growers for which k calls on two arrays equal one call on all k+1 pieces (np.stack is not one).
_COMPOSABLE = {"append", "concatenate", "vstack", "hstack"}
_PHASE_WORDS = {Phase.BATCH: "every batch", Phase.EPOCH: "every epoch", Phase.ONCE: "construction"}


class GrowingArrayInLoop(Rule):
    code = "SEQ103"
    name = "growing-array-in-loop"
    summary = "array grown inside a loop: every iteration copies everything so far"
    fix_availability = "sometimes"
    docs = """
## What it does
Flags `acc = np.append(acc, x)`, `acc = np.concatenate([acc, x])`, `np.vstack`, `np.hstack`,
`np.stack` (and `row_stack`, `column_stack`, `dstack`) assigning back to the array they grow, inside
a `for`/`while` loop, in the code of a Keras Sequence (`__getitem__`, `on_epoch_end`, `__init__` and
everything they call).

## Why is this bad?
A NumPy array cannot grow in place: each call allocates a new array and copies all the rows gathered
so far. Building n rows this way copies O(n²) rows instead of n; a batch of 256 samples copies the
first sample 256 times. In `__getitem__` this is paid on every batch.

## Example
```python
batch = np.empty((0, 64))
for i in indices:
    batch = np.append(batch, [self.x[i] * 2], axis=0)
```

## Use instead
```python
batch_parts = [np.empty((0, 64))]
for i in indices:
    batch_parts.append([self.x[i] * 2])
batch = np.concatenate(batch_parts, axis=0)
```
Better still, index once: `batch = self.x[indices] * 2`.

## Fix safety
For `np.append`, `np.concatenate`, `np.vstack` and `np.hstack` the fix collects the pieces in a list
(starting with the array's value before the loop) and joins them once after the loop. It is **safe**:
joining all pieces at once gives the same array (values, shape and dtype) as joining them one at a
time. It is offered only when the array is a local variable read nowhere else in the loop (nor by a
`return` inside it), so no iteration can observe the partial array. Arrays grown in the same loop are
rewritten by one fix, their joins after the loop in the order they are grown. `np.stack` adds an axis
per call and has no fix.
"""

    valid = [
        # Collected in a list, joined once.
        """
import numpy as np
import keras

class Gen(keras.utils.PyDataset):
    def __getitem__(self, idx):
        parts = []
        for i in self.index[idx]:
            parts.append(self.x[i])
        return np.stack(parts)
""",
        # Concatenation outside any loop.
        """
import numpy as np
from keras.utils import PyDataset

class Gen(PyDataset):
    def __getitem__(self, idx):
        a = self.x[idx]
        return np.concatenate([a, a[::-1]])
""",
        # Not a Keras Sequence: a plain class.
        """
import numpy as np

class Collector:
    def run(self, rows):
        out = np.empty((0, 3))
        for r in rows:
            out = np.vstack([out, r])
        return out
""",
        # Different target: not growing the same array.
        """
import numpy as np
from tensorflow.keras.utils import Sequence

class Gen(Sequence):
    def __getitem__(self, idx):
        out = []
        for i in range(4):
            pair = np.concatenate([self.a[i], self.b[i]])
            out.append(pair)
        return np.array(out)
""",
    ]

    invalid = [
        Invalid(
            """import numpy as np
import keras


class Gen(keras.utils.PyDataset):
    def __getitem__(self, idx):
        batch = np.empty((0, 3))
        for i in self.index[idx]:
            row = self.x[i] * 2  # scale
            batch = np.append(batch, [row], axis=0)
        return batch
""",
            expected=[(10, 21)],
            fixed="""import numpy as np
import keras


class Gen(keras.utils.PyDataset):
    def __getitem__(self, idx):
        batch = np.empty((0, 3))
        batch_parts = [batch]
        for i in self.index[idx]:
            row = self.x[i] * 2  # scale
            batch_parts.append([row])
        batch = np.concatenate(batch_parts, axis=0)
        return batch
""",
            runs="""
import numpy as np
gen = Gen.__new__(Gen)
gen.x = np.arange(15, dtype=np.int32).reshape(5, 3)
gen.index = [[0, 2, 4], [1, 3], []]
result = [gen[i] for i in range(3)]
""",
        ),
        # In a helper called from __getitem__, with vstack; the while loop reads `out` -> no fix.
        Invalid(
            """import numpy as np
import tensorflow as tf

class Gen(tf.keras.utils.Sequence):
    def _load(self, ids):
        out = np.zeros((0, 8))
        for i in ids:
            out = np.vstack((out, self.x[i]))
        acc = self.x[ids[0]]
        while len(acc) < 64:
            acc = np.concatenate([acc, self.x[ids[1]]])
        return out, acc

    def __getitem__(self, idx):
        return self._load(self.ids[idx])

    def __len__(self):
        return len(self.ids)
""",
            expected=[8, 11],
            fixed="""import numpy as np
import tensorflow as tf

class Gen(tf.keras.utils.Sequence):
    def _load(self, ids):
        out = np.zeros((0, 8))
        out_parts = [out]
        for i in ids:
            out_parts.append(self.x[i])
        out = np.vstack(out_parts)
        acc = self.x[ids[0]]
        while len(acc) < 64:
            acc = np.concatenate([acc, self.x[ids[1]]])
        return out, acc

    def __getitem__(self, idx):
        return self._load(self.ids[idx])

    def __len__(self):
        return len(self.ids)
""",
            runs="""
import numpy as np
gen = Gen.__new__(Gen)
gen.x = np.arange(80, dtype=np.float32).reshape(10, 8)
gen.ids = [[0, 1, 2], [3, 4], [5, 6]]
result = [gen[i] for i in range(3)]
""",
        ),
        # In __init__ through a module function, np.append without axis (flattens), aliased numpy.
        Invalid(
            """import numpy as onp
from keras.utils import PyDataset


def gather(files):
    labels = onp.array([])
    for f in files:
        labels = onp.append(labels, f.label)
    return labels


class Gen(PyDataset):
    def __init__(self, files, **kwargs):
        super().__init__(**kwargs)
        self.y = gather(files)
""",
            expected=[8],
            fixed="""import numpy as onp
from keras.utils import PyDataset


def gather(files):
    labels = onp.array([])
    labels_parts = [onp.ravel(labels)]
    for f in files:
        labels_parts.append(onp.ravel(f.label))
    labels = onp.concatenate(labels_parts)
    return labels


class Gen(PyDataset):
    def __init__(self, files, **kwargs):
        super().__init__(**kwargs)
        self.y = gather(files)
""",
            runs="""
from types import SimpleNamespace as F
result = [Gen([F(label=1), F(label=[2, 3]), F(label=4.5)]).y, gather([])]
""",
        ),
        # Two arrays grown in one loop: one fix, whose lines before and after the loop keep source order.
        Invalid(
            """import numpy as np
from keras.utils import PyDataset


class Pairs(PyDataset):
    def __getitem__(self, idx):
        feats = np.empty((0, 2), dtype=np.float32)
        labels = np.array([], dtype=np.int64)
        for i in self.index[idx]:
            feats = np.vstack([feats, self.x[i]])
            labels = np.append(labels, self.y[i])
        return feats, labels
""",
            expected=[(10, 21), (11, 22)],
            fixed="""import numpy as np
from keras.utils import PyDataset


class Pairs(PyDataset):
    def __getitem__(self, idx):
        feats = np.empty((0, 2), dtype=np.float32)
        labels = np.array([], dtype=np.int64)
        feats_parts = [feats]
        labels_parts = [np.ravel(labels)]
        for i in self.index[idx]:
            feats_parts.append(self.x[i])
            labels_parts.append(np.ravel(self.y[i]))
        feats = np.vstack(feats_parts)
        labels = np.concatenate(labels_parts)
        return feats, labels
""",
            runs="""
import numpy as np
gen = Pairs.__new__(Pairs)
gen.x = np.arange(10, dtype=np.float32).reshape(5, 2)
gen.y = np.array([3, 1, 4, 1, 5], dtype=np.int64)
gen.index = [[0, 2, 4], [1], []]
result = [gen[i] for i in range(3)]
""",
        ),
        # The loop's fix leaves an array whose line has `# noqa` as written.
        Invalid(
            """import numpy as np
from keras.utils import PyDataset


class Gen(PyDataset):
    def __getitem__(self, idx):
        kept = np.zeros(0)
        fixed = np.zeros(0)
        for i in self.index[idx]:
            kept = np.append(kept, i)  # noqa: SEQ103 - kept on purpose
            fixed = np.append(fixed, i)
        return kept, fixed
""",
            expected=[10, 11],
            fixed="""import numpy as np
from keras.utils import PyDataset


class Gen(PyDataset):
    def __getitem__(self, idx):
        kept = np.zeros(0)
        fixed = np.zeros(0)
        fixed_parts = [np.ravel(fixed)]
        for i in self.index[idx]:
            kept = np.append(kept, i)  # noqa: SEQ103 - kept on purpose
            fixed_parts.append(np.ravel(i))
        fixed = np.concatenate(fixed_parts)
        return kept, fixed
""",
        ),
        # np.stack grows a dimension every call: reported, no fix.
        Invalid(
            """import numpy as np
from keras.utils import PyDataset

class Gen(PyDataset):
    def on_epoch_end(self):
        for k in range(3):
            self.bank = np.stack([self.bank, self.x[k]])
""",
            expected=[7],
        ),
    ]

    def check(self, ctx):
        for phase in (Phase.BATCH, Phase.EPOCH, Phase.ONCE):
            for func, _seq, _path in ctx.functions_in_phase(phase):
                yield from _check_function(self, ctx, func, phase)


def _check_function(rule, ctx, func, phase):
    findings, growths = [], []
    reserved = names_in(func)
    for node in walk(func.body):
        if not (isinstance(node, cst.Assign) and len(node.targets) == 1 and isinstance(node.value, cst.Call)):
            continue
        call = node.value
        qual = ctx.qualified_name(call.func)
        if qual not in _GROWERS:
            continue
        target = ctx.code(node.targets[0].target)
        if not _grows(ctx, call, qual, target):
            continue
        loop = _innermost_loop(ctx, node, func)
        if loop is None:
            continue
        short = qual.rsplit(".", 1)[1]
        findings.append(ctx.report(
            rule,
            call,
            f"`np.{short}` grows `{target}` inside a loop on {_PHASE_WORDS[phase]}: "
            "each iteration copies everything gathered so far",
            hint="append the pieces to a list and join them once after the loop",
        ))
        growths.append(_plan(ctx, node, call, short, target, loop, func, reserved))
    yield from _with_fixes(ctx, findings, growths)


class _Growth(NamedTuple):
    """How one array grown in a loop becomes a list of pieces joined once after it."""

    loop: cst.BaseCompoundStatement
    assign: cst.Assign
    parts: str  # the list's name
    seed: str  # before the loop: `<parts> = [<array>]`
    append: str  # replaces the growing assignment
    join: str  # after the loop: `<array> = np.<join>(<parts>)`


def _with_fixes(ctx, findings, growths):
    """Attach one fix per loop, covering every fixable array grown in it.

    Arrays grown in one loop all need a line before it and a line after it. Separate fixes would
    insert those lines at the same two points, and whichever the runner applied second would land
    in front of the first; one fix lists them in source order. Every finding of the loop carries that
    same fix (identical edits are applied once). An array whose line has a `# noqa` is left as written.
    """
    by_loop: dict[int, list[tuple[int, _Growth]]] = {}
    directives = None
    for index, growth in enumerate(growths):
        if growth is None:
            continue
        if directives is None:
            directives = parse_noqa(ctx.source)
        if not directives.suppresses(findings[index]):
            by_loop.setdefault(id(growth.loop), []).append((index, growth))
    fixes: dict[int, Fix] = {}
    for members in by_loop.values():
        members.sort(key=lambda member: (findings[member[0]].location.row, findings[member[0]].location.column))
        fix = _fix(ctx, [growth for _, growth in members])
        fixes.update((index, fix) for index, _ in members)
    for index, finding in enumerate(findings):
        yield dataclasses.replace(finding, fix=fixes[index]) if index in fixes else finding


def _positional(call: cst.Call) -> list[cst.BaseExpression]:
    return [a.value for a in call.args if a.keyword is None and not a.star]


def _grows(ctx, call, qual, target) -> bool:
    args = _positional(call)
    if not args:
        return False
    if qual == "numpy.append":
        return ctx.code(args[0]) == target
    seq = args[0]
    return isinstance(seq, (cst.List, cst.Tuple)) and any(
        isinstance(el, cst.Element) and ctx.code(el.value) == target for el in seq.elements
    )


def _innermost_loop(ctx, node, func):
    for ancestor in ctx.ancestors(node):
        if ancestor is func or isinstance(ancestor, (cst.FunctionDef, cst.Lambda)):
            return None
        if isinstance(ancestor, (cst.For, cst.While)):
            return ancestor
    return None


def _plan(ctx, assign, call, short, target, loop, func, reserved: set[str]) -> _Growth | None:
    """The rewrite of one growing assignment, or None when the fix could change what the code does."""
    if short not in _COMPOSABLE or not isinstance(assign.targets[0].target, cst.Name):
        return None
    if not isinstance(call.func, cst.Attribute) or loop.orelse is not None:
        return None
    statement = ctx.parent(assign)
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return None
    if any(isinstance(n, (cst.Return, cst.Yield)) for n in walk(loop)):
        return None
    uses = sum(1 for n in walk(loop) if isinstance(n, cst.Name) and n.value == target)
    if uses != 2 or not _bound_before(ctx, func, target, loop):
        return None
    numpy = ctx.code(call.func.value)
    args = _positional(call)
    keywords = {a.keyword.value: a.value for a in call.args if a.keyword is not None}
    if short == "append":
        if len(args) not in (2, 3) or set(keywords) - {"axis"}:
            return None
        piece = args[1]
        axis = args[2] if len(args) == 3 else keywords.get("axis")
        final_fn = "concatenate"
    else:
        if len(args) != 1 or set(keywords) - ({"axis"} if short == "concatenate" else set()):
            return None
        elements = args[0].elements
        if len(elements) != 2 or ctx.code(elements[0].value) != target or isinstance(elements[1], cst.StarredElement):
            return None
        piece = elements[1].value
        axis = keywords.get("axis")
        final_fn = short
    parts = f"{target}_parts"
    while parts in reserved:
        parts += "_"
    reserved.add(parts)  # a second array in the function must not pick the same name
    flatten = short == "append" and axis is None
    first = f"{numpy}.ravel({target})" if flatten else target
    piece_text = f"{numpy}.ravel({ctx.code(piece)})" if flatten else ctx.code(piece)
    axis_text = f", axis={ctx.code(axis)}" if axis is not None and ctx.code(axis) != "None" else ""
    return _Growth(
        loop,
        assign,
        parts,
        seed=f"{parts} = [{first}]",
        append=f"{parts}.append({piece_text})",
        join=f"{target} = {numpy}.{final_fn}({parts}{axis_text})",
    )


def _fix(ctx, growths: list[_Growth]) -> Fix:
    loop = growths[0].loop
    names = ", ".join(f"`{g.parts}`" for g in growths)
    return make_fix(
        Applicability.SAFE,
        f"Collect the pieces in {names} and join them once after the loop",
        [
            insert_lines_before(ctx, loop, [g.seed for g in growths]),
            *(replace(ctx, g.assign, g.append) for g in growths),
            insert_lines_after(ctx, loop, [g.join for g in growths]),
        ],
    )


def _bound_before(ctx, func, target, loop) -> bool:
    if any(p.name.value == target for p in func.params.params + func.params.kwonly_params + func.params.posonly_params):
        return True
    loop_row = ctx.position(loop)[0].row
    for node in walk(func.body):
        if isinstance(node, cst.Assign) and any(
            isinstance(t.target, cst.Name) and t.target.value == target for t in node.targets
        ):
            if ctx.position(node)[0].row < loop_row:
                return True
    return False
