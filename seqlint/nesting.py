"""How deeply a file nests, measured on its tokens before libcst parses it.

libcst's native parser recurses once (or several times) per nesting level on the C stack: brackets
nested about 1,300 deep, 3,500 chained lambdas or 10,000 `not`s overflow it and kill the process with
SIGSEGV, taking the report of every other file with it. The tokenizer sees the nesting without
building a tree, so a file too deep to parse safely is reported as not checked before libcst sees it.

The limits are Python's own where it has one: CPython refuses brackets nested more than 200 deep
("too many nested parentheses") and more than 100 levels of indentation, so no program that runs has
more. Chains of prefix and right-associative operators (`not not ...`, `- - ...`, `lambda: lambda: ...`,
`a ** b ** ...`, `x if c else y if d else ...`) nest without brackets; CPython 3.11 stops compiling
them a little under 3,000 deep. They are counted per bracket level, restarting at a comma, a
semicolon, an assignment, a binary operator or a new statement, and a file is refused when brackets
plus such a chain exceed 1,000, a depth libcst parses quickly and well within its stack.
"""

from __future__ import annotations

import io
import keyword
import tokenize
from dataclasses import dataclass

MAX_BRACKETS = 200  # CPython's tokenizer: "too many nested parentheses"
MAX_INDENTATION = 100  # CPython's tokenizer: "too many levels of indentation"
MAX_NESTING = 1_000  # brackets plus an unbracketed operator chain

_OPENING = {"(", "[", "{"}
_CLOSING = {")", "]", "}"}
# Operators whose operand nests inside them: prefix operators and right-associative ones.
_NESTING_WORDS = {"not", "lambda", "await"}
_UNARY = {"-", "+", "~"}
# Tokens after which a nesting chain is over: the next operand starts afresh.
_CHAIN_ENDS = {
    ",", ";", "=", ":=", "+", "-", "*", "/", "//", "%", "@", "<<", ">>", "&", "|", "^",
    "<", ">", "==", "!=", "<=", ">=", "+=", "-=", "*=", "/=", "//=", "%=", "@=", "&=", "|=", "^=",
    ">>=", "<<=", "**=", "->",
}
_CHAIN_END_WORDS = {"and", "or", "in", "is"}
_CONDITIONAL = {"if"}  # one per `a if c else b`; its `else` adds no level of its own
_UNPACKS = {"(", "{", ","}  # `f(**kw)`, `{**d}`: unpacking, not a power


@dataclass(frozen=True)
class TooDeep:
    """Where the file first nests beyond a limit, and which limit (a sentence for the report)."""

    line: int
    column: int  # 1-based
    reason: str

    @property
    def message(self) -> str:
        return f"not checked: {self.reason}"


def nesting_problem(source: str) -> TooDeep | None:
    """The first place where `source` nests too deeply to be parsed safely, or None.

    A file the tokenizer rejects (a syntax error) is left to the parser, which reports it; the part
    read before the error is still measured.
    """
    brackets = 0
    indentation = 0
    chains = [0]  # one operator chain per open bracket level (the innermost last)
    chain = 0  # the innermost level's, kept in a local: this loop runs once per token of the file
    # The last significant token of the logical line: (type, string), or None at its start.
    previous: tuple[int, str] | None = None
    NAME, OP, INDENT, DEDENT, NEWLINE = tokenize.NAME, tokenize.OP, tokenize.INDENT, tokenize.DEDENT, tokenize.NEWLINE
    skipped = {tokenize.NL, tokenize.COMMENT, tokenize.ENCODING, tokenize.ENDMARKER}
    try:
        for kind, text, start, _end, _line in tokenize.generate_tokens(io.StringIO(source).readline):
            if kind == OP:
                if text in _OPENING:
                    brackets += 1
                    chains.append(chain)
                    chain = 0
                    if brackets > MAX_BRACKETS:
                        return TooDeep(start[0], start[1] + 1, f"brackets nested more than {MAX_BRACKETS} deep "
                                       f"(Python itself accepts at most {MAX_BRACKETS})")
                elif text in _CLOSING:
                    if brackets:
                        brackets -= 1
                        chain = chains.pop()
                elif (text in _UNARY and _starts_operand(previous)) or (
                        text == "**" and previous is not None and previous[1] not in _UNPACKS):
                    chain += 1
                    if brackets + sum(chains) + chain > MAX_NESTING:
                        return _too_deep(start, text)
                elif text in _CHAIN_ENDS:
                    chain = 0
            elif kind == NAME:
                if text in _NESTING_WORDS or (text in _CONDITIONAL and previous is not None):
                    # `if` inside a line: a conditional expression (opening one: a statement)
                    chain += 1
                    if brackets + sum(chains) + chain > MAX_NESTING:
                        return _too_deep(start, text)
                elif text in _CHAIN_END_WORDS:
                    chain = 0
            elif kind in skipped:
                continue
            elif kind == NEWLINE:
                chains = [0] * len(chains)
                chain = 0
                previous = None
                continue
            elif kind == INDENT:
                indentation += 1
                if indentation > MAX_INDENTATION:
                    return TooDeep(start[0], 1, f"indentation more than {MAX_INDENTATION} levels deep "
                                   f"(Python itself accepts at most {MAX_INDENTATION})")
                continue
            elif kind == DEDENT:
                indentation -= 1
                continue
            previous = (kind, text)
    except SyntaxError as error:  # Python 3.12+ tokenizes in C and enforces its own limits
        message = str(error.msg)
        if "too many nested parentheses" in message or "too many levels of indentation" in message:
            return TooDeep(error.lineno or 1, error.offset or 1, f"{message} (Python's own limit)")
    except tokenize.TokenError:
        pass
    return None


def _too_deep(start: tuple[int, int], text: str) -> TooDeep:
    return TooDeep(start[0], start[1] + 1, f"expression nested more than {MAX_NESTING} deep "
                   f"(brackets and chained `{text}`; seqlint parses at most {MAX_NESTING})")


def _starts_operand(previous: tuple[int, str] | None) -> bool:
    """Whether a `-` after `previous` is unary (it starts an operand) rather than a subtraction."""
    if previous is None:
        return True
    kind, text = previous
    if kind == tokenize.OP:
        return text not in _CLOSING
    if kind == tokenize.NAME:
        return keyword.iskeyword(text) and text not in ("True", "False", "None")
    return False
