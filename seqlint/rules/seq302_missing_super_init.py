"""SEQ302 missing-super-init: a Keras 3 PyDataset whose `__init__` drops the worker arguments."""

from __future__ import annotations

from collections.abc import Iterable

import libcst as cst

from seqlint.analysis.names import dotted_name
from seqlint.findings import Applicability, Edit, Finding, Fix, Location
from seqlint.fixes import is_docstring, line_of, replace_rendered
from seqlint.rules.base import Invalid, Rule

_WORKER_ARGS = {"workers", "use_multiprocessing", "max_queue_size"}

_HEAD = "import keras\n\nclass Data(keras.utils.PyDataset):\n"
_TAIL = "    def __len__(self):\n        return 1\n\n    def __getitem__(self, i):\n        return self.x\n"


class MissingSuperInit(Rule):
    code = "SEQ302"
    name = "missing-super-init"
    summary = "Keras 3 dataset's `__init__` does not call `super().__init__(**kwargs)`"
    fix_availability = "sometimes"
    docs = """
## What it does
Flags the `__init__` of a Keras 3 `keras.utils.PyDataset` (or `keras.utils.Sequence`, the same class
in Keras 3) subclass that does not call `super().__init__(**kwargs)`: no call at all, a call that does
not forward the keyword arguments, or an `__init__` that accepts no `**kwargs` to forward.
Keras 2 / `tf_keras` generators are left alone: their `Sequence.__init__` takes no arguments.

## Why is this bad?
In Keras 3 the dataset owns its parallelism: `workers`, `use_multiprocessing` and `max_queue_size`
are arguments of `PyDataset.__init__`. A subclass that does not forward them cannot be run in
parallel at all (`MyData(..., workers=4)` raises a `TypeError` or is silently ignored) and Keras
warns on every `fit`.

## Example
```python
class Images(keras.utils.PyDataset):
    def __init__(self, x, y, batch_size):
        self.x, self.y, self.batch_size = x, y, batch_size
```

## Use instead
```python
class Images(keras.utils.PyDataset):
    def __init__(self, x, y, batch_size, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size = x, y, batch_size
```

## Fix safety
Safe: `**kwargs` is added to the signature when missing, and either forwarded by the existing
`super().__init__(...)` call or passed to a new `super().__init__(**kwargs)` placed first in the body
(after the docstring). Calls that worked before receive empty `kwargs`, so `PyDataset` keeps its
defaults and every batch is the same. No new call is inserted when the direct base is a class of this
file with its own `__init__` (its required arguments are unknown): that case is reported only.
"""

    valid = [
        _HEAD + "    def __init__(self, x, **kwargs):\n        super().__init__(**kwargs)\n        self.x = x\n\n" + _TAIL,
        # No __init__ at all: PyDataset's own is used.
        _HEAD + _TAIL,
        # Explicit worker arguments forwarded.
        _HEAD + "    def __init__(self, x, workers=1):\n        super().__init__(workers=workers)\n        self.x = x\n\n" + _TAIL,
        # Old-style explicit call through the base class.
        _HEAD + "    def __init__(self, x, **kw):\n        keras.utils.PyDataset.__init__(self, **kw)\n        self.x = x\n\n" + _TAIL,
        # Keras 2 / tf_keras Sequence: super().__init__() takes no kwargs.
        "import tf_keras\n\nclass Old(tf_keras.utils.Sequence):\n    def __init__(self, x):\n        self.x = x\n\n" + _TAIL,
        # collections.abc.Sequence is not a Keras class.
        "from collections.abc import Sequence\n\nclass Rows(Sequence):\n    def __init__(self, rows):\n        self.rows = rows\n\n" + _TAIL,
    ]
    invalid = [
        Invalid(
            _HEAD + "    def __init__(self, x, batch_size=32):\n        self.x = x\n\n" + _TAIL,
            expected=[4],
            fixed=_HEAD + "    def __init__(self, x, batch_size=32, **kwargs):\n        super().__init__(**kwargs)\n        self.x = x\n\n" + _TAIL,
        ),
        # Docstring stays first; an existing call without kwargs gets them.
        Invalid(
            "from tensorflow.keras.utils import Sequence as S\n\nclass Data(S):\n"
            '    def __init__(self, x):\n        """Rows of x."""\n        super(Data, self).__init__()\n        self.x = x\n\n' + _TAIL,
            expected=[4],
            fixed="from tensorflow.keras.utils import Sequence as S\n\nclass Data(S):\n"
            '    def __init__(self, x, **kwargs):\n        """Rows of x."""\n        super(Data, self).__init__(**kwargs)\n        self.x = x\n\n' + _TAIL,
        ),
        Invalid(
            _HEAD + '    def __init__(self, x):\n        """Rows."""\n        self.x = x\n\n' + _TAIL,
            expected=[4],
            fixed=_HEAD + '    def __init__(self, x, **kwargs):\n        """Rows."""\n        super().__init__(**kwargs)\n        self.x = x\n\n' + _TAIL,
        ),
        # Multi-line signature with a trailing comma; kwargs already accepted but not forwarded.
        Invalid(
            _HEAD + "    def __init__(\n        self,\n        x,\n        **opts,\n    ):\n        super().__init__()\n        self.x = x\n\n" + _TAIL,
            expected=[4],
            fixed=_HEAD + "    def __init__(\n        self,\n        x,\n        **opts,\n    ):\n        super().__init__(**opts)\n        self.x = x\n\n" + _TAIL,
        ),
        # Indirect subclass whose parent has its own __init__: reported, no call invented.
        Invalid(
            _HEAD + "    def __init__(self, x, **kwargs):\n        super().__init__(**kwargs)\n        self.x = x\n\n" + _TAIL
            + "\nclass Child(Data):\n    def __init__(self, x):\n        self.x = x * 2\n",
            expected=[15],
        ),
    ]

    def check(self, ctx) -> Iterable[Finding]:
        classes = {seq.name: seq for seq in ctx.sequences}
        for seq in ctx.sequences:
            if not seq.keras3:
                continue
            init = seq.own_methods.get("__init__")
            if init is None:
                continue
            kwargs_param = init.params.star_kwarg if isinstance(init.params.star_kwarg, cst.Param) else None
            kwargs_name = kwargs_param.name.value if kwargs_param is not None else None
            calls = _super_init_calls(init)
            if any(_forwards(call) for call in calls):
                continue
            if not calls:
                message = f"`{seq.name}.__init__` never calls `super().__init__(**kwargs)`"
            elif kwargs_name is None:
                message = f"`{seq.name}.__init__` accepts no `**kwargs` to pass to `super().__init__`"
            else:
                message = f"`{seq.name}.__init__` does not forward `**{kwargs_name}` to `super().__init__`"
            message += ": `workers`, `use_multiprocessing` and `max_queue_size` of the PyDataset are lost"
            fix = self._fix(ctx, seq, init, calls, kwargs_name, classes)
            yield ctx.report(self, init.name, message=message, fix=fix)

    def _fix(self, ctx, seq, init: cst.FunctionDef, calls, kwargs_name, classes) -> Fix | None:
        if not calls and _parent_has_own_init(ctx, seq, classes):
            return None
        if not isinstance(init.body, cst.IndentedBlock):
            return None
        edits: list[Edit] = []
        name = kwargs_name
        if name is None:
            name = _free_name(init)
            edit = _add_star_kwargs(ctx, init, name)
            if edit is None:
                return None
            edits.append(edit)
        if calls:
            edit = _append_call_arg(ctx, calls[0], name)
            if edit is None:
                return None
            edits.append(edit)
        else:
            edits.append(_insert_first_statement(ctx, init.body, f"super().__init__(**{name})"))
        edits.sort(key=lambda e: e.location)
        return Fix(Applicability.SAFE, f"Forward `**{name}` to `super().__init__`", tuple(edits))


