"""`python -m seqkit.demo` (`make demo`): profile a slow generator, fix it with seqlint, profile it again.

1. writes the example training script (seqkit.demo_data.EXAMPLE_SOURCE) to demo_data/example/train.py
   and its data (61 MB of generated images) to demo_data/;
2. profiles it (`seqkit.profile`, as `seqkit profile demo_data/example/train.py:setup` would);
3. copies it to train_fixed.py and runs the real `seqlint fix` on the copy;
4. imports what seqlint wrote and profiles that;
5. trains both for real (`model.fit`, a fresh model each) and prints, before and after: data time per
   batch, the share of each step the model waits for data, and the end-to-end fit time.
"""

from __future__ import annotations

import argparse
import difflib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from rich.console import Console  # noqa: E402
from rich.syntax import Syntax  # noqa: E402
from rich.table import Table  # noqa: E402
from rich.text import Text  # noqa: E402

from seqkit.demo_data import SAMPLES, data_bytes, generate, write_example  # noqa: E402

WIDTH = 100


@dataclass
class Side:
    """One version of the example: its profile and its real training time."""

    label: str
    path: Path
    report: object = None
    setup_seconds: float = 0.0
    fit_seconds: float = 0.0
    accuracy: float = 0.0


def prepare(folder: Path) -> tuple[Path, Path, str]:
    """Data, the example script, and a copy fixed by the real `seqlint fix`: (before, after, seqlint's output)."""
    generate(folder)
    before = write_example(folder / "example", "train.py")
    after = before.with_name("train_fixed.py")
    shutil.copyfile(before, after)
    done = subprocess.run(
        [sys.executable, "-m", "seqlint", "fix", "--output-format", "concise", str(after)],
        capture_output=True, text=True, timeout=120,
    )
    if done.returncode not in (0, 1):  # 1: findings remain, which is fine; 2: seqlint could not run
        raise RuntimeError(f"seqlint fix failed (exit {done.returncode}):\n{done.stdout}{done.stderr}")
    return before, after, (done.stdout + done.stderr).strip()


def load(path: Path):
    """(dataset, model) from the script's setup(), and the seconds setup() took (preprocessing included)."""
    from seqkit.profiling.target import load_target

    start = time.perf_counter()
    dataset, model = load_target(f"{path}:setup")
    return dataset, model, time.perf_counter() - start


def fit_seconds(path: Path, epochs: int) -> tuple[float, float, float]:
    """(setup seconds, model.fit seconds for `epochs`, final accuracy) with a fresh model."""
    from seqkit.profiling.target import resolve

    start = time.perf_counter()
    dataset, model = resolve(f"{path}:setup")
    setup = time.perf_counter() - start
    start = time.perf_counter()
    history = model.fit(dataset, epochs=epochs, verbose=0)
    return setup, time.perf_counter() - start, float(history.history["accuracy"][-1])


def _ratio(a: float, b: float) -> str:
    if b <= 0:
        return "-"
    return f"{a / b:.0f}x" if a / b >= 100 else f"{a / b:.1f}x"


