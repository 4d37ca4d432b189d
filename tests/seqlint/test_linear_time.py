"""Analysis work grows linearly with the file (issue 13 §4), counted, not timed.

A `x + 1 + 1 ...` chain of 5,000 terms and a 42k-line file of 2,000 classes each took over 120 s: work
that re-walked a growing part of the file for every node or every class. Here the work is the number
of Python function calls made while checking a file of size n and of size 4n (sys.setprofile counts
them exactly, whatever the machine's load): linear work grows about 4x, quadratic 16x. The wall-clock
check of the same shapes at full size is benchmarks/bench_seqlint.py.
"""

from __future__ import annotations

import sys
from functools import lru_cache

import pytest

from seqlint.edits import apply_fixes_checked
from seqlint.engine import all_rules, build_context, get_rule, lint_source
from seqlint.nesting import nesting_problem
from seqlint.noqa import parse_noqa

from benchmarks.seqlint_shapes import SHAPES

# Linear work with a constant part gives a ratio at or below 4; allow some slack for work that grows
# with the log of the size (sorting), never the 16 of quadratic work.
MAX_RATIO = 5.0

def calls(function, *args) -> int:
    count = 0

    def profile(frame, event, arg):
        nonlocal count
        if event == "call":
            count += 1

    sys.setprofile(profile)
    try:
        function(*args)
    finally:
        sys.setprofile(None)
    return count


@lru_cache(maxsize=None)
def source_of(shape: str, n: int) -> str:
    return SHAPES[shape](n)


def context(shape: str, n: int):
    """A fresh context (rules cache facts on it: a second check of one context is cheaper)."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20_000))
    ctx = build_context(source_of(shape, n), f"{shape}_{n}.py")
    ctx.position(ctx.module)  # positions are shared by all rules: resolved outside the counts
    return ctx


SIZES = {"chain": 300, "classes": 6}
# Rules whose work is not linear yet, with where the time goes; strict, so that the marker must go
# once they are (the owner of those files is rewriting them).
NOT_LINEAR_YET: dict[tuple[str, str], str] = {}


def _rule_cases():
    for shape in SHAPES:
        for rule in all_rules():
            marks = []
            if (shape, rule.code) in NOT_LINEAR_YET:
                marks = [pytest.mark.xfail(strict=True, reason=NOT_LINEAR_YET[(shape, rule.code)])]
            yield pytest.param(shape, rule.code, marks=marks, id=f"{shape}-{rule.code}")


@pytest.mark.parametrize(("shape", "code"), list(_rule_cases()))
def test_each_rule_grows_linearly(shape, code):
    rule = get_rule(code)
    n = SIZES[shape] if (shape, code) not in NOT_LINEAR_YET else SIZES[shape] // 4
    list(rule().check(context(shape, 1)))  # warm: imports and tables loaded on first use
    small, large = context(shape, n), context(shape, 4 * n)
    ratio = calls(lambda: list(rule().check(large))) / max(1, calls(lambda: list(rule().check(small))))
    assert ratio <= MAX_RATIO, f"{code} on {shape}: 4x the input took {ratio:.1f}x the calls (quadratic: ~16x)"


def _parse(source: str) -> None:
    ctx = build_context(source, "big.py")
    ctx.position(ctx.module)


def fix(source: str) -> None:
    """A fix pass as `seqlint fix` makes it, without the rules: every fix of every class applied
    together (and, when one breaks the code, the culprit found by halving)."""
    fixes = [f.fix for f in lint_source(source, "big.py", rules=[get_rule(c) for c in FIXING_RULES]) if f.fix]
    apply_fixes_checked(source, fixes)


FIXING_RULES = ("SEQ302", "SEQ306")


@pytest.mark.parametrize(
    ("shape", "work"),
    [
        pytest.param("chain", nesting_problem, id="chain-guard"),
        pytest.param("classes", nesting_problem, id="classes-guard"),
        pytest.param("classes", parse_noqa, id="classes-noqa"),
        pytest.param("classes", _parse, id="classes-context"),
        pytest.param("classes", fix, id="classes-fix"),
    ],
)
def test_shared_work_grows_linearly(shape, work):
    n = SIZES[shape]
    small, large = SHAPES[shape](n), SHAPES[shape](4 * n)
    work(small)
    ratio = calls(work, large) / calls(work, small)
    assert ratio <= MAX_RATIO, f"{work.__name__} on {shape}: 4x the input took {ratio:.1f}x the calls"
