"""SEQ304 shuffle-data-not-index: the data arrays themselves are permuted instead of an index."""

from __future__ import annotations

import re
from collections.abc import Iterable

import libcst as cst

from seqlint.analysis.effects import is_generator_method, is_random_call
from seqlint.analysis.hotpath import Phase, walk
from seqlint.findings import Finding
from seqlint.rules.base import Invalid, Rule

# Attribute names that say "I am an order, not the data".
_INDEX_NAME = re.compile(r"(^|_)(idx|idxs|index|indexes|indices|ind|inds|perm|permutation|order|ordering|ids|positions|keys)($|_)")
_INDEX_SOURCES = {"numpy.arange", "range", "numpy.random.permutation"}
# pandas row accessors: `self.df.loc[order]` is the frame reordered like `self.x[order]`.
_ROW_ACCESSORS = {"loc", "iloc"}
_SHUFFLE_FUNCTIONS = {"numpy.random.shuffle", "random.shuffle", "numpy.random.permutation", "sklearn.utils.shuffle"}

_HEAD = "import numpy as np\nimport keras\n\nclass Data(keras.utils.PyDataset):\n"
_INIT = ("    def __init__(self, x, y, **kwargs):\n        super().__init__(**kwargs)\n"
         "        self.x, self.y = x, y\n\n")
_TAIL = ("    def __len__(self):\n        return len(self.x) // 32\n\n"
         "    def __getitem__(self, i):\n        return self.x[i * 32:(i + 1) * 32], self.y[i * 32:(i + 1) * 32]\n")


