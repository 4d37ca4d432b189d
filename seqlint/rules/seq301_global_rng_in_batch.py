"""SEQ301 global-rng-in-batch: per-batch randomness drawn from the process-global generators."""

from __future__ import annotations

from collections.abc import Iterable

import libcst as cst

from seqlint.analysis.effects import (
    generator_equivalent,
    python_int_draw,
    is_global_rng_call,
    is_rng_seeding_call,
    takes_shape_varargs,
)
from seqlint.analysis.hotpath import Phase, names_in, walk
from seqlint.findings import Applicability, Edit, Finding, Fix, Location
from seqlint.fixes import ensure_import, indentation_of, insert_lines_after, insert_lines_before, is_docstring, source_lines
from seqlint.rules.base import Invalid, Rule

# Attributes the fix adds: the entropy generators are derived from, and the epoch they are drawn in.
_SEED = "rng_seed"
_EPOCH = "rng_epoch"

_HEAD = "import numpy as np\nimport keras\n\n"
_CLASS = "class Noisy(keras.utils.PyDataset):\n"
_INIT = "    def __init__(self, x, **kwargs):\n        super().__init__(**kwargs)\n        self.x = x\n\n"
_LEN = "    def __len__(self):\n        return len(self.x)\n\n"
_FIXED_INIT = ("    def __init__(self, x, seed=None, **kwargs):\n        super().__init__(**kwargs)\n"
               "        self.rng_seed = np.random.SeedSequence(seed).entropy\n        self.rng_epoch = 0\n"
               "        self.x = x\n\n")
_RNG_LINE = "        rng = np.random.default_rng([self.rng_seed, self.rng_epoch, index])\n"
_EPOCH_END = "\n    def on_epoch_end(self):\n        self.rng_epoch += 1\n"


