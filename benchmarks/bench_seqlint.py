"""How fast `seqlint check` is: a whole package tree against Fixit and pylint, and one file as pre-commit runs it.

All three tools run as the user runs them (a fresh process, their default rules, every CPU) on the same
tree, a copy of the installed Keras package, in one run of this script. (A copy in a temporary directory:
Fixit honours the checkout's .gitignore, which lists .venv, and would lint nothing in place.) seqlint skips files that cannot hold a
Keras generator or a fit call before parsing them; that is part of its design and part of the figure,
so the table also says how many files it parsed. pylint on the whole tree takes many minutes, so it runs
on a fixed subset (every Nth file) and its files/s is extrapolated to the tree; the table says so.

The one-file figure is the wall time of `seqlint check FILE` in a new process, as a pre-commit hook
starts it (interpreter start included), median of several runs, for a real generator (parsed) and for a
plain module (skipped by the prefilter).

Targets (issue 4): faster than Fixit on the same tree; a one-file check under 0.5 s.

Growth (issue 13 §4): seqlint's analysis must be linear in the file's size. Each shape of
benchmarks/seqlint_shapes.py (a 5,000-term expression chain, 2,000 classes in 42k lines: both took
over 120 s) is checked at size n and 4n, each in a fresh process with a 120 s budget, timing libcst's
parse, the shared analysis and every rule apart. Linear work takes ~4x as long at 4n, quadratic ~16x;
above GROWTH_LIMIT the bench fails, naming the rule. libcst's own parser is timed but not held to it:
its native code is quadratic on long left-associative chains (upstream; seqlint cannot change it).
`python -m benchmarks.bench_seqlint --growth` runs this part alone.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from benchmarks.common import Target, console, markdown_table, print_table, record_section

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
KERAS = Path(sysconfig.get_paths()["purelib"]) / "keras"
FIXIT_TIMEOUT_S = 900
PYLINT_SUBSET = 40  # files
PYLINT_TIMEOUT_S = 300
ONE_FILE_RUNS = 9
GENERATOR_FILE = ROOT / "fixtures" / "lint" / "stanford_npy_ids_generator.py"
PLAIN_FILE = ROOT / "seqlint" / "config.py"  # a module with no generator: prefiltered


def python_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def timed(cmd: list[str], timeout: float, cwd: Path = ROOT, bytecode: bool = False) -> tuple[float, int | None, str]:
    """Wall seconds, exit code (None on timeout) and stdout of one run. `bytecode`: let Python read and
    write its .pyc cache even where the environment turns it off (PYTHONDONTWRITEBYTECODE)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return time.perf_counter() - start, None, ""
    return time.perf_counter() - start, proc.returncode, proc.stdout


def seqlint_parsed_count(paths: list[Path]) -> int:
    """How many files seqlint's prefilter lets through to the parser (measured, not timed)."""
    from seqlint.config import Overrides, load_settings
    from seqlint.engine import ProjectIndex, all_rules, module_wide_tokens
    from seqlint.runner import discover, display_name, read_source

    settings = load_settings([str(p) for p in paths], Overrides(), [r.code for r in all_rules()])
    files, _, _ = discover([str(p) for p in paths], settings)
    sources = {}
    for path in files:
        read = read_source(path, display_name(path))
        if hasattr(read, "text"):
            sources[read.name] = read.text
    index = ProjectIndex.build(sources)
    tokens = module_wide_tokens()
    return sum(index.may_matter(text, tokens) for text in sources.values())


