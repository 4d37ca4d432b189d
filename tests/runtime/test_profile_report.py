"""`seqkit profile`: the command line, its JSON against the documented schema, and the HTML report drawn
by a real headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from seqkit.cli import main
from seqkit.profiling.html import PLOT_COLOURS
from seqkit.profiling.schema import errors, load_schema, validate

# A user's file: the dataset module imports no Keras (MultiprocessSequence's workers start fast), the
# model is built inside setup().
TARGET = """
import math

import numpy as np


class Rows:
    def __init__(self, n=2048, batch_size=64):
        rng = np.random.default_rng(0)
        self.x = rng.random((n, 32), dtype=np.float32)
        self.y = rng.random((n, 1), dtype=np.float32)
        self.batch_size = batch_size

    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index):
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        out = np.empty_like(self.x[rows])
        for i, row in enumerate(self.x[rows]):
            out[i] = [math.tanh(v) for v in row.tolist()]  # HOT
        return out, self.y[rows]


def setup():
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((32,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    return Rows(), model


dataset = Rows(n=256)


def needs_args(n):
    return Rows(n)


class NotADataset:
    pass


not_a_dataset = NotADataset()
"""


@pytest.fixture(scope="module")
def target_file(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("profile_target")
    path = folder / "profile_target_rows.py"
    path.write_text(textwrap.dedent(TARGET))
    return path


@pytest.fixture(scope="module")
def cli_run(target_file, tmp_path_factory):
    """One full `seqkit profile` run (model, workers, JSON on stdout, HTML report), shared by the tests."""
    import contextlib
    import io

    out_dir = tmp_path_factory.mktemp("profile_out")
    html = out_dir / "report.html"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["profile", f"{target_file}:setup", "--seconds", "3", "--workers", "2", "--json", "--report", str(html)])
    return code, stdout.getvalue(), html


@pytest.mark.slow
def test_json_output_validates_against_the_documented_schema(cli_run, target_file):
    code, stdout, _ = cli_run
    assert code == 0
    data = json.loads(stdout)
    assert errors(data) == []
    validate(data)
    hot = next(i for i, line in enumerate(target_file.read_text().splitlines(), 1) if "# HOT" in line)
    assert Path(data["lines"][0]["file"]).resolve() == target_file.resolve() and data["lines"][0]["line"] == hot
    assert data["verdict"] in ("input-bound", "compute-bound") and data["model"]["fit_steps"] >= 6
    kinds = {w["kind"]: w for w in data["workers"]}
    assert set(kinds) == {"keras-threads", "multiprocess"}
    for trial in kinds.values():  # both options really ran
        assert trial["error"] is None and trial["batch_seconds"] > 0 and trial["fit_step_seconds"] > 0


@pytest.mark.slow
def test_profiling_with_worker_trials_leaves_the_model_untrained(target_file):
    import numpy as np

    from seqkit.profiling import profile
    from seqkit.profiling.target import resolve

    dataset, model = resolve(f"{target_file}:setup")
    weights = [w.copy() for w in model.get_weights()]
    report = profile(dataset, model, batches=8, workers=[2], lines=False, memory=False)
    assert all(t.fit_step_seconds for t in report.workers)  # fits ran in both trials...
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights()))  # ...and were undone
    assert int(model.optimizer.iterations.numpy()) == 0


def test_the_validator_finds_what_is_wrong():
    schema = load_schema()
    good = {"batches": 4, "seconds": 1.0, "workers": [2], "lines": True, "memory": False, "line_method": "auto"}
    settings = schema["properties"]["settings"]
    assert errors(good, settings) == []
    assert any("missing required 'memory'" in e for e in errors({k: v for k, v in good.items() if k != "memory"}, settings))
    assert any("expected boolean" in e for e in errors({**good, "lines": "yes"}, settings))
    assert any("unexpected property 'extra'" in e for e in errors({**good, "extra": 1}, settings))
    assert any("must be one of" in e for e in errors({**good, "line_method": "settrace"}, settings))
    assert any("below the minimum" in e for e in errors({**good, "workers": [0]}, settings))
    assert any("expected integer" in e for e in errors({**good, "batches": True}, settings))
    share = {"$ref": "#/$defs/share"}
    assert any("above the maximum" in e for e in errors(1.5, {**share, "$defs": schema["$defs"]}))
    with pytest.raises(ValueError, match="not supported"):
        errors("x", {"type": "string", "format": "uri"})


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _colour_pixels(image, colour: str, tolerance: int = 6) -> int:
    target = tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return sum(
        count
        for count, pixel in image.getcolors(maxcolors=1 << 20)
        if all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], target))
    )


@pytest.mark.slow
def test_the_html_report_renders_with_its_plots_in_headless_chromium(cli_run, tmp_path):
    from PIL import Image

    _, _, html = cli_run
    text = html.read_text()
    assert "<svg" in text and "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "<script" not in text
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium on this machine (.ci/run installs Debian's chromium where apt is available)")
    shot = tmp_path / "report.png"
    done = subprocess.run(
        [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
            "--hide-scrollbars", "--window-size=900,2800", f"--screenshot={shot}", html.as_uri(),
        ],
        capture_output=True, text=True, timeout=120,
    )
    assert shot.exists(), done.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    drawn = {name: _colour_pixels(image, colour) for name, colour in PLOT_COLOURS.items()}
    # Every plot (latency, hot lines, data vs model, workers) is on the page, with real area.
    assert all(count >= 300 for count in drawn.values()), drawn


def test_svg_and_json_reports_are_written_whole(target_file, tmp_path):
    from seqkit.profiling import profile
    from seqkit.profiling.target import resolve

    report = profile(resolve(f"{target_file}:dataset"), seconds=1.0, workers=None, memory=False)
    root = ET.parse(report.write(tmp_path / "plots.svg")).getroot()
    assert root.tag.endswith("svg") and len(list(root)) >= 2  # the latency and hot-line plots
    validate(json.loads(report.write(tmp_path / "report.json").read_text()))
    with pytest.raises(ValueError, match="must end in"):
        report.write(tmp_path / "report.pdf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plots.svg", "report.json"]  # no temporary left


@pytest.mark.parametrize(
    "args, message",
    [
        (["no_colon_here"], "must look like path/to/file.py:name"),
        (["missing_file.py:setup"], "no such file"),
        (["{target}:nothing_here"], "defines no 'nothing_here'"),
        (["{target}:NotADataset"], "is a class"),
        (["{target}:needs_args"], "needs arguments"),
        (["{target}:not_a_dataset"], "not a dataset"),
        (["{target}:dataset", "--model", "{target}:dataset"], "--model"),
        (["{target}:dataset", "--report", "out.pdf"], "--report must end in"),
        (["{target}:dataset", "--report", "/no/such/folder/r.html"], "no such folder"),
    ],
)
def test_bad_targets_and_options_exit_2_naming_the_problem(target_file, capsys, args, message):
    args = [a.format(target=target_file) for a in args]
    assert main(["profile", *args, "--batches", "2", "--workers", "none"]) == 2
    assert message in capsys.readouterr().err.replace("\n", " ")


@pytest.mark.parametrize("args", [["--workers", "two"], ["--workers", "0,2"], ["--batches", "1"], ["--seconds", "-1"]])
def test_bad_option_values_are_usage_errors(target_file, capsys, args):
    with pytest.raises(SystemExit) as exit_info:
        main(["profile", f"{target_file}:dataset", *args])
    assert exit_info.value.code == 2
    assert args[0] in capsys.readouterr().err


def test_a_target_whose_code_raises_exits_2_with_its_traceback(tmp_path, capsys):
    path = tmp_path / "raising_target.py"
    path.write_text("import math\n\n\ndef setup():\n    return math.sqrt(-1)\n")
    assert main(["profile", f"{path}:setup", "--batches", "2", "--workers", "none"]) == 2
    err = capsys.readouterr().err
    assert "TARGET: setup() raised ValueError: math domain error" in err and "raising_target.py" in err
    bad = tmp_path / "bad_import_target.py"
    bad.write_text("import not_a_module_anywhere\n")
    assert main(["profile", f"{bad}:x", "--batches", "2", "--workers", "none"]) == 2
    assert "importing" in capsys.readouterr().err


def test_a_dataset_that_raises_exits_1_with_its_error(tmp_path, capsys):
    path = tmp_path / "broken_rows.py"
    path.write_text(
        "class Broken:\n    def __len__(self):\n        return 3\n\n    def __getitem__(self, index):\n"
        "        raise KeyError(f'no sample {index}')\n\n\nbroken = Broken()\n"
    )
    assert main(["profile", f"{path}:broken", "--batches", "2", "--workers", "none"]) == 1
    err = capsys.readouterr().err
    assert "dataset[0] raised KeyError" in err and "no sample 0" in err
