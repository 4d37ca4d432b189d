"""Output formats. Each module here has `write(result, context, stream)`; they only format.

Formats are imported on demand so that, say, a json run never pays for rich.
"""

from __future__ import annotations

import importlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from seqlint.findings import Applicability, Finding, Fix

FORMATS = {"full": "full", "concise": "concise", "json": "json", "sarif": "sarif", "github": "github"}


@dataclass
class ReportContext:
    root: Path  # SARIF URIs are relative to it
    rules: dict[str, type] = field(default_factory=dict)  # code -> rule class, for names and docs
    unsafe_fixes: bool = False
    fixing: bool = False  # the run applied fixes: "fixable" hints would be noise
    diff: bool = False
    quiet: bool = False  # findings only, no summary lines


def write_report(output_format: str, result, context: ReportContext, stream: TextIO) -> None:
    module = importlib.import_module(f"seqlint.report.{FORMATS[output_format]}")
    module.write(result, context, stream)


def is_applicable(fix: Fix | None, unsafe_fixes: bool) -> bool:
    """Would `seqlint fix` (with the current --unsafe-fixes setting) apply this fix?"""
    if fix is None:
        return False
    return fix.applicability is Applicability.SAFE or (
        unsafe_fixes and fix.applicability is Applicability.UNSAFE
    )


def statistics(findings: list[Finding], unsafe_fixes: bool) -> list[dict]:
    counts = Counter(f.code for f in findings)
    names = {f.code: f.name for f in findings}
    fixable = {f.code for f in findings if is_applicable(f.fix, unsafe_fixes)}
    return [
        {"code": code, "name": names[code], "count": counts[code], "fixable": code in fixable}
        for code in sorted(counts, key=lambda c: (-counts[c], c))
    ]


def write_statistics(findings: list[Finding], unsafe_fixes: bool, stream: TextIO, *, as_json: bool) -> None:
    rows = statistics(findings, unsafe_fixes)
    if as_json:
        import json

        json.dump(rows, stream, indent=2)
        stream.write("\n")
        return
    if not rows:
        return
    width = max(len(str(r["count"])) for r in rows)
    for row in rows:
        fixable = "[*]" if row["fixable"] else "[ ]"
        stream.write(f"{row['count']:>{width}}\t{row['code']}\t{row['name']}\t{fixable}\n")


def summary_lines(result, context: ReportContext) -> list[str]:
    """The closing lines of the human formats, as ruff prints them."""
    findings = result.findings
    lines: list[str] = []
    if context.quiet:
        return lines
    if context.fixing and result.fixes_applied:
        total = len(findings) + result.fixes_applied
        verb = "would be fixed" if context.diff else "fixed"
        lines.append(
            f"Found {_plural(total, 'finding')} ({result.fixes_applied} {verb}, {len(findings)} remaining)."
        )
    elif findings:
        lines.append(f"Found {_plural(len(findings), 'finding')}.")
    elif not result.errors:
        lines.append("All checks passed!")
    if result.errors:
        # Never a silent pass: files that were not checked are counted where the verdict is read.
        unchecked = len({e.filename for e in result.errors})
        what = "checked or fixed" if context.fixing else "checked"
        lines.append(f"{_plural(unchecked, 'file')} could not be {what} (errors above).")
    if not context.fixing:
        fixable = sum(is_applicable(f.fix, context.unsafe_fixes) for f in findings)
        if fixable:
            command = "seqlint fix --unsafe-fixes" if context.unsafe_fixes else "seqlint fix"
            lines.append(f"[*] {fixable} fixable with `{command}`.")
    if not context.unsafe_fixes:
        hidden = sum(f.fix is not None and f.fix.applicability is Applicability.UNSAFE for f in findings)
        if hidden:
            lines.append(
                f"{_plural(hidden, 'hidden fix', 'hidden fixes')} can be enabled with `--unsafe-fixes`."
            )
    return lines


def _plural(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"