class GlobalRngInBatch(Rule):
    code = "SEQ301"
    name = "global-rng-in-batch"
    summary = "per-batch code draws from the global random generator"
    fix_availability = "sometimes"
    docs = """
## What it does
Flags calls to the process-global random generators, numpy's legacy `np.random.*` functions
(`rand`, `randint`, `normal`, `shuffle`, `seed`, ...), Python's `random.*` and TensorFlow's stateful
`tf.random.*`, in per-batch code: `__getitem__` and the methods and module functions it calls.
However it is imported (`from numpy import random as npr`, `from random import randint`).
Explicit generators (`rng = np.random.default_rng(seed)`, `random.Random(seed)`) are fine.
`on_epoch_end` is not flagged: Keras runs it once per epoch in the main process, so its draws are
neither duplicated across workers nor racing with them (seed the process if you need it repeatable).

## Why is this bad?
With `use_multiprocessing=True` every worker process starts with a copy of the same global state, so
workers produce the *same* "random" augmentations; with thread workers they race on one state. Either
way the batches depend on the number of workers and on scheduling, and a run cannot be reproduced.

## Example
```python
def __getitem__(self, index):
    x = self.x[index * 32:(index + 1) * 32]
    return x + np.random.normal(0, 0.1, x.shape), self.y[index * 32:(index + 1) * 32]
```

## Use instead
A generator per batch, derived from the dataset's seed, the epoch and the batch index, so the numbers
depend on neither the worker that computes the batch nor the order batches are computed in, and
change from epoch to epoch:
```python
def __init__(self, x, y, seed=None, **kwargs):
    super().__init__(**kwargs)
    self.rng_seed = np.random.SeedSequence(seed).entropy
    self.rng_epoch = 0
    ...

def on_epoch_end(self):
    self.rng_epoch += 1

def __getitem__(self, index):
    rng = np.random.default_rng([self.rng_seed, self.rng_epoch, index])
    x = self.x[index * 32:(index + 1) * 32]
    return x + rng.normal(0, 0.1, x.shape), self.y[index * 32:(index + 1) * 32]
```
`SeedSequence(seed).entropy` is the seed itself when one is given, and fresh entropy drawn once in
the building process when not, so even an unseeded dataset gives every worker the same generator for
a batch. `seqkit` datasets derive their per-batch generators the same way.

## Fix safety
Unsafe: the random stream changes (different numbers, same distributions). The fix rewrites every
global-RNG call of `__getitem__` at once (the finding on its first call carries it), adds
`seed=None` and the two attributes to `__init__` and the epoch counter to `on_epoch_end` (creating it
when the class has none). Offered when the calls are directly in `__getitem__` of a class with its
own `__init__`, for functions with a `Generator` equivalent (`rand` -> `random`,
`randn` -> `standard_normal`, `randint` -> `integers`, `random.gauss` -> `normal`, ...).
`random.randint(a, b)` becomes `int(rng.integers(a, b + 1))` and `random.randrange(a, b)`
`int(rng.integers(a, b))`: the same ints, both bounds kept. `random.choice` (different types),
`randrange` with a step, reseeding calls and calls in helpers are reported without a fix.
"""

    valid = [
        # An explicit, seeded generator.
        _HEAD + _CLASS + _INIT + _LEN
        + "    def __getitem__(self, index):\n        rng = np.random.default_rng((self.seed, index))\n"
        "        return self.x[index] + rng.normal(size=3)\n",
        # on_epoch_end shuffles the order once per epoch in the main process.
        _HEAD + _CLASS + _INIT + _LEN
        + "    def on_epoch_end(self):\n        np.random.shuffle(self.order)\n\n"
        "    def __getitem__(self, index):\n        return self.x[self.order[index]]\n",
        # A local variable called `random` is not the module.
        _HEAD + _CLASS + _INIT + _LEN
        + "    def __getitem__(self, index):\n        random = self.pick\n        return random.choice(self.x)\n",
        # Not a Keras Sequence.
        "import numpy as np\n\nclass Sampler:\n    def __getitem__(self, i):\n        return np.random.rand()\n",
        # random.Random instance owned by the dataset.
        "import random\nimport keras\n\nclass D(keras.utils.PyDataset):\n"
        "    def __getitem__(self, i):\n        return random.Random(i).random()\n\n"
        "    def __len__(self):\n        return 1\n",
    ]
    invalid = [
        Invalid(
            _HEAD + _CLASS + _INIT + _LEN
            + "    def __getitem__(self, index):\n"
            "        x = self.x[index * 2:(index + 1) * 2]\n"
            "        noise = np.random.normal(0, 0.1, x.shape)\n"
            "        mask = np.random.rand(2, 3) > 0.5\n"
            "        return x + noise * mask\n",
            expected=[(14, 17), 15],
            fixed=_HEAD + _CLASS + _FIXED_INIT + _LEN
            + "    def __getitem__(self, index):\n" + _RNG_LINE
            + "        x = self.x[index * 2:(index + 1) * 2]\n"
            "        noise = rng.normal(0, 0.1, x.shape)\n"
            "        mask = rng.random((2, 3)) > 0.5\n"
            "        return x + noise * mask\n" + _EPOCH_END,
        ),
        # Alias imports, docstrings kept first, Python's random module mapped too, on_epoch_end extended.
        Invalid(
            "import random\nfrom numpy import random as npr\nfrom keras.utils import Sequence\n\n"
            "class Jitter(Sequence):\n"
            '    def __init__(self, x):\n        """Rows."""\n        self.x = x\n\n'
            "    def __len__(self):\n        return 1\n\n"
            "    def on_epoch_end(self):\n        self.pass_count = 1\n\n"
            '    def __getitem__(self, i):\n        """One batch."""\n'
            "        if random.random() < 0.5:\n            return self.x[::-1]\n"
            "        return self.x * npr.uniform(0.9, 1.1)\n",
            expected=[18, 20],
            fixed="import random\nfrom numpy import random as npr\nfrom keras.utils import Sequence\nimport numpy\n\n"
            "class Jitter(Sequence):\n"
            '    def __init__(self, x, seed=None):\n        """Rows."""\n'
            "        self.rng_seed = numpy.random.SeedSequence(seed).entropy\n        self.rng_epoch = 0\n        self.x = x\n\n"
            "    def __len__(self):\n        return 1\n\n"
            "    def on_epoch_end(self):\n        self.pass_count = 1\n        self.rng_epoch += 1\n\n"
            '    def __getitem__(self, i):\n        """One batch."""\n'
            "        rng = numpy.random.default_rng([self.rng_seed, self.rng_epoch, i])\n"
            "        if rng.random() < 0.5:\n            return self.x[::-1]\n"
            "        return self.x * rng.uniform(0.9, 1.1)\n",
        ),
        # In a helper, or without a Generator equivalent: reported, no fix.
        Invalid(
            "import random\nimport numpy as np\nimport tensorflow as tf\n\n"
            "class Crops(tf.keras.utils.Sequence):\n"
            "    def crop(self, img):\n        top = np.random.randint(0, 8)\n        return img[top:top + 24]\n\n"
            "    def __getitem__(self, i):\n        np.random.seed(i)\n"
            "        k = random.randint(0, 3)\n        return self.crop(self.x[i]), k\n\n"
            "    def __len__(self):\n        return 1\n",
            expected=[7, 11, 12],
            fixed="import random\nimport numpy as np\nimport tensorflow as tf\n\n"
            "class Crops(tf.keras.utils.Sequence):\n"
            "    def crop(self, img):\n        top = np.random.randint(0, 8)\n        return img[top:top + 24]\n\n"
            "    def __getitem__(self, i):\n        np.random.seed(i)\n"
            "        k = random.randint(0, 3)\n        return self.crop(self.x[i]), k\n\n"
            "    def __len__(self):\n        return 1\n",
        ),
    ]

    def check(self, ctx) -> Iterable[Finding]:
        seen: set[int] = set()
        for func, seq, path in ctx.functions_in_phase(Phase.BATCH):
            calls = []
            for node in walk(func.body):
                if not isinstance(node, cst.Call) or id(node) in seen:
                    continue
                qualname = ctx.qualified_name(node)
                if qualname is None or qualname.startswith("self.") or not is_global_rng_call(qualname):
                    continue
                if _shadowed(ctx, func, node):
                    continue
                seen.add(id(node))
                calls.append((node, qualname))
            # One fix rewrites every call of the function (they share the generator it creates); it
            # rides on the first of them, the others point to it.
            fixable = [(c, q) for c, q in calls if _call_fixable(ctx, c, func, seq, q)]
            fix = _generator_fix(ctx, fixable, func, seq) if fixable else None
            first = fixable[0][0] if fix is not None else None
            for call, qualname in calls:
                if fix is not None and call is not first and any(call is c for c, _ in fixable):
                    row = ctx.position(first)[0].row
                    yield self._finding(ctx, call, func, path, qualname, None,
                                        f"Fixed together with the call on line {row}.")
                else:
                    yield self._finding(ctx, call, func, path, qualname, fix if call is first else None, None)

    def _finding(self, ctx, call, func, path, qualname, fix, hint) -> Finding:
        written = ctx.code(call.func)
        if is_rng_seeding_call(qualname):
            message = (f"`{written}` reseeds the global random generator per batch: worker threads race on "
                       "it and every other library sharing it is reseeded too")
        else:
            message = (f"`{written}` draws from the global random generator per batch: worker processes "
                       "repeat each other's numbers and results depend on the number of workers")
        if func.name.value != "__getitem__" and path:
            message += f" (reached from `{' -> '.join(path)}`)"
        if fix is None and hint is None:
            hint = ("Draw from a `np.random.Generator` created per batch from a constructor seed and the batch "
                    "index (`np.random.default_rng((self.seed, index))`) and pass it to helpers.")
        return ctx.report(self, call, message=message, fix=fix, hint=hint)


