"""`# noqa` comments: which findings the author has already looked at and accepted.

Comments are found with the tokenize module, so a `# noqa` inside a string literal is text, not a
directive. Two forms are understood, as in ruff/flake8:

* `# noqa` (every rule) or `# noqa: SEQ101, SEQ102` on the reported line or on the first line of the
  statement holding the finding;
* `# seqlint: noqa` in the comment block at the top of the file, which exempts the whole file.

A `SEQ` code that no rule has (`# noqa: SEQ999`, a typo for SEQ399?) suppresses nothing, silently:
`unknown_codes` finds those so that the runner can warn. Other linters' codes (`E501`) are not ours
to judge.
"""

from __future__ import annotations

import io
import re
import tokenize
from dataclasses import dataclass, field

from seqlint.findings import Finding

# `# noqa`, `#noqa:SEQ101`, `# NOQA: SEQ101,SEQ102`, `# noqa: SEQ101 SEQ102`; text may follow a bare
# `# noqa` (flake8 allows `# noqa because ...`) but not glued to it (`# noqaz` is no directive).
_NOQA = re.compile(
    r"#\s*noqa(?![\w-])(?P<codes>\s*:\s*(?P<list>[A-Z]+[0-9]+(?:[\s,]+[A-Z]+[0-9]+)*))?",
    re.IGNORECASE,
)
_FILE_EXEMPT = re.compile(r"#\s*seqlint\s*:\s*noqa\b", re.IGNORECASE)
_CODE = re.compile(r"[A-Z]+[0-9]+", re.IGNORECASE)


@dataclass
class NoqaDirectives:
    # row -> codes the comment names, or None for a bare `# noqa` (all rules).
    rows: dict[int, frozenset[str] | None] = field(default_factory=dict)
    file_exempt: bool = False

    def suppresses(self, finding: Finding) -> bool:
        if self.file_exempt:
            return True
        for row in {finding.location.row, finding.statement_row}:
            if row is None or row not in self.rows:
                continue
            codes = self.rows[row]
            if codes is None or finding.code in codes:
                return True
        return False


def _comments(source: str):
    """(row, text) of every comment; a file tokenize rejects part-way yields those read so far."""
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                yield tok.start[0], tok.string
    except (tokenize.TokenError, SyntaxError):
        return


def unknown_codes(source: str, known: frozenset[str], prefix: str = "SEQ") -> list[tuple[int, str]]:
    """(row, code) for each code with our prefix in a `# noqa: ...` comment that no rule has."""
    found = []
    for row, text in _comments(source):
        match = _NOQA.search(text)
        if match is None or match.group("list") is None:
            continue
        for code in _CODE.findall(match.group("list")):
            code = code.upper()
            if code.startswith(prefix) and code not in known:
                found.append((row, code))
    return found


def parse_noqa(source: str) -> NoqaDirectives:
    directives = NoqaDirectives()
    in_header = True  # still in the leading block of comments/blank lines?
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                row = tok.start[0]
                if in_header and _FILE_EXEMPT.search(tok.string):
                    directives.file_exempt = True
                match = _NOQA.search(tok.string)
                if match:
                    _record(directives, row, match)
            elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.ENCODING):
                in_header = False
    except (tokenize.TokenError, SyntaxError):
        # A file libcst accepted but tokenize rejects is exotic; keep the directives read so far.
        pass
    return directives


def _record(directives: NoqaDirectives, row: int, match: re.Match) -> None:
    if match.group("list") is None:
        directives.rows[row] = None
        return
    if row in directives.rows and directives.rows[row] is None:
        return  # a bare `# noqa` on the same row already suppresses everything
    codes = frozenset(code.upper() for code in _CODE.findall(match.group("list")))
    directives.rows[row] = (directives.rows.get(row) or frozenset()) | codes
