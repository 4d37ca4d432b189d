"""Turning expressions into dotted names and dotted names into fully qualified ones.

libcst's QualifiedNameProvider needs a full scope analysis of the module, which costs more than the
whole rest of a check. Rules only ever ask "which library function is this?", and imports answer that:
every import in the module (including ones inside functions and `try:` blocks, as notebooks and
optional-dependency code write them) maps a local name to a module path.
"""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from seqlint.analysis.effects import normalize


def dotted_name(expr: cst.BaseExpression) -> str | None:
    """`np.random.rand` -> "np.random.rand"; None for anything that is not a plain name chain."""
    parts: list[str] = []
    while isinstance(expr, cst.Attribute):
        parts.append(expr.attr.value)
        expr = expr.value
    if not isinstance(expr, cst.Name):
        return None
    parts.append(expr.value)
    return ".".join(reversed(parts))


def module_path(node: cst.BaseExpression | None) -> str:
    if node is None:
        return ""
    return dotted_name(node) or ""


def iter_statements(body) -> Iterator[cst.CSTNode]:
    """Every statement of a body, recursing into compound statements and nested functions/classes."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, cst.SimpleStatementLine):
            continue
        for attr in ("body", "orelse", "finalbody"):
            child = getattr(stmt, attr, None)
            if child is None:
                continue
            if isinstance(child, (cst.Else, cst.Finally, cst.If)):
                if isinstance(child, cst.If):
                    yield from iter_statements([child])
                    continue
                child = child.body
            if isinstance(child, cst.BaseSuite):
                inner = child.body
                if isinstance(child, cst.SimpleStatementSuite):
                    continue
                yield from iter_statements(inner)
        for handler in getattr(stmt, "handlers", ()) or ():
            yield from iter_statements(handler.body.body)
        for case in getattr(stmt, "cases", ()) or ():
            yield from iter_statements(case.body.body)


def small_statements(stmt: cst.CSTNode) -> Iterator[cst.BaseSmallStatement]:
    if isinstance(stmt, cst.SimpleStatementLine):
        yield from stmt.body
    elif isinstance(getattr(stmt, "body", None), cst.SimpleStatementSuite):
        yield from stmt.body.body


def collect_imports(module: cst.Module) -> dict[str, str]:
    """Local name -> qualified name for every import in the module.

    Relative imports keep their leading dots (".base.BaseGen"); the project index resolves them.
    """
    imports: dict[str, str] = {}
    for stmt in iter_statements(module.body):
        for small in small_statements(stmt):
            if isinstance(small, cst.Import):
                for alias in small.names:
                    full = module_path(alias.name)
                    if alias.asname is not None:
                        imports[alias.asname.name.value] = full
                    else:
                        head = full.split(".", 1)[0]
                        imports[head] = head
            elif isinstance(small, cst.ImportFrom):
                if isinstance(small.names, cst.ImportStar):
                    continue
                base = "." * len(small.relative) + module_path(small.module)
                for alias in small.names:
                    name = alias.name.value if isinstance(alias.name, cst.Name) else module_path(alias.name)
                    local = alias.asname.name.value if alias.asname is not None else name
                    joined = f"{base}.{name}" if base and not base.endswith(".") else base + name
                    imports[local] = joined
    return imports


def star_imports(module: cst.Module) -> tuple[str, ...]:
    """Modules the module imports with `from m import *` (relative ones keep their leading dots)."""
    found = []
    for stmt in iter_statements(module.body):
        for small in small_statements(stmt):
            if isinstance(small, cst.ImportFrom) and isinstance(small.names, cst.ImportStar):
                found.append("." * len(small.relative) + module_path(small.module))
    return tuple(found)


def qualify(dotted: str, imports: dict[str, str]) -> str:
    head, _, rest = dotted.partition(".")
    if head not in imports:
        # Notebook code uses `np`/`tf` without importing them: expand the conventional short names.
        return normalize(dotted) or dotted
    full = imports[head]
    return f"{full}.{rest}" if rest else full