def _shadowed(ctx, func: cst.FunctionDef, call: cst.Call) -> bool:
    """`random = self.pick; random.choice(...)`: the head is a local variable, not the module."""
    head = ctx.code(call.func).split(".", 1)[0]
    if head in ctx.imports:
        return False
    for node in walk(func):
        if isinstance(node, cst.AssignTarget) and isinstance(node.target, cst.Name) and node.target.value == head:
            return True
        if isinstance(node, cst.Param) and node.name.value == head:
            return True
    return False


# -- the fix ------------------------------------------------------------------------------------------

def _call_fixable(ctx, call: cst.Call, func: cst.FunctionDef, seq, qualname: str) -> bool:
    return (
        (generator_equivalent(qualname) is not None or _int_draw(ctx, call, qualname, "rng") is not None)
        and seq.methods.get("__getitem__") is func
        and ctx.enclosing_function(call) is func  # not inside a nested function
    )


def _generator_fix(ctx, calls: list[tuple[cst.Call, str]], func: cst.FunctionDef, seq) -> Fix | None:
    init = seq.own_methods.get("__init__")
    if init is None or not isinstance(func.body, cst.IndentedBlock) or not isinstance(init.body, cst.IndentedBlock):
        return None
    params = func.params.params
    if len(params) < 2:
        return None
    index_name = params[1].name.value
    edits: list[Edit | None] = []

    # The generator: reuse one this fix made before, else create it first thing in __getitem__, from
    # state set up in __init__ and advanced in on_epoch_end.
    rng_name = _existing_generator(ctx, func)
    if rng_name is None:
        rng_name = _free_name(func, ("rng", "batch_rng", "rng_"))
        numpy_name = _numpy_name(ctx)
        if numpy_name is None:
            numpy_name = "numpy"
            edits.append(ensure_import(ctx, "numpy"))
        first = _first_statement_after_docstring(func.body)
        if first is None:
            return None
        line = f"{rng_name} = {numpy_name}.random.default_rng([self.{_SEED}, self.{_EPOCH}, {index_name}])"
        edits.append(insert_lines_before(ctx, first, [line]))
        state_edits = _state_in_init(ctx, init, numpy_name) + _epoch_counter(ctx, seq, func)
        if None in state_edits:
            return None
        edits.extend(state_edits)

    for call, qualname in calls:
        draw = _int_draw(ctx, call, qualname, rng_name)
        if draw is not None:
            edits.append(Edit(draw, *ctx.position(call)))
            continue
        method = generator_equivalent(qualname)
        replacement = f"{rng_name}.{method}"
        positional = [a for a in call.args if a.keyword is None and not a.star]
        if takes_shape_varargs(qualname) and len(positional) > 1:
            args = ", ".join(ctx.code(a.value) for a in positional)
            edits.append(Edit(f"{replacement}(({args}))", *ctx.position(call)))
        else:
            edits.append(Edit(replacement, *ctx.position(call.func)))
    real = tuple(e for e in edits if e is not None)
    return Fix(Applicability.UNSAFE, f"Draw from a per-batch `np.random.Generator` (`{rng_name}`)", real)