def tree_rows(tree: Path) -> tuple[list[dict], dict[str, float]]:
    files = python_files(tree)
    n = len(files)
    rows, rates = [], {}

    seconds, code, _ = timed([str(BIN / "seqlint"), "check", str(tree), "--output-format", "concise"], 600)
    rates["seqlint"] = n / seconds
    rows.append({"tool": "seqlint check", "files": n, "seconds": seconds, "files/s": n / seconds,
                 "note": f"exit {code}; parsed {seqlint_parsed_count([tree])} files, prefilter skipped the rest"})

    seconds, code, _ = timed([str(BIN / "fixit"), "lint", str(tree)], FIXIT_TIMEOUT_S)
    if code is None:
        rates["fixit"] = n / FIXIT_TIMEOUT_S  # an upper bound: it had not finished
        rows.append({"tool": "fixit lint", "files": n, "seconds": seconds, "files/s": rates["fixit"],
                     "note": f"timed out after {FIXIT_TIMEOUT_S} s: files/s is an upper bound"})
    else:
        rates["fixit"] = n / seconds
        rows.append({"tool": "fixit lint", "files": n, "seconds": seconds, "files/s": n / seconds,
                     "note": f"exit {code}; default rules, parses every file"})

    subset = files[:: max(1, n // PYLINT_SUBSET)][:PYLINT_SUBSET]
    jobs = str(os.cpu_count() or 1)
    cmd = [str(BIN / "pylint"), f"--jobs={jobs}", "--score=n", "--persistent=n", *map(str, subset)]
    seconds, code, _ = timed(cmd, PYLINT_TIMEOUT_S)
    done = "timed out" if code is None else f"exit {code}"
    rates["pylint"] = len(subset) / seconds
    rows.append({"tool": "pylint", "files": len(subset), "seconds": seconds, "files/s": rates["pylint"],
                 "note": f"{done}; 1 file in {max(1, n // PYLINT_SUBSET)} only, "
                         f"whole tree extrapolated: ~{n / rates['pylint']:.0f} s"})
    return rows, rates


def one_file_rows() -> list[dict]:
    rows = []
    for label, path in (("generator (parsed)", GENERATOR_FILE), ("plain module (prefiltered)", PLAIN_FILE)):
        cmd = [str(BIN / "seqlint"), "check", str(path)]
        # As a pre-commit hook runs it: from an installed environment whose modules are byte-compiled
        # (pip compiles them at install; an editable install on first import, hence one run first).
        timed(cmd, 60, bytecode=True)
        times = [timed(cmd, 60, bytecode=True)[0] for _ in range(ONE_FILE_RUNS)]
        rows.append({"file": f"{label}: {path.relative_to(ROOT)}", "median s": statistics.median(times),
                     "min s": min(times), "max s": max(times)})
    start_only = [timed([sys.executable, "-c", "pass"], 60)[0] for _ in range(ONE_FILE_RUNS)]
    rows.append({"file": "python -c pass (interpreter start alone)", "median s": statistics.median(start_only),
                 "min s": min(start_only), "max s": max(start_only)})
    return rows


# ---------------------------------------------------------------------------------------------------
# Growth: time at n and at 4n

GROWTH_SIZES = {"chain": 1250, "classes": 500}  # 4n: the 5,000 terms and 2,000 classes
GROWTH_LIMIT = 6.0  # t(4n) / t(n): linear ~4 (plus timer noise), quadratic ~16
GROWTH_BUDGET_S = 120.0  # per process, the figure: beyond it the work is far from linear
GROWTH_FLOOR_S = 0.05  # steps faster than this at 4n are too small to time; never judged


def measure_growth_step(shape: str, n: int) -> None:
    """In a fresh process: time parse, shared analysis and each rule on SHAPES[shape](n); one JSON
    line per step as it finishes, so that a step that blows the budget is known by the last line."""
    from benchmarks.seqlint_shapes import SHAPES
    from seqlint.analysis.context import ModuleContext
    from seqlint.engine import all_rules, build_context, parse

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20_000))
    source = SHAPES[shape](n)
    build_context(SHAPES[shape](2), "warm.py")  # imports and tables, outside the timings

    def emit(step: str, seconds: float) -> None:
        print(json.dumps({"step": step, "seconds": seconds}), flush=True)

    start = time.perf_counter()
    module = parse(source, f"{shape}.py")
    emit("libcst parse", time.perf_counter() - start)
    start = time.perf_counter()
    ctx = ModuleContext(source, f"{shape}.py", module)  # imports, Sequence classes, call graph...
    ctx.position(ctx.module)  # ... and positions, which every finding needs
    emit("context", time.perf_counter() - start)
    for rule in all_rules():
        start = time.perf_counter()
        list(rule().check(ctx))
        emit(rule.code, time.perf_counter() - start)


