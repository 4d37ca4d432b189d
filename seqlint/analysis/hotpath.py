"""Where code runs: per batch, per epoch or once.

Keras calls `__getitem__` for every batch, `on_epoch_end` after every epoch and `__init__` once.
Whatever those call (methods through `self.`, including inherited ones, and module-level functions,
followed transitively) runs just as often. A function reached from several roots gets the most
frequent phase. References count as well as calls: `map(self.load, files)` runs `load` per batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from enum import Enum
from functools import lru_cache

import libcst as cst

from seqlint.analysis.sequences import SequenceClass


class Phase(str, Enum):
    BATCH = "batch"
    EPOCH = "epoch"
    ONCE = "once"


ROOTS: dict[Phase, tuple[str, ...]] = {
    Phase.BATCH: ("__getitem__",),
    Phase.EPOCH: ("on_epoch_end", "on_epoch_begin"),
    Phase.ONCE: ("__init__",),
}


# Fields holding only formatting (whitespace, commas, parentheses, blank lines): no rule looks
# inside them, and skipping them halves the nodes every walk visits.
_FORMATTING_FIELDS = frozenset({
    "lpar", "rpar", "comma", "semicolon", "leading_lines", "lines_after_decorators",
    "trailing_whitespace", "header", "footer", "empty_lines", "equal", "colon", "dot",
    "whitespace_before", "whitespace_after",
})


@lru_cache(maxsize=None)
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(
        f.name for f in dataclasses.fields(cls)
        if f.name not in _FORMATTING_FIELDS and not f.name.startswith("whitespace")
    )


_NODE_CLASSES: dict[type, bool] = {}


def _is_node(value) -> bool:
    cls = type(value)
    known = _NODE_CLASSES.get(cls)
    if known is None:
        known = _NODE_CLASSES[cls] = issubclass(cls, cst.CSTNode)
    return known


def children(node: cst.CSTNode) -> list[cst.CSTNode]:
    """The child nodes that carry code, read straight from the dataclass fields.

    libcst's `CSTNode.children` runs a visitor over the node to collect them, which made walking
    trees the bulk of a check. Reading the fields, and leaving out pure formatting (whitespace,
    commas, parentheses), is several times faster.
    """
    out: list[cst.CSTNode] = []
    for name in _field_names(type(node)):
        value = getattr(node, name)
        if type(value) is tuple or type(value) is list:
            out.extend(v for v in value if _is_node(v))
        elif _is_node(value):
            out.append(value)
    return out


def walk(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """Every node under `node` (itself included), depth first, parents before their children."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(children(current)))


def is_self_attr(expr) -> str | None:
    """"x" for `self.x`; None for anything else."""
    if isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name) and expr.value.value == "self":
        return expr.attr.value
    return None


def names_in(node: cst.CSTNode) -> set[str]:
    """Every bare name used or bound under `node`."""
    return {n.value for n in walk(node) if isinstance(n, cst.Name)}


def variables(node: cst.CSTNode) -> set[str]:
    """The variables `node` uses or binds: its bare names, not attribute names (`masks` in `self.masks`)
    nor keyword names (`axis` in `f(axis=1)`)."""
    skip = set()
    for sub in walk(node):
        if isinstance(sub, cst.Attribute):
            skip.add(id(sub.attr))
        elif isinstance(sub, cst.Arg) and sub.keyword is not None:
            skip.add(id(sub.keyword))
    return {sub.value for sub in walk(node) if isinstance(sub, cst.Name) and id(sub) not in skip}


def root_name(target) -> str | None:
    """"x" for `x`, `x[i]`, `x.attr[i]`: the variable a write target writes into; None otherwise."""
    while isinstance(target, (cst.Subscript, cst.Attribute)):
        target = target.value
    return target.value if isinstance(target, cst.Name) else None


