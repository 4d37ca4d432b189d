"""Building fixes from libcst nodes, and applying them to source text.

Edits are text replacements over code ranges, so everything outside them (formatting, comments) is
kept byte for byte. Imports a fix needs are added after the module's last top-level import.
"""

from __future__ import annotations

from collections.abc import Iterable

import libcst as cst

from seqlint.findings import Applicability, Edit, Fix, Location


def replace(ctx, node: cst.CSTNode, content: str) -> Edit:
    """Replace the node's code (parentheses around it stay) with `content`."""
    start, end = ctx.position(node)
    return Edit(content, start, end)


def insert(location: Location, content: str) -> Edit:
    return Edit(content, location, location)


def line_start(row: int) -> Location:
    return Location(row, 1)


def indentation_of(ctx, node: cst.CSTNode) -> str:
    """The whitespace before the first line of the statement `node` starts."""
    start, _ = ctx.position(node)
    line = ctx.source.splitlines(keepends=True)[start.row - 1]
    return line[: len(line) - len(line.lstrip(" \t"))]


def insert_lines_before(ctx, stmt: cst.CSTNode, lines: list[str]) -> Edit:
    indent = indentation_of(ctx, stmt)
    start, _ = ctx.position(stmt)
    return insert(line_start(start.row), "".join(f"{indent}{line}\n" for line in lines))


def insert_lines_after(ctx, stmt: cst.CSTNode, lines: list[str], indent: str | None = None) -> Edit:
    """Add lines after the last line of a (possibly compound) statement, at its indentation."""
    indent = indentation_of(ctx, stmt) if indent is None else indent
    _, end = ctx.position(stmt)
    text = "".join(f"{indent}{line}\n" for line in lines)
    source_lines = ctx.source.splitlines(keepends=True)
    if end.row >= len(source_lines) and not source_lines[-1].endswith("\n"):
        return insert(Location(end.row, len(source_lines[-1]) + 1), "\n" + text.rstrip("\n"))
    return insert(line_start(end.row + 1), text)


def ensure_import(ctx, module_name: str) -> Edit | None:
    """An edit adding `import <module_name>` unless the module already imports it under that name."""
    if ctx.imports.get(module_name) == module_name:
        return None
    body = ctx.module.body
    last_import = None
    for stmt in body:
        if isinstance(stmt, cst.SimpleStatementLine) and all(
            isinstance(s, (cst.Import, cst.ImportFrom)) for s in stmt.body
        ):
            last_import = stmt
        elif last_import is not None or not _is_docstring_or_future(stmt):
            break
    if last_import is not None:
        _, end = ctx.position(last_import)
        return insert(line_start(end.row + 1), f"import {module_name}\n")
    row = len(ctx.source.splitlines()) + 1
    for stmt in body:  # after a module docstring, else before the first statement (shebang and
        # header comments stay first)
        row = ctx.position(stmt)[1].row + 1 if _is_docstring_or_future(stmt) else ctx.position(stmt)[0].row
        break
    return insert(line_start(row), f"import {module_name}\n")


def is_docstring(stmt: cst.CSTNode) -> bool:
    """A statement that is only a string literal: a module, class or function docstring when first."""
    return (
        isinstance(stmt, cst.SimpleStatementLine)
        and len(stmt.body) == 1
        and isinstance(stmt.body[0], cst.Expr)
        and isinstance(stmt.body[0].value, (cst.SimpleString, cst.ConcatenatedString))
    )


def _is_docstring_or_future(stmt: cst.CSTNode) -> bool:
    if is_docstring(stmt):
        return True
    if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
        return False
    small = stmt.body[0]
    return isinstance(small, cst.ImportFrom) and isinstance(small.module, cst.Name) and small.module.value == "__future__"


def make_fix(applicability: Applicability, message: str, edits: Iterable[Edit | None]) -> Fix:
    return Fix(applicability, message, tuple(e for e in edits if e is not None))


