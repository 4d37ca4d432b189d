"""The realistic generator files in fixtures/lint are the specification of what seqlint reports.

Each `NAME.py` has a `NAME.expected` beside it listing, one per line and sorted, `LINE CODE` for every
finding the catalogue's rules must report on it (an empty file: the code is clean). The expectations
were written by reading the code against the rule catalogue, not by recording the tool's output, so a
mismatch is either a rule bug or a reporting convention the expectation should follow.

Top-level files are checked alone; every file of a `project_*` folder is checked with a ProjectIndex
over the whole folder, as `seqlint check project_x/` would, so base classes defined in another module
are known.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import pytest

from seqlint.engine import ProjectIndex, all_rules, lint_source

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "lint"
_EXPECTED_LINE = re.compile(r"^(\d+) (SEQ\d{3})$")
# Enough variety that a rule only passing on one idiom shows up: each rule must be exercised by this
# many fixture files, and this many fixtures must be clean (false positives matter as much).
MIN_FILES_PER_RULE = 3
MIN_CLEAN_FILES = 8
# The catalogue's codes are fixed (DESIGN.md); a registered rule outside it still needs fixtures.
CATALOGUE = ("SEQ101", "SEQ102", "SEQ103", "SEQ104", "SEQ201", "SEQ202",
             "SEQ301", "SEQ302", "SEQ303", "SEQ304", "SEQ305", "SEQ306")


def _project_files(path: Path) -> tuple[Path, ...]:
    """The files checked together with `path`: its project folder's, or just itself."""
    relative = path.relative_to(FIXTURES)
    if len(relative.parts) > 1 and relative.parts[0].startswith("project_"):
        return tuple(sorted((FIXTURES / relative.parts[0]).rglob("*.py")))
    return (path,)


def _fixture_files() -> list[Path]:
    top = sorted(FIXTURES.glob("*.py"))
    projects = sorted(p for d in sorted(FIXTURES.glob("project_*")) if d.is_dir() for p in d.rglob("*.py"))
    return top + projects


@lru_cache(maxsize=None)
def _index(files: tuple[Path, ...]) -> ProjectIndex:
    return ProjectIndex.build({str(f): f.read_text(encoding="utf-8") for f in files})


def _read_expected(path: Path) -> set[tuple[int, str]]:
    expected_file = path.with_suffix(".expected")
    assert expected_file.exists(), f"{path.relative_to(FIXTURES)} has no {expected_file.name} beside it"
    lines = [line for line in expected_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    entries = []
    for number, line in enumerate(lines, 1):
        match = _EXPECTED_LINE.match(line.strip())
        assert match, f"{expected_file.name}:{number}: expected 'LINE CODE', got {line!r}"
        entries.append((int(match.group(1)), match.group(2)))
    assert entries == sorted(entries), f"{expected_file.name} is not sorted"
    assert len(entries) == len(set(entries)), f"{expected_file.name} lists a finding twice"
    return set(entries)


def _describe(kind: str, row: int, code: str, source_lines: list[str], message: str = "") -> str:
    text = source_lines[row - 1].strip() if 0 < row <= len(source_lines) else "<no such line>"
    detail = f"  ({message})" if message else ""
    return f"  {kind} {row:>4} {code}: {text}{detail}"


@pytest.mark.parametrize(
    "path", _fixture_files(), ids=lambda p: str(p.relative_to(FIXTURES).with_suffix(""))
)
def test_fixture_findings_match_expectation(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    expected = _read_expected(path)
    findings = lint_source(source, str(path), project=_index(_project_files(path)))
    messages = {(f.location.row, f.code): f.message for f in findings}
    actual = set(messages)
    if actual == expected:
        return
    lines = source.splitlines()
    report = [f"{path.relative_to(FIXTURES)}: findings differ from {path.with_suffix('.expected').name}"]
    report += [_describe("missing   ", row, code, lines) for row, code in sorted(expected - actual)]
    report += [
        _describe("unexpected", row, code, lines, messages[row, code]) for row, code in sorted(actual - expected)
    ]
    pytest.fail("\n".join(report), pytrace=False)


def test_fixtures_cover_every_rule_and_clean_code() -> None:
    files = _fixture_files()
    known = set(CATALOGUE) | {rule.code for rule in all_rules()}
    files_per_code: dict[str, int] = {code: 0 for code in known}
    clean = 0
    for path in files:
        codes = {code for _, code in _read_expected(path)}
        unknown = codes - known
        assert not unknown, f"{path.with_suffix('.expected').name} names unknown codes {sorted(unknown)}"
        clean += not codes and path.name != "__init__.py"
        for code in codes:
            files_per_code[code] += 1
    thin = {code: n for code, n in files_per_code.items() if n < MIN_FILES_PER_RULE}
    assert not thin, f"rules exercised by fewer than {MIN_FILES_PER_RULE} fixture files: {thin}"
    assert clean >= MIN_CLEAN_FILES, f"only {clean} clean fixtures; want at least {MIN_CLEAN_FILES}"
