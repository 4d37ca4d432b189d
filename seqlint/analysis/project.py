"""What the other files of the checked tree contribute: Sequence base classes defined elsewhere.

`class TrainGen(BaseGen)` with `from .base import BaseGen` is a Keras Sequence only if base.py says
so. The index summarises such files with the stdlib `ast` parser (several times faster than libcst)
and keeps plain data only, so the runner can pickle it to its worker processes.
Only files whose text names `Sequence`/`PyDataset`, or a class already known to be a Sequence, are
parsed, repeating until no new class is found.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field

from seqlint.analysis.tables import keras_tables

_KERAS_WORDS = ("Sequence", "PyDataset")


@dataclass(frozen=True)
class MethodSummary:
    """Which methods (`self.x`) and module functions (bare names) a method refers to."""

    self_refs: tuple[str, ...]
    func_refs: tuple[str, ...]
    # The method takes `**kwargs` (for `__init__`: a Keras 3 dataset can be given `workers=`).
    star_kwargs: bool = False


@dataclass
class ClassSummary:
    name: str
    filename: str
    bases: tuple[str, ...]  # qualified as far as the file's imports tell
    methods: dict[str, MethodSummary]


@dataclass
class FileSummary:
    filename: str
    imports: dict[str, str]
    classes: dict[str, ClassSummary]
    # Modules imported with `from m import *`: a bare name the file neither defines nor imports may
    # come from one of them (and from nowhere else).
    star_imports: tuple[str, ...] = ()


def module_keys(filename: str) -> list[str]:
    """Every dotted module name the file could be imported as: "mod", "pkg.mod", "src.pkg.mod", ..."""
    parts = _path_parts(filename)
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return [".".join(parts[i:]) for i in range(len(parts)) if parts[i:]]


def _path_parts(filename: str) -> list[str]:
    path = os.path.abspath(filename)
    stem, _ = os.path.splitext(path)
    return [p for p in stem.split(os.sep) if p]


def absolute_import(qualname: str, filename: str) -> str:
    """".base.BaseGen" imported from /a/pkg/train.py -> "a.pkg.base.BaseGen"."""
    level = len(qualname) - len(qualname.lstrip("."))
    if not level:
        return qualname
    package = _path_parts(filename)[:-1]
    if level > 1:
        package = package[: len(package) - (level - 1)]
    rest = qualname[level:]
    return ".".join([*package, rest] if rest else package)


def _statements(body):
    """Every statement, recursing into compound statements but never into expressions."""
    for stmt in body:
        yield stmt
        for name in ("body", "orelse", "finalbody", "handlers", "cases"):
            inner = getattr(stmt, name, None)
            if isinstance(inner, list) and inner and isinstance(inner[0], (ast.stmt, ast.excepthandler, ast.match_case)):
                for item in inner:
                    if isinstance(item, ast.stmt):
                        yield from _statements([item])
                    else:
                        yield from _statements(item.body)


def summarise(source: str, filename: str) -> FileSummary | None:
    try:
        tree = ast.parse(source, filename)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    imports: dict[str, str] = {}
    classes: dict[str, ClassSummary] = {}
    star_imports: list[str] = []
    for node in _statements(tree.body):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    imports[alias.asname] = alias.name
                else:
                    head = alias.name.split(".", 1)[0]
                    imports[head] = head
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            for alias in node.names:
                if alias.name == "*":
                    star_imports.append(base)
                    continue
                sep = "" if base.endswith(".") or not base else "."
                imports[alias.asname or alias.name] = f"{base}{sep}{alias.name}"
        elif isinstance(node, ast.ClassDef):
            classes.setdefault(node.name, _summarise_class(node, filename))
    # Bases are qualified with the imports of the whole file (an import after the class still counts).
    for cls_summary in classes.values():
        cls_summary.bases = tuple(_qualify(b, imports) for b in cls_summary.bases)
    return FileSummary(filename, imports, classes, tuple(star_imports))


def _qualify(dotted: str, imports: dict[str, str]) -> str:
    head, _, rest = dotted.partition(".")
    if head in imports:
        return imports[head] + (f".{rest}" if rest else "")
    return dotted


def _summarise_class(node: ast.ClassDef, filename: str) -> ClassSummary:
    bases = tuple(d for d in (_ast_dotted(b) for b in node.bases) if d)
    methods = {
        item.name: _method_refs(item)
        for item in node.body
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))
    }
    return ClassSummary(node.name, filename, bases, methods)


def _method_refs(func) -> MethodSummary:
    self_refs, func_refs = set(), set()
    for sub in ast.walk(func):
        if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name) and sub.value.id == "self":
            self_refs.add(sub.attr)
        elif isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load):
            func_refs.add(sub.id)
    return MethodSummary(tuple(sorted(self_refs)), tuple(sorted(func_refs)), func.args.kwarg is not None)


def _ast_dotted(expr: ast.expr) -> str | None:
    parts = []
    while isinstance(expr, ast.Attribute):
        parts.append(expr.attr)
        expr = expr.value
    if not isinstance(expr, ast.Name):
        return None
    parts.append(expr.id)
    return ".".join(reversed(parts))


@dataclass
class ProjectIndex:
    files: dict[str, FileSummary] = field(default_factory=dict)  # abspath -> summary
    by_module: dict[str, list[str]] = field(default_factory=dict)  # dotted key -> abspaths
    by_class_name: dict[str, list[ClassSummary]] = field(default_factory=dict)
    sequence_names: frozenset[str] = frozenset()  # classes of the tree that are Keras Sequences
    _words: tuple[tuple[str, ...], tuple[str, ...]] | None = None  # (also, every word)
    _memo: dict[tuple[str, str], tuple[str, bool] | None] = field(default_factory=dict)

    @classmethod
    def build(cls, sources: dict[str, str]) -> ProjectIndex:
        index = cls()
        pending = {os.path.abspath(name): text for name, text in sources.items()}
        words = set(_KERAS_WORDS)
        while True:
            batch = {name: text for name, text in pending.items() if any(w in text for w in words)}
            if not batch:
                break
            for name in batch:
                del pending[name]
            for name, text in batch.items():
                summary = summarise(text, name)
                if summary is not None:
                    index._add(summary)
            found = {c.name for c in index.iter_classes() if index.keras_base(c) is not None}
            if found <= words:
                break
            words |= found
        index.sequence_names = frozenset(
            c.name for c in index.iter_classes() if index.keras_base(c) is not None
        )
        return index

    def _add(self, summary: FileSummary) -> None:
        self._memo.clear()  # a new file can turn an unresolved base into a known one
        self.files[summary.filename] = summary
        for key in module_keys(summary.filename):
            self.by_module.setdefault(key, []).append(summary.filename)
        for cls_summary in summary.classes.values():
            self.by_class_name.setdefault(cls_summary.name, []).append(cls_summary)

    def iter_classes(self):
        for summary in self.files.values():
            yield from summary.classes.values()

    def may_matter(self, source: str, also: tuple[str, ...] = ()) -> bool:
        """False when the text can hold neither a Keras Sequence subclass nor any of the words `also`
        (what the module-wide rules look for, passed in by the engine's caller: analysis knows no
        rule): the runner then skips parsing the file."""
        if self._words is None or self._words[0] != also:
            words = tuple(sorted(set(_KERAS_WORDS) | set(self.sequence_names) | set(also)))
            self._words = (also, words)
        return any(word in source for word in self._words[1])

    def resolve(self, qualname: str, from_file: str, _depth: int = 0) -> ClassSummary | None:
        """The class of the tree that `qualname` (as imported in `from_file`) names, if any.

        By qualified name only: the module part must be a file of the tree (`pkg.base.BaseGen` is
        class BaseGen of pkg/base.py). A class is never matched by its bare name alone: TensorFlow's
        `collections_abc.Iterator` is not Keras' `Iterator` because both end in "Iterator". A bare
        name the file does not define or import is looked for in its star-imported modules only.
        """
        if _depth > 8:
            return None
        from_file = os.path.abspath(from_file)
        qualname = absolute_import(qualname, from_file)
        module, _, name = qualname.rpartition(".")
        local = self.files.get(from_file)
        if not module:
            if local is None:
                return None
            if name in local.classes:
                return local.classes[name]
            for star in local.star_imports:
                found = self.resolve(f"{star}.{name}" if not star.endswith(".") else star + name,
                                     from_file, _depth + 1)
                if found is not None:
                    return found
            return None
        summary = self._module_file(module, name, from_file)
        if summary is None:
            return None
        if name in summary.classes:
            return summary.classes[name]
        if name in summary.imports:  # re-exported, e.g. from a package __init__
            return self.resolve(summary.imports[name], summary.filename, _depth + 1)
        for star in summary.star_imports:  # `from .models import *` in a package __init__
            found = self.resolve(f"{star}.{name}" if not star.endswith(".") else star + name,
                                 summary.filename, _depth + 1)
            if found is not None:
                return found
        return None

    def _module_file(self, module: str, name: str, from_file: str) -> FileSummary | None:
        """The file of the tree that `import module` means, seen from `from_file`.

        Several files can answer to one dotted name (two `utils.py` in different folders): the one
        that has `name` wins; among those, the one nearest to the importing file (the script's own
        folder is first on sys.path); a tie stays unresolved rather than guessed.
        """
        candidates = [self.files[f] for f in self.by_module.get(module, [])]
        if len(candidates) <= 1:
            return candidates[0] if candidates else None
        having = [c for c in candidates if name in c.classes or name in c.imports] or candidates
        if len(having) == 1:
            return having[0]
        here = os.path.dirname(from_file)

        def shared(summary: FileSummary) -> int:
            return len(os.path.commonpath([here, os.path.dirname(summary.filename)]))

        best = max(shared(c) for c in having)
        nearest = [c for c in having if shared(c) == best]
        return nearest[0] if len(nearest) == 1 else None

    def keras_base(self, cls_summary: ClassSummary, _depth: int = 0) -> tuple[str, bool] | None:
        """(Keras base qualified name, keras3) reached by the class through its bases, or None."""
        key = (cls_summary.filename, cls_summary.name)
        if key in self._memo:
            return self._memo[key]
        if _depth > 8:
            return None
        self._memo[key] = None  # a cycle of bases resolves to "not a Sequence"
        found = self._keras_base(cls_summary, _depth)
        self._memo[key] = found
        return found

    def _keras_base(self, cls_summary: ClassSummary, _depth: int) -> tuple[str, bool] | None:
        tables = keras_tables()
        summary = self.files[cls_summary.filename]
        for base in cls_summary.bases:
            kind = tables.base_kind(base)
            if kind is not None:
                return base, kind
            if "." not in base and base not in summary.imports and base not in summary.classes:
                for star in summary.star_imports:  # `from keras.utils import *`
                    kind = tables.base_kind(f"{star}.{base}")
                    if kind is not None:
                        return f"{star}.{base}", kind
            parent = self.resolve(base, cls_summary.filename, _depth + 1)
            if parent is not None and parent is not cls_summary:
                found = self.keras_base(parent, _depth + 1)
                if found is not None:
                    return found
            elif (
                base in tables.unresolved_names
                and base not in summary.imports
                # `from collections.abc import *` brings a `Sequence` that is no Keras class
                and not summary.star_imports
                and {"__getitem__", "__len__"} <= set(cls_summary.methods)
            ):
                return base, True
        return None

    def inherited_methods(self, cls_summary: ClassSummary, _depth: int = 0) -> dict[str, MethodSummary]:
        """Methods of the class and its tree bases, nearest definition first (simplified MRO)."""
        methods: dict[str, MethodSummary] = {}
        if _depth > 8:
            return methods
        for base in cls_summary.bases:
            parent = self.resolve(base, cls_summary.filename, _depth + 1)
            if parent is not None and parent is not cls_summary:
                for key, value in self.inherited_methods(parent, _depth + 1).items():
                    methods.setdefault(key, value)
        methods.update(cls_summary.methods)
        return methods