class ShuffleDataNotIndex(Rule):
    code = "SEQ304"
    name = "shuffle-data-not-index"
    summary = "the data arrays are permuted instead of an index array"
    fix_availability = "none"
    docs = """
## What it does
Flags `on_epoch_end` and `__init__` (and the methods they call) permuting the dataset itself:
`np.random.shuffle(self.x)`, `rng.shuffle(self.x)`, `random.shuffle(self.samples)`,
`self.x = self.x[perm]`, `self.x = np.random.permutation(self.x)`,
`self.x, self.y = sklearn.utils.shuffle(self.x, self.y)` or `self.df = self.df.sample(frac=1)`.
Attributes that hold an order (`self.indices`, `self.perm`, anything built from `np.arange`/`range`)
are what should be shuffled and are not flagged.

## Why is this bad?
Permuting the data moves every sample in memory each epoch: a full copy of the dataset (twice the
memory while it happens) instead of shuffling N integers. It rules out memory-mapped data (shuffling a
memmap writes to the file, fancy-indexing it loads it all), and shuffling `x` and `y` by two separate
calls silently pairs samples with the wrong labels.

## Example
```python
def on_epoch_end(self):
    p = np.random.permutation(len(self.x))
    self.x, self.y = self.x[p], self.y[p]
```

## Use instead
```python
def __init__(self, x, y, batch_size, **kwargs):
    super().__init__(**kwargs)
    self.x, self.y, self.batch_size = x, y, batch_size
    self.indices = np.arange(len(x))

def on_epoch_end(self):
    np.random.shuffle(self.indices)

def __getitem__(self, i):
    rows = np.sort(self.indices[i * self.batch_size:(i + 1) * self.batch_size])
    return self.x[rows], self.y[rows]
```
or `seqkit.MemmapSequence(x, y, shuffle=True, seed=0)`, which does exactly this.

## Fix safety
No automatic fix: `__getitem__` has to change to gather through the index, and the order of
samples within an epoch changes.
"""

    valid = [
        # Shuffling an index array.
        _HEAD + _INIT.replace("        self.x, self.y = x, y\n", "        self.x, self.y = x, y\n        self.indexes = np.arange(len(x))\n")
        + "    def on_epoch_end(self):\n        np.random.shuffle(self.indexes)\n\n" + _TAIL,
        # An order attribute with an unremarkable name, built from range.
        _HEAD + _INIT.replace("        self.x, self.y = x, y\n", "        self.x, self.y = x, y\n        self.rows = list(range(len(x)))\n")
        + "    def on_epoch_end(self):\n        self.rng.shuffle(self.rows)\n\n" + _TAIL,
        # Shuffling a local copy of the batch in __getitem__ is not this rule's concern.
        _HEAD + _INIT + "    def __getitem__(self, i):\n        b = self.x[i:i + 2].copy()\n        np.random.shuffle(b)\n        return b\n\n"
        "    def __len__(self):\n        return 1\n",
        # Filtering by a mask in __init__ is not a permutation.
        _HEAD + _INIT.replace("        self.x, self.y = x, y\n", "        self.x, self.y = x, y\n        keep = self.y >= 0\n        self.x = self.x[keep]\n") + _TAIL,
        # The data frame's labels copied into a local list and shuffled: an order, kept as the index.
        "from random import shuffle\nfrom keras.utils import Sequence\n\nclass Tab(Sequence):\n"
        "    def __init__(self, df, **kwargs):\n        super().__init__(**kwargs)\n        self.df = df\n\n"
        "    def on_epoch_end(self):\n        rows = list(self.df.index)\n        shuffle(rows)\n        self.batches = rows\n\n"
        "    def __len__(self):\n        return 1\n\n    def __getitem__(self, i):\n        return self.df.loc[self.batches[i]]\n",
        # Not a Keras Sequence.
        "import numpy as np\n\nclass Pool:\n    def on_epoch_end(self):\n        np.random.shuffle(self.x)\n",
    ]
    invalid = [
        Invalid(
            _HEAD + _INIT + "    def on_epoch_end(self):\n        np.random.shuffle(self.x)\n        np.random.shuffle(self.y)\n\n" + _TAIL,
            expected=[(10, 9), 11],
        ),
        Invalid(
            _HEAD + _INIT + "    def on_epoch_end(self):\n        p = np.random.permutation(len(self.x))\n"
            "        self.x, self.y = self.x[p], self.y[p]\n\n" + _TAIL,
            expected=[11],
        ),
        Invalid(
            _HEAD + _INIT + "    def on_epoch_end(self):\n        self.x = self.x[np.random.permutation(len(self.x))]\n\n" + _TAIL,
            expected=[10],
        ),
        # Paths and labels zipped, shuffled together and unzipped back into the attributes.
        Invalid(
            "import random\nfrom keras.utils import Sequence\n\nclass Clips(Sequence):\n"
            "    def __init__(self, paths, labels, **kwargs):\n        super().__init__(**kwargs)\n"
            "        self.paths, self.labels = paths, labels\n\n"
            "    def on_epoch_end(self):\n        pairs = list(zip(self.paths, self.labels))\n"
            "        random.shuffle(pairs)\n        self.paths, self.labels = map(list, zip(*pairs))\n\n"
            "    def __len__(self):\n        return 1\n\n    def __getitem__(self, i):\n        return self.paths[i], self.labels[i]\n",
            expected=[11],
        ),
        # The constructor's arrays permuted before they are stored.
        Invalid(
            "import numpy as np\nimport keras\n\nclass Rows(keras.utils.PyDataset):\n"
            "    def __init__(self, x, y, **kwargs):\n        super().__init__(**kwargs)\n"
            "        perm = np.random.permutation(len(x))\n        self.x, self.y = x[perm], y[perm]\n\n"
            "    def __len__(self):\n        return 1\n\n    def __getitem__(self, i):\n        return self.x[i], self.y[i]\n",
            expected=[8],
        ),
        # The frame reordered through pandas' accessors with a shuffled copy of its labels, every epoch.
        Invalid(
            "from random import shuffle\nimport numpy as np\nfrom keras.utils import Sequence\n\nclass Tab(Sequence):\n"
            "    def __init__(self, df, meta, **kwargs):\n        super().__init__(**kwargs)\n        self.df, self.meta = df, meta\n\n"
            "    def on_epoch_end(self):\n        rows = list(self.df.index)\n        shuffle(rows)\n        self.df = self.df.loc[rows]\n"
            "        p = np.random.permutation(len(self.meta))\n        self.meta = self.meta.iloc[p]\n\n"
            "    def __len__(self):\n        return 1\n\n    def __getitem__(self, i):\n        return self.df.iloc[i], self.meta.iloc[i]\n",
            expected=[(13, 9), 15],
        ),
        # sklearn's shuffle once in __init__, via a helper; pandas' sample(frac=1).
        Invalid(
            "from sklearn.utils import shuffle\nfrom tensorflow import keras\n\nclass Tab(keras.utils.Sequence):\n"
            "    def __init__(self, x, y, df):\n        self.x, self.y = x, y\n        self.df = df\n        self._mix()\n\n"
            "    def _mix(self):\n        self.x, self.y = shuffle(self.x, self.y, random_state=0)\n\n"
            "    def on_epoch_end(self):\n        self.df = self.df.sample(frac=1).reset_index(drop=True)\n\n"
            "    def __len__(self):\n        return 1\n\n    def __getitem__(self, i):\n        return self.x[i], self.df.iloc[i]\n",
            expected=[11, 14],
        ),
    ]

    def check(self, ctx) -> Iterable[Finding]:
        seen: set[int] = set()
        for phase in (Phase.EPOCH, Phase.ONCE):
            for func, seq, _path in ctx.functions_in_phase(phase):
                if func not in seq.methods.values():
                    continue  # module functions do not see `self`
                index_attrs = _index_attributes(ctx, seq)
                orders = _random_orders(ctx, func) | _shuffled_attributes(ctx, seq)
                data_locals = _data_locals(ctx, func, index_attrs)
                for node in walk(func.body):
                    if id(node) in seen:
                        continue
                    permuted = _permuted_attributes(ctx, node, orders, data_locals)
                    data = [a for a in permuted if a not in index_attrs]
                    if not data:
                        continue
                    seen.add(id(node))
                    when = "every epoch" if phase is Phase.EPOCH else "once, copying it"
                    names = ", ".join(f"`{a}`" if a in data_locals else f"`self.{a}`" for a in data)
                    yield ctx.report(
                        self,
                        node,
                        message=f"{names} permuted in place of an index array ({when})",
                        hint="Shuffle an index (`self.indices = np.arange(len(self.x))`, "
                        "`np.random.shuffle(self.indices)`) and gather `self.x[self.indices[batch]]` in "
                        "`__getitem__`, or use `seqkit.MemmapSequence(x, y, shuffle=True, seed=...)`.",
                    )


