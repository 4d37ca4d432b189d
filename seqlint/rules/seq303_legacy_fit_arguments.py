"""SEQ303 legacy-fit-arguments: Keras 2 training calls that Keras 3 rejects."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import libcst as cst

from seqlint.analysis.hotpath import walk
from seqlint.analysis.names import dotted_name
from seqlint.findings import Applicability, Edit, Finding, Fix, Location
from seqlint.fixes import line_of, span_with_parentheses
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
The rename is safe: it keeps every argument (positional ones after the generator become keywords,
`evaluate`/`predict` keep the old default `verbose=0`), and continuation lines aligned under the old
call's parenthesis are realigned under the new one.

The worker arguments move to the dataset's constructor call when the file shows it (`train =
DataGenerator(...)` earlier in the same function, or `fit(DataGenerator(...), workers=4)`):
- safe when the dataset's class (in this file or another checked file) is a Keras 3 dataset whose
  `__init__` takes `**kwargs` (or that has no `__init__` of its own);
- unsafe when the class does not take `**kwargs` yet (the constructor would raise a `TypeError`;
  SEQ302's safe fix adds them, after which this fix is safe) or when seqlint cannot see the class.

When the constructor call is not in the file, the arguments are removed from the call (safe: only the
parallelism changes, never which batches are produced) and a comment above it, like the fix's message,
says where they belong.
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
            "    # seqlint: in Keras 3 pass workers=8 to the constructor of the dataset `seq` (a PyDataset whose __init__ passes **kwargs to super().__init__).\n"
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
            if _dataset_class(ctx, _dataset_arg(call), scope).kind == "legacy" or _keras2_module(ctx):
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
        applicability = Applicability.SAFE
        removed = _removal_edits(ctx, call, _WORKER_ARGS) if worker_args else []
        if method in _RENAMED:
            edits.extend(_rename_edits(ctx, call, method, removed))
            notes.append(f"use `{_RENAMED[method]}`")
        if worker_args:
            edits.extend(removed)
            moved_text = ", ".join(_arg_text(ctx, a) for a in worker_args)
            target = _constructor_for(ctx, call, scope)
            if target is None:
                where = _dataset_description(ctx, call)
                indent, row = _statement_indent(ctx, statement)
                comment = (f"{indent}# seqlint: in Keras 3 pass {moved_text} to the constructor of {where} "
                           "(a PyDataset whose __init__ passes **kwargs to super().__init__).\n")
                edits.append(Edit(comment, Location(row, 1), Location(row, 1)))
                notes.append(f"remove {moved_text}: in Keras 3 they belong to the constructor of {where}, "
                             "which this file does not show (a comment above the call says so)")
            else:
                call_node, dataset = target
                present = {a.keyword.value for a in call_node.args if a.keyword is not None}
                missing = [a for a in worker_args if a.keyword.value not in present]
                if missing:
                    edits.append(_append_args_edit(ctx, call_node, ", ".join(_arg_text(ctx, a) for a in missing)))
                constructor = f"`{ctx.code(call_node.func)}(...)`"
                note = f"move {moved_text} to the dataset's constructor {constructor}"
                if dataset.kind is None:
                    applicability = Applicability.UNSAFE
                    note += (f" (unsafe: seqlint cannot see class `{ctx.code(call_node.func)}`; its __init__ "
                             "must take **kwargs and pass them to super().__init__)")
                elif not dataset.accepts_kwargs:
                    applicability = Applicability.UNSAFE
                    note += (f" (unsafe: `{dataset.name}.__init__` takes no **kwargs yet; SEQ302's fix adds "
                             "them, after which this fix is safe)")
                notes.append(note)
        edits.sort(key=lambda e: (e.location, e.end_location))
        message = notes[0][0].upper() + notes[0][1:] + "".join(f"; {n}" for n in notes[1:])
        return Fix(applicability, message, tuple(edits))


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
                    and isinstance(node.value, cst.Call) and dotted_name(node.value.func) is not None):
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


@dataclass(frozen=True)
class _Dataset:
    """What seqlint knows of the class a dataset is built from."""

    name: str = ""
    kind: str | None = None  # "keras3", "legacy", or None: not a class seqlint can see
    accepts_kwargs: bool = False  # its __init__ takes **kwargs (or it has none of its own)


def _dataset_class(ctx, dataset, scope: _Scope) -> _Dataset:
    """The class of the dataset passed to fit: `Data(...)` inline or `d = Data(...)` earlier."""
    call = dataset
    if isinstance(dataset, cst.Name):
        call = scope.constructed.get(dataset.value)
    if not isinstance(call, cst.Call):
        return _Dataset()
    written = dotted_name(call.func)
    if written is None:
        return _Dataset()
    if written not in ctx.imports:
        for seq in ctx.sequences:
            if seq.name == written:
                init = seq.methods.get("__init__")
                accepts = init is None or isinstance(init.params.star_kwarg, cst.Param)
                if init is None and seq.external_methods.get("__init__") is not None:
                    accepts = seq.external_methods["__init__"].star_kwargs
                return _Dataset(seq.name, "keras3" if seq.keras3 else "legacy", accepts)
    if ctx.project is not None:
        qualname = ctx.qualified_name(call.func) or written
        summary = ctx.project.resolve(qualname, ctx.filename)
        if summary is not None:
            base = ctx.project.keras_base(summary)
            if base is not None:
                init = ctx.project.inherited_methods(summary).get("__init__")
                accepts = init is None or init.star_kwargs
                return _Dataset(summary.name, "keras3" if base[1] else "legacy", accepts)
    return _Dataset(written)


def _constructor_for(ctx, call: cst.Call, scope: _Scope) -> tuple[cst.Call, _Dataset] | None:
    """The dataset constructor call the worker arguments can move to (inline or assigned), or None."""
    dataset = _dataset_arg(call)
    target = dataset
    if isinstance(dataset, cst.Name):
        target = scope.constructed.get(dataset.value)
    if not isinstance(target, cst.Call) or dotted_name(target.func) is None:
        return None
    info = _dataset_class(ctx, target, scope)
    if info.kind == "legacy":
        return None
    return target, info


def _dataset_description(ctx, call: cst.Call) -> str:
    dataset = _dataset_arg(call)
    if dataset is None:
        return "the dataset"
    return f"the dataset `{ctx.code(dataset)}`"


def _rename_edits(ctx, call: cst.Call, method: str, removed: list[Edit]) -> list[Edit]:
    legacy = _LEGACY_POSITIONAL[method]
    edits = [Edit(_RENAMED[method], *ctx.position(call.func.attr))]
    positional = 0
    has_verbose = False
    for arg in call.args:
        if arg.keyword is None and not arg.star:
            if 0 < positional <= len(legacy):
                keyword = legacy[positional - 1]
                has_verbose |= keyword == "verbose"
                start = span_with_parentheses(ctx, arg.value)[0]
                edits.append(Edit(f"{keyword}=", start, start))
            positional += 1
        elif arg.keyword is not None:
            has_verbose |= arg.keyword.value == "verbose"
            if arg.keyword.value == "generator":
                edits.append(Edit("x", *ctx.position(arg.keyword)))
        elif arg.star:
            has_verbose = True  # might be in there; do not risk a duplicate keyword
    if method != "fit_generator" and not has_verbose:
        edits.append(_append_args_edit(ctx, call, "verbose=0"))  # the old methods' quiet default
    edits += _realign_edits(ctx, call, len(_RENAMED[method]) - len(method), removed)
    return edits


def _realign_edits(ctx, call: cst.Call, shift: int, removed: list[Edit]) -> list[Edit]:
    """Arguments aligned under the old call's opening parenthesis, moved by `shift` columns so they stay
    aligned under the renamed call's: `model.fit_generator(gen,\n                    epochs=3)`."""
    args = [a for a in call.args]
    if not args or shift == 0:
        return []
    paren_row = ctx.position(call.func)[1].row
    first = _arg_start(ctx, args[0])
    if first.row != paren_row:
        return []  # hanging indentation (arguments on the lines below): nothing is aligned to the name
    edits = []
    previous_end = _arg_end(ctx, args[0])
    for arg in args[1:]:
        start = _arg_start(ctx, arg)
        line = line_of(ctx, start.row)
        if start.row > previous_end.row and start.column == first.column and not line[: start.column - 1].strip():
            line_start, arg_start = Location(start.row, 1), start
            if not any(e.location <= arg_start and line_start <= e.end_location for e in removed):
                edits.append(Edit(" " * max(0, start.column - 1 + shift), line_start, arg_start))
        previous_end = _arg_end(ctx, arg)
    return edits


