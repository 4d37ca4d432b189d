"""SEQ303 legacy-fit-arguments: Keras 2 training calls that Keras 3 rejects."""

from __future__ import annotations

from collections.abc import Iterable

import libcst as cst

from seqlint.analysis.hotpath import walk
from seqlint.findings import Applicability, Edit, Finding, Fix, Location
from seqlint.rules.base import Invalid, Rule

_RENAMED = {"fit_generator": "fit", "evaluate_generator": "evaluate", "predict_generator": "predict"}
_TRAINING = {"fit", "evaluate", "predict"}
_WORKER_ARGS = ("workers", "use_multiprocessing", "max_queue_size")

# Positional parameters of the Keras 2 `*_generator` methods after `generator`: in Keras 3 the same
# positions mean something else (`fit(x, y, batch_size, ...)`), so they become keywords.
_LEGACY_POSITIONAL = {
    "fit_generator": ("steps_per_epoch", "epochs", "verbose", "callbacks", "validation_data",
                      "validation_steps", "validation_freq", "class_weight", "max_queue_size", "workers",
                      "use_multiprocessing", "shuffle", "initial_epoch"),
    "evaluate_generator": ("steps", "callbacks", "max_queue_size", "workers", "use_multiprocessing",
                           "verbose"),
    "predict_generator": ("steps", "callbacks", "max_queue_size", "workers", "use_multiprocessing",
                          "verbose"),
}


