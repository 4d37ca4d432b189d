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


# -- as JSON (stored in a dataset's manifest, instead of a pickle) ---------------------------------

_KEY_TYPES = (str, int, float, bool, type(None))


def to_json(treedef: TreeDef) -> dict:
    """A JSON-able description of `treedef`: {"kind": ..., "children": [...], "keys": [...]}.

    Dict keys may be str, int, float, bool, None or tuples of those (a tuple key is stored as
    {"tuple": [...]}, since JSON has no tuples); any other key raises TypeError naming it.
    """
    out: dict = {"kind": treedef.kind}
    if treedef.kind != "leaf":
        out["children"] = [to_json(child) for child in treedef.children]
    if treedef.kind == "dict":
        out["keys"] = [_key_to_json(key) for key in treedef.keys]
    return out


def from_json(data: Any) -> TreeDef:
    """The TreeDef `to_json` described; ValueError if `data` is not such a description."""
    if not isinstance(data, dict) or data.get("kind") not in ("leaf", "tuple", "list", "dict"):
        raise ValueError(f"not a structure description: {data!r}"[:200])
    kind = data["kind"]
    if kind == "leaf":
        return TreeDef("leaf")
    children = data.get("children")
    if not isinstance(children, list):
        raise ValueError(f"structure {kind!r} without a list of children")
    keys: tuple = ()
    if kind == "dict":
        raw = data.get("keys")
        if not isinstance(raw, list) or len(raw) != len(children):
            raise ValueError("dict structure whose keys do not match its children")
        keys = tuple(_key_from_json(key) for key in raw)
    return TreeDef(kind, tuple(from_json(child) for child in children), keys)


def _key_to_json(key: Any) -> Any:
    if isinstance(key, tuple):
        return {"tuple": [_key_to_json(k) for k in key]}
    if isinstance(key, _KEY_TYPES):
        return key
    raise TypeError(f"dict key {key!r} of type {type(key).__name__} cannot be stored; use str or int keys")


def _key_from_json(key: Any) -> Any:
    if isinstance(key, dict):
        if set(key) != {"tuple"} or not isinstance(key["tuple"], list):
            raise ValueError(f"not a stored dict key: {key!r}")
        return tuple(_key_from_json(k) for k in key["tuple"])
    if isinstance(key, list):
        raise ValueError(f"not a stored dict key: {key!r}")
    return key