def assignment_targets(node: cst.CSTNode) -> list[cst.BaseExpression]:
    """What an assignment statement writes (`a = b = ...`, `a += ...`, `a: int = ...`); [] otherwise."""
    if isinstance(node, cst.Assign):
        return [t.target for t in node.targets]
    if isinstance(node, (cst.AugAssign, cst.AnnAssign)):
        return [node.target]
    return []


def bound_names(node: cst.CSTNode) -> set[str]:
    """The bare names `node` binds: assignment targets (unpacking one level of tuple or list), loop and
    comprehension variables, `:=` and `with ... as name`."""
    names = set()
    for sub in walk(node):
        targets = assignment_targets(sub)
        if isinstance(sub, (cst.For, cst.CompFor, cst.NamedExpr)):
            targets = [sub.target]
        elif isinstance(sub, cst.WithItem) and sub.asname is not None:
            targets = [sub.asname.name]
        for target in targets:
            if isinstance(target, cst.Name):
                names.add(target.value)
            elif isinstance(target, (cst.Tuple, cst.List)):
                names |= {e.value.value for e in target.elements if isinstance(e.value, cst.Name)}
    return names


def references(func: cst.FunctionDef) -> tuple[set[str], set[str]]:
    """(names used as `self.<name>` or `super().<name>`, bare names used) inside the function."""
    attrs: set[str] = set()
    names: set[str] = set()
    for node in walk(func.body):
        if isinstance(node, cst.Attribute):
            value = node.value
            if (isinstance(value, cst.Name) and value.value == "self") or (
                isinstance(value, cst.Call) and isinstance(value.func, cst.Name) and value.func.value == "super"
            ):
                attrs.add(node.attr.value)
        elif isinstance(node, cst.Name):
            names.add(node.value)
    return attrs, names


class CallGraph:
    """Reachability from the Keras entry points of each Sequence class of one module."""

    def __init__(self, sequences: list[SequenceClass], module_functions: dict[str, cst.FunctionDef]):
        self.module_functions = module_functions
        self._refs: dict[int, tuple[set[str], set[str]]] = {}
        # Methods called from a method defined in another file (whose call sites we cannot see).
        self.called_from_elsewhere: set[int] = set()
        # per sequence: phase -> ordered {function: call path from the root}
        self.reached: dict[str, dict[Phase, dict[cst.FunctionDef, tuple[str, ...]]]] = {}
        for seq in sequences:
            self.reached[seq.name] = {phase: self._reach(seq, roots) for phase, roots in ROOTS.items()}

    def _refs_of(self, func: cst.FunctionDef):
        key = id(func)
        if key not in self._refs:
            self._refs[key] = references(func)
        return self._refs[key]

    def _reach(self, seq: SequenceClass, roots: tuple[str, ...]) -> dict[cst.FunctionDef, tuple[str, ...]]:
        reached: dict[cst.FunctionDef, tuple[str, ...]] = {}
        queue: list[tuple[cst.FunctionDef, tuple[str, ...]]] = []
        external_seen: set[str] = set()

        def follow_method(name: str, path: tuple[str, ...]) -> None:
            label = f"self.{name}" if path else name
            if name in seq.methods:
                queue.append((seq.methods[name], (*path, label)))
            elif name in seq.external_methods and name not in external_seen:
                # Defined in another file: what it calls back into this class still runs here.
                external_seen.add(name)
                for ref in seq.external_methods[name].self_refs:
                    if ref in seq.methods:
                        self.called_from_elsewhere.add(id(seq.methods[ref]))
                    follow_method(ref, (*path, label))

        for root in roots:
            follow_method(root, ())
        while queue:
            func, path = queue.pop(0)
            if func in reached:
                continue
            reached[func] = path
            attrs, names = self._refs_of(func)
            for name in sorted(attrs):
                follow_method(name, reached[func])
            for name in sorted(names):
                target = self.module_functions.get(name)
                if target is not None and target is not func:
                    queue.append((target, (*reached[func], name)))
        return reached
