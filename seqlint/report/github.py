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
        props = ",".join([
            f"title={_escape_property(f'seqlint ({f.code})')}",
            f"file={_escape_property(f.filename)}",
            f"line={f.location.row}",
            f"col={f.location.column}",
            f"endLine={f.end_location.row}",
            f"endColumn={f.end_location.column}",
        ])
        stream.write(f"::error {props}::{_escape_data(f'{f.code} {f.message}')}\n")
    for e in result.errors:
        props = [f"title={_escape_property('seqlint')}", f"file={_escape_property(e.filename)}"]
        if e.line is not None:
            props += [f"line={e.line}", f"col={e.column or 1}"]
        stream.write(f"::error {','.join(props)}::{_escape_data(e.message)}\n")