def _run_growth_step(shape: str, n: int) -> tuple[dict[str, float], str | None]:
    """({step: seconds}, the step still running when the budget ran out, or None)."""
    cmd = [sys.executable, "-m", "benchmarks.bench_seqlint", "--measure", shape, str(n)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        out, _ = proc.communicate(timeout=GROWTH_BUDGET_S)
        timed_out = False
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        timed_out = True
    steps = {}
    for line in out.splitlines():
        record = json.loads(line)
        steps[record["step"]] = record["seconds"]
    if not timed_out:
        return steps, None
    from seqlint.engine import all_rules

    order = ["libcst parse", "context", *(rule.code for rule in all_rules())]
    running = next((step for step in order if step not in steps), "?")
    return steps, running


def growth_rows() -> tuple[list[dict], dict[str, Target], list[str]]:
    rows, targets, failures = [], {}, []
    for shape, n in GROWTH_SIZES.items():
        small, small_hung = _run_growth_step(shape, n)
        large, large_hung = _run_growth_step(shape, 4 * n)
        worst_ratio, worst_step = 0.0, ""
        for step in small:
            if step not in large:
                continue
            ratio = large[step] / max(small[step], 1e-9)
            judged = step != "libcst parse" and large[step] >= GROWTH_FLOOR_S
            rows.append({"shape": shape, "step": step, "n": n, "s at n": small[step], "s at 4n": large[step],
                         "growth": ratio, "judged": "yes" if judged else "no (upstream)" if step == "libcst parse"
                         else "no (too fast to time)"})
            if judged and ratio > GROWTH_LIMIT:
                failures.append(f"{shape}: {step} took {ratio:.1f}x as long for 4x the input "
                                f"(linear ~4x, quadratic ~16x; limit {GROWTH_LIMIT:g}x)")
            if judged and ratio > worst_ratio:
                worst_ratio, worst_step = ratio, step
        hung = small_hung or large_hung
        if hung:
            size = n if small_hung else 4 * n
            rows.append({"shape": shape, "step": hung, "n": n, "s at n": small.get(hung, float("nan")),
                         "s at 4n": float("nan"), "growth": float("inf"), "judged": f"over {GROWTH_BUDGET_S:.0f} s"})
            failures.append(f"{shape}: {hung} did not finish within {GROWTH_BUDGET_S:.0f} s at size {size}")
            worst_ratio, worst_step = float("inf"), hung
        targets[f"analysis growth at 4x input, {shape} (worst: {worst_step})"] = Target(
            worst_ratio, GROWTH_LIMIT, higher_is_better=False)
    return rows, targets, failures


def report_growth() -> dict[str, Target]:
    rows, targets, failures = growth_rows()
    print_table(f"Analysis time at n and 4n (fresh process each, {GROWTH_BUDGET_S:.0f} s budget)", rows)
    for failure in failures:
        console.print(f"[bold red]SUPER-LINEAR GROWTH:[/] {failure}")
    if not failures:
        console.print("[green]seqlint's analysis grows linearly on every shape.[/]")
    return targets


def main() -> dict[str, Target]:
    growth = report_growth()
    with tempfile.TemporaryDirectory(prefix="bench_seqlint_") as tmp:
        tree = Path(tmp) / "keras"
        shutil.copytree(KERAS, tree, ignore=shutil.ignore_patterns("__pycache__"))
        rows, rates = tree_rows(tree)
    print_table(f"Linting a copy of the installed Keras package ({rows[0]['files']} files)", rows)
    single = one_file_rows()
    print_table(f"One-file check as a pre-commit hook runs it (new process, median of {ONE_FILE_RUNS})", single)
    results = {
        "seqlint vs fixit, files/s on keras": Target(rates["seqlint"] / rates["fixit"], 1.0),
        "seqlint vs pylint, files/s on keras (subset)": Target(rates["seqlint"] / rates["pylint"], 1.0),
        "one-file check, generator (s)": Target(single[0]["median s"], 0.5, higher_is_better=False, unit=" s"),
        **growth,
    }
    record_section(
        "bench_seqlint",
        "## seqlint check speed (bench_seqlint)\n\n"
        + markdown_table(rows) + "\n\n" + markdown_table(single) + "\n\n"
        + markdown_table([{"ratio": name, "value": target} for name, target in results.items()]),
    )
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_seqlint")
    parser.add_argument("--growth", action="store_true", help="only the growth check (exit 1 when super-linear)")
    parser.add_argument("--measure", nargs=2, metavar=("SHAPE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure_growth_step(args.measure[0], int(args.measure[1]))
    elif args.growth:
        sys.exit(0 if all(t.met for t in report_growth().values()) else 1)
    else:
        main()