class LegacyFitArguments(Rule):
    code = "SEQ303"
    name = "legacy-fit-arguments"
    summary = "`fit_generator` and friends, or worker arguments to `fit` (removed in Keras 3)"
    fix_availability = "always"
    module_wide = True
    module_wide_tokens = ("_generator", "workers", "use_multiprocessing", "max_queue_size")
    docs = """
## What it does
Flags `model.fit_generator`, `model.evaluate_generator` and `model.predict_generator` calls, and
`workers=`, `use_multiprocessing=` or `max_queue_size=` passed to `fit`, `evaluate` or `predict`,
anywhere in the file (a training script needs no Sequence class of its own to be affected). Worker
arguments are left alone in files that train with Keras 2 (`tf_keras`, or a dataset class of the file
built on a Keras 2 `Sequence`), where `fit` still takes them.

## Why is this bad?
Keras 3 removed the `*_generator` methods, and its `fit`, `evaluate` and `predict` reject the worker
arguments with a `TypeError`: the script stops working on upgrade. In Keras 3 the parallelism of a
`PyDataset` belongs to the dataset itself: `MyDataset(..., workers=4, use_multiprocessing=True)`,
forwarded by `super().__init__(**kwargs)` (see SEQ302).

## Example
```python
train = ImageSequence(paths, labels, batch_size=32)
model.fit_generator(train, 100, epochs=10, workers=4, use_multiprocessing=True)
```

## Use instead
```python
train = ImageSequence(paths, labels, batch_size=32, workers=4, use_multiprocessing=True)
model.fit(train, steps_per_epoch=100, epochs=10)
```

## Fix safety
Safe: the rename keeps every argument (positional ones after the generator become keywords, and
`evaluate`/`predict` keep the old default `verbose=0`). The worker arguments move to the dataset's
constructor call when it is in the same function and its class (in this file) accepts `**kwargs`;
otherwise they are removed and a comment above the call says where they belong. Only parallelism
changes, never which batches are produced.
"""

    valid = [
        "model.fit(train_seq, epochs=3)\n",
        "model.fit(x, y, batch_size=32, epochs=2)\n",
        # Another library's methods with the same names but no worker arguments.
        "clf.fit(X, y)\nclf.predict(X)\n",
        # Worker arguments of a PyDataset constructor are where they belong.
        "ds = MyData(x, workers=4, use_multiprocessing=True)\nmodel.fit(ds)\n",
        # A Keras 2 (tf_keras) generator: its fit() still takes workers.
        (
            "import tf_keras\n"
            "class Old(tf_keras.utils.Sequence):\n"
            "    def __len__(self):\n        return 1\n"
            "    def __getitem__(self, i):\n        return i\n"
            "model.fit(Old(), workers=2)\n"
        ),
        # A script training with tf_keras (Keras 2), whose fit still takes the worker arguments.
        "import tf_keras as keras\nfrom data import Clips\n\nmodel.fit(Clips('train'), workers=4)\n",
        # A function merely named like the legacy method.
        "def fit_generator(gen):\n    return gen\nfit_generator(g)\n",
    ]
    invalid = [
        Invalid(
            "model.fit_generator(gen, epochs=3)\n",
            expected=[1],
            fixed="model.fit(gen, epochs=3)\n",
        ),
        Invalid(
            "history = model.fit_generator(train, 100, 5, validation_data=val)\n",
            expected=[1],
            fixed="history = model.fit(train, steps_per_epoch=100, epochs=5, validation_data=val)\n",
        ),
        Invalid(
            "preds = model.predict_generator(generator=test_gen, steps=4)\n",
            expected=[1],
            fixed="preds = model.predict(x=test_gen, steps=4, verbose=0)\n",
        ),
        # Moved into the constructor of a same-file PyDataset that accepts **kwargs.
        Invalid(
            "import keras\n"
            "class Data(keras.utils.PyDataset):\n"
            "    def __init__(self, x, **kwargs):\n"
            "        super().__init__(**kwargs)\n"
            "        self.x = x\n"
            "    def __len__(self):\n        return 1\n"
            "    def __getitem__(self, i):\n        return self.x\n"
            "def train(model, x):\n"
            "    data = Data(x)\n"
            "    model.fit(data, epochs=2, workers=4, use_multiprocessing=True)\n",
            expected=[12],
            fixed="import keras\n"
            "class Data(keras.utils.PyDataset):\n"
            "    def __init__(self, x, **kwargs):\n"
            "        super().__init__(**kwargs)\n"
            "        self.x = x\n"
            "    def __len__(self):\n        return 1\n"
            "    def __getitem__(self, i):\n        return self.x\n"
            "def train(model, x):\n"
            "    data = Data(x, workers=4, use_multiprocessing=True)\n"
            "    model.fit(data, epochs=2)\n",
        ),
        # Dataset constructed inline.
        Invalid(
            "from keras.utils import PyDataset\n"
            "class Data(PyDataset):\n"
            "    def __len__(self):\n        return 1\n"
            "    def __getitem__(self, i):\n        return i\n"
            "model.fit_generator(Data(), max_queue_size=20)\n",
            expected=[7],
            fixed="from keras.utils import PyDataset\n"
            "class Data(PyDataset):\n"
            "    def __len__(self):\n        return 1\n"
            "    def __getitem__(self, i):\n        return i\n"
            "model.fit(Data(max_queue_size=20))\n",
        ),
        # Dataset from elsewhere: the arguments are removed and a comment says where they go.
        Invalid(
            "def run(model, seq):\n"
            "    model.fit(seq,\n"
            "              epochs=5,\n"
            "              workers=8)\n",
            expected=[2],
            fixed="def run(model, seq):\n"
            "    # seqlint: in Keras 3 pass workers=8 to the dataset's constructor (a PyDataset that calls super().__init__(**kwargs)).\n"
            "    model.fit(seq,\n"
            "              epochs=5)\n",
        ),
        Invalid("model.evaluate_generator(val_gen, 10)\n", expected=[1],
                fixed="model.evaluate(val_gen, steps=10, verbose=0)\n"),
    ]

    def check(self, ctx) -> Iterable[Finding]:
        if not any(token in ctx.source for token in self.module_wide_tokens):
            return  # cheap text check before walking the module
        for call, statement, scope in _training_calls(ctx):
            finding = self._finding(ctx, call, statement, scope)
            if finding is not None:
                yield finding

    # ------------------------------------------------------------------------------------------
    def _finding(self, ctx, call: cst.Call, statement: cst.CSTNode, scope: _Scope) -> Finding | None:
        method = call.func.attr.value
        worker_args = [a for a in call.args if a.keyword is not None and a.keyword.value in _WORKER_ARGS]
        if method in _TRAINING:
            if not worker_args:
                return None
            if _dataset_class(ctx, _dataset_arg(call), scope) == "legacy" or _keras2_module(ctx):
                return None  # tf_keras / Keras 2: fit() still takes these
        parts = []
        if method in _RENAMED:
            parts.append(f"`{method}` was removed in Keras 3: use `{_RENAMED[method]}`")
        if worker_args:
            names = ", ".join(f"`{a.keyword.value}`" for a in worker_args)
            parts.append(f"{names} belong to the dataset's constructor in Keras 3, not to `{_RENAMED.get(method, method)}`")
        message = "; ".join(parts)
        fix = self._fix(ctx, call, statement, scope, method, worker_args)
        return ctx.report(self, call, message=message, fix=fix)

    def _fix(self, ctx, call, statement, scope, method, worker_args) -> Fix:
        # Text edits, not re-rendered nodes: everything the fix does not change keeps its formatting.
        edits: list[Edit] = []
        notes = []
        if method in _RENAMED:
            edits.extend(_rename_edits(ctx, call, method))
            notes.append(f"use `{_RENAMED[method]}`")
        if worker_args:
            edits.extend(_removal_edits(ctx, call, _WORKER_ARGS))
            moved_text = ", ".join(_arg_text(ctx, a) for a in worker_args)
            target = _constructor_for(ctx, call, scope)
            if target is None:
                indent, row = _statement_indent(ctx, statement)
                comment = (f"{indent}# seqlint: in Keras 3 pass {moved_text} to the dataset's constructor "
                           "(a PyDataset that calls super().__init__(**kwargs)).\n")
                edits.append(Edit(comment, Location(row, 1), Location(row, 1)))
                notes.append("remove the worker arguments")
            else:
                present = {a.keyword.value for a in target.args if a.keyword is not None}
                missing = [a for a in worker_args if a.keyword.value not in present]
                if missing:
                    edits.append(_append_args_edit(ctx, target, ", ".join(_arg_text(ctx, a) for a in missing)))
                notes.append("move the worker arguments to the dataset's constructor")
        edits.sort(key=lambda e: (e.location, e.end_location))
        message = notes[0][0].upper() + notes[0][1:] + "".join(f", {n}" for n in notes[1:])
        return Fix(Applicability.SAFE, message, tuple(edits))


