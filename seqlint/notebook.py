"""Jupyter notebooks: their code cells as one Python module, and fixes written back into the cells.

As ruff does, the code cells are joined (one newline between two cells) into a single module, so that
a class defined in one cell and used in a later one is seen whole; findings are then placed back in
their cell (`train.ipynb:cell 3:12:5`, cells counted from 1 among all cells, markdown included).

IPython syntax is not Python: line magics (`%matplotlib inline`), shell escapes (`!pip install x`,
`files = !ls`) and help (`np.mean?`) are replaced by a `pass` line of the same indentation before
parsing, and a cell run by a non-Python cell magic (`%%bash`, `%%writefile`) is left out. Fixes may not
touch those lines nor cross from one cell into another; every other edit is applied to its cell.

Writing back changes only the `source` values of the cells that changed, in the file's own layout:
outputs, metadata, key order, indentation and escapes stay byte for byte as they were.
"""

from __future__ import annotations

import io
import json
import re
import tokenize
from bisect import bisect_right
from dataclasses import dataclass, field, replace

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")  # each line with its line break
# A line that IPython transforms before Python sees it: `%magic`, `!shell`, `?help`/`help?`, and
# `name = !shell` / `name = %magic` assignments. A magic's name follows `%` directly, so a line
# continuing an expression with the modulo operator (`    % args)`) is not one.
_ESCAPE = re.compile(
    r"^[ \t]*(?:%%?[A-Za-z]|![^=]|\?\??[A-Za-z_%]|[A-Za-z_][\w.]*[ \t]*=[ \t]*(?:%[A-Za-z]|!)"
    r"|[A-Za-z_][\w.]*\?\??[ \t]*$)"
)
# Cell magics whose body is Python: the magic line is an escape, the rest is checked.
_PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun", "debug", "memit", "python", "python3"})


class NotebookError(Exception):
    """The file is not a notebook seqlint can read; str() says why, `.line`/`.column` where (1-based)."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None, *, foreign: bool = False):
        super().__init__(message)
        self.line = line
        self.column = column
        self.foreign = foreign  # a well-formed notebook in another language: not ours to check


@dataclass(frozen=True)
class Cell:
    """One code cell as seqlint checks it."""

    number: int  # 1-based position among all the notebook's cells
    masked: str  # the cell's source with IPython escapes replaced by `pass` lines
    # (start, end, original line) of every replaced line, offsets into `masked`, in order
    escapes: tuple[tuple[int, int, str], ...] = ()

    @property
    def source(self) -> str:
        """The cell's text as the notebook stores it."""
        out, last = [], 0
        for start, end, original in self.escapes:
            out += [self.masked[last:start], original]
            last = end
        out.append(self.masked[last:])
        return "".join(out)


@dataclass(frozen=True)
class Layout:
    """The checked code cells of a notebook, and the module they make together."""

    cells: tuple[Cell, ...]
    text: str = field(init=False)
    starts: tuple[int, ...] = field(init=False)  # offset of each cell in `text`
    first_rows: tuple[int, ...] = field(init=False)  # 1-based row of each cell's first line in `text`

    def __post_init__(self) -> None:
        starts, rows, offset, row = [], [], 0, 1
        for cell in self.cells:
            starts.append(offset)
            rows.append(row)
            offset += len(cell.masked) + 1
            row += len(_LINE_BREAK.findall(cell.masked)) + 1
        object.__setattr__(self, "text", "\n".join(cell.masked for cell in self.cells))
        object.__setattr__(self, "starts", tuple(starts))
        object.__setattr__(self, "first_rows", tuple(rows))

    def locate(self, row: int, column: int) -> tuple[int, int, int]:
        """(cell number, row in the cell, column) of a 1-based row and column of `text`."""
        index = max(0, bisect_right(self.first_rows, row) - 1)
        return self.cells[index].number, row - self.first_rows[index] + 1, column

    def cell_index_of(self, start: int, end: int) -> int | None:
        """The cell an edit of `text[start:end]` belongs to, or None when it is not confined to one
        cell or touches a replaced IPython line."""
        # An insertion at a cell's first character belongs to that cell, one at its last to that one.
        index = max(0, bisect_right(self.starts, start) - 1)
        cell_start = self.starts[index]
        cell_end = cell_start + len(self.cells[index].masked)
        if not (cell_start <= start <= end <= cell_end):
            return None
        for a, b, _ in self.cells[index].escapes:
            a, b = a + cell_start, b + cell_start
            if (start < b and end > a) if start != end else a < start < b:
                return None
        return index

    def apply(self, edits: list[tuple[int, int, str]]) -> Layout:
        """The layout after replacing `text[start:end]` by each content (edits confined to a cell and
        clear of escapes, as `cell_index_of` accepts them; not overlapping)."""
        by_cell: dict[int, list[tuple[int, int, str]]] = {}
        for start, end, content in edits:
            index = self.cell_index_of(start, end)
            if index is None:
                raise ValueError(f"edit {start}:{end} crosses a cell boundary or an IPython line")
            base = self.starts[index]
            by_cell.setdefault(index, []).append((start - base, end - base, content))
        cells = list(self.cells)
        for index, cell_edits in by_cell.items():
            cells[index] = _edit_cell(self.cells[index], cell_edits)
        return Layout(tuple(cells))


