"""`python -m benchmarks [--write-results] [NAMES...]`: run every `bench_*.py` (or the named ones) and summarise.

A bench that is missing or raises is reported and skipped; the exit code is then non-zero, as it is when
a target is missed, so `make bench` tells the truth in CI.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path

from benchmarks import common
from benchmarks.common import Target, console, print_table


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in Path(__file__).parent.glob("bench_*.py"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {', '.join(available())})")
    parser.add_argument("--write-results", action="store_true", help="update this machine's figures in benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    common.WRITE_RESULTS = args.write_results

    names = [n.removeprefix("bench_") for n in args.names] or available()
    summary: list[dict] = []
    failed: list[str] = []
    for name in names:
        console.rule(f"[bold]bench_{name}")
        start = time.perf_counter()
        try:
            module = importlib.import_module(f"benchmarks.bench_{name}")
            results = module.main() or {}
        except Exception:  # one broken bench must not hide the others' figures
            console.print(f"[red]bench_{name} failed:[/]")
            console.print(traceback.format_exc(), markup=False, highlight=False)
            failed.append(name)
            summary.append({"bench": name, "ratio": "(failed)", "value": "", "target": "", "met": "[red]NO[/]"})
            continue
        console.print(f"[dim]bench_{name}: {time.perf_counter() - start:.1f}s[/]")
        for ratio, result in results.items():
            if not isinstance(result, Target):
                result = Target(float(result[0]), float(result[1]))
            summary.append(
                {
                    "bench": name,
                    "ratio": ratio,
                    "value": f"{result.value:.3g}{result.unit}",
                    "target": result.describe_target(),
                    "met": "[green]yes[/]" if result.met else "[red]NO[/]",
                }
            )
            if not result.met:
                failed.append(f"{name}:{ratio}")
    console.rule("[bold]summary")
    print_table("Benchmark ratios vs targets", summary)
    if failed:
        console.print(f"[red]not met or failed:[/] {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
