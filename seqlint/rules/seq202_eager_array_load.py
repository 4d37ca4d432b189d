"""SEQ202 eager-array-load: whole `.npy` arrays read into memory to feed a Sequence."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import libcst as cst

from seqlint.analysis.effects import (
    is_in_place_method,
    is_pure_array_method,
    is_read_only_call,
    is_view_method,
    returns_view,
    writes_first_argument,
)
from seqlint.analysis.hotpath import Phase, walk
from seqlint.findings import Applicability, Edit, Finding, Fix
from seqlint.rules.base import Invalid, Rule

_HEAD = "import numpy as np\nimport keras\n\n"
_CLASS = ("class Rows(keras.utils.PyDataset):\n"
          "    def __init__(self, path, batch_size=32, **kwargs):\n        super().__init__(**kwargs)\n")
_TAIL = ("\n    def __len__(self):\n        return len(self.x) // self.batch_size\n\n"
         "    def __getitem__(self, i):\n        return self.x[i * self.batch_size:(i + 1) * self.batch_size]\n")


class EagerArrayLoad(Rule):
    code = "SEQ202"
    name = "eager-array-load"
    summary = "`np.load` reads a whole `.npy` array into memory to feed a Sequence"
    fix_availability = "sometimes"
    # Scripts that hand loaded arrays to seqkit's datasets have no Sequence class of their own.
    module_wide = True
    module_wide_tokens = ("seqkit",)
    docs = """
