"""Applying fixes to source text: which fixes can go together, and the text that results.

A fix is a set of edits applied all together or not at all. Fixes are taken in source order; one whose
edits collide with an accepted one waits for the next pass (`seqlint fix` re-checks the new text and
offers it again), as ruff does. Identical edits from different fixes (two fixes each adding
`import seqkit`) are applied once. Everything stays linear in the number of fixes: accepted spans are
kept sorted and each new edit is checked against its neighbours only, and a fix that breaks the code is
found by halving, not by re-parsing the file once per fix.
"""

from __future__ import annotations

import re
from bisect import bisect_left, insort
from collections.abc import Sequence

from seqlint.findings import Edit, Fix

_LINE_BREAK = re.compile(r"\r\n|\r|\n")

# (start, end, content): replace text[start:end] by content; offsets into the text.
Span = tuple[int, int, str]


def line_starts(text: str) -> list[int]:
    """Offset of the first character of each line (Python's line breaks: \\r\\n, \\r, \\n)."""
    return [0] + [m.end() for m in _LINE_BREAK.finditer(text)]


def newline_of(text: str) -> str:
    match = _LINE_BREAK.search(text)
    return match.group() if match else "\n"


def offset(starts: list[int], text: str, row: int, column: int) -> int:
    if row > len(starts):  # one past the last line: the end of the file
        return len(text)
    return min(starts[row - 1] + column - 1, len(text))


def edit_spans(text: str, fix: Fix, starts: list[int] | None = None) -> list[Span]:
    """The fix's edits as offsets into `text`, their content in the text's own line breaks."""
    starts = line_starts(text) if starts is None else starts
    newline = newline_of(text)

    def content_of(edit: Edit) -> str:
        # Fixes are written with "\n"; a CRLF file must stay CRLF throughout.
        if newline == "\n" or "\n" not in edit.content:
            return edit.content
        return edit.content.replace("\r\n", "\n").replace("\n", newline)

    spans: list[Span] = []
    inserted: dict[int, int] = {}  # point -> position in spans of the fix's insertion there
    for e in fix.edits:
        start = offset(starts, text, e.location.row, e.location.column)
        end = offset(starts, text, e.end_location.row, e.end_location.column)
        if start == end and start in inserted:
            # Two insertions of one fix at one point (`import numpy`, then `import seqkit`, after the
            # last import): one insertion, in the order the fix gives them.
            at = inserted[start]
            spans[at] = (start, end, spans[at][2] + content_of(e))
            continue
        if start == end:
            inserted[start] = len(spans)
        spans.append((start, end, content_of(e)))
    return spans


def _fix_start(fix: Fix) -> tuple[int, int]:
    return min(((e.location.row, e.location.column) for e in fix.edits), default=(0, 0))


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    if a[0] == a[1] and b[0] == b[1]:
        return a[0] == b[0]  # two insertions at one point: their order would be a guess
    if a[0] == a[1]:
        return b[0] < a[0] < b[1]
    if b[0] == b[1]:
        return a[0] < b[0] < a[1]
    return a[0] < b[1] and b[0] < a[1]


class _Accepted:
    """Accepted edits: replacements (never overlapping one another, so sorted by start they are sorted
    by end too) and insertions (one per point), each kept sorted for bisection."""

    def __init__(self) -> None:
        self.range_starts: list[int] = []
        self.range_ends: list[int] = []
        self.points: list[int] = []
        self.contents: dict[tuple[int, int], str] = {}

    def holds(self, span: Span) -> bool:
        return self.contents.get((span[0], span[1])) == span[2]

    def collides(self, span: Span) -> bool:
        start, end = span[0], span[1]
        # The last replacement starting before `start` reaches into this edit if it ends after it.
        i = bisect_left(self.range_starts, start)
        if i and self.range_ends[i - 1] > start:
            return True
        if start == end:  # an insertion: only another insertion at the same point collides
            return (start, start) in self.contents
        # A replacement: any replacement starting inside it, or any insertion strictly inside it.
        if i < len(self.range_starts) and self.range_starts[i] < end:
            return True
        j = bisect_left(self.points, start + 1)
        return j < len(self.points) and self.points[j] < end

    def add(self, span: Span) -> None:
        start, end = span[0], span[1]
        if (start, end) not in self.contents:
            if start == end:
                insort(self.points, start)
            else:
                i = bisect_left(self.range_starts, start)
                self.range_starts.insert(i, start)
                self.range_ends.insert(i, end)
        self.contents[(start, end)] = span[2]

    def spans(self) -> list[Span]:
        return sorted((a, b, content) for (a, b), content in self.contents.items())


def plan_fixes(text: str, fixes: Sequence[Fix]) -> tuple[list[Span], int]:
    """(edits to make, number of fixes they come from): every fix whose edits fit with the earlier ones."""
    starts = line_starts(text)
    accepted = _Accepted()
    applied = 0
    for fix in sorted(fixes, key=_fix_start):
        spans = edit_spans(text, fix, starts)
        if not spans:
            continue
        new = [s for s in spans if not accepted.holds(s)]
        if any(accepted.collides(s) for s in new):
            continue
        if any(_overlaps(x[:2], y[:2]) for i, x in enumerate(new) for y in new[i + 1:]):
            continue  # a malformed fix that overlaps itself
        for span in new:
            accepted.add(span)
        applied += 1
    return accepted.spans(), applied


def render(text: str, spans: list[Span]) -> str:
    """`text` with the (sorted, non-overlapping) spans replaced."""
    pieces = []
    last = len(text)
    # From the end backwards so earlier offsets stay valid; at one start, the longer edit goes first
    # so that an insertion lands in front of a replacement beginning at the same place.
    for start, end, content in sorted(spans, key=lambda k: (k[0], k[1]), reverse=True):
        pieces.append(text[end:last])
        pieces.append(content)
        last = start
    pieces.append(text[:last])
    return "".join(reversed(pieces))


def apply_fixes(text: str, fixes: Sequence[Fix]) -> tuple[str, int]:
    """Apply every fix whose edits do not collide with an earlier one; the rest wait for a later pass."""
    spans, applied = plan_fixes(text, fixes)
    return render(text, spans), applied


def parses(text: str) -> bool:
    import libcst

    try:
        libcst.parse_module(text)
    except (libcst.ParserSyntaxError, RecursionError):
        return False
    return True


def apply_fixes_checked(text: str, fixes: Sequence[Fix]) -> tuple[str, int, list[Fix], list[Span]]:
    """apply_fixes, but only output that parses: (text, fixes applied, fixes rejected, edits made).

    When the fixes together break the code, the longest run of them (in source order) that still
    parses is applied, found by halving, and the fix that broke it is rejected; the others are left
    for the next pass, whose positions refer to the new text.
    """
    ordered = sorted(fixes, key=_fix_start)
    spans, applied = plan_fixes(text, ordered)
    candidate = render(text, spans)
    if applied == 0 or parses(candidate):
        return candidate, applied, [], spans
    good, bad = 0, len(ordered)  # the first `good` fixes parse together, the first `bad` do not
    best: tuple[str, int, list[Span]] = (text, 0, [])
    while bad - good > 1:
        middle = (good + bad) // 2
        middle_spans, middle_applied = plan_fixes(text, ordered[:middle])
        attempt = render(text, middle_spans)
        if parses(attempt):
            good, best = middle, (attempt, middle_applied, middle_spans)
        else:
            bad = middle
    return best[0], best[1], [ordered[bad - 1]], best[2]
