"""Every registered rule's own valid and invalid cases, run through the real engine.

Valid cases must give no finding of the rule; invalid ones exactly the expected rows (and columns
where given); when a case gives `fixed`, applying the rule's fixes (safe and unsafe) must produce it,
the result must parse, and fixing it again must change nothing.
"""

from __future__ import annotations

import libcst as cst
import pytest

from seqlint.engine import all_rules, lint_source
from seqlint.runner import apply_fixes  # the applier `seqlint fix` uses


def _cases(kind: str):
    for rule in all_rules():
        for number, case in enumerate(getattr(rule, kind)):
            yield pytest.param(rule, case, id=f"{rule.code}-{kind}-{number}")


def _fix_all(source: str, rule) -> str:
    # Overlapping fixes wait for another pass, as `seqlint fix` does.
    for _ in range(5):
        fixes = [f.fix for f in lint_source(source, "case.py", rules=[rule]) if f.fix and f.fix.edits]
        if not fixes:
            break
        source, applied = apply_fixes(source, fixes)
        if not applied:
            break
    return source


@pytest.mark.parametrize(("rule", "source"), list(_cases("valid")))
def test_valid_case_gives_no_finding(rule, source):
    findings = lint_source(source, "case.py", rules=[rule])
    assert [(f.code, f.location.row, f.message) for f in findings] == []


@pytest.mark.parametrize(("rule", "case"), list(_cases("invalid")))
def test_invalid_case_reports_expected_lines(rule, case):
    findings = [f for f in lint_source(case.source, "case.py", rules=[rule]) if f.code == rule.code]
    expected = [e if isinstance(e, tuple) else (e,) for e in case.expected]
    got = [(f.location.row, f.location.column) for f in findings]
    assert sorted(row for row, _ in got) == sorted(e[0] for e in expected), [(f.location.row, f.message) for f in findings]
    for entry in expected:
        if len(entry) == 2:
            assert entry in got
    for finding in findings:
        assert finding.name == rule.name
        assert finding.statement_row is not None and finding.statement_row <= finding.location.row
    if case.fixed is not None:
        fixed = _fix_all(case.source, rule)
        assert fixed == case.fixed
        cst.parse_module(fixed)
        assert _fix_all(fixed, rule) == fixed


def _run(source: str, runs: str):
    namespace: dict = {"__name__": "seqlint_case"}
    exec(compile(source, "case.py", "exec"), namespace)  # noqa: S102 - the rule's own test case
    exec(compile(runs, "runs.py", "exec"), namespace)  # noqa: S102
    return namespace["result"]


def _assert_same(before, after, path="result"):
    import numpy as np

    if isinstance(before, (list, tuple)):
        assert type(before) is type(after) and len(before) == len(after), path
        for i, (b, a) in enumerate(zip(before, after)):
            _assert_same(b, a, f"{path}[{i}]")
    elif isinstance(before, np.ndarray):
        assert isinstance(after, np.ndarray), path
        assert (before.dtype, before.shape) == (after.dtype, after.shape), path
        assert np.array_equal(before, after, equal_nan=True), path
    else:
        assert before == after, path


def _runnable_cases():
    for rule in all_rules():
        for number, case in enumerate(rule.invalid):
            if case.runs is not None and case.fixed is not None:
                yield pytest.param(rule, case, id=f"{rule.code}-invalid-{number}")


@pytest.mark.parametrize(("rule", "case"), list(_runnable_cases()))
def test_fixed_case_yields_the_same_batches(rule, case):
    """Executes the case before and after its fix on generated data (real numpy and keras)."""
    pytest.importorskip("numpy")
    assert _fix_all(case.source, rule) == case.fixed
    _assert_same(_run(case.source, case.runs), _run(case.fixed, case.runs))
