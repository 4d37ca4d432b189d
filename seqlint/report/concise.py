"""`path:row:col: CODE message` (`path:cell N:row:col: ...` in notebooks), one line per finding: for
editors' error parsers and grep."""

from __future__ import annotations

from typing import TextIO

from seqlint.report import ReportContext, summary_lines


def write(result, context: ReportContext, stream: TextIO) -> None:
    for f in result.findings:
        stream.write(f"{f.where}: {f.code} {f.message}\n")
    for line in summary_lines(result, context):
        stream.write(line + "\n")
