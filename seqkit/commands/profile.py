"""`seqkit profile FILE.py:NAME`: is the generator the bottleneck, which line costs the time, what would a fix buy.

NAME is a dataset instance or a zero-argument callable returning a dataset or `(dataset, model)`.
Exit 0 after a profile, 1 when the dataset or the model raised while being profiled (the error on
stderr), 2 on bad arguments or an unloadable target (the argument named), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys

from rich.console import Console


def _workers(text: str) -> list[int]:
    if text.strip().lower() in ("", "0", "none"):
        return []
    values = []
    for part in text.split(","):
        try:
            value = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected worker counts like 2,4 (or none), got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"worker counts must be >= 1, got {value}")
        values.append(value)
    return values


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be at least 2, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def add_parser(commands) -> argparse.ArgumentParser:
    profile = commands.add_parser(
        "profile",
        help="profile a Keras PyDataset/Sequence: batch latency, hot lines with seqlint findings, input- or compute-bound",
        description="Run the dataset named by TARGET as model.fit would and report batch latency, where __getitem__'s "
        "time goes line by line (with seqlint's finding on each hot line), peak memory per batch, the measured "
        "effect of worker options and, with a model, whether training waits for data.",
    )
    profile.add_argument(
        "target",
        metavar="TARGET",
        help="path/to/file.py:NAME; NAME is a dataset, or a zero-argument function returning one or (dataset, model)",
    )
    profile.add_argument("--model", metavar="FILE:NAME", help="a compiled Keras model (or a zero-argument function returning one)")
    profile.add_argument("--batches", type=_positive_int, metavar="N", help="batches per timing pass (default: about --seconds of work in all)")
    profile.add_argument("--seconds", type=_positive_float, default=10.0, metavar="S", help="time budget when --batches is not given (default 10)")
    profile.add_argument(
        "--workers", type=_workers, default=None, metavar="LIST",
        help="worker counts to try as Keras workers=N and MultiprocessSequence(workers=N), e.g. 2,4; 'none' to skip "
        f"(default: {max(2, min(4, os.cpu_count() or 2))})",
    )
    profile.add_argument("--json", action="store_true", help="write the report as JSON (schema: seqkit/profiling/schema.json) to stdout")
    profile.add_argument("--report", metavar="PATH", help="also write a self-contained report: .html, .svg (plots) or .json")
    profile.add_argument("--no-lines", action="store_true", help="skip the line-timing pass")
    profile.add_argument("--no-memory", action="store_true", help="skip the memory pass")
    profile.add_argument(
        "--line-method", choices=("auto", "sampling", "monitoring"), default="auto",
        help="auto: sampled lines, plus sys.monitoring's exact function times on Python 3.12+; monitoring: exact lines (3.12+)",
    )
    return profile


def _print_error(err: Console, error: BaseException) -> None:
    """The message, then the traceback of the user's code that caused it, if any."""
    import traceback

    err.print(f"seqkit profile: {error}", style="red", highlight=False, markup=False)
    if error.__cause__ is not None:
        err.print("".join(traceback.format_exception(error.__cause__)), highlight=False, markup=False)


def run(args) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    err = Console(stderr=True, soft_wrap=True)
    if args.report:
        from pathlib import Path

        report_path = Path(args.report)
        if report_path.suffix.lower() not in (".html", ".htm", ".svg", ".json"):
            err.print(f"[red]seqkit profile:[/] --report must end in .html, .svg or .json, got {args.report!r}", highlight=False)
            return 2
        if not report_path.parent.is_dir():
            err.print(f"[red]seqkit profile:[/] --report: no such folder: {report_path.parent}", highlight=False)
            return 2
    try:
        from seqkit.profiling.runner import DatasetError, ModelError, profile
        from seqkit.profiling.target import ProfileError, load_target

        try:
            dataset, model = load_target(args.target, args.model)
            report = profile(
                dataset,
                model,
                batches=args.batches,
                seconds=args.seconds,
                workers="auto" if args.workers is None else args.workers,
                lines=not args.no_lines,
                memory=not args.no_memory,
                line_method=args.line_method,
                target=args.target,
            )
        except ProfileError as error:
            _print_error(err, error)
            return 2
        except (DatasetError, ModelError) as error:
            _print_error(err, error)
            return 1
    except KeyboardInterrupt:
        err.print("[red]interrupted[/]")
        return 130
    if args.json:
        sys.stdout.write(report.to_json() + "\n")
    else:
        report.print(Console())
    if args.report:
        written = report.write(args.report)
        err.print(f"report written to {written}", highlight=False, markup=False)
    return 0
