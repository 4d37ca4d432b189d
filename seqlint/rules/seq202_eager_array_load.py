"""SEQ202 eager-array-load: whole `.npy` arrays read into memory to feed a Sequence."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import libcst as cst

from seqlint.analysis.effects import is_pure_array_method, is_read_only_call
from seqlint.analysis.hotpath import Phase, walk
from seqlint.findings import Applicability, Edit, Finding, Fix, Location
from seqlint.rules.base import Invalid, Rule

# Methods that change an array in place (a read-only memory map raises on them).
_IN_PLACE_METHODS = {"sort", "fill", "resize", "put", "itemset", "setflags", "partition", "byteswap", "setfield"}
# Functions that write into their first argument.
_WRITING_FUNCTIONS = {"numpy.random.shuffle", "random.shuffle", "numpy.copyto", "numpy.put", "numpy.place",
                      "numpy.putmask", "numpy.put_along_axis", "numpy.fill_diagonal", "sklearn.utils.shuffle"}
# Methods returning a view of their array: a write to the view writes the array.
_VIEW_METHODS = {"reshape", "view", "transpose", "swapaxes", "squeeze", "ravel", "T"}

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
in `__init__` (or a method it calls) and stored, or loaded in module or function code and passed to the
constructor of a Sequence class of the file (or of `seqkit`).
Left alone: `.npz` archives (a `.npz` path, `np.load(...)["key"]`, `with np.load(...)`),
`allow_pickle=True` (object arrays cannot be mapped), loads whose result is transformed at once
(`np.load(p) / 255` reads everything anyway: hoisting that is SEQ101's), and loads per batch, which
read the file every batch and are SEQ201's.

## Why is this bad?
The whole array is read from disk before the first batch and held in memory for the whole run; with
`use_multiprocessing=True` worker processes may each get a copy. A memory map reads pages on demand,
keeps them in the OS page cache shared by every process, and lets datasets larger than RAM train.

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
The fix adds `mmap_mode="r"`. It is safe when the array is never written to: no item or slice
assignment, in-place operator, in-place method (`sort`, `fill`, ...), `out=` argument, shuffle, or
call of unknown code that receives it (followed through local names, views, `self` attributes and the
Sequence's constructor). Otherwise it is unsafe: writing to a read-only map raises `ValueError`.
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
            "x_train = numpy.load('x_train.npy', mmap_mode=\"r\")\ny_train = numpy.load('y_train.npy', allow_pickle=False, mmap_mode=\"r\")\n"
            "train = Data(x_train, y=y_train)\n",
        ),
        # Loaded inside the constructor call.
        Invalid(
            "import numpy as np\nimport seqkit\n\nds = seqkit.MemmapSequence(np.load('x.npy'), batch_size=8)\n",
            expected=[4],
            fixed="import numpy as np\nimport seqkit\n\nds = seqkit.MemmapSequence(np.load('x.npy', mmap_mode=\"r\"), batch_size=8)\n",
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
        seen: set[int] = set()
        sequences = {seq.name: seq for seq in ctx.sequences}
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
        for scope in _plain_scopes(ctx):
            body = scope.body if isinstance(scope, cst.Module) else scope.body
            for call, target in _bound_loads(ctx, body if isinstance(scope, cst.Module) else body):
                if id(call) in seen or not isinstance(target, cst.Name):
                    continue
                constructors = _constructor_uses(ctx, scope, target.value, sequences)
                if not constructors:
                    continue
                tracker = _Tracker(ctx, sequences)
                tracker.bind(target, scope, None)
                if not tracker.stored:
                    continue  # converted or reduced on the way in (`np.asarray(ids)`): not the data itself
                seen.add(id(call))
                yield self._finding(ctx, call, tracker, f"is passed to `{constructors[0]}`")

            # `Data(np.load("x.npy"), ...)`: loaded right in the constructor call.
            for node in _scope_nodes(scope):
                if not isinstance(node, cst.Call):
                    continue
                qualname = ctx.qualified_name(node) or ""
                if qualname not in sequences and not qualname.startswith("seqkit."):
                    continue
                for arg in node.args:
                    load = arg.value
                    if not isinstance(load, cst.Call) or id(load) in seen or not _is_eager_npy_load(ctx, load):
                        continue
                    tracker = _Tracker(ctx, sequences)
                    if qualname in sequences:
                        tracker._follow_constructor(sequences[qualname], node, [arg])
                    else:
                        tracker.stored = True
                    if tracker.stored:
                        seen.add(id(load))
                        yield self._finding(ctx, load, tracker, f"is passed to `{ctx.code(node.func)}`")

    def _finding(self, ctx, call: cst.Call, tracker: _Tracker, how: str) -> Finding:
        written = ctx.code(call.func)
        message = (f"`{written}` reads the whole array into memory and {how}; "
                   "memory-map it with `mmap_mode=\"r\"`")
        if call.args:
            end = ctx.position(call.args[-1].value)[1]
            edit = Edit(', mmap_mode="r"', end, end)
        else:
            return ctx.report(self, call, message=message)
        if tracker.writes:
            row, reason = min(tracker.writes)
            fix = Fix(Applicability.UNSAFE,
                      f"Add `mmap_mode=\"r\"` (unsafe: line {row}: the array is {reason}, and a read-only map "
                      "refuses writes)", (edit,))
        else:
            fix = Fix(Applicability.SAFE, "Add `mmap_mode=\"r\"`", (edit,))
        return ctx.report(self, call, message=message, fix=fix)


# -- which loads --------------------------------------------------------------------------------------

def _is_eager_npy_load(ctx, call: cst.Call) -> bool:
    if ctx.qualified_name(call) != "numpy.load":
        return False
    positional = [a for a in call.args if a.keyword is None and not a.star]
    keywords = {a.keyword.value: a.value for a in call.args if a.keyword is not None}
    if any(a.star for a in call.args) or not positional and "file" not in keywords:
        return False
    if "mmap_mode" in keywords or len(positional) > 1:
        return False
    pickle = keywords.get("allow_pickle")
    if pickle is not None and not (isinstance(pickle, cst.Name) and pickle.value == "False"):
        return False
    path = positional[0].value if positional else keywords["file"]
    return ".npz" not in ctx.code(path)


def _bound_loads(ctx, body) -> Iterable[tuple[cst.Call, cst.BaseExpression]]:
    """(load call, what it is bound to) for `target = np.load(...)` statements, tuples included."""
    statements = body.body if isinstance(body, cst.BaseSuite) else body
    for stmt in statements:
        for node in walk(stmt):
            if isinstance(node, (cst.FunctionDef, cst.ClassDef)) and node is not stmt:
                continue
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


def _plain_scopes(ctx) -> list:
    """The module and the functions outside Sequence classes (scripts building datasets)."""
    sequence_nodes = {id(seq.node) for seq in ctx.sequences}
    scopes: list = [ctx.module]
    for node in walk(ctx.module):
        if isinstance(node, cst.FunctionDef) and not any(
            id(a) in sequence_nodes for a in ctx.ancestors(node)
        ):
            scopes.append(node)
    return scopes


def _constructor_uses(ctx, scope, name: str, sequences) -> list[str]:
    found = []
    for node in _scope_nodes(scope):
        if isinstance(node, cst.Call) and any(
            isinstance(root := _root(a.value), cst.Name) and root.value == name for a in node.args
        ):
            qualname = ctx.qualified_name(node) or ""
            if qualname in sequences or qualname.startswith("seqkit."):
                found.append(ctx.code(node.func))
    return found


def _scope_nodes(scope):
    """Nodes of a function or module body, not descending into nested functions or classes."""
    body = scope.body
    stack = list(body.body if isinstance(body, cst.BaseSuite) else body)
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
            self._scan(method, set(), {attr}, seq, method)

    def _follow_names(self, scope, names: set[str], seq) -> None:
        key = (id(scope), "names", frozenset(names))
        if key in self._done:
            return
        self._done.add(key)
        self._scan(scope, names, set(), seq, scope)

    def _refers(self, expr: cst.BaseExpression, names: set[str], attrs: set[str]) -> bool:
        root = _root(expr)
        if isinstance(root, cst.Name):
            return root.value in names
        attr = _self_attr(root) if root is not None else None
        return attr is not None and attr in attrs

    def _scan(self, scope, names: set[str], attrs: set[str], seq, function) -> None:
        nodes = list(_scope_nodes(scope))
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
                                self.stored = True
                                self._follow_attr(seq, a)
                            else:
                                self._unknown(bound, "stored where seqlint cannot follow it")
                if isinstance(node, cst.For) and self._refers(node.iter, names, attrs):
                    for bound in _flatten(node.target):
                        if isinstance(bound, cst.Name) and bound.value not in names:
                            names.add(bound.value)
                            changed = True
        for node in nodes:
            self._check_write(node, names, attrs, seq, function)

    def _check_write(self, node, names, attrs, seq, function) -> None:
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
            self._check_call(node, names, attrs, seq, refers)
        elif isinstance(node, (cst.Return, cst.Yield)) and node.value is not None:
            returned = node.value
            if function is not None and getattr(function, "name", None) is not None and function.name.value == "__getitem__":
                return  # handed to Keras, which only reads it
            if any(refers(e) for e in _flatten(returned)):
                self._unknown(node, f"returned by `{function.name.value}` to code that may write to it")

    def _check_call(self, call: cst.Call, names, attrs, seq, refers) -> None:
        ctx = self.ctx
        func = call.func
        for arg in call.args:
            if arg.keyword is not None and arg.keyword.value == "out" and any(refers(e) for e in _flatten(arg.value)):
                self._unknown(call)
                return
        if isinstance(func, cst.Attribute) and refers(func.value):
            method = func.attr.value
            if method in _IN_PLACE_METHODS:
                self._unknown(call)
            return  # other methods of the array read it (astype, copy, mean, ...)
        passed = [a for a in call.args if refers(a.value)]
        if not passed:
            return
        qualname = ctx.qualified_name(call) or ""
        if qualname in _WRITING_FUNCTIONS or qualname.endswith(".at") or (
            isinstance(func, cst.Attribute) and func.attr.value == "shuffle"
        ):
            self._unknown(call)
        elif qualname in self.sequences:
            self._follow_constructor(self.sequences[qualname], call, passed)
        elif qualname.startswith("seqkit."):
            self.stored = True  # seqkit's datasets hold the arrays they are given and never write to them
        elif is_read_only_call(qualname):
            return
        elif isinstance(func, cst.Attribute) and is_pure_array_method(func.attr.value):
            return
        else:
            self._unknown(call, f"passed to `{ctx.code(func)}`, which may write to it")

    def _follow_constructor(self, seq, call: cst.Call, passed: list[cst.Arg]) -> None:
        init = seq.methods.get("__init__")
        if init is None:
            self._unknown(call, f"passed to `{seq.name}`, whose `__init__` is not in this file")
            return
        params = [p.name.value for p in (*init.params.posonly_params, *init.params.params)][1:]
        positional = [a for a in call.args if a.keyword is None and not a.star]
        bound: set[str] = set()
        for arg in passed:
            if arg.star:
                self._unknown(call, f"passed to `{seq.name}` in a way seqlint cannot follow")
                return
            if arg.keyword is not None:
                bound.add(arg.keyword.value)
            else:
                index = positional.index(arg)
                if index >= len(params):
                    self._unknown(call, f"passed to `{seq.name}` in a way seqlint cannot follow")
                    return
                bound.add(params[index])
        self._follow_names(init, bound, seq)


def _self_attr(expr: cst.BaseExpression | None) -> str | None:
    if isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name) and expr.value.value == "self":
        return expr.attr.value
    return None


def _root(expr: cst.BaseExpression):
    """The array an expression is (a view of): strips subscripts, `.T`, and view methods."""
    while True:
        if _self_attr(expr) is not None or isinstance(expr, cst.Name):
            return expr
        if isinstance(expr, cst.Subscript):
            expr = expr.value
        elif isinstance(expr, cst.Attribute) and expr.attr.value in _VIEW_METHODS:
            expr = expr.value
        elif (isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute)
              and expr.func.attr.value in _VIEW_METHODS):
            expr = expr.func.value
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
