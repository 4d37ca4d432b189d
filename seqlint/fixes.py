"""Building fixes from libcst nodes, and applying them to source text.

Edits are text replacements over code ranges, so everything outside them (formatting, comments) is
kept byte for byte. Imports a fix needs are added after the module's last top-level import.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable
from functools import lru_cache

import libcst as cst

from seqlint.findings import Applicability, Edit, Fix, Location

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")


@lru_cache(maxsize=4)
def source_lines(source: str) -> tuple[str, ...]:
    """The source's lines with their line breaks, split where Python (and libcst's rows) split them:
    \r\n, \r, \n, not the form feeds and U+2028 that str.splitlines also breaks at. Computed once per
    source (a str caches its hash), so fixes asking for a line in a big file do not split it again."""
    return tuple(_LINE.findall(source))


@lru_cache(maxsize=4)
def _line_offsets(source: str) -> tuple[int, ...]:
    offsets, total = [], 0
    for line in source_lines(source):
        offsets.append(total)
        total += len(line)
    return tuple(offsets)


def render_in_place(ctx, where: cst.CSTNode, node: cst.CSTNode) -> str:
    """The code of `node` as libcst writes it at the place of `where`: inside the indented blocks that
    hold `where` (Module.code_for_node renders a node as if at the top level, so a parameter on its own
    line in a method would lose the class body's indentation)."""
    from libcst._nodes.internal import CodegenState  # what Module.code_for_node itself uses

    module = ctx.module
    indents = [
        block.indent if block.indent is not None else module.default_indent
        for block in ctx.ancestors(where) if isinstance(block, cst.IndentedBlock)
    ]
    state = CodegenState(default_indent=module.default_indent, default_newline=module.default_newline,
                         indent_tokens=list(reversed(indents)))
    node._codegen(state)
    return "".join(state.tokens)


def replace_rendered(ctx, node: cst.CSTNode, new_node: cst.CSTNode) -> Edit | None:
    """An edit turning `node` into `new_node`, both as libcst renders them (parentheses and trailing
    whitespace included): for rewrites that libcst lays out better than text surgery (a parameter
    list, a call's arguments). None when the source does not hold the node's code where libcst says."""
    old, new = render_in_place(ctx, node, node), render_in_place(ctx, node, new_node)
    start = span_with_parentheses(ctx, node)[0]
    offsets = _line_offsets(ctx.source)
    if not 0 < start.row <= len(offsets):
        return None
    begin = offsets[start.row - 1] + start.column - 1
    if ctx.source[begin:begin + len(old)] != old:
        return None
    end_offset = begin + len(old)
    row = max(0, bisect_right(offsets, end_offset) - 1)
    return Edit(new, start, Location(row + 1, end_offset - offsets[row] + 1))


def line_of(ctx, row: int) -> str:
    """Row `row` (1-based) of the module's source, with its line break; "" past the end."""
    lines = source_lines(ctx.source)
    return lines[row - 1] if 0 < row <= len(lines) else ""


def span_with_parentheses(ctx, node: cst.CSTNode) -> tuple[Location, Location]:
    """Start and end of the node's code including the parentheses around it (`(32, 32)`, `((x))`):
    `ctx.position` leaves them out, so an edit placed at its end would land inside them."""
    start, end = ctx.position(node)
    lpar = getattr(node, "lpar", None)
    rpar = getattr(node, "rpar", None)
    if lpar:
        start = ctx.position(lpar[0])[0]
    if rpar:
        end = ctx.position(rpar[-1])[1]
    return start, end


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
    line = line_of(ctx, start.row)
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
    all_lines = source_lines(ctx.source)
    if end.row >= len(all_lines) and all_lines and not all_lines[-1].endswith(("\n", "\r")):
        return insert(Location(end.row, len(all_lines[-1]) + 1), "\n" + text.rstrip("\n"))
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
    row = len(source_lines(ctx.source)) + 1
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


