"""One module's text in, its findings out: parse, build the shared analysis, run the rules.

The runner (file discovery, suppression, parallelism) and the CLI sit on top of this API; rules sit
below it and never parse or print.
"""

from __future__ import annotations

import ast

import libcst as cst

from seqlint.analysis.context import ModuleContext
from seqlint.analysis.project import ProjectIndex
from seqlint.findings import Finding
from seqlint.rules import module_wide_tokens as _module_wide_tokens
from seqlint.rules import registered_rules
from seqlint.rules.base import Rule

__all__ = [
    "ParseError", "RuleError", "ProjectIndex", "all_rules", "get_rule", "lint_source", "build_context",
    "module_wide_tokens",
]


class ParseError(Exception):
    """The source is not valid Python; str() is a one-line message, .line/.column 1-based or None."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None):
        super().__init__(message)
        self.line = line
        self.column = column


class RuleError(Exception):
    """A rule crashed on a file: a seqlint bug, reported with the rule and the file."""

    def __init__(self, code: str, filename: str, error: BaseException):
        super().__init__(f"internal error in rule {code} on {filename}: {type(error).__name__}: {error}")
        self.code = code
        self.filename = filename
        self.error = error


def all_rules() -> list[type[Rule]]:
    return list(registered_rules())


def module_wide_tokens() -> tuple[str, ...]:
    """Words whose presence makes a file worth parsing even without a Sequence class (the module-wide
    rules' prefilter); the runner hands them to `ProjectIndex.may_matter`, so analysis needs no rule."""
    return tuple(sorted(_module_wide_tokens()))


def get_rule(code: str) -> type[Rule]:
    for rule in registered_rules():
        if rule.code == code:
            return rule
    raise KeyError(code)


def parse(source: str, filename: str) -> cst.Module:
    try:
        return cst.parse_module(source)
    except cst.ParserSyntaxError as error:
        # CPython's own parser names the problem and its column more precisely than libcst's.
        try:
            compile(source, filename, "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
        except SyntaxError as py_error:
            line, column, message = py_error.lineno, py_error.offset, py_error.msg
        except (ValueError, RecursionError, MemoryError):
            line, column, message = error.raw_line, error.raw_column + 1, "invalid source"
        else:
            line, column = error.raw_line, error.raw_column + 1
            message = str(error.message).splitlines()[0] if error.message else "invalid syntax"
        raise ParseError(f"{filename}:{line}:{column}: syntax error: {message}", line, column) from None
    except (RecursionError, MemoryError, ValueError) as error:
        raise ParseError(f"{filename}: cannot parse: {type(error).__name__}: {error}") from None


def build_context(source: str, filename: str, project: ProjectIndex | None = None) -> ModuleContext:
    return ModuleContext(source, filename, parse(source, filename), project)


def lint_source(
    source: str,
    filename: str,
    *,
    rules: list[type[Rule]] | None = None,
    project: ProjectIndex | None = None,
) -> list[Finding]:
    """Every finding of `rules` (None: all) in the source, sorted, before any suppression."""
    ctx = build_context(source, filename, project)
    selected = all_rules() if rules is None else list(rules)
    if not ctx.sequences:
        selected = [rule for rule in selected if rule.module_wide]
    findings: dict[tuple, Finding] = {}
    for rule_cls in selected:
        try:
            for finding in rule_cls().check(ctx):
                findings.setdefault((finding.code, finding.location, finding.end_location), finding)
        except Exception as error:  # noqa: BLE001 - a rule bug must name the rule and the file
            raise RuleError(rule_cls.code, filename, error) from error
    return sorted(findings.values(), key=lambda f: f.sort_key)