def summary_table(before: Side, after: Side, epochs: int) -> Table:
    from seqkit.profiling.report import ms

    table = Table(title="Before and after `seqlint fix`", title_justify="left", title_style="bold")
    table.add_column("")
    table.add_column("before", justify="right")
    table.add_column("after", justify="right")
    table.add_column("change", justify="right")
    rb, ra = before.report, after.report
    table.add_row("data time per batch (generator alone)", ms(rb.latency.mean), ms(ra.latency.mean), _ratio(rb.latency.mean, ra.latency.mean) + " faster")
    table.add_row(
        "share of each step the model waits for data",
        f"{rb.model.input_wait_share:.0%}", f"{ra.model.input_wait_share:.0%}", "",
    )
    table.add_row("model.fit step (profiled)", ms(rb.model.fit_step_seconds), ms(ra.model.fit_step_seconds), _ratio(rb.model.fit_step_seconds, ra.model.fit_step_seconds) + " faster")
    table.add_row(
        f"end-to-end model.fit, {epochs} epochs",
        f"{before.fit_seconds:.2f} s", f"{after.fit_seconds:.2f} s", _ratio(before.fit_seconds, after.fit_seconds) + " faster",
    )
    table.add_row("one-off setup (load, preprocess once)", f"{before.setup_seconds:.2f} s", f"{after.setup_seconds:.2f} s", "")
    table.add_row("accuracy after the last epoch", f"{before.accuracy:.3f}", f"{after.accuracy:.3f}", "")
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seqkit.demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="demo_data", help="folder for the data and the example script (default ./demo_data)")
    parser.add_argument("--seconds", type=float, default=6.0, help="profiling budget per version (default 6)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of the end-to-end fit (default 5)")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.epochs < 1:
        parser.error("--seconds must be positive and --epochs at least 1")

    import keras  # noqa: F401  (TensorFlow's start, paid once, before anything is timed)

    from seqkit.profiling.runner import profile

    terminal = Console()
    console = Console(width=min(terminal.width, WIDTH) if terminal.is_terminal else WIDTH)
    folder = Path(args.data)
    console.rule("[bold]seqkit demo: is the generator the bottleneck, and what does fixing it buy?")
    console.print(f"data: {SAMPLES} images 64x64x3 uint8 + labels, {data_bytes() / 1e6:.0f} MB in {folder}/ (made once)")
    before_path, after_path, lint_output = prepare(folder)
    sides = [Side("before", before_path), Side("after", after_path)]

    console.rule(f"1. seqkit profile {before_path}:setup")
    dataset, model, sides[0].setup_seconds = load(before_path)
    sides[0].report = profile(dataset, model, seconds=args.seconds, workers=None, target=f"{before_path}:setup")
    sides[0].report.print(console)
    del dataset, model

    console.rule(f"2. seqlint fix {after_path} (a copy)")
    diff = "".join(
        difflib.unified_diff(
            before_path.read_text().splitlines(keepends=True), after_path.read_text().splitlines(keepends=True),
            fromfile=before_path.name, tofile=after_path.name,
        )
    )
    console.print(Text(lint_output or "(seqlint printed nothing)", style="dim"))
    if diff:
        console.print(Syntax(diff, "diff", theme="ansi_dark", word_wrap=True))
    else:
        console.print(Text("seqlint fix changed nothing in the example: the 'after' below is the same code.", style="bold red"))

    console.rule(f"3. seqkit profile {after_path}:setup")
    dataset, model, sides[1].setup_seconds = load(after_path)
    sides[1].report = profile(dataset, model, seconds=args.seconds, workers=None, target=f"{after_path}:setup")
    sides[1].report.print(console)
    del dataset, model

    console.rule(f"4. model.fit for real, {args.epochs} epochs each (a fresh model each)")
    for side in sides:
        console.print(f"  training {side.label} ...")
        side.setup_seconds, side.fit_seconds, side.accuracy = fit_seconds(side.path, args.epochs)
    before, after = sides
    console.print(summary_table(before, after, args.epochs))

    pipeline = before.report.latency.mean / after.report.latency.mean
    end_to_end = before.fit_seconds / after.fit_seconds
    console.print(
        Text(
            f"The data pipeline alone got {pipeline:.0f}x faster, training end to end {end_to_end:.1f}x: Keras' "
            "prefetch thread already ran the generator while the model trained, so only the part of the data "
            "time above the model's step was ever visible."
        )
    )
    console.print(
        Text(
            f"The fix matters while the model waits for data (here {before.report.model.input_wait_share:.0%} of each "
            "step: a small model, as on a GPU). When a step takes longer than making a batch, prefetch hides the "
            "generator and `seqkit profile` says 'compute-bound': fixing it then buys nothing.",
            style="bold",
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