class _Scope:
    """Assignments `name = Call(...)` seen so far in one function body (or the module)."""

    def __init__(self) -> None:
        self.constructed: dict[str, cst.Call] = {}


def _training_calls(ctx) -> list[tuple[cst.Call, cst.CSTNode, _Scope]]:
    """Training calls in source order, each with its statement and the constructions seen before it in
    its function (or the module). Iterative: generated modules nest deeper than Python's stack."""
    scopes: dict[int, _Scope] = {}
    found = []
    for node in walk(ctx.module):
        if isinstance(node, cst.Assign):
            if (len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name)
                    and isinstance(node.value, cst.Call) and isinstance(node.value.func, cst.Name)):
                scope = scopes.setdefault(id(ctx.enclosing_function(node)), _Scope())
                scope.constructed[node.targets[0].target.value] = node.value
        elif isinstance(node, cst.Call):
            func = node.func
            if isinstance(func, cst.Attribute) and (func.attr.value in _RENAMED or func.attr.value in _TRAINING):
                scope = scopes.setdefault(id(ctx.enclosing_function(node)), _Scope())
                found.append((node, ctx.statement_of(node), scope))
    return found


def _keras2_module(ctx) -> bool:
    """The file trains with Keras 2 (`tf_keras`, `tensorflow.python.keras`), whose fit takes workers."""
    return any(name == "tf_keras" or name.startswith(("tf_keras.", "tensorflow.python.keras"))
               for name in ctx.imports.values())


def _dataset_arg(call: cst.Call) -> cst.BaseExpression | None:
    for arg in call.args:
        if arg.keyword is None and not arg.star:
            return arg.value
        if arg.keyword is not None and arg.keyword.value in ("x", "generator"):
            return arg.value
    return None


def _sequence_named(ctx, name: str):
    for seq in ctx.sequences:
        if seq.name == name:
            return seq
    return None