def _arg_start(ctx, arg: cst.Arg) -> Location:
    if arg.keyword is not None:
        return ctx.position(arg.keyword)[0]
    if arg.star:
        return ctx.position(arg)[0]
    return span_with_parentheses(ctx, arg.value)[0]


def _arg_end(ctx, arg: cst.Arg) -> Location:
    return span_with_parentheses(ctx, arg.value)[1]


def _arg_text(ctx, arg: cst.Arg) -> str:
    start, end = _arg_start(ctx, arg), _arg_end(ctx, arg)
    if start.row == end.row:
        return line_of(ctx, start.row)[start.column - 1 : end.column - 1]
    return ctx.code(arg.with_changes(comma=cst.MaybeSentinel.DEFAULT))


def _append_args_edit(ctx, call: cst.Call, text: str) -> Edit:
    """Add `text` (keyword arguments) after the last argument of `call` (after its parentheses, before
    a trailing comma)."""
    if call.args:
        end = _arg_end(ctx, call.args[-1])
        return Edit(f", {text}", end, end)
    end = ctx.position(call)[1]
    before_paren = Location(end.row, end.column - 1)
    return Edit(text, before_paren, before_paren)


def _removal_edits(ctx, call: cst.Call, names: tuple[str, ...]) -> list[Edit]:
    """Delete the keyword arguments `names`, each with the comma that separates it from its neighbour.

    A comment between the previous argument and a removed last one stays (the previous argument then
    keeps its trailing comma, which Python allows): `epochs=5,  # five` loses nothing.
    """
    args = list(call.args)
    edits = []
    previous_end = None  # end of the argument before, once one is kept
    for index, arg in enumerate(args):
        removed = arg.keyword is not None and arg.keyword.value in names
        if not removed:
            previous_end = _arg_end(ctx, arg)
            continue
        start, end = _arg_start(ctx, arg), _arg_end(ctx, arg)
        following = next((a for a in args[index + 1:]), None)
        if following is not None:
            # Up to the next argument: the comma and the space (or line break) after this one go too.
            edits.append(Edit("", start, _arg_start(ctx, following)))
            continue
        if previous_end is not None and "#" not in _between(ctx, previous_end, start):
            edits.append(Edit("", previous_end, end))
        else:
            comma = arg.comma
            edits.append(Edit("", start, ctx.position(comma)[1] if isinstance(comma, cst.Comma) else end))
    return _merged(edits)


def _between(ctx, start: Location, end: Location) -> str:
    if start.row == end.row:
        return line_of(ctx, start.row)[start.column - 1 : end.column - 1]
    parts = [line_of(ctx, start.row)[start.column - 1:]]
    parts += [line_of(ctx, row) for row in range(start.row + 1, end.row)]
    parts.append(line_of(ctx, end.row)[: end.column - 1])
    return "".join(parts)


def _merged(edits: list[Edit]) -> list[Edit]:
    """Deletions that touch or overlap become one (two removed arguments in a row)."""
    out: list[Edit] = []
    for edit in sorted(edits, key=lambda e: (e.location, e.end_location)):
        if out and edit.location <= out[-1].end_location:
            last = out[-1]
            out[-1] = Edit("", last.location, max(last.end_location, edit.end_location))
        else:
            out.append(edit)
    return out


def _statement_indent(ctx, statement: cst.CSTNode) -> tuple[str, int]:
    start, _ = ctx.position(statement)
    line = line_of(ctx, start.row)
    return line[: len(line) - len(line.lstrip())], start.row
