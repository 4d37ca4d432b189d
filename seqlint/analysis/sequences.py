"""Which classes of a module are Keras Sequence / PyDataset subclasses.

A class counts when one of its bases, qualified through the module's imports, is in the Keras base
table (seqlint/data/keras_bases.toml), or is a class of this module or of another file of the checked
tree that counts. Code pasted from notebooks often lost its imports: an unresolved bare `Sequence` or
`PyDataset` base counts when the class defines `__getitem__` and `__len__` (unless the module has a
star import, which may have brought it). A `Sequence` imported from `collections.abc` or `typing`
resolves to that module and never matches. Bases are matched by qualified name only, never by their
last component: `collections_abc.Iterator` is not Keras' legacy `Iterator` class.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from seqlint.analysis.names import dotted_name, qualify, star_imports
from seqlint.analysis.project import MethodSummary, ProjectIndex
from seqlint.analysis.tables import keras_tables


@dataclass
class SequenceClass:
    node: cst.ClassDef
    name: str
    # Own methods plus those inherited from bases of this module (nearest definition wins).
    methods: dict[str, cst.FunctionDef]
    base_qualname: str
    keras3: bool
    # Methods inherited from bases defined in other files of the tree: only what they call is known.
    external_methods: dict[str, MethodSummary] = field(default_factory=dict)

    @property
    def own_methods(self) -> dict[str, cst.FunctionDef]:
        return {
            stmt.name.value: stmt
            for stmt in self.node.body.body
            if isinstance(stmt, cst.FunctionDef)
        }


def top_level_classes(module: cst.Module) -> dict[str, cst.ClassDef]:
    """Classes at module level, under a top-level `if`/`try` (version switches), or defined inside a
    function (class factories building one generator per fold)."""
    found: dict[str, cst.ClassDef] = {}

    def scan(body) -> None:
        for stmt in body:
            if isinstance(stmt, cst.ClassDef):
                found.setdefault(stmt.name.value, stmt)
            elif isinstance(stmt, cst.FunctionDef) and isinstance(stmt.body, cst.IndentedBlock):
                scan(stmt.body.body)
            elif isinstance(stmt, (cst.If, cst.Try)):
                scan(stmt.body.body)
                orelse = getattr(stmt, "orelse", None)
                if orelse is not None:
                    scan([orelse] if isinstance(orelse, cst.If) else orelse.body.body)
                for handler in getattr(stmt, "handlers", ()):
                    scan(handler.body.body)

    scan(module.body)
    return found


def _methods_of(node: cst.ClassDef) -> dict[str, cst.FunctionDef]:
    return {s.name.value: s for s in node.body.body if isinstance(s, cst.FunctionDef)}


class _Resolver:
    def __init__(self, classes, imports, filename, project, stars: tuple[str, ...] = ()):
        self.classes = classes
        self.imports = imports
        self.stars = stars  # modules imported with `from m import *`
        self.filename = filename
        self.project = project
        self.tables = keras_tables()
        self._memo: dict[str, tuple[str, bool] | None] = {}

    def base_quals(self, node: cst.ClassDef) -> list[tuple[str, str]]:
        """(as written, qualified) for each base class expression."""
        out = []
        for arg in node.bases:
            if arg.keyword is not None or arg.star:
                continue
            dotted = dotted_name(arg.value)
            if dotted:
                out.append((dotted, qualify(dotted, self.imports)))
        return out

    def local_parent(self, written: str, name: str) -> cst.ClassDef | None:
        if written not in self.imports and written in self.classes and written != name:
            return self.classes[written]
        return None

    def project_parent(self, qual: str):
        if self.project is None or self.tables.base_kind(qual) is not None:
            return None
        return self.project.resolve(qual, self.filename)

    def starred_base(self, written: str) -> tuple[str, bool] | None:
        """A Keras base brought by `from keras.utils import *`: qualified through the star's module."""
        if written in self.imports or written in self.classes:
            return None
        for star in self.stars:
            qual = f"{star}.{written}"
            kind = self.tables.base_kind(qual)
            if kind is not None:
                return qual, kind
        return None

    def keras_base(self, name: str, seen: frozenset = frozenset()) -> tuple[str, bool] | None:
        if name in self._memo:
            return self._memo[name]
        if name in seen:
            return None
        node = self.classes[name]
        result = None
        for written, qual in self.base_quals(node):
            kind = self.tables.base_kind(qual)
            starred = self.starred_base(written)
            if kind is not None:
                result = (qual, kind)
            elif starred is not None:
                result = starred
            elif (parent := self.local_parent(written, name)) is not None:
                result = self.keras_base(parent.name.value, seen | {name})
            elif (summary := self.project_parent(qual)) is not None:
                result = self.project.keras_base(summary)
            elif (
                written in self.tables.unresolved_names
                and written not in self.imports
                and not self.stars
                and {"__getitem__", "__len__"} <= set(self.all_methods(name)[0])
            ):
                result = (written, True)
            if result is not None:
                break
        self._memo[name] = result
        return result

    def all_methods(self, name: str, seen: frozenset = frozenset()):
        """(methods from this module, summaries from other files), nearest definition first."""
        node = self.classes[name]
        local: dict[str, cst.FunctionDef] = {}
        external: dict[str, MethodSummary] = {}
        for written, qual in self.base_quals(node):
            parent = self.local_parent(written, name)
            if parent is not None and parent.name.value not in seen:
                sub_local, sub_ext = self.all_methods(parent.name.value, seen | {name})
                for key, value in sub_local.items():
                    if key not in local and key not in external:
                        local[key] = value
                for key, value in sub_ext.items():
                    if key not in local and key not in external:
                        external[key] = value
            elif (summary := self.project_parent(qual)) is not None:
                for key, value in self.project.inherited_methods(summary).items():
                    if key not in local and key not in external:
                        external[key] = value
        own = _methods_of(node)
        local = {**{k: v for k, v in local.items()}, **own}
        external = {k: v for k, v in external.items() if k not in own}
        return local, external


def find_sequences(
    module: cst.Module, imports: dict[str, str], filename: str, project: ProjectIndex | None
) -> list[SequenceClass]:
    classes = top_level_classes(module)
    if not classes:
        return []
    resolver = _Resolver(classes, imports, filename, project, star_imports(module))
    found = []
    for name, node in classes.items():
        base = resolver.keras_base(name)
        if base is None:
            continue
        methods, external = resolver.all_methods(name)
        found.append(SequenceClass(node, name, methods, base[0], base[1], external))
    return found
