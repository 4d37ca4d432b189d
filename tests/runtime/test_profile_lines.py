"""seqkit.profile finds the line that costs the time, through helpers, whatever kind of cost it is.

Each generator is a user file written to a temporary folder and loaded the way `seqkit profile
FILE.py:NAME` loads it. Its expensive line carries a `# HOT` comment; the profile must report that
line first, with at least half of the batch time. No Keras here: plain `__getitem__`/`__len__` classes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from seqkit.profiling import ProfileError, load_target, profile

REPO = Path(__file__).resolve().parents[2]

GENERATORS = {
    # Python bytecode holding the GIL: the sampler only gets in at instruction boundaries.
    "pure_python_loop": """
        class Batches:
            def __len__(self):
                return 8

            def __getitem__(self, index):
                rows = [index + i for i in range(300)]
                total = 0
                for i in range(60_000):
                    total += (i * index) % 7  # HOT
                return rows, total
    """,
    # numpy work (which releases the GIL) in a module function reached through a method.
    "numpy_in_helper": """
        import numpy as np

        DATA = np.random.default_rng(0).random(400_000)


        def expensive(values):
            return np.sort(values)  # HOT


        class Batches:
            def __len__(self):
                return 8

            def _prepare(self, index):
                shifted = DATA + index
                return expensive(shifted)

            def __getitem__(self, index):
                labels = np.arange(64) + index
                return self._prepare(index)[:64], labels
    """,
    # A long C call that holds the GIL: the sample lands late, but its weight is the wait.
    "gil_holding_c_call": """
        import zlib

        PAYLOAD = bytes(range(256)) * 8_000


        class Batches:
            def __len__(self):
                return 8

            def __getitem__(self, index):
                header = [index] * 100
                packed = zlib.compress(PAYLOAD, 9)  # HOT
                return header, len(packed)
    """,
    # Waiting (I/O-like, GIL released) two helpers deep, with a cheaper decoy line beside it.
    "sleep_two_levels_down": """
        import time


        def read_sample(i):
            time.sleep(0.004)  # HOT
            return i


        def decode(index):
            time.sleep(0.0005)
            return [read_sample(i) for i in range(index % 2 + 1)]


        class Batches:
            def __len__(self):
                return 4

            def __getitem__(self, index):
                return decode(index)
    """,
}


def write_target(folder: Path, name: str, body: str) -> tuple[Path, int]:
    source = textwrap.dedent(body).lstrip() + "\n\ndef make():\n    return Batches()\n"
    path = folder / f"{name}.py"
    path.write_text(source)
    hot = next(i for i, line in enumerate(source.splitlines(), 1) if "# HOT" in line)
    return path, hot


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_the_known_hot_line_is_reported_first_with_most_of_the_time(tmp_path, name):
    path, hot = write_target(tmp_path, f"gen_{name}", GENERATORS[name])
    dataset, model = load_target(f"{path}:make")
    assert model is None
    report = profile(dataset, seconds=1.5, workers=None, memory=False)
    top = report.lines[0]
    assert (Path(top.filename).resolve(), top.line) == (path.resolve(), hot), [(l.location, round(l.share, 2)) for l in report.lines]
    assert top.share >= 0.5
    assert "# HOT" in top.source
    assert report.line_timing.overhead_ratio > 0
    assert report.line_timing.method in ("sampling", "sampling+monitoring")


def test_helpers_are_followed_back_to_getitem(tmp_path):
    path, hot = write_target(tmp_path, "gen_helpers", GENERATORS["sleep_two_levels_down"])
    dataset, _ = load_target(f"{path}:make")
    report = profile(dataset, seconds=1.0, workers=None, memory=False)
    top = report.lines[0]
    assert top.function == "read_sample"
    # read_sample <- decode's list comprehension (a function of its own before 3.12) <- decode <- __getitem__
    lines = path.read_text().splitlines()
    decode_call = next(i for i, line in enumerate(lines, 1) if "read_sample(i) for i" in line)
    getitem_call = next(i for i, line in enumerate(lines, 1) if "return decode(index)" in line)
    assert top.via[0].endswith(f"{path.name}:{decode_call}"), top.via
    assert top.via[-1].endswith(f"{path.name}:{getitem_call}"), top.via
    functions = {f.function: f for f in report.functions}
    assert functions["read_sample"].share >= 0.5
    assert functions["Batches.__getitem__"].share >= 0.9


def test_a_library_dataset_still_shows_its_getitem_lines(tmp_path):
    """A dataset whose class lives in seqkit (library code) is charged to its own __getitem__."""
    import numpy as np

    from seqkit.preprocess import PreprocessedSequence

    x = np.zeros((4096, 256), np.float32)
    dataset = PreprocessedSequence(x, np.zeros(4096, np.float32), batch_size=256, shuffle=True, seed=0)
    report = profile(dataset, seconds=1.0, workers=None, memory=False)
    assert report.lines and sum(line.share for line in report.lines) > 0.5
    assert {Path(line.filename).name for line in report.lines} == {Path(type(dataset).__getitem__.__code__.co_filename).name}


def test_seqkit_profile_is_the_function():
    import seqkit

    assert seqkit.profile is profile


def test_bad_arguments_are_refused_by_name():
    class Batches:
        def __len__(self):
            return 2

        def __getitem__(self, index):
            return index

    with pytest.raises(ProfileError, match="batches"):
        profile(Batches(), batches=1)
    with pytest.raises(ProfileError, match="seconds"):
        profile(Batches(), seconds=0)
    with pytest.raises(ProfileError, match="workers"):
        profile(Batches(), workers=[0])
    with pytest.raises(ProfileError, match="line_method"):
        profile(Batches(), line_method="settrace")
    with pytest.raises(ProfileError, match="dataset"):
        profile(object())
    if sys.version_info < (3, 12):
        with pytest.raises(ProfileError, match="3.12"):
            profile(Batches(), batches=2, workers=None, line_method="monitoring")


def _newer_python() -> str | None:
    """An interpreter with sys.monitoring (3.12+) on this machine, to run that path for real."""
    candidates = [shutil.which(f"python3.{minor}") for minor in (13, 12)]
    for root in (Path.home() / ".pyenv" / "versions", Path("/usr/local/bin")):
        if root.is_dir():
            candidates += sorted(str(p) for p in root.glob("3.1[2-9]*/bin/python3"))
    for candidate in candidates:
        if not candidate:
            continue
        try:
            out = subprocess.run([candidate, "-c", "import sys; print(sys.version_info >= (3, 12))"], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.stdout.strip() == "True":
            return candidate
    return None


MONITORING_SCRIPT = """
import json, sys
sys.path.insert(0, {repo!r})
sys.path.insert(0, {folder!r})
from seqkit.profiling.lines import CodeFilter, make_timer
import gen_monitored

