"""Nested inputs and outputs: a batch may be an array, or a tuple, list or dict of them (multi-input models).

`flatten` turns such a structure into its leaves plus a description of its shape, `unflatten` rebuilds
it; dict keys keep their insertion order, which is what Keras matches against a model's input names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class TreeDef:
    """The shape of a nested structure: `kind` is "leaf", "tuple", "list" or "dict"."""

    kind: str
    children: tuple["TreeDef", ...] = ()
    keys: tuple = ()

    @property
    def num_leaves(self) -> int:
        if self.kind == "leaf":
            return 1
        return sum(child.num_leaves for child in self.children)


def flatten(struct: Any) -> tuple[list, TreeDef]:
    leaves: list = []
    treedef = _flatten_into(struct, leaves)
    return leaves, treedef


def _flatten_into(struct: Any, leaves: list) -> TreeDef:
    if isinstance(struct, dict):
        keys = tuple(struct)
        return TreeDef("dict", tuple(_flatten_into(struct[k], leaves) for k in keys), keys)
    if isinstance(struct, (tuple, list)):
        kind = "list" if isinstance(struct, list) else "tuple"
        return TreeDef(kind, tuple(_flatten_into(item, leaves) for item in struct))
    leaves.append(struct)
    return TreeDef("leaf")


def unflatten(treedef: TreeDef, leaves: list) -> Any:
    it = iter(leaves)
    result = _build(treedef, it)
    if next(it, _END) is not _END:
        raise ValueError("more leaves than the structure holds")
    return result


_END = object()


def _build(treedef: TreeDef, it) -> Any:
    if treedef.kind == "leaf":
        leaf = next(it, _END)
        if leaf is _END:
            raise ValueError("fewer leaves than the structure holds")
        return leaf
    children = [_build(child, it) for child in treedef.children]
    if treedef.kind == "dict":
        return dict(zip(treedef.keys, children))
    if treedef.kind == "list":
        return children
    return tuple(children)


def map_structure(fn: Callable[[Any], Any], struct: Any) -> Any:
    leaves, treedef = flatten(struct)
    return unflatten(treedef, [fn(leaf) for leaf in leaves])
