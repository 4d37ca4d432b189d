"""The Rule base class and the shape of the test cases every rule carries.

A rule module defines one `Rule` subclass: its identity (code, name), its documentation, the cases
that prove it (`valid` must give no finding, `invalid` the listed lines and, when given, the fixed
source), and `check`, which reads a ModuleContext and yields findings through `ctx.report`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from seqlint.analysis.context import ModuleContext
    from seqlint.findings import Finding


@dataclass(frozen=True)
class Invalid:
    """Source that must give findings of the rule on exactly the `expected` rows.

    `expected` items are rows, or (row, column) pairs when the column matters (both 1-based).
    `fixed` is the source after applying every fix of this rule (safe and unsafe), when it has one.
    `runs` is Python code executed after `source` and after `fixed`, in the same namespace, that sets
    `result` (e.g. every batch of an instance built on generated data): both must give equal results,
    which is the proof that a fix claimed safe keeps the batches.
    """

    source: str
    expected: tuple = ()
    fixed: str | None = None
    runs: str | None = None

    def __init__(self, source: str, expected: Iterable = (), fixed: str | None = None, runs: str | None = None):
        object.__setattr__(self, "source", source)
        object.__setattr__(self, "expected", tuple(expected))
        object.__setattr__(self, "fixed", fixed)
        object.__setattr__(self, "runs", runs)


class Rule:
    code: ClassVar[str]
    name: ClassVar[str]
    summary: ClassVar[str]
    docs: ClassVar[str]
    fix_availability: ClassVar[str] = "none"  # "always" | "sometimes" | "none", as ruff says it
    valid: ClassVar[list[str]] = []
    invalid: ClassVar[list[Invalid]] = []
    # Rules looking beyond Sequence classes (e.g. at `model.fit` calls) run on modules without one,
    # and list text that must occur in a file for them to find anything (the runner's prefilter).
    module_wide: ClassVar[bool] = False
    module_wide_tokens: ClassVar[tuple[str, ...]] = ()

    def check(self, ctx: ModuleContext) -> Iterable[Finding]:
        raise NotImplementedError