def _super_init_calls(init: cst.FunctionDef) -> list[cst.Call]:
    found: list[cst.Call] = []
    stack: list[cst.CSTNode] = [init.body]
    while stack:
        node = stack.pop()
        if isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            continue  # nested functions are not this __init__
        stack.extend(reversed(node.children))
        if not isinstance(node, cst.Call):
            continue
        func = node.func
        if not (isinstance(func, cst.Attribute) and func.attr.value == "__init__"):
            continue
        value = func.value
        if isinstance(value, cst.Call) and isinstance(value.func, cst.Name) and value.func.value == "super":
            found.append(node)
        elif dotted_name(value) is not None and dotted_name(value) != "self":
            found.append(node)  # Base.__init__(self, ...)
    return found


def _forwards(call: cst.Call) -> bool:
    for arg in call.args:
        if arg.star == "**":
            return True  # its own **kwargs, or keywords from an enclosing factory function's closure
        if arg.keyword is not None and arg.keyword.value in _WORKER_ARGS:
            return True
    return False


def _parent_has_own_init(ctx, seq, classes) -> bool:
    if "__init__" in seq.external_methods:
        return True  # a base class in another file of the tree defines it
    for base in seq.node.bases:
        written = dotted_name(base.value) or ""
        parent = classes.get(written) if written not in ctx.imports else None
        if parent is not None and "__init__" in parent.methods:
            return True
    return False


def _free_name(init: cst.FunctionDef) -> str:
    taken = {p.name.value for p in (*init.params.params, *init.params.kwonly_params, *init.params.posonly_params)}
    for candidate in ("kwargs", "pydataset_kwargs", "dataset_kwargs"):
        if candidate not in taken:
            return candidate
    return "kwargs_"