def _dataset_class(ctx, dataset, scope: _Scope) -> str | None:
    """"legacy" / "keras3" when the dataset is built from a Sequence class of this file, else None."""
    call = dataset
    if isinstance(dataset, cst.Name):
        call = scope.constructed.get(dataset.value)
    if not isinstance(call, cst.Call) or not isinstance(call.func, cst.Name):
        return None
    seq = _sequence_named(ctx, call.func.value)
    if seq is None:
        return None
    return "keras3" if seq.keras3 else "legacy"


def _accepts_worker_kwargs(seq) -> bool:
    init = seq.methods.get("__init__")
    if init is None:
        return seq.keras3  # PyDataset.__init__ itself takes them
    return isinstance(init.params.star_kwarg, cst.Param)


def _constructor_for(ctx, call: cst.Call, scope: _Scope):
    """The dataset constructor call the worker arguments can move to (inline or assigned), or None."""
    dataset = _dataset_arg(call)
    target = dataset
    if isinstance(dataset, cst.Name):
        target = scope.constructed.get(dataset.value)
    if not isinstance(target, cst.Call) or not isinstance(target.func, cst.Name):
        return None
    seq = _sequence_named(ctx, target.func.value)
    if seq is None or not seq.keras3 or not _accepts_worker_kwargs(seq):
        return None
    return target


def _rename_edits(ctx, call: cst.Call, method: str) -> list[Edit]:
    legacy = _LEGACY_POSITIONAL[method]
    edits = [Edit(_RENAMED[method], *ctx.position(call.func.attr))]
    positional = 0
    has_verbose = False
    for arg in call.args:
        if arg.keyword is None and not arg.star:
            if 0 < positional <= len(legacy):
                keyword = legacy[positional - 1]
                has_verbose |= keyword == "verbose"
                start = ctx.position(arg.value)[0]
                edits.append(Edit(f"{keyword}=", start, start))
            positional += 1
        elif arg.keyword is not None:
            has_verbose |= arg.keyword.value == "verbose"
            if arg.keyword.value == "generator":
                edits.append(Edit("x", *ctx.position(arg.keyword)))
        elif arg.star == "**":
            has_verbose = True  # might be in there; do not risk a duplicate keyword
    if method != "fit_generator" and not has_verbose:
        edits.append(_append_args_edit(ctx, call, "verbose=0"))  # the old methods' quiet default
    return edits


def _arg_text(ctx, arg: cst.Arg) -> str:
    start = ctx.position(arg.keyword if arg.keyword is not None else arg.value)[0]
    end = ctx.position(arg.value)[1]
    lines = ctx.source.splitlines(keepends=True)
    if start.row == end.row:
        return lines[start.row - 1][start.column - 1 : end.column - 1]
    return ctx.code(arg.with_changes(comma=cst.MaybeSentinel.DEFAULT))


def _append_args_edit(ctx, call: cst.Call, text: str) -> Edit:
    """Add `text` (keyword arguments) after the last argument of `call`."""
    if call.args:
        end = ctx.position(call.args[-1].value)[1]
        return Edit(f", {text}", end, end)
    end = ctx.position(call)[1]
    before_paren = Location(end.row, end.column - 1)
    return Edit(text, before_paren, before_paren)


def _removal_edits(ctx, call: cst.Call, names: tuple[str, ...]) -> list[Edit]:
    """Delete the keyword arguments `names`, each with the comma that separates it from its neighbour."""
    args = list(call.args)
    edits = []
    previous_end = None  # end of the argument before, once one is kept
    for index, arg in enumerate(args):
        removed = arg.keyword is not None and arg.keyword.value in names
        if not removed:
            previous_end = ctx.position(arg.value)[1]
            continue
        if previous_end is not None:
            start, end = previous_end, ctx.position(arg.value)[1]
            previous_end = end
        else:  # leading arguments: take the comma after them instead
            start = ctx.position(arg.keyword)[0]
            if index + 1 < len(args):
                following = args[index + 1]
                end = ctx.position(following.keyword if following.keyword is not None else following.value)[0]
            else:
                end = ctx.position(arg.value)[1]
        edits.append(Edit("", start, end))
    return edits


def _statement_indent(ctx, statement: cst.CSTNode) -> tuple[str, int]:
    start, _ = ctx.position(statement)
    line = ctx.source.splitlines()[start.row - 1]
    return line[: len(line) - len(line.lstrip())], start.row