def _edit_cell(cell: Cell, edits: list[tuple[int, int, str]]) -> Cell:
    edits = sorted(edits, key=lambda e: (e[0], e[1]))
    pieces, last = [], 0
    for start, end, content in edits:
        pieces += [cell.masked[last:start], content]
        last = end
    pieces.append(cell.masked[last:])
    escapes = []
    for a, b, original in cell.escapes:
        # Edits never overlap an escape line: it moves by what was inserted or removed before it.
        shift = sum(len(c) - (e - s) for s, e, c in edits if e <= a)
        escapes.append((a + shift, b + shift, original))
    return replace(cell, masked="".join(pieces), escapes=tuple(escapes))


# ---------------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class _SourceValue:
    """Where a code cell's `source` sits in the JSON text, and how it is written there."""

    number: int
    start: int
    end: int
    value: str  # decoded text
    parts: tuple[str, ...] | None  # the list's strings, or None when `source` is one string
    raw_parts: tuple[str, ...] = ()  # the list's elements as written (escapes kept)


@dataclass(frozen=True)
class Notebook:
    """A notebook file: its JSON text, where the code cells' sources are, and the module they make."""

    raw: str
    values: tuple[_SourceValue, ...]  # the checked code cells, in order
    layout: Layout
    skipped_cells: tuple[int, ...] = ()  # cell numbers run by a non-Python cell magic

    @classmethod
    def parse(cls, raw: str) -> Notebook:
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as error:
            raise NotebookError(f"not a valid notebook: invalid JSON: {error.msg}", error.lineno, error.colno) from None
        except RecursionError:
            raise NotebookError("not a valid notebook: JSON nested too deeply") from None
        if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
            if isinstance(data, dict) and "worksheets" in data:
                raise NotebookError("nbformat 3 notebooks are not supported (convert it with "
                                    "`jupyter nbconvert --to notebook --nbformat 4`)")
            raise NotebookError("not a valid notebook: no top-level \"cells\" list")
        language = _language(data.get("metadata"))
        if language is not None and language.lower() not in ("python", "python3", "ipython"):
            raise NotebookError(f"not a Python notebook (its language is {language!r}); not checked", foreign=True)
        values = []
        for number, (cell, span) in enumerate(zip(data["cells"], _cell_source_spans(raw)), start=1):
            if not isinstance(cell, dict) or cell.get("cell_type") != "code" or span is None:
                continue
            source = cell.get("source", "")
            if json.loads(raw[span[0]:span[1]]) != source:  # duplicate keys or the like: refuse to guess
                raise NotebookError(f"cell {number}: cannot tell where its source is in the file")
            if isinstance(source, list) and all(isinstance(part, str) for part in source):
                raw_parts = tuple(_list_elements(raw, span[0], span[1]))
                values.append(_SourceValue(number, span[0], span[1], "".join(source), tuple(source), raw_parts))
            elif isinstance(source, str):
                values.append(_SourceValue(number, span[0], span[1], source, None))
            else:
                raise NotebookError(f"cell {number}: \"source\" is neither a string nor a list of strings")
        cells, skipped = [], []
        for value in values:
            cell = mask_cell(value.number, value.value)
            if cell is None:
                skipped.append(value.number)
            else:
                cells.append(cell)
        kept = {cell.number for cell in cells}
        return cls(raw, tuple(v for v in values if v.number in kept), Layout(tuple(cells)), tuple(skipped))

    def render(self, layout: Layout) -> str:
        """The notebook's JSON text with the cells' sources taken from `layout` (same cells)."""
        ascii_only = not any(ord(ch) > 127 for ch in self.raw) and "\\u" in self.raw
        pieces, last = [], 0
        for value, cell in zip(self.values, layout.cells):
            text = cell.source
            if text == value.value:
                continue
            pieces += [self.raw[last:value.start], _encode_source(self.raw, value, text, ascii_only)]
            last = value.end
        pieces.append(self.raw[last:])
        return "".join(pieces)