def _add_star_kwargs(ctx, init: cst.FunctionDef, name: str) -> Edit | None:
    """Add `**name` as the last parameter: the parameter list is rebuilt by libcst, which knows where a
    parameter really ends (`size=(32, 32)`, `k: "a, b" = {1: 2}`, `lambda a, b: a`, after `/` or `*`),
    and replaced as a whole; one-per-line signatures get the new parameter on its own line."""
    params = init.params
    if params.star_kwarg is not None:
        return None
    new_param = cst.Param(name=cst.Name(name), star="**")
    ordered = _ordered_params(params)
    if ordered:
        last, where = ordered[-1]
        comma = getattr(last, "comma", None)
        trailing_comma = isinstance(comma, cst.Comma)
        # What separates the last parameter from `)`: after its comma, or after the parameter itself.
        tail = comma.whitespace_after if trailing_comma else getattr(last, "whitespace_after_param", None)
        if isinstance(tail, cst.ParenthesizedWhitespace):
            # One parameter per line: the new one gets a line of its own, at the parameters'
            # indentation, before the line holding `)`; a comment after the last one stays with it.
            item = _item_indent(ordered, init)
            # Parameters sharing lines (`(self, x,  # note\n  y)`): the new one joins the last line.
            to_closing = tail.with_changes(first_line=cst.TrailingWhitespace()) if item is not None else tail
            if trailing_comma:
                new_param = new_param.with_changes(comma=cst.Comma(whitespace_after=to_closing))
            else:
                new_param = new_param.with_changes(whitespace_after_param=to_closing)
            if item is not None:
                separator = tail.with_changes(empty_lines=(), indent=item.indent, last_line=item.last_line)
            else:
                separator = cst.SimpleWhitespace(" ")
            last = last.with_changes(comma=cst.Comma(whitespace_after=separator))
            if not trailing_comma and isinstance(last, cst.Param):
                last = last.with_changes(whitespace_after_param=cst.SimpleWhitespace(""))
            params = _replace_param(params, where, last)
    return replace_rendered(ctx, init.params, params.with_changes(star_kwarg=new_param))


def _ordered_params(params: cst.Parameters) -> list[tuple[cst.CSTNode, tuple]]:
    """(parameter, where it sits in `params`) in source order, the `/` and bare `*` markers included."""
    out: list[tuple[cst.CSTNode, tuple]] = [(p, ("posonly_params", i)) for i, p in enumerate(params.posonly_params)]
    if isinstance(params.posonly_ind, cst.ParamSlash):
        out.append((params.posonly_ind, ("posonly_ind",)))
    out += [(p, ("params", i)) for i, p in enumerate(params.params)]
    if isinstance(params.star_arg, (cst.Param, cst.ParamStar)):
        out.append((params.star_arg, ("star_arg",)))
    out += [(p, ("kwonly_params", i)) for i, p in enumerate(params.kwonly_params)]
    return out


def _replace_param(params: cst.Parameters, where: tuple, node: cst.CSTNode) -> cst.Parameters:
    if len(where) == 1:
        return params.with_changes(**{where[0]: node})
    field_name, index = where
    items = list(getattr(params, field_name))
    items[index] = node
    return params.with_changes(**{field_name: tuple(items)})


def _item_indent(ordered, init: cst.FunctionDef) -> cst.ParenthesizedWhitespace | None:
    """The line break and indentation that separate one parameter from the next, from an earlier
    parameter's comma or from the whitespace after `(`."""
    for param, _ in reversed(ordered[:-1]):
        comma = getattr(param, "comma", None)
        if isinstance(comma, cst.Comma) and isinstance(comma.whitespace_after, cst.ParenthesizedWhitespace):
            return comma.whitespace_after
    ws = init.whitespace_before_params
    return ws if isinstance(ws, cst.ParenthesizedWhitespace) else None


def _append_call_arg(ctx, call: cst.Call, name: str) -> Edit | None:
    """`super().__init__(a, k=(1, 2))` -> `super().__init__(a, k=(1, 2), **name)`, after the last
    argument whole (its parentheses and trailing comma included)."""
    new_arg = cst.Arg(value=cst.Name(name), star="**")
    args = list(call.args)
    if args and isinstance(args[-1].comma, cst.Comma):
        # `f(a,\n)`: keep the trailing comma style: `f(a,\n**kwargs,\n)` would need the indent; put it
        # after the comma on the same line instead: `f(a, **kwargs,\n)`.
        trailing = args[-1].comma
        args[-1] = args[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
        new_arg = new_arg.with_changes(comma=trailing)
    return replace_rendered(ctx, call, call.with_changes(args=(*args, new_arg)))


def _insert_first_statement(ctx, body: cst.IndentedBlock, code: str) -> Edit:
    """Insert `code` as the first statement of `body`, after its docstring if it has one."""
    statements = list(body.body)
    index = 1 if statements and is_docstring(statements[0]) else 0
    if index < len(statements):
        start = ctx.position(statements[index])[0]
        line = line_of(ctx, start.row)
        indent = line[: len(line) - len(line.lstrip())]
        return Edit(f"{indent}{code}\n", Location(start.row, 1), Location(start.row, 1))
    # Only a docstring: add the call after it.
    doc_start, doc_end = ctx.position(statements[0])
    line = line_of(ctx, doc_start.row)
    indent = line[: len(line) - len(line.lstrip())]
    row = doc_end.row
    end_of_line = Location(row, len(line_of(ctx, row).rstrip("\r\n")) + 1)
    return Edit(f"\n{indent}{code}", end_of_line, end_of_line)