def _int_draw(ctx, call: cst.Call, qualname: str, rng_name: str) -> str | None:
    """`int(rng.integers(a, b + 1))` for `random.randint(a, b)`, `int(rng.integers(a, b))` for
    `random.randrange(a, b)`: the same range of Python ints (a step, or keywords: no rewrite)."""
    bounds = python_int_draw(qualname)
    args = [a.value for a in call.args]
    if bounds is None or any(a.keyword is not None or a.star for a in call.args):
        return None
    if bounds == "inclusive" and len(args) == 2:
        high = ctx.code(args[1])
        if not isinstance(args[1], (cst.Name, cst.Integer, cst.Attribute, cst.Call, cst.Subscript)):
            high = f"({high})"
        return f"int({rng_name}.integers({ctx.code(args[0])}, {high} + 1))"
    if bounds == "exclusive" and len(args) in (1, 2):
        return f"int({rng_name}.integers({', '.join(ctx.code(a) for a in args)}))"
    return None


def _state_in_init(ctx, init: cst.FunctionDef, numpy_name: str) -> list[Edit | None]:
    """`seed=None` in the signature; the seed's entropy and an epoch counter stored in the body.

    The entropy is drawn once, in the process that builds the dataset, so workers (processes or
    threads) all derive the same generator for a batch even when no seed is given.
    """
    if _assigns_self(init, _SEED):
        return []
    statements = list(init.body.body)
    super_call = next((stmt for stmt in statements if _is_super_init(stmt)), None)
    lines = [f"self.{_SEED} = {numpy_name}.random.SeedSequence(seed).entropy", f"self.{_EPOCH} = 0"]
    if super_call is not None:
        edits: list[Edit | None] = [insert_lines_after(ctx, super_call, lines)]
    else:
        first = _first_statement_after_docstring(init.body)
        if first is None:
            return [None]
        edits = [insert_lines_before(ctx, first, lines)]
    names = {p.name.value for p in (*init.params.posonly_params, *init.params.params, *init.params.kwonly_params)}
    if "seed" in names:
        return edits
    star_kwarg = init.params.star_kwarg
    if isinstance(star_kwarg, cst.Param):
        at = ctx.position(star_kwarg)[0]
        edits.append(Edit("seed=None, ", at, at))
        return edits
    ordered = [*init.params.posonly_params, *init.params.params]
    if isinstance(init.params.star_arg, cst.Param):
        ordered.append(init.params.star_arg)
    ordered.extend(init.params.kwonly_params)
    if not ordered:
        return [None]
    # Replace the last parameter rather than insert after it: an insertion of `**kwargs` at its end
    # (SEQ302's fix) then lands after `seed=None`, whichever fix is applied first.
    last = ordered[-1]
    start = ctx.position(last)[0]
    end = ctx.position(last.default or last.annotation or last.name)[1]
    text = _source_between(ctx, start, end)
    edits.append(Edit(f"{text}, seed=None", start, end))
    return edits