def _language(metadata) -> str | None:
    if not isinstance(metadata, dict):
        return None
    for key, field_name in (("language_info", "name"), ("kernelspec", "language")):
        table = metadata.get(key)
        if isinstance(table, dict) and isinstance(table.get(field_name), str):
            return table[field_name]
    return None


def mask_cell(number: int, source: str) -> Cell | None:
    """The cell with its IPython lines replaced by `pass`, or None for a cell that is not Python."""
    lines = _LINE.findall(source)
    first = next((line for line in lines if line.strip()), "")
    if first.lstrip().startswith("%%"):
        name = first.lstrip()[2:].split(maxsplit=1)[0] if first.strip() != "%%" else ""
        if name not in _PYTHON_CELL_MAGICS:
            return None
    # Each candidate line -> the line whose indentation its `pass` takes (its own, or for the lines
    # a trailing backslash continues, the escape's first line).
    candidates: dict[int, int] = {}
    index = 0
    while index < len(lines):
        if _ESCAPE.match(lines[index]):
            first_line = index
            candidates[index] = first_line
            while lines[index].rstrip("\r\n").endswith("\\") and index + 1 < len(lines):
                index += 1
                candidates[index] = first_line
        index += 1
    if not candidates:
        return Cell(number, source)
    # A line inside a triple-quoted string or continuing a bracketed expression (`    % args)`) only
    # looks like an escape: once masked, the tokenizer tells whether it starts a statement.
    inside = _continuation_rows("".join(_masked(lines, candidates)))
    candidates = {i: first for i, first in candidates.items() if first + 1 not in inside}
    masked_lines = _masked(lines, candidates)
    escapes, offset = [], 0
    for i, (original, masked) in enumerate(zip(lines, masked_lines)):
        if i in candidates:
            escapes.append((offset, offset + len(masked.rstrip("\r\n")), original.rstrip("\r\n")))
        offset += len(masked)
    return Cell(number, "".join(masked_lines), tuple(escapes))


def _masked(lines: list[str], candidates: dict[int, int]) -> list[str]:
    out = list(lines)
    for i, first in candidates.items():
        body = lines[first].rstrip("\r\n")
        indent = body[: len(body) - len(body.lstrip(" \t"))]
        out[i] = indent + "pass" + lines[i][len(lines[i].rstrip("\r\n")):]
    return out


def _continuation_rows(text: str) -> set[int]:
    """Rows (1-based) that do not start a statement: inside a multi-line string, or whose first token
    continues the logical line of a row above."""
    rows: set[int] = set()
    at_statement_start = True
    row = 0  # the row of the last token seen
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type in (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING):
                continue
            if tok.type == tokenize.NEWLINE:
                at_statement_start = True
                continue
            if tok.type == tokenize.STRING and tok.end[0] > tok.start[0]:
                rows.update(range(tok.start[0] + 1, tok.end[0] + 1))
            if tok.start[0] != row and not at_statement_start:
                rows.add(tok.start[0])  # the row's first token continues a statement
            row = tok.end[0]
            at_statement_start = False
    except (tokenize.TokenError, SyntaxError):
        pass
    return rows