dataset = gen_monitored.make()
out = {{}}
for method in ("monitoring", "auto"):
    timer = make_timer(method, CodeFilter(roots=[type(dataset).__getitem__.__code__]))
    with timer:
        for i in range(12):
            timer.call(dataset.__getitem__, i % len(dataset))
    result = timer.stop()
    (filename, line), seconds = result.top_lines(1)[0]
    calls = {{key[1]: n for key, n in (result.calls or {{}}).items()}}
    out[method] = {{"method": result.method, "file": filename, "line": line, "share": result.share(seconds),
                   "hits": (result.hits or {{}}).get((filename, line)), "calls": calls}}
print(json.dumps(out))
"""


def test_the_sys_monitoring_path_on_python_3_12_or_later(tmp_path):
    python = _newer_python()
    if python is None:
        pytest.skip("no Python >= 3.12 on this machine to run the sys.monitoring path")
    body = """
        import time


        def load(i):
            time.sleep(0.003)  # HOT
            return i


        class Batches:
            def __len__(self):
                return 4

            def __getitem__(self, index):
                values = [v * 2 for v in range(50)]
                return [load(i) for i in range(2)], values
    """
    path, hot = write_target(tmp_path, "gen_monitored", body)
    script = MONITORING_SCRIPT.format(repo=str(REPO), folder=str(tmp_path))
    done = subprocess.run([python, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    exact, auto = out["monitoring"], out["auto"]
    assert exact["method"] == "monitoring" and auto["method"] == "sampling+monitoring"
    for result in (exact, auto):
        assert (Path(result["file"]).resolve(), result["line"]) == (path.resolve(), hot)
        assert result["share"] >= 0.5
        assert result["calls"]["load"] == 24  # 12 batches x 2 calls, counted exactly
    assert exact["hits"] == 24