def _self_attr(expr: cst.BaseExpression) -> str | None:
    if isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name) and expr.value.value == "self":
        return expr.attr.value
    return None


def _index_attributes(ctx, seq) -> set[str]:
    """Attributes that hold an order: named like one, or built from arange/range/permutation(n)."""
    found = set()
    for method in seq.methods.values():
        for node in walk(method.body):
            if not isinstance(node, (cst.Assign, cst.AnnAssign)):
                continue
            targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
            for target in targets:
                attr = _self_attr(target)
                if attr is None:
                    continue
                if _INDEX_NAME.search(attr):
                    found.add(attr)
                elif node.value is not None and _is_order(ctx, node.value):
                    found.add(attr)
    for method in seq.methods.values():
        for node in walk(method.body):
            if isinstance(node, cst.Attribute) and (attr := _self_attr(node)) and _INDEX_NAME.search(attr):
                found.add(attr)
    return found


def _is_order(ctx, value: cst.BaseExpression) -> bool:
    """`np.arange(n)`, `list(range(n))`, `np.random.permutation(n)`, `np.asarray(range(n))`."""
    if not isinstance(value, cst.Call):
        return False
    if ctx.qualified_name(value) in _INDEX_SOURCES:
        return not _mentions_self_data(value)
    return ctx.qualified_name(value) in ("list", "numpy.array", "numpy.asarray") and bool(value.args) and _is_order(
        ctx, value.args[0].value
    )


def _mentions_self_data(call: cst.Call) -> bool:
    """`np.random.permutation(self.x)` permutes data; `np.random.permutation(len(self.x))` an order."""
    for arg in call.args:
        if _self_attr(arg.value) is not None:
            return True
    return False


def _shuffled_attributes(ctx, seq) -> set[str]:
    """`self.<attr>` holding a random order: shuffled in place or assigned a permutation somewhere."""
    found = set()
    for method in seq.methods.values():
        for node in walk(method.body):
            if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value == "shuffle":
                if node.args and (attr := _self_attr(node.args[0].value)) is not None:
                    found.add(attr)
            elif isinstance(node, cst.Call) and ctx.qualified_name(node) in ("numpy.random.shuffle", "random.shuffle"):
                if node.args and (attr := _self_attr(node.args[0].value)) is not None:
                    found.add(attr)
            elif isinstance(node, cst.Assign) and isinstance(node.value, cst.Call):
                func = node.value.func
                method_name = func.attr.value if isinstance(func, cst.Attribute) else ""
                if is_random_call(ctx.qualified_name(node.value)) or method_name == "permutation":
                    found.update(a for t in node.targets if (a := _self_attr(t.target)) is not None)
    return found


def _random_orders(ctx, func: cst.FunctionDef) -> set[str]:
    """Local names holding a random order: `p = np.random.permutation(n)`, or an array shuffled in place."""
    names = set()
    for node in walk(func.body):
        if isinstance(node, cst.Assign) and isinstance(node.value, cst.Call):
            qualname = ctx.qualified_name(node.value) or ""
            func_node = node.value.func
            method = func_node.attr.value if isinstance(func_node, cst.Attribute) else ""
            if is_random_call(qualname) or method in ("permutation", "choice"):
                names.update(t.target.value for t in node.targets if isinstance(t.target, cst.Name))
        elif isinstance(node, cst.Call) and node.args and isinstance(node.args[0].value, cst.Name):
            func_node = node.func
            if (isinstance(func_node, cst.Attribute) and func_node.attr.value == "shuffle") or ctx.qualified_name(
                node
            ) in ("numpy.random.shuffle", "random.shuffle"):  # `from random import shuffle`
                names.add(node.args[0].value.value)
    return names


