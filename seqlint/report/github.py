"""GitHub Actions workflow commands: each finding becomes an annotation on the pull request diff."""

from __future__ import annotations

from typing import TextIO

from seqlint.report import ReportContext


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def write(result, context: ReportContext, stream: TextIO) -> None:
    for f in result.findings:
        props = [f"title={_escape_property(f'seqlint ({f.code})')}", f"file={_escape_property(f.filename)}"]
        message = f"{f.code} {f.message}"
        if f.cell is None:
            props += [f"line={f.location.row}", f"col={f.location.column}",
                      f"endLine={f.end_location.row}", f"endColumn={f.end_location.column}"]
        else:
            # Rows of a notebook cell are not lines of the .ipynb file GitHub shows: say where in words.
            message = f"cell {f.cell}, line {f.location.row}, column {f.location.column}: {message}"
        stream.write(f"::error {','.join(props)}::{_escape_data(message)}\n")
    for e in result.errors:
        props = [f"title={_escape_property('seqlint')}", f"file={_escape_property(e.filename)}"]
        if e.line is not None and getattr(e, "cell", None) is None:
            props += [f"line={e.line}", f"col={e.column or 1}"]
        stream.write(f"::error {','.join(props)}::{_escape_data(e.message)}\n")
