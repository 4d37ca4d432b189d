"""The default, human format: each finding with its code frame, the rule's name and what to do.

    train.py:14:13: SEQ101 [*] per-sample scaling runs for every batch
       |
    13 |     def __getitem__(self, i):
    14 |         x = self.x[i] / 255.0
       |             ^^^^^^^^^^^^^^^^^ SEQ101 per-batch-preprocessing
    15 |         return x, self.y[i]
       |
       = help: hoist the scaling into seqkit.preprocess_once (safe fix)

Colours only when the stream is a terminal (rich decides; NO_COLOR / FORCE_COLOR are honoured).
"""

from __future__ import annotations

import re
from typing import TextIO

from seqlint.findings import Applicability, Finding
from seqlint.report import ReportContext, is_applicable, summary_lines

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_TAB = 4
_MAX_FRAME_LINES = 6  # of a multi-line finding; the middle is elided beyond that


def write(result, context: ReportContext, stream: TextIO) -> None:
    from rich.console import Console
    from rich.text import Text

    console = Console(file=stream, highlight=False, soft_wrap=True, emoji=False)
    lines_of: dict[tuple[str, int | None], list[str]] = {}
    for finding in result.findings:
        key = (finding.filename, finding.cell)
        if key not in lines_of:
            if finding.cell is not None:  # a notebook: the frame shows the cell, rows counted in it
                text = getattr(result, "cell_sources", {}).get(key, "")
            else:
                text = result.sources.get(finding.filename, "")
            lines_of[key] = _LINE_BREAK.split(text)
        for text in _render(finding, lines_of[key], context, Text):
            console.print(text)
        console.print()
    for line in summary_lines(result, context):
        console.print(Text(line, style="bold" if line.startswith("Found") else ""))


def _render(f: Finding, lines: list[str], context: ReportContext, Text) -> list:
    out = []
    header = Text()
    header.append(f.filename, style="bold")
    if f.cell is not None:
        header.append(f":cell {f.cell}", style="bold")
    header.append(f":{f.location.row}:{f.location.column}: ", style="cyan")
    header.append(f.code, style="bold red")
    if is_applicable(f.fix, context.unsafe_fixes) and not context.fixing:
        header.append(" [*]", style="cyan")
    header.append(" " + f.message)
    out.append(header)

    first, last = f.location.row, max(f.end_location.row, f.location.row)
    if not 1 <= first <= len(lines):
        return out + _notes(f, context, Text, width=1)
    last = min(last, len(lines))
    rows = list(range(max(1, first - 1), min(len(lines), last + 1) + 1))
    if len(rows) > _MAX_FRAME_LINES + 2:
        keep = _MAX_FRAME_LINES // 2
        rows = rows[: keep + 1] + [None] + rows[-keep - 1:]
    width = len(str(max(r for r in rows if r is not None)))
    gutter = " " * width + " |"
    out.append(Text(gutter, style="blue"))
    for row in rows:
        if row is None:
            out.append(Text(" " * width + " :", style="blue"))
            continue
        line = lines[row - 1]
        text = Text(f"{row:>{width}} | ", style="blue")
        text.append(line.expandtabs(_TAB), style="" if first <= row <= last else "dim")
        out.append(text)
        if row == first:
            start = len(line[: f.location.column - 1].expandtabs(_TAB))
            if last == first:
                stop = len(line[: f.end_location.column - 1].expandtabs(_TAB))
            else:
                stop = len(line.expandtabs(_TAB))
            marker = Text(gutter + " " + " " * start, style="blue")
            marker.append("^" * max(1, stop - start), style="bold red")
            marker.append(f" {f.code} {f.name}", style="bold red")
            out.append(marker)
    out.append(Text(gutter, style="blue"))
    return out + _notes(f, context, Text, width=width)


def _notes(f: Finding, context: ReportContext, Text, width: int) -> list:
    pad = " " * width + " = "
    notes = []
    fix = f.fix
    if fix is not None:
        if fix.applicability is Applicability.DISPLAY_ONLY:
            notes.append(("suggestion", fix.message))
        elif is_applicable(fix, context.unsafe_fixes):
            command = "seqlint fix" + (" --unsafe-fixes" if fix.applicability is Applicability.UNSAFE else "")
            notes.append(("help", fix.message if context.fixing else f"{fix.message} (fixable with `{command}`)"))
        else:
            notes.append(("help", f"{fix.message} (unsafe fix available with `--unsafe-fixes`)"))
    if f.hint:
        notes.append(("hint", f.hint))
    result = []
    for label, message in notes:
        text = Text(pad, style="blue")
        text.append(f"{label}: ", style="bold")
        text.append(message)
        result.append(text)
    return result
