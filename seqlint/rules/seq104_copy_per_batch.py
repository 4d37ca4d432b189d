"""SEQ104 copy-per-batch: the whole dataset is copied for every batch."""

from __future__ import annotations

import libcst as cst

from seqlint.analysis.hotpath import Phase, walk
from seqlint.findings import Applicability
from seqlint.fixes import make_fix, replace
from seqlint.rules.base import Invalid, Rule

# Functions whose first argument is copied whole.
_COPY_FUNCTIONS = {"numpy.copy", "numpy.array", "copy.deepcopy", "copy.copy"}


class CopyPerBatch(Rule):
    code = "SEQ104"
    name = "copy-per-batch"
    summary = "the whole dataset is copied on every batch"
    fix_availability = "sometimes"
    docs = """
## What it does
Flags per-batch code (`__getitem__` and what it calls) that copies a whole dataset attribute:
`np.copy(self.x)`, `self.x.copy()`, `np.array(self.x)`, `copy.deepcopy(self.data)`. An attribute
counts as a dataset when it is set in `__init__` and indexed in per-batch code (or its copy is). Copying the batch
slice (`self.x[lo:hi].copy()`) is fine and not flagged.

## Why is this bad?
The copy costs time and memory proportional to the whole dataset, once per batch: an epoch of
N/B batches copies the dataset N/B times. With a 2 GB array that is 2 GB of memory traffic per batch,
usually to protect a batch from in-place edits that a copy of the batch alone would prevent.

## Example
```python
def __getitem__(self, idx):
    x = np.copy(self.x)[idx * self.bs:(idx + 1) * self.bs]
    return x * 2, self.y[idx * self.bs:(idx + 1) * self.bs]
```

## Use instead
```python
def __getitem__(self, idx):
    x = np.copy(self.x[idx * self.bs:(idx + 1) * self.bs])
    return x * 2, self.y[idx * self.bs:(idx + 1) * self.bs]
```

## Fix safety
When the copy is indexed right away (`np.copy(self.x)[s]`, `self.x.copy()[s]`,
`copy.deepcopy(self.x)[s]`), the fix moves the index inside the copy. It is **safe**: the result is a
new object holding the same values either way, so the batches are identical. Other copies (a copy
stored in a variable and indexed later) are reported without a fix.
"""

    valid = [
        # Copying only the batch.
        """
import numpy as np
import keras

class Gen(keras.utils.PyDataset):
    def __init__(self, x, bs, **kwargs):
        super().__init__(**kwargs)
        self.x, self.bs = x, bs

    def __getitem__(self, idx):
        batch = self.x[idx * self.bs:(idx + 1) * self.bs].copy()
        return np.copy(self.x[idx * self.bs:(idx + 1) * self.bs]), batch
""",
        # Copying once in __init__ and per epoch is not per batch.
        """
import copy
import numpy as np
from keras.utils import Sequence

class Gen(Sequence):
    def __init__(self, x):
        self.x = np.copy(x)
        self.order = copy.deepcopy(list(range(len(x))))

    def on_epoch_end(self):
        self.shuffled = self.x.copy()

    def __getitem__(self, idx):
        return self.x[idx]

    def __len__(self):
        return len(self.x)
""",
        # Small attributes that are not indexed per batch (statistics) are not the dataset.
        """
import numpy as np
from tensorflow.keras.utils import Sequence

class Gen(Sequence):
    def __init__(self, x, mean):
        self.x = x
        self.mean = np.asarray(mean)

    def __getitem__(self, idx):
        m = self.mean.copy()
        return self.x[idx] - m
""",
        # A settings dict copied and read by constant keys is not the dataset.
        """
import copy
import tensorflow as tf

class Gen(tf.keras.utils.Sequence):
    def __init__(self, grid, config):
        self.grid, self.config = grid, config

    def __getitem__(self, idx):
        cfg = copy.copy(self.config)
        return self.grid[idx][:cfg["patch"]]
""",
        # Not a Keras Sequence.
        """
import numpy as np

class Table:
    def __init__(self, x):
        self.x = x

    def __getitem__(self, idx):
        return np.copy(self.x)[idx]
""",
    ]

    invalid = [
        Invalid(
            """import numpy as np
import keras


class Gen(keras.utils.PyDataset):
    def __init__(self, x, y, bs, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.bs = x, y, bs

    def __getitem__(self, idx):
        s = slice(idx * self.bs, (idx + 1) * self.bs)
        x = np.copy(self.x)[s]
        y = self.y.copy()[s]
        return x, y
""",
            expected=[(12, 13), (13, 13)],
            fixed="""import numpy as np
import keras


class Gen(keras.utils.PyDataset):
    def __init__(self, x, y, bs, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.bs = x, y, bs

    def __getitem__(self, idx):
        s = slice(idx * self.bs, (idx + 1) * self.bs)
        x = np.copy(self.x[s])
        y = self.y[s].copy()
        return x, y
""",
            runs="""
import numpy as np
gen = Gen(np.arange(20).reshape(10, 2), np.arange(10) % 3, 4)
result = [gen[i] for i in range(3)]
""",
        ),
        # In a helper called from __getitem__; deepcopy through an alias; copied then indexed later.
        Invalid(
            """from copy import deepcopy as dc
import tensorflow as tf

class Gen(tf.keras.utils.Sequence):
    def __init__(self, records):
        self.records = records

    def _take(self, idx):
        records = dc(self.records)
        return records[idx * 4:(idx + 1) * 4]

    def __getitem__(self, idx):
        return self._take(idx), self.records[idx]

    def __len__(self):
        return len(self.records)
""",
            expected=[9],
        ),
        # np.array copies too (an indirect subclass through a module-level base).
        Invalid(
            """import numpy
from keras.utils import PyDataset

class Base(PyDataset):
    pass

class Gen(Base):
    def __init__(self, x, **kwargs):
        super().__init__(**kwargs)
        self.x = x

    def __getitem__(self, i):
        return numpy.array(self.x)[i:i + 1]
""",
            expected=[13],
            fixed="""import numpy
from keras.utils import PyDataset

class Base(PyDataset):
    pass

class Gen(Base):
    def __init__(self, x, **kwargs):
        super().__init__(**kwargs)
        self.x = x

    def __getitem__(self, i):
        return numpy.array(self.x[i:i + 1])
""",
            runs="""
result = [Gen([[1, 2], [3, 4], [5, 6]])[i] for i in range(3)]
""",
        ),
    ]

    def check(self, ctx):
        for func, seq, _path in ctx.functions_in_phase(Phase.BATCH):
            indexed = _indexed_attributes(ctx, seq)
            init_attrs = _init_attributes(seq)
            for node in walk(func.body):
                if not isinstance(node, cst.Call):
                    continue
                target = _copied(ctx, node)
                attr = _self_attr(target)
                if attr is None or attr not in init_attrs:
                    continue
                parent = ctx.parent(node)
                copy_indexed = isinstance(parent, cst.Subscript) and parent.value is node and _variable_index(parent)
                if attr not in indexed and not copy_indexed and not _local_indexed(ctx, func, node):
                    continue
                yield ctx.report(
                    self,
                    node,
                    f"`{ctx.code(node)}` copies all of `self.{attr}` on every batch; copy only the batch",
                    fix=_fix(ctx, node, target),
                    hint="index first, then copy: `self.x[lo:hi].copy()`",
                )


