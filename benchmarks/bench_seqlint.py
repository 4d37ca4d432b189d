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
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from benchmarks.common import Target, markdown_table, print_table, record_section

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


def timed(cmd: list[str], timeout: float, cwd: Path = ROOT) -> tuple[float, int | None, str]:
    """Wall seconds, exit code (None on timeout) and stdout of one run."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return time.perf_counter() - start, None, ""
    return time.perf_counter() - start, proc.returncode, proc.stdout


def seqlint_parsed_count(paths: list[Path]) -> int:
    """How many files seqlint's prefilter lets through to the parser (measured, not timed)."""
    from seqlint.config import Overrides, load_settings
    from seqlint.engine import ProjectIndex, all_rules
    from seqlint.runner import discover, display_name, read_source

    settings = load_settings([str(p) for p in paths], Overrides(), [r.code for r in all_rules()])
    files, _, _ = discover([str(p) for p in paths], settings)
    sources = {}
    for path in files:
        read = read_source(path, display_name(path))
        if hasattr(read, "text"):
            sources[read.name] = read.text
    index = ProjectIndex.build(sources)
    return sum(index.may_matter(text) for text in sources.values())


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
        times = [timed(cmd, 60)[0] for _ in range(ONE_FILE_RUNS)]
        rows.append({"file": f"{label}: {path.relative_to(ROOT)}", "median s": statistics.median(times),
                     "min s": min(times), "max s": max(times)})
    start_only = [timed([sys.executable, "-c", "pass"], 60)[0] for _ in range(ONE_FILE_RUNS)]
    rows.append({"file": "python -c pass (interpreter start alone)", "median s": statistics.median(start_only),
                 "min s": min(start_only), "max s": max(start_only)})
    return rows


def main() -> dict[str, Target]:
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
    }
    record_section(
        "bench_seqlint",
        "## seqlint check speed (bench_seqlint)\n\n"
        + markdown_table(rows) + "\n\n" + markdown_table(single) + "\n\n"
        + markdown_table([{"ratio": name, "value": target} for name, target in results.items()]),
    )
    return results


if __name__ == "__main__":
    main()