# ---------------------------------------------------------------------------------------------------
# Locating the `source` values in the JSON text (the json module gives values, not positions)

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_SCALAR = re.compile(r"[^,\]}\s]+")
_STRUCTURE = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def _skip_ws(raw: str, i: int) -> int:
    return _WHITESPACE.match(raw, i).end()


def _value_end(raw: str, i: int) -> int:
    """End of the JSON value starting at `i` (no recursion: nesting is counted)."""
    ch = raw[i]
    if ch == '"':
        return _STRING.match(raw, i).end()
    if ch not in "[{":
        return _SCALAR.match(raw, i).end()
    depth = 0
    for match in _STRUCTURE.finditer(raw, i):
        token = match.group()
        if token in "[{":
            depth += 1
        elif token in "]}":
            depth -= 1
            if depth == 0:
                return match.end()
    raise NotebookError("not a valid notebook: unbalanced JSON")


def _members(raw: str, i: int):
    """(key, value start, value end) of the object starting at `i`."""
    i = _skip_ws(raw, i + 1)
    while raw[i] != "}":
        key_end = _STRING.match(raw, i).end()
        key = json.loads(raw[i:key_end])
        i = _skip_ws(raw, key_end) + 1  # the colon
        start = _skip_ws(raw, i)
        end = _value_end(raw, start)
        yield key, start, end
        i = _skip_ws(raw, end)
        if raw[i] == ",":
            i = _skip_ws(raw, i + 1)


def _elements(raw: str, i: int):
    """(start, end) of each element of the array starting at `i`."""
    i = _skip_ws(raw, i + 1)
    while raw[i] != "]":
        end = _value_end(raw, i)
        yield i, end
        i = _skip_ws(raw, end)
        if raw[i] == ",":
            i = _skip_ws(raw, i + 1)


def _cell_source_spans(raw: str) -> list[tuple[int, int] | None]:
    """For each cell, the span of its `source` value in the text (None when it has none)."""
    top = _skip_ws(raw, 0)
    for key, start, _end in _members(raw, top):
        if key == "cells":
            spans = []
            for cell_start, _cell_end in _elements(raw, start):
                span = None
                if raw[cell_start] == "{":
                    for cell_key, value_start, value_end in _members(raw, cell_start):
                        if cell_key == "source":
                            span = (value_start, value_end)
                spans.append(span)
            return spans
    return []


def _list_elements(raw: str, start: int, end: int) -> list[str]:
    return [raw[a:b] for a, b in _elements(raw, start)] if raw[start] == "[" else []


def _encode_source(raw: str, value: _SourceValue, text: str, ascii_only: bool) -> str:
    """`text` as a JSON value shaped like the one it replaces (a string, or one string per line in the
    original list's layout); lines that did not change keep their original spelling."""
    if value.parts is None:
        return json.dumps(text, ensure_ascii=ascii_only)
    lines = text.splitlines(keepends=True)
    spelled = dict(zip(value.parts, value.raw_parts))
    elements = [spelled.get(line) or json.dumps(line, ensure_ascii=ascii_only) for line in lines]
    if not elements:
        return "[]"
    old = raw[value.start:value.end]
    if "\n" not in old and old != "[]":
        return "[" + ", ".join(elements) + "]"
    if value.raw_parts:
        first_element = value.start + 1 + len(old[1:]) - len(old[1:].lstrip())
        item_indent = raw[raw.rfind("\n", 0, first_element) + 1:first_element]
        closing = old[old.rstrip().rfind("\n") + 1:-1] if "\n" in old else ""
        closing = closing if not closing.strip() else ""
    else:  # an empty list before: indent as nbformat does (one more space than the "source" key)
        key_line = raw[raw.rfind("\n", 0, value.start) + 1:value.start]
        closing = key_line[: len(key_line) - len(key_line.lstrip())]
        item_indent = closing + " "
    return "[\n" + ",\n".join(item_indent + element for element in elements) + "\n" + closing + "]"