def _copied(ctx, call: cst.Call) -> cst.BaseExpression | None:
    qual = ctx.qualified_name(call.func)
    positional = [a for a in call.args if a.keyword is None and not a.star]
    if qual in _COPY_FUNCTIONS and positional:
        if qual == "numpy.array" and any(
            a.keyword is not None and a.keyword.value == "copy" and ctx.code(a.value) in ("False", "None")
            for a in call.args
        ):
            return None
        return positional[0].value
    if isinstance(call.func, cst.Attribute) and call.func.attr.value == "copy" and not call.args:
        return call.func.value
    return None


def _self_attr(expr) -> str | None:
    if isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name) and expr.value.value == "self":
        return expr.attr.value
    return None


def _indexed_attributes(ctx, seq) -> set[str]:
    """Attributes subscripted in per-batch code: that is how a dataset attribute is used."""
    found = set()
    for func in ctx.batch_functions(seq):
        for node in walk(func.body):
            if isinstance(node, cst.Subscript) and (attr := _self_attr(node.value)) and _variable_index(node):
                found.add(attr)
    return found


def _local_indexed(ctx, func, call) -> bool:
    """`data = copy.deepcopy(self.x)` followed by `data[...]`: the copy stands for the dataset."""
    parent = ctx.parent(call)
    if not (isinstance(parent, cst.Assign) and len(parent.targets) == 1 and isinstance(parent.targets[0].target, cst.Name)):
        return False
    name = parent.targets[0].target.value
    return any(
        isinstance(n, cst.Subscript) and isinstance(n.value, cst.Name) and n.value.value == name and _variable_index(n)
        for n in walk(func.body)
    )


def _variable_index(subscript: cst.Subscript) -> bool:
    """Indexed by something computed (`x[lo:hi]`, `x[i]`), not a constant key (`config["size"]`):
    that is how a dataset is used, unlike a settings dict."""
    return any(isinstance(n, cst.Name) for el in subscript.slice for n in walk(el))


def _init_attributes(seq) -> set[str]:
    init = seq.methods.get("__init__")
    found = set()
    if init is None:
        return found
    for node in walk(init.body):
        targets = []
        if isinstance(node, cst.Assign):
            targets = [t.target for t in node.targets]
        elif isinstance(node, cst.AnnAssign):
            targets = [node.target]
        for target in targets:
            for sub in walk(target):
                if (attr := _self_attr(sub)) is not None:
                    found.add(attr)
    return found


def _fix(ctx, call: cst.Call, target: cst.BaseExpression):
    parent = ctx.parent(call)
    if not isinstance(parent, cst.Subscript) or parent.value is not call or call.lpar:
        return None
    index = ctx.code(parent)[len(ctx.code(call)):]
    if isinstance(call.func, cst.Attribute) and call.func.attr.value == "copy" and call.func.value is target:
        text = f"{ctx.code(target)}{index}.copy()"
    else:
        text = ctx.code(call).replace(ctx.code(target), ctx.code(target) + index, 1)
    return make_fix(Applicability.SAFE, "Copy only the indexed part", [replace(ctx, parent, text)])