def _permuted_attributes(ctx, node: cst.CSTNode, orders: set[str], data_locals: set[str]) -> list[str]:
    """What this statement permutes: `self.<attr>` names, or a local list/array built from the data."""
    if isinstance(node, cst.Call):
        qualname = ctx.qualified_name(node) or ""
        func = node.func
        is_shuffle = qualname in ("numpy.random.shuffle", "random.shuffle") or (
            isinstance(func, cst.Attribute) and func.attr.value == "shuffle"
            and not qualname.startswith("sklearn") and is_generator_method("shuffle")
        )
        if not is_shuffle or not node.args:
            return []
        shuffled = node.args[0].value
        if (attr := _self_attr(shuffled)) is not None:
            return [attr]
        if isinstance(shuffled, cst.Name) and shuffled.value in data_locals:
            return [shuffled.value]  # `combined = list(zip(self.x, self.y)); np.random.shuffle(combined)`
        return []
    if not isinstance(node, cst.Assign):
        return []
    flagged = []
    for target in node.targets:
        for bound, value in _pairs(target.target, node.value):
            attr = _self_attr(bound)
            if attr is not None and _permutes(ctx, value, orders):
                flagged.append(attr)
    return flagged


def _pairs(target: cst.BaseExpression, value: cst.BaseExpression) -> list[tuple]:
    if isinstance(target, (cst.Tuple, cst.List)):
        if isinstance(value, (cst.Tuple, cst.List)) and len(value.elements) == len(target.elements):
            return [p for t, v in zip(target.elements, value.elements) for p in _pairs(t.value, v.value)]
        return [p for t in target.elements for p in _pairs(t.value, value)]
    return [(target, value)]


def _is_data(expr: cst.BaseExpression) -> bool:
    if isinstance(expr, cst.Attribute) and expr.attr.value in _ROW_ACCESSORS:
        expr = expr.value  # self.df.loc[order] reorders self.df
    return _self_attr(expr) is not None or isinstance(expr, cst.Name)


def _permutes(ctx, value: cst.BaseExpression, orders: set[str]) -> bool:
    """Whether `value` is data reordered: `x[perm]`, `shuffle(self.x, ...)`, `self.df.sample(frac=1)`."""
    if isinstance(value, cst.Subscript):
        if not _is_data(value.value) or len(value.slice) != 1 or not isinstance(value.slice[0].slice, cst.Index):
            return False
        index = value.slice[0].slice.value
        if isinstance(index, cst.Name):
            return index.value in orders
        if (attr := _self_attr(index)) is not None:
            return attr in orders  # self.x[self.order], with self.order shuffled
        return isinstance(index, cst.Call) and (
            is_random_call(ctx.qualified_name(index))
            or (isinstance(index.func, cst.Attribute) and index.func.attr.value == "permutation")
        )  # self.x[np.random.permutation(len(self.x))]
    if isinstance(value, cst.Call):
        qualname = ctx.qualified_name(value) or ""
        func = value.func
        if qualname.endswith("permutation") or (isinstance(func, cst.Attribute) and func.attr.value == "permutation"):
            # permutation(self.x) reorders data; permutation(n) of a plain name is usually a count.
            return any(_self_attr(arg.value) is not None for arg in value.args if arg.keyword is None)
        if qualname in _SHUFFLE_FUNCTIONS:
            return any(_is_data(arg.value) for arg in value.args if arg.keyword is None)
        if isinstance(func, cst.Attribute):
            if func.attr.value == "sample" and any(a.keyword is not None and a.keyword.value == "frac" for a in value.args):
                return _is_data(func.value)
            return _permutes(ctx, func.value, orders)  # self.df.sample(frac=1).reset_index(drop=True)
    return False


def _data_locals(ctx, func: cst.FunctionDef, index_attrs: set[str]) -> set[str]:
    """Local names built from the data attributes (`combined = list(zip(self.x, self.y))`); a mention
    inside `len(...)` (`np.arange(len(self.x))`) is only the size."""
    names = set()
    for node in walk(func.body):
        if isinstance(node, cst.Assign) and _mentions_data(ctx, node.value, index_attrs):
            names.update(t.target.value for t in node.targets if isinstance(t.target, cst.Name))
    return names


def _mentions_data(ctx, expr: cst.CSTNode, index_attrs: set[str]) -> bool:
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, cst.Call) and ctx.qualified_name(node) == "len":
            continue
        if isinstance(node, cst.Attribute) and _self_attr(node.value) is not None and _INDEX_NAME.search(node.attr.value):
            continue  # `list(self.df.index)`: the frame's labels are an order, not its rows
        attr = _self_attr(node)
        if attr is not None:
            if attr not in index_attrs:
                return True
            continue
        stack.extend(node.children)
    return False
