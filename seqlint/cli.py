"""The `seqlint` command: argument parsing, output streams and exit codes, nothing else.

Exit codes (as ruff): 0 nothing found (or everything fixed), 1 findings remain, 2 a usage or
configuration error or a file that could not be read or parsed (2 wins over 1).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from seqlint import __version__
from seqlint.config import OUTPUT_FORMATS, ConfigError, Overrides, load_settings, parse_per_file_ignores

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def _codes(value: str) -> list[str]:
    """`--select SEQ1,SEQ201` and repeated flags both work."""
    return [item.strip() for item in value.split(",") if item.strip()]


def _globs(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _add_check_options(parser: argparse.ArgumentParser, *, fixing: bool) -> None:
    parser.add_argument("paths", nargs="*", metavar="PATH", help="files or directories (default: .)")
    if not fixing:
        parser.add_argument("--fix", action="store_true", help="apply fixes, as `seqlint fix` does")
    parser.add_argument("--diff", action="store_true",
                        help="with fixing: print a unified diff of the fixes and write nothing")
    unsafe = parser.add_mutually_exclusive_group()
    unsafe.add_argument("--unsafe-fixes", dest="unsafe_fixes", action="store_true", default=None,
                        help="also apply (or show as fixable) fixes that may change behaviour")
    unsafe.add_argument("--no-unsafe-fixes", dest="unsafe_fixes", action="store_false",
                        help="override unsafe-fixes = true from the configuration")
    sel = parser.add_argument_group("rule selection")
    sel.add_argument("--select", type=_codes, action="extend", metavar="CODES",
                     help="only these rules: codes or prefixes, comma-separated (SEQ1,SEQ201)")
    sel.add_argument("--extend-select", type=_codes, action="extend", metavar="CODES",
                     help="rules to enable on top of the selection")
    sel.add_argument("--ignore", type=_codes, action="extend", metavar="CODES",
                     help="rules to disable (codes or prefixes)")
    sel.add_argument("--per-file-ignores", action="append", metavar="GLOB:CODES",
                     help="rules to disable in matching files, e.g. 'tests/*.py:SEQ101' (repeatable)")
    files = parser.add_argument_group("file selection")
    files.add_argument("--exclude", type=_globs, action="extend", metavar="GLOBS",
                       help="replace the default exclusions (.git, .venv, build, ...)")
    files.add_argument("--extend-exclude", type=_globs, action="extend", metavar="GLOBS",
                       help="exclude these too")
    files.add_argument("--force-exclude", action="store_true", default=None,
                       help="apply exclusions even to paths named on the command line (pre-commit)")
    out = parser.add_argument_group("output")
    out.add_argument("--output-format", choices=OUTPUT_FORMATS, help="default: full")
    out.add_argument("--statistics", action="store_true", help="print a count per rule instead")
    out.add_argument("--exit-zero", action="store_true", help="exit 0 even when findings remain")
    out.add_argument("-q", "--quiet", action="store_true", help="no summary lines")
    parser.add_argument("--config", metavar="FILE",
                        help="use this pyproject.toml (or seqlint TOML file) instead of the nearest one")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seqlint",
        description="Find and fix slow Keras Sequence / PyDataset generators.",
    )
    parser.add_argument("--version", action="version", version=f"seqlint {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = commands.add_parser("check", help="report findings (exit 1 when there are any)")
    _add_check_options(check, fixing=False)
    fix = commands.add_parser("fix", help="apply safe fixes (and unsafe ones with --unsafe-fixes)")
    _add_check_options(fix, fixing=True)
    rule = commands.add_parser("rule", help="explain a rule, or list them all with --all")
    rule.add_argument("code", nargs="?", help="a rule code such as SEQ101")
    rule.add_argument("--all", action="store_true", help="list every rule")
    rule.add_argument("--output-format", choices=("text", "json"), default="text")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command in ("check", "fix"):
            return _check(args)
        if args.command == "rule":
            return _rule(args, parser)
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    except ConfigError as exc:
        print(f"seqlint: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("seqlint: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `seqlint check | head`: the reader left, nothing more to say
        sys.stderr.close()
        return EXIT_FINDINGS


def _check(args: argparse.Namespace) -> int:
    from seqlint.engine import all_rules
    from seqlint.report import ReportContext, summary_lines, write_report, write_statistics
    from seqlint.runner import FixMode, run

    paths = args.paths or ["."]
    fixing = args.command == "fix" or args.fix
    if args.diff and not fixing:
        raise ConfigError("--diff shows what fixing would change: use it with `seqlint fix` or `--fix`")
    overrides = Overrides(
        select=args.select,
        extend_select=args.extend_select,
        ignore=args.ignore,
        per_file_ignores=parse_per_file_ignores(args.per_file_ignores) if args.per_file_ignores else None,
        exclude=args.exclude,
        extend_exclude=args.extend_exclude,
        force_exclude=args.force_exclude,
        output_format=args.output_format,
        unsafe_fixes=args.unsafe_fixes,
        config=args.config,
    )
    rules = {rule.code: rule for rule in all_rules()}
    settings = load_settings(paths, overrides, rules)
    mode = FixMode(unsafe=settings.unsafe_fixes, diff=args.diff) if fixing else None
    result = run(paths, settings, fix=mode)

    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for error in result.errors:
        print(error, file=sys.stderr)

    context = ReportContext(
        root=settings.root,
        rules=rules,
        unsafe_fixes=settings.unsafe_fixes,
        fixing=fixing,
        diff=args.diff,
        quiet=args.quiet,
    )
    if args.diff:
        for diff in result.diffs:
            sys.stdout.write(diff)
        if not args.quiet:
            print(
                f"Would apply {result.fixes_applied} fix(es) in {len(result.changed)} file(s); "
                f"{len(result.findings)} finding(s) would remain.",
                file=sys.stderr,
            )
        if result.errors:
            return EXIT_ERROR
        return EXIT_FINDINGS if result.changed else EXIT_CLEAN

    if args.statistics:
        write_statistics(result.findings, settings.unsafe_fixes, sys.stdout,
                         as_json=settings.output_format == "json")
        if settings.output_format != "json":
            for line in summary_lines(result, context):
                print(line)
    else:
        write_report(settings.output_format, result, context, sys.stdout)
    sys.stdout.flush()

    if result.errors:
        return EXIT_ERROR
    if result.findings and not args.exit_zero:
        return EXIT_FINDINGS
    return EXIT_CLEAN


def _rule(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from seqlint.engine import all_rules, get_rule

    if args.all == bool(args.code):
        parser.error("rule: give a rule code (seqlint rule SEQ101) or --all")
    if args.all:
        rules = all_rules()
        if args.output_format == "json":
            _dump([_rule_dict(r) for r in rules])
            return EXIT_CLEAN
        width = max((len(r.name) for r in rules), default=4)
        for r in rules:
            fix = {"always": "fix", "sometimes": "fix?"}.get(r.fix_availability, "")
            print(f"{r.code}  {r.name:<{width}}  {fix:<4}  {r.summary}")
        return EXIT_CLEAN
    try:
        rule = get_rule(args.code.upper())
    except KeyError:
        known = ", ".join(r.code for r in all_rules())
        print(f"seqlint: error: unknown rule code {args.code!r} (known: {known})", file=sys.stderr)
        return EXIT_ERROR
    if args.output_format == "json":
        _dump(_rule_dict(rule))
        return EXIT_CLEAN
    fix = {
        "always": "Fix is always available.",
        "sometimes": "Fix is sometimes available.",
    }.get(rule.fix_availability, "No automatic fix.")
    text = f"# {rule.name} ({rule.code})\n\n{rule.summary}\n\n*{fix}*\n\n{rule.docs.strip()}\n"
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.markdown import Markdown

        Console().print(Markdown(text))
    else:
        sys.stdout.write(text)
    return EXIT_CLEAN


def _rule_dict(rule) -> dict:
    return {
        "code": rule.code,
        "name": rule.name,
        "summary": rule.summary,
        "fix_availability": rule.fix_availability,
        "docs": rule.docs,
    }


def _dump(data) -> None:
    import json

    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    sys.exit(main())