def _epoch_counter(ctx, seq, getitem: cst.FunctionDef) -> list[Edit | None]:
    """`self.rng_epoch += 1` at the end of on_epoch_end, which Keras calls between epochs."""
    own = seq.own_methods.get("on_epoch_end")
    if own is not None:
        if not isinstance(own.body, cst.IndentedBlock):
            return [None]
        return [insert_lines_after(ctx, own.body.body[-1], [f"self.{_EPOCH} += 1"])]
    class_body = seq.node.body
    if not isinstance(class_body, cst.IndentedBlock) or not isinstance(getitem.body, cst.IndentedBlock):
        return [None]
    method_indent = indentation_of(ctx, getitem)
    body_indent = indentation_of(ctx, getitem.body.body[0])
    lines = [f"{method_indent}def on_epoch_end(self):"]
    if "on_epoch_end" in seq.methods:  # inherited from a base class of this file: keep what it does
        lines.append(f"{body_indent}super().on_epoch_end()")
    lines.append(f"{body_indent}self.{_EPOCH} += 1")
    last = class_body.body[-1]
    end = ctx.position(last)[1]
    all_lines = source_lines(ctx.source)
    text = "\n" + "".join(f"{line}\n" for line in lines)
    if end.row >= len(all_lines) and not all_lines[-1].endswith("\n"):
        return [Edit("\n" + text.rstrip("\n"), Location(end.row, len(all_lines[-1]) + 1),
                     Location(end.row, len(all_lines[-1]) + 1))]
    return [Edit(text, Location(end.row + 1, 1), Location(end.row + 1, 1))]


def _is_super_init(stmt: cst.CSTNode) -> bool:
    """`super().__init__(...)` or `Base.__init__(self, ...)`: the state goes after it, so that a base
    class setting the same attributes does not overwrite them."""
    if not isinstance(stmt, cst.SimpleStatementLine) or not isinstance(stmt.body[0], cst.Expr):
        return False
    call = stmt.body[0].value
    return isinstance(call, cst.Call) and isinstance(call.func, cst.Attribute) and call.func.attr.value == "__init__"


def _assigns_self(init: cst.FunctionDef, attr: str) -> bool:
    for node in walk(init.body):
        if isinstance(node, cst.AssignTarget):
            target = node.target
            if (isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name)
                    and target.value.value == "self" and target.attr.value == attr):
                return True
    return False


def _existing_generator(ctx, func: cst.FunctionDef) -> str | None:
    """The name of a `x = np.random.default_rng(...)` this fix made at the top of `func` before."""
    for stmt in func.body.body[:3]:
        if not isinstance(stmt, cst.SimpleStatementLine) or not isinstance(stmt.body[0], cst.Assign):
            continue
        assign = stmt.body[0]
        if (len(assign.targets) == 1 and isinstance(assign.targets[0].target, cst.Name)
                and isinstance(assign.value, cst.Call)
                and ctx.qualified_name(assign.value) == "numpy.random.default_rng"
                and f"self.{_SEED}" in ctx.code(assign.value)):
            return assign.targets[0].target.value
    return None


def _free_name(func: cst.FunctionDef, candidates: tuple[str, ...]) -> str:
    used = names_in(func)
    for name in candidates:
        if name not in used:
            return name
    return candidates[-1] + "2"


def _numpy_name(ctx) -> str | None:
    for local, full in ctx.imports.items():
        if full == "numpy":
            return local
    return None


def _first_statement_after_docstring(body: cst.IndentedBlock) -> cst.CSTNode | None:
    statements = list(body.body)
    if statements and is_docstring(statements[0]):
        statements = statements[1:]
    return statements[0] if statements else None


def _source_between(ctx, start: Location, end: Location) -> str:
    lines = source_lines(ctx.source)
    if start.row == end.row:
        return lines[start.row - 1][start.column - 1 : end.column - 1]
    parts = [lines[start.row - 1][start.column - 1 :], *lines[start.row : end.row - 1], lines[end.row - 1][: end.column - 1]]
    return "".join(parts)
