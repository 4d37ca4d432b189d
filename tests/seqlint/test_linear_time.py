"""Analysis work grows linearly with the file (issue 13 §4), counted, not timed.

A `x + 1 + 1 ...` chain of 5,000 terms and a 42k-line file of 2,000 classes each took over 120 s: work
that re-walked a growing part of the file for every node or every class. Here the work is the number
of Python function calls made (sys.setprofile counts them exactly, whatever the machine's load) on
files of size n, 4n and 16n. The one quadratic through those three counts is projected to the issue's
sizes, where 4x the input must not take more than 6x the work (linear: 4x, quadratic: 16x): a
quadratic part too small to see at test sizes is still caught if it would dominate at full size. The
wall-clock check of the same shapes at full size is benchmarks/bench_seqlint.py; it also sees work
done inside C functions (a `str.splitlines` of the whole file per finding), which counting cannot.
"""

from __future__ import annotations

import sys
from fractions import Fraction
from functools import lru_cache

import pytest

from benchmarks.seqlint_shapes import SHAPES
from seqlint.analysis.context import ModuleContext
from seqlint.edits import apply_fixes_checked
from seqlint.engine import all_rules, build_context, get_rule, lint_source, parse
from seqlint.nesting import nesting_problem
from seqlint.noqa import parse_noqa


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
def parsed(shape: str, n: int):
    """(source, libcst module): parsed once per size; libcst trees are immutable, so shared safely."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20_000))
    source = SHAPES[shape](n)
    return source, parse(source, f"{shape}_{n}.py")


def context(shape: str, n: int) -> ModuleContext:
    """A fresh context (rules cache facts on it: a second check of one context is cheaper)."""
    source, module = parsed(shape, n)
    ctx = ModuleContext(source, f"{shape}_{n}.py", module)
    ctx.position(ctx.module)  # positions are shared by all rules: resolved outside the counts
    return ctx


SIZES = {"chain": 60, "classes": 4}
# The sizes the issue reports taking over 120 s: the work is projected to them.
FULL = {"chain": 5000, "classes": 2000}
# Work at the full size against work at a quarter of it, as benchmarks/bench_seqlint.py times it.
MAX_PROJECTED_RATIO = 6.0
# Rules whose work is not linear yet, with where it goes; strict, so that the marker must go once they
# are (the owner of those files is rewriting them).
NOT_LINEAR_YET: dict[tuple[str, str], str] = {}


def _rule_cases():
    for shape in SHAPES:
        for rule in all_rules():
            marks = []
            if (shape, rule.code) in NOT_LINEAR_YET:
                marks = [pytest.mark.xfail(strict=True, reason=NOT_LINEAR_YET[(shape, rule.code)])]
            yield pytest.param(shape, rule.code, marks=marks, id=f"{shape}-{rule.code}")


def quadratic_through(points: list[tuple[int, int]]) -> tuple[Fraction, Fraction, Fraction]:
    """(a, b, c) of the one a + b*n + c*n**2 through three (n, work) points, exactly."""
    (x0, y0), (x1, y1), (x2, y2) = points
    c = Fraction((y2 - y0) * (x1 - x0) - (y1 - y0) * (x2 - x0),
                 (x2 - x0) * (x1 - x0) * (x2 - x1))
    b = Fraction(y1 - y0, x1 - x0) - c * (x1 + x0)
    return y0 - b * x0 - c * x0 * x0, b, c


def projected_ratio(shape: str, count) -> tuple[float, list]:
    """Work at the issue's size over work at a quarter of it, through the quadratic fitted exactly to
    `count(size)` at n, 4n and 16n; and the counts, for the message."""
    points = [(size, count(size)) for size in (SIZES[shape], 4 * SIZES[shape], 16 * SIZES[shape])]
    a, b, c = quadratic_through(points)

    def work(n: int) -> Fraction:
        return a + b * n + c * n * n

    full = FULL[shape]
    return float(work(full) / max(work(full // 4), Fraction(1))), points


@pytest.mark.parametrize(("shape", "code"), list(_rule_cases()))
def test_each_rule_grows_linearly(shape, code):
    rule = get_rule(code)
    list(rule().check(context(shape, 1)))  # warm: imports and tables loaded on first use

    def count(size: int) -> int:
        ctx = context(shape, size)
        return calls(lambda: list(rule().check(ctx)))

    ratio, points = projected_ratio(shape, count)
    assert ratio <= MAX_PROJECTED_RATIO, (
        f"{code} on {shape}: counted {points}; projected to {FULL[shape]}, 4x the input takes {ratio:.1f}x "
        "the calls (linear ~4x, quadratic ~16x)")


def _parse(source: str) -> None:
    ctx = build_context(source, "big.py")
    ctx.position(ctx.module)


FIXING_RULES = ("SEQ302", "SEQ306")


def test_a_fix_pass_grows_linearly():
    """Applying every fix of every class together (edits checked against their neighbours only, and,
    were one to break the code, the culprit found by halving)."""

    def count(size: int) -> int:
        source = SHAPES["classes"](size)
        fixes = [f.fix for f in lint_source(source, "big.py", rules=[get_rule(c) for c in FIXING_RULES]) if f.fix]
        return calls(apply_fixes_checked, source, fixes)

    ratio, points = projected_ratio("classes", count)
    assert ratio <= MAX_PROJECTED_RATIO, f"applying fixes: counted {points}; projected ratio {ratio:.1f}x"


@pytest.mark.parametrize(
    ("shape", "work"),
    [
        pytest.param("chain", nesting_problem, id="chain-guard"),
        pytest.param("classes", nesting_problem, id="classes-guard"),
        pytest.param("classes", parse_noqa, id="classes-noqa"),
        pytest.param("classes", _parse, id="classes-context"),
    ],
)
def test_shared_work_grows_linearly(shape, work):
    work(SHAPES[shape](2))  # warm
    ratio, points = projected_ratio(shape, lambda size: calls(work, SHAPES[shape](size)))
    assert ratio <= MAX_PROJECTED_RATIO, (
        f"{work.__name__} on {shape}: counted {points}; projected to {FULL[shape]}, 4x the input takes "
        f"{ratio:.1f}x the calls")
