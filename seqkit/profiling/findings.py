"""seqlint's findings on the lines the profiler found hot.

The user's files are linted together (so a helper in one file called from a dataset in another is
known to run per batch), through seqlint's public API; `# noqa` suppressions are respected.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


_MAX_SPAN = 12  # a finding spanning more rows (a whole method) says nothing about one line in it


@dataclass(frozen=True)
class LineFinding:
    code: str
    name: str
    message: str
    row: int
    end_row: int
    fix: str | None  # "safe", "unsafe", "display-only" or None


def lint_files(filenames) -> tuple[dict[str, list[LineFinding]], list[str]]:
    """{filename: findings} for the readable Python files, and the problems met (unreadable files)."""
    from seqlint.engine import ParseError, ProjectIndex, RuleError, lint_source
    from seqlint.noqa import parse_noqa

    sources: dict[str, str] = {}
    problems: list[str] = []
    for name in sorted(set(filenames)):
        try:
            sources[name] = Path(name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            problems.append(f"{name}: not linted: {error}")
    try:
        project = ProjectIndex.build(sources) if len(sources) > 1 else None
    except Exception as error:  # noqa: BLE001 - without the index each file is still linted alone
        problems.append(f"seqlint project index: {type(error).__name__}: {error}")
        project = None
    result: dict[str, list[LineFinding]] = {}
    for name, source in sources.items():
        try:
            findings = lint_source(source, name, project=project)
        except (ParseError, RuleError) as error:
            problems.append(f"{name}: not linted: {error}")
            continue
        noqa = parse_noqa(source)
        result[name] = [
            LineFinding(
                f.code,
                f.name,
                f.message,
                f.location.row,
                f.end_location.row,
                f.fix.applicability.value if f.fix is not None else None,
            )
            for f in findings
            if not noqa.suppresses(f)
        ]
    return result, problems


def on_line(findings: list[LineFinding], row: int) -> list[LineFinding]:
    """Findings that start on `row`, else those whose span covers it (a loop flagged at its header)."""
    starting = [f for f in findings if f.row == row]
    if starting:
        return starting
    return [f for f in findings if f.row <= row <= f.end_row and f.end_row - f.row <= _MAX_SPAN]