## What it does
Flags `np.load(path)` of `.npy` data without `mmap_mode` whose array feeds a Keras Sequence: loaded
in `__init__` (or a method it calls) and stored, or loaded in module or function code and passed (in
that same function or module body) to the constructor of a Sequence class of the file, of another file
of the checked tree, or of `seqkit`, which stores it as it is.
Left alone: `.npz` archives (a `.npz` path, `np.load(...)["key"]`, `with np.load(...)`),
`allow_pickle=True` (object arrays cannot be mapped), loads whose result is transformed at once
(`np.load(p) / 255` reads everything anyway: hoisting that is SEQ101's), and loads per batch, which
read the file every batch and are SEQ201's.

## Why is this bad?
The whole array is read from disk before the first batch and held in memory for the whole run; with
`use_multiprocessing=True` worker processes may each get a copy. A memory map reads pages on demand,
keeps them in the OS page cache shared by every process, and lets datasets larger than RAM train.
The first batch comes without waiting for the whole file. Later epochs read the rows through the
map: from a file already in the page cache that costs about what reading NumPy's own copy does, up to
a few percent more where that copy sits in huge pages and the map in 4 KiB ones.

## Example
```python
def __init__(self, x_path, y_path, batch_size, **kwargs):
    super().__init__(**kwargs)
    self.x = np.load(x_path)
    self.y = np.load(y_path)
```

## Use instead
```python
    self.x = np.load(x_path, mmap_mode="r")
    self.y = np.load(y_path, mmap_mode="r")
```
or `seqkit.MemmapSequence(x_path, y_path, batch_size=batch_size)`.

## Fix safety
The fix adds `mmap_mode="r"`. When the path is a string that names a `.npy` file, it also wraps the
load in `np.asarray(...)`, which gives a plain `ndarray` over the same map without copying: the
array keeps the type the code had, and indexing it per batch skips `np.memmap`'s Python-level
`__getitem__` (about 1 µs a call, a few percent of an epoch that does nothing else). A path of
unknown kind gets no wrapper, since a `.npz` archive would not survive it, and neither does an array
handed to a seqkit dataset, which re-maps the file in its worker processes.

The fix is safe when the array is never written to: no item or slice assignment, in-place
operator, in-place method (`sort`, `fill`, ...), `out=` argument, shuffle, or call of unknown code
that receives it (followed through local names, views, `self` attributes and the Sequence's
constructor). Otherwise it is unsafe: writing to a read-only map raises `ValueError`. An array
handed to a Sequence class of another file counts as unknown, so its fix is unsafe.
A file replaced on disk while training would also change under a map.
"""

    valid = [
        _HEAD + _CLASS + "        self.x = np.load(path, mmap_mode='r')\n        self.batch_size = batch_size\n" + _TAIL,
        # .npz archives and pickled object arrays cannot be mapped.
        _HEAD + _CLASS + "        with np.load(path) as data:\n            self.x = data['x']\n        self.batch_size = batch_size\n" + _TAIL,
        _HEAD + _CLASS + "        self.x = np.load('data/train.npz')['x']\n        self.batch_size = batch_size\n" + _TAIL,
        _HEAD + _CLASS + "        self.x = np.load(path, allow_pickle=True)\n        self.batch_size = batch_size\n" + _TAIL,
        # Transformed at once: the whole file is read anyway.
        _HEAD + _CLASS + "        self.x = np.load(path).astype('float32') / 255.0\n        self.batch_size = batch_size\n" + _TAIL,
        # Converted on the way in: the Sequence never holds the loaded array itself.
        "import numpy as np\nimport keras\n\nclass Pairs(keras.utils.PyDataset):\n"
        "    def __init__(self, ids, **kwargs):\n        super().__init__(**kwargs)\n        self.ids = np.asarray(ids)\n\n"
        "    def __len__(self):\n        return 1\n\n    def __getitem__(self, i):\n        return self.ids[i]\n\n"
        "data = Pairs(np.load('ids.npy'))\nids = np.load('ids.npy')\nother = Pairs(ids)\n",
        # A function's own `x` is not the module's loaded `x`.
        "import numpy as np\nimport keras\n\nclass D(keras.utils.PyDataset):\n"
        "    def __init__(self, x, **kwargs):\n        super().__init__(**kwargs)\n        self.x = x\n\n"
        "    def __len__(self):\n        return 1\n\n    def __getitem__(self, i):\n        return self.x[i]\n\n"
        "x = np.load('x.npy')\nprint(x.shape)\n\ndef build(x):\n    return D(x)\n",
        # A script loading arrays for something that is not a Sequence.
        "import numpy as np\n\nx = np.load('x.npy')\nprint(x.mean())\n",
    ]
    invalid = [
        Invalid(
            _HEAD + _CLASS + "        self.x = np.load(path)\n        self.batch_size = batch_size\n" + _TAIL,
            expected=[(7, 18)],
            fixed=_HEAD + _CLASS + "        self.x = np.load(path, mmap_mode=\"r\")\n        self.batch_size = batch_size\n" + _TAIL,
        ),
        # Written to later (in-place normalisation of a batch view): the fix is unsafe but offered.
        Invalid(
            _HEAD + _CLASS + "        x = np.load(path)\n        self.x = x\n        self.batch_size = batch_size\n\n"
            "    def __len__(self):\n        return 1\n\n"
            "    def __getitem__(self, i):\n        batch = self.x[i:i + 2]\n        batch /= 255.0\n        return batch\n",
            expected=[7],
            fixed=_HEAD + _CLASS + "        x = np.load(path, mmap_mode=\"r\")\n        self.x = x\n        self.batch_size = batch_size\n\n"
            "    def __len__(self):\n        return 1\n\n"
            "    def __getitem__(self, i):\n        batch = self.x[i:i + 2]\n        batch /= 255.0\n        return batch\n",
        ),
        # Module code building the Sequence, with an alias import.
        Invalid(
            "import numpy\nfrom keras.utils import PyDataset\n\n"
            "class Data(PyDataset):\n    def __init__(self, x, y, **kwargs):\n        super().__init__(**kwargs)\n"
            "        self.x, self.y = x, y\n\n"
            "    def __len__(self):\n        return 1\n\n    def __getitem__(self, i):\n        return self.x[i], self.y[i]\n\n"
            "x_train = numpy.load('x_train.npy')\ny_train = numpy.load('y_train.npy', allow_pickle=False)\n"
            "train = Data(x_train, y=y_train)\n",
            expected=[15, 16],
            fixed="import numpy\nfrom keras.utils import PyDataset\n\n"
            "class Data(PyDataset):\n    def __init__(self, x, y, **kwargs):\n        super().__init__(**kwargs)\n"
            "        self.x, self.y = x, y\n\n"
            "    def __len__(self):\n        return 1\n\n    def __getitem__(self, i):\n        return self.x[i], self.y[i]\n\n"
            "x_train = numpy.asarray(numpy.load('x_train.npy', mmap_mode=\"r\"))\n"
            "y_train = numpy.asarray(numpy.load('y_train.npy', allow_pickle=False, mmap_mode=\"r\"))\n"
            "train = Data(x_train, y=y_train)\n",
        ),
        # An explicit `mmap_mode=None` is eager too.
        Invalid(
            _HEAD + _CLASS + "        self.x = np.load(path, mmap_mode=None)\n        self.batch_size = batch_size\n" + _TAIL,
            expected=[7],
            fixed=_HEAD + _CLASS + "        self.x = np.load(path, mmap_mode=\"r\")\n        self.batch_size = batch_size\n" + _TAIL,
        ),
        # ... and with a .npy path, kept a plain ndarray over the map.
        Invalid(
            _HEAD + _CLASS + "        self.x = np.load(f'{path}/x.npy', None)\n        self.batch_size = batch_size\n" + _TAIL,
            expected=[7],
            fixed=_HEAD + _CLASS + "        self.x = np.asarray(np.load(f'{path}/x.npy', \"r\"))\n        self.batch_size = batch_size\n"
            + _TAIL,
        ),
        # Loaded inside a seqkit constructor call: no np.asarray, seqkit re-maps the file in its workers.
        Invalid(
            "import numpy as np\nimport seqkit\n\nds = seqkit.MemmapSequence(np.load('x.npy'), batch_size=8)\n",
            expected=[4],
            fixed="import numpy as np\nimport seqkit\n\nds = seqkit.MemmapSequence(np.load('x.npy', mmap_mode=\"r\"), batch_size=8)\n",
        ),
        # Loaded at module level, used as a global by the function that builds the dataset.
        Invalid(
            "import numpy as np\nimport keras\n\nclass D(keras.utils.PyDataset):\n"
            "    def __init__(self, x, **kwargs):\n        super().__init__(**kwargs)\n        self.x = x\n\n"
            "    def __len__(self):\n        return 1\n\n    def __getitem__(self, i):\n        return self.x[i]\n\n"
            "X = np.load('x.npy')\n\ndef build():\n    return D(X[:100])\n",
            expected=[15],
            fixed="import numpy as np\nimport keras\n\nclass D(keras.utils.PyDataset):\n"
            "    def __init__(self, x, **kwargs):\n        super().__init__(**kwargs)\n        self.x = x\n\n"
            "    def __len__(self):\n        return 1\n\n    def __getitem__(self, i):\n        return self.x[i]\n\n"
            "X = np.asarray(np.load('x.npy', mmap_mode=\"r\"))\n\ndef build():\n    return D(X[:100])\n",
        ),
        # Followed into the constructor: the class shuffles its `y` in place each epoch.
        Invalid(
            "import numpy as np\nfrom keras.utils import PyDataset\n\n"
            "class Data(PyDataset):\n    def __init__(self, x, y, **kwargs):\n        super().__init__(**kwargs)\n"
            "        self.x, self.y = x, y\n\n"
            "    def on_epoch_end(self):\n        np.random.shuffle(self.y)\n\n"
            "    def __len__(self):\n        return 1\n\n    def __getitem__(self, i):\n        return self.x[i], self.y[i]\n\n"
            "def build(path):\n    labels = np.load(path)\n    return Data(np.zeros((4, 2)), labels)\n",
            expected=[19],
        ),
    ]

    def check(self, ctx) -> Iterable[Finding]:
        if "load(" not in ctx.source:
            return  # cheap text check before walking the module
        seen: set[int] = set()
        sequences = {seq.name: seq for seq in ctx.sequences}
        if not sequences and ctx.project is None and not any(name.startswith("seqkit") for name in ctx.imports.values()):
            return
        # Loads that run once inside Sequence code.
        for func, seq, _path in ctx.functions_in_phase(Phase.ONCE):
            for call, target in _bound_loads(ctx, func.body):
                if id(call) in seen:
                    continue
                seen.add(id(call))
                tracker = _Tracker(ctx, sequences)
                tracker.bind(target, func, seq if func in seq.methods.values() else None)
                yield self._finding(ctx, call, tracker, "is stored by the Sequence")
        # Module code and plain functions that pass a loaded array to a Sequence constructor.
        loads, constructors = _plain_code(ctx, sequences)
        for scope, call, target in loads:
            if id(call) in seen:
                continue
            uses = [c for c in _visible_constructors(scope, target.value, constructors) if any(
                isinstance(root := _root(a.value), cst.Name) and root.value == target.value for a in c.args)]
            if not uses:
                continue
            tracker = _Tracker(ctx, sequences)
            tracker.bind(target, scope, None)
            if not tracker.stored:
                continue  # converted or reduced on the way in (`np.asarray(ids)`): not the data itself
            seen.add(id(call))
            into_seqkit = any((ctx.qualified_name(use) or "").startswith("seqkit.") for use in uses)
            yield self._finding(ctx, call, tracker, f"is passed to `{ctx.code(uses[0].func)}`", into_seqkit)
        # `Data(np.load("x.npy"), ...)`: loaded right in the constructor call.
        for calls in constructors.values():
            for _, node in calls:
                qualname = ctx.qualified_name(node) or ""
                for arg in node.args:
                    load = arg.value
                    if not isinstance(load, cst.Call) or id(load) in seen or not _is_eager_npy_load(ctx, load):
                        continue
                    tracker = _Tracker(ctx, sequences)
                    if qualname in sequences:
                        tracker._follow_constructor(sequences[qualname], node, [arg])
                    else:
                        tracker.stored = True
                        if not qualname.startswith("seqkit."):
                            tracker._unknown(node, f"passed to `{ctx.code(node.func)}`, defined in another file")
                    if tracker.stored:
                        seen.add(id(load))
                        yield self._finding(
                            ctx, load, tracker, f"is passed to `{ctx.code(node.func)}`", qualname.startswith("seqkit.")
                        )

    def _finding(self, ctx, call: cst.Call, tracker: _Tracker, how: str, into_seqkit: bool = False) -> Finding:
        written = ctx.code(call.func)
        message = (f"`{written}` reads the whole array into memory and {how}; "
                   "memory-map it with `mmap_mode=\"r\"`")
        explicit_none = _explicit_none_mode(call)
        if not call.args:
            return ctx.report(self, call, message=message)
        # seqkit's datasets take the np.memmap itself: they re-map its file in worker processes.
        wrapper = None if into_seqkit else _plain_array_wrapper(ctx, call)
        title = "Add `mmap_mode=\"r\"`"
        if wrapper is not None:
            edit = Edit(f"{wrapper}({ctx.code(_mapped(call, explicit_none))})", *ctx.position(call))
            title = f"Memory-map it: `{wrapper}(np.load(..., mmap_mode=\"r\"))`"
        elif explicit_none is not None:
            edit = Edit('"r"', *ctx.position(explicit_none))
        else:
            end = ctx.position(call.args[-1].value)[1]
            edit = Edit(', mmap_mode="r"', end, end)
        if tracker.writes:
            row, reason = min(tracker.writes)
            fix = Fix(Applicability.UNSAFE,
                      f"{title} (unsafe: line {row}: the array is {reason}, and a read-only map refuses writes)", (edit,))
        else:
            fix = Fix(Applicability.SAFE, title, (edit,))
        return ctx.report(self, call, message=message, fix=fix)


# -- which loads --------------------------------------------------------------------------------------

def _is_eager_npy_load(ctx, call: cst.Call) -> bool:
    if ctx.qualified_name(call) != "numpy.load":
        return False
    positional = [a for a in call.args if a.keyword is None and not a.star]
    keywords = {a.keyword.value: a.value for a in call.args if a.keyword is not None}
    if any(a.star for a in call.args) or not positional and "file" not in keywords:
        return False
    mode = keywords.get("mmap_mode", positional[1].value if len(positional) > 1 else None)
    if mode is not None and not _is_none(mode):
        return False
    pickle = keywords.get("allow_pickle")
    if pickle is not None and not (isinstance(pickle, cst.Name) and pickle.value == "False"):
        return False
    path = positional[0].value if positional else keywords["file"]
    return ".npz" not in ctx.code(path)


def _mapped(call: cst.Call, explicit_none) -> cst.Call:
    """The load with `mmap_mode="r"`: the explicit `None` replaced, or the keyword appended."""
    if explicit_none is not None:
        return call.deep_replace(explicit_none, cst.SimpleString('"r"'))
    mode = cst.Arg(
        cst.SimpleString('"r"'), keyword=cst.Name("mmap_mode"),
        equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")),
    )
    last = call.args[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
    return call.with_changes(args=[*call.args[:-1], last, mode])


def _plain_array_wrapper(ctx, call: cst.Call) -> str | None:
    """`np.asarray` (spelt as the call spells numpy) when the load certainly reads a `.npy` file."""
    if not isinstance(call.func, cst.Attribute):
        return None  # `from numpy import load`: no numpy name to spell asarray with
    path = next((a.value for a in call.args if a.keyword is None or a.keyword.value == "file"), None)
    if isinstance(path, cst.SimpleString):
        text = path.evaluated_value
    elif isinstance(path, cst.FormattedString) and path.parts and isinstance(path.parts[-1], cst.FormattedStringText):
        text = path.parts[-1].value
    else:
        return None
    if not isinstance(text, str) or not text.endswith(".npy"):
        return None
    return f"{ctx.code(call.func.value)}.asarray"


def _is_none(expr: cst.BaseExpression) -> bool:
    return isinstance(expr, cst.Name) and expr.value == "None"


def _explicit_none_mode(call: cst.Call) -> cst.BaseExpression | None:
    """The `None` of `np.load(p, mmap_mode=None)` / `np.load(p, None)`, to be replaced."""
    positional = [a for a in call.args if a.keyword is None and not a.star]
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == "mmap_mode" and _is_none(arg.value):
            return arg.value
    if len(positional) > 1 and _is_none(positional[1].value):
        return positional[1].value
    return None


def _bound_loads(ctx, body) -> Iterable[tuple[cst.Call, cst.BaseExpression]]:
    """(load call, what it is bound to) for `target = np.load(...)` statements, tuples included."""
    statements = body.body if isinstance(body, cst.BaseSuite) else body
    for stmt in statements:
        for node in _nodes_outside_nested_defs(stmt):
            if not isinstance(node, cst.Assign) or len(node.targets) != 1:
                continue
            target = node.targets[0].target
            pairs = [(target, node.value)]
            if isinstance(target, (cst.Tuple, cst.List)) and isinstance(node.value, (cst.Tuple, cst.List)) and len(
                target.elements
            ) == len(node.value.elements):
                pairs = [(t.value, v.value) for t, v in zip(target.elements, node.value.elements)]
            for bound, value in pairs:
                if isinstance(value, cst.Call) and _is_eager_npy_load(ctx, value):
                    yield value, bound


def _plain_code(ctx, sequences):
    """One pass over the code outside Sequence classes: `name = np.load(...)` statements as
    (scope, load, name), and the Sequence constructor calls of each scope (function or module)."""
    sequence_nodes = {id(seq.node) for seq in ctx.sequences}
    loads = []
    constructors: dict[int, list[cst.Call]] = {}
    stack: list[tuple[cst.CSTNode, cst.CSTNode]] = [(child, ctx.module) for child in reversed(ctx.module.body)]
    while stack:
        node, scope = stack.pop()
        if id(node) in sequence_nodes:
            continue
        if isinstance(node, cst.FunctionDef):
            scope = node
        elif isinstance(node, cst.Assign) and len(node.targets) == 1 and isinstance(node.value, cst.Call):
            for bound, value in _pairs(node.targets[0].target, node.value):
                if isinstance(bound, cst.Name) and isinstance(value, cst.Call) and _is_eager_npy_load(ctx, value):
                    loads.append((scope, value, bound))
        elif isinstance(node, cst.Call) and node.args and isinstance(node.func, (cst.Name, cst.Attribute)):
            qualname = ctx.qualified_name(node) or ""
            if qualname in sequences or qualname.startswith("seqkit.") or _external_sequence(ctx, qualname):
                constructors.setdefault(id(scope), []).append((scope, node))
        stack.extend((child, scope) for child in reversed(node.children))
    return loads, constructors


def _visible_constructors(scope, name: str, constructors) -> list[cst.Call]:
    """Constructor calls that see `name` as bound in `scope`: in the same scope, and for a module-level
    name also in functions that read it as a global (do not bind it themselves)."""
    if not isinstance(scope, cst.Module):
        return [call for _, call in constructors.get(id(scope), ())]
    visible = []
    for calls in constructors.values():
        for owner, call in calls:
            if isinstance(owner, cst.Module) or name not in _bound_names(owner):
                visible.append(call)
    return visible


def _bound_names(func: cst.FunctionDef) -> set[str]:
    names = {p.name.value for p in (*func.params.posonly_params, *func.params.params, *func.params.kwonly_params)}
    for node in _nodes_outside_nested_defs(func.body):
        if isinstance(node, cst.AssignTarget):
            names.update(_flat_name_values(node.target))
        elif isinstance(node, cst.For):
            names.update(_flat_name_values(node.target))
    return names


def _flat_name_values(target: cst.BaseExpression) -> list[str]:
    return [e.value for e in _flatten(target) if isinstance(e, cst.Name)]


def _external_sequence(ctx, qualname: str) -> bool:
    """A Keras Sequence class defined in another file of the checked tree."""
    if ctx.project is None or not qualname:
        return False
    summary = ctx.project.resolve(qualname, ctx.filename)
    return summary is not None and ctx.project.keras_base(summary) is not None


def _nodes_outside_nested_defs(*roots):
    """Nodes under `roots`, not descending into nested functions, classes or lambdas."""
    stack = list(roots)
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            continue
        stack.extend(node.children)


# -- is the loaded array ever written to? --------------------------------------------------------------

@dataclass
class _Tracker:
    """Follows a loaded array through names, views, `self` attributes and Sequence constructors,
    collecting the rows where it may be written to."""

    ctx: object
    sequences: dict
    writes: list[tuple[int, str]] = field(default_factory=list)  # (row, what happens there)
    stored: bool = False  # held by a Sequence as it is (or as a view), not only converted on the way in
    _done: set = field(default_factory=set)

    def bind(self, target: cst.BaseExpression, scope, seq) -> None:
        if isinstance(target, cst.Name):
            self._follow_names(scope, {target.value}, seq)
        elif _self_attr(target) is not None and seq is not None:
            self.stored = True
            self._follow_attr(seq, _self_attr(target))
        else:
            self._unknown(target, "stored where seqlint cannot follow it")

    def _unknown(self, node: cst.CSTNode, reason: str = "written to") -> None:
        self.writes.append((self.ctx.position(node)[0].row, reason))

    def _follow_attr(self, seq, attr: str) -> None:
        key = (seq.name, "attr", attr)
        if key in self._done:
            return
        self._done.add(key)
        for method in seq.methods.values():
            self._scan(method, set(), {attr}, seq)

    def _follow_names(self, scope, names: set[str], seq) -> None:
        key = (id(scope), "names", frozenset(names))
        if key in self._done:
            return
        self._done.add(key)
        self._scan(scope, names, set(), seq)

    def _refers(self, expr: cst.BaseExpression, names: set[str], attrs: set[str]) -> bool:
        root = _root(expr, self.ctx)
        if isinstance(root, cst.Name):
            return root.value in names
        attr = _self_attr(root) if root is not None else None
        return attr is not None and attr in attrs

    def _scan(self, scope, names: set[str], attrs: set[str], seq) -> None:
        # The whole scope, nested functions included: a closure or a global can write the array too.
        nodes = list(walk(scope))
        # Aliases (views and plain rebinding) first, to a fixpoint.
        changed = True
        while changed:
            changed = False
            for node in nodes:
                if not isinstance(node, cst.Assign):
                    pairs = []
                else:
                    pairs = [pair for target in node.targets for pair in _pairs(target.target, node.value)]
                for bound, value in pairs:
                    if self._refers(value, names, attrs):
                        if isinstance(bound, cst.Name) and bound.value not in names:
                            names.add(bound.value)
                            changed = True
                        elif (a := _self_attr(bound)) is not None and a not in attrs:
                            if seq is not None:
                                # Held as it is (or sliced); `np.asarray(x)` is a conversion on the way in,
                                # still followed for writes since it shares the memory.
                                self.stored |= _root(value) is not None
                                self._follow_attr(seq, a)
                            else:
                                self._unknown(bound, "stored where seqlint cannot follow it")
                if isinstance(node, cst.For) and any(
                    isinstance(n, cst.BaseExpression) and self._refers(n, names, attrs) for n in walk(node.iter)
                ):  # `for row in x`, `for i, row in enumerate(x)`: rows are views
                    for bound in _flatten(node.target):
                        if isinstance(bound, cst.Name) and bound.value not in names:
                            names.add(bound.value)
                            changed = True
        for node in nodes:
            self._check_write(node, names, attrs, seq)

    def _check_write(self, node, names, attrs, seq) -> None:
        refers = lambda e: self._refers(e, names, attrs)  # noqa: E731
        if isinstance(node, (cst.Assign, cst.AugAssign)):
            targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
            for target in targets:
                for bound in _flatten(target):
                    if isinstance(bound, cst.Subscript) and refers(bound.value):
                        self._unknown(bound)
                    elif isinstance(node, cst.AugAssign) and refers(bound):
                        self._unknown(bound)
        elif isinstance(node, cst.Call):
            self._check_call(node, refers, seq)
        elif isinstance(node, (cst.Return, cst.Yield)) and node.value is not None:
            owner = self.ctx.enclosing_function(node)
            if owner is None or owner.name.value == "__getitem__":
                return  # handed to Keras, which only reads it
            if any(refers(e) for e in _flatten(node.value)):
                self._unknown(node, f"returned by `{owner.name.value}` to code that may write to it")

    def _check_call(self, call: cst.Call, refers, seq) -> None:
        ctx = self.ctx
        func = call.func
        for arg in call.args:
            if arg.keyword is not None and arg.keyword.value == "out" and any(refers(e) for e in _flatten(arg.value)):
                self._unknown(call)
                return
        if isinstance(func, cst.Attribute) and refers(func.value):
            method = func.attr.value
            if is_in_place_method(method):
                self._unknown(call)
            return  # other methods of the array read it (astype, copy, mean, ...)
        passed = [a for a in call.args if refers(a.value)]
        if not passed:
            return
        qualname = ctx.qualified_name(call) or ""
        if writes_first_argument(qualname) or (
            isinstance(func, cst.Attribute) and func.attr.value == "shuffle"
        ):
            self._unknown(call)
        elif qualname in self.sequences:
            self._follow_constructor(self.sequences[qualname], call, passed)
        elif (target := self._callee(call, seq)) is not None:
            self._follow_call(target, call, passed, seq)
        elif qualname.startswith("seqkit."):
            self.stored = True  # seqkit's datasets hold the arrays they are given and never write to them
        elif _external_sequence(ctx, qualname):
            self.stored = True  # a Sequence of another file: it holds the array, what it does is unknown here
            self._unknown(call, f"passed to `{ctx.code(func)}`, defined in another file")
        elif is_read_only_call(qualname):
            return
        elif isinstance(func, cst.Attribute) and is_pure_array_method(func.attr.value):
            return
        else:
            self._unknown(call, f"passed to `{ctx.code(func)}`, which may write to it")

    def _callee(self, call: cst.Call, seq) -> tuple[cst.FunctionDef, bool] | None:
        """(function, is a method) for `self.helper(...)` of the class or a module function."""
        if seq is not None and (method := self.ctx.method_of(seq, call)) is not None:
            return method, True
        if isinstance(call.func, cst.Name) and (func := self.ctx.module_functions.get(call.func.value)) is not None:
            return func, False
        return None

    def _follow_call(self, target: tuple[cst.FunctionDef, bool], call: cst.Call, passed: list[cst.Arg], seq) -> None:
        """Into a helper of this file: what it does with its parameter is what happens to the array."""
        func, is_method = target
        params = [p.name.value for p in (*func.params.posonly_params, *func.params.params)][1 if is_method else 0:]
        bound = self._bind(call, passed, params, func.name.value)
        if bound is not None:
            self._follow_names(func, bound, seq if is_method else None)

    def _bind(self, call: cst.Call, passed: list[cst.Arg], params: list[str], callee: str) -> set[str] | None:
        positional = [a for a in call.args if a.keyword is None and not a.star]
        bound: set[str] = set()
        for arg in passed:
            if arg.star:
                self._unknown(call, f"passed to `{callee}` in a way seqlint cannot follow")
                return None
            if arg.keyword is not None:
                bound.add(arg.keyword.value)
                continue
            index = positional.index(arg)
            if index >= len(params):
                self._unknown(call, f"passed to `{callee}` in a way seqlint cannot follow")
                return None
            bound.add(params[index])
        return bound

    def _follow_constructor(self, seq, call: cst.Call, passed: list[cst.Arg]) -> None:
        init = seq.methods.get("__init__")
        if init is None:
            self._unknown(call, f"passed to `{seq.name}`, whose `__init__` is not in this file")
            return
        params = [p.name.value for p in (*init.params.posonly_params, *init.params.params)][1:]
        bound = self._bind(call, passed, params, seq.name)
        if bound is not None:
            self._follow_names(init, bound, seq)


def _self_attr(expr: cst.BaseExpression | None) -> str | None:
    if isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name) and expr.value.value == "self":
        return expr.attr.value
    return None


def _root(expr: cst.BaseExpression, ctx=None):
    """The array an expression is (a view of): strips subscripts, `.T`, view methods and numpy
    functions that return views (`np.asarray(x)`, `np.flip(x)`)."""
    while True:
        if _self_attr(expr) is not None or isinstance(expr, cst.Name):
            return expr
        if isinstance(expr, cst.Subscript):
            expr = expr.value
        elif isinstance(expr, cst.Attribute) and is_view_method(expr.attr.value):
            expr = expr.value
        elif (isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute)
              and is_view_method(expr.func.attr.value)):
            expr = expr.func.value
        elif (isinstance(expr, cst.Call) and ctx is not None and expr.args
              and returns_view(ctx.qualified_name(expr))):
            expr = expr.args[0].value
        else:
            return None


def _pairs(target: cst.BaseExpression, value: cst.BaseExpression) -> list[tuple]:
    """(bound expression, value expression) pairs of an assignment, unpacking `a, b = x, y`."""
    if isinstance(target, (cst.Tuple, cst.List)) and isinstance(value, (cst.Tuple, cst.List)) and len(
        target.elements
    ) == len(value.elements):
        out = []
        for t, v in zip(target.elements, value.elements):
            out.extend(_pairs(t.value, v.value))
        return out
    return [(bound, value) for bound in _flatten(target)]


def _flatten(expr: cst.BaseExpression) -> list[cst.BaseExpression]:
    if isinstance(expr, (cst.Tuple, cst.List)):
        out = []
        for element in expr.elements:
            out.extend(_flatten(element.value))
        return out
    return [expr]
