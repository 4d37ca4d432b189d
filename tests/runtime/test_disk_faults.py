"""Issue 13 section 1: a cache or pack is right, or it is rebuilt, or it says why.

Each test names the case of the issue it reproduces. Killed builds are real processes killed with
SIGKILL; concurrent builders are two real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seqkit import MemmapSequence, PreprocessedSequence, pack, preprocess_once, store
from seqkit.packing import ImageFolder
from seqkit.preprocess import CacheWarning
from seqkit.tempfiles import temp_owner
from test_store import edit_header_rows, flip_data_byte

X = np.arange(1000 * 4, dtype=np.float64).reshape(1000, 4)


def split(batch):
    """A multi-output preprocessing function (a tuple holding a dict)."""
    return batch * 2.0, {"sum": batch.sum(axis=1)}


def check_split(out) -> None:
    np.testing.assert_array_equal(out[0], X * 2.0)
    np.testing.assert_array_equal(out[1]["sum"], X.sum(axis=1))


def cache_folder(cache: Path) -> Path:
    [folder] = [p for p in cache.iterdir() if not p.name.startswith(".")]
    return folder


def temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if temp_owner(p.name)) if folder.exists() else []


def run_script(tmp_path: Path, source: str, *args: str, wait: bool = True):
    script = tmp_path / f"script_{len(list(tmp_path.glob('script_*')))}.py"
    script.write_text(textwrap.dedent(source))
    command = [sys.executable, str(script), *args]
    if not wait:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


# -- damaged multi-output caches are detected and rebuilt ---------------------------------------


def leaf_file(cache: Path, leaf: str = "1") -> Path:
    return cache_folder(cache) / f"{leaf}.npy"


@pytest.mark.parametrize(
    "case, damage",
    [
        ("truncated leaf", lambda c: leaf_file(c).write_bytes(leaf_file(c).read_bytes()[:500])),
        ("deleted leaf", lambda c: leaf_file(c).unlink()),
        ("0-byte leaf", lambda c: leaf_file(c).write_bytes(b"")),
        ("truncated structure (manifest)", lambda c: (cache_folder(c) / "manifest.json").write_text('{"format": "seqkit-store", "ver')),
        ("empty structure (manifest)", lambda c: (cache_folder(c) / "manifest.json").write_bytes(b"")),
        ("deleted structure (manifest)", lambda c: (cache_folder(c) / "manifest.json").unlink()),
        ("edited header 1000 -> 100 rows", lambda c: edit_header_rows(leaf_file(c, "0"), 1000, 100)),
    ],
)
def test_issue13_damaged_multi_output_cache_is_detected_and_rebuilt(tmp_path, case, damage):
    cache = tmp_path / "cache"
    check_split(preprocess_once(split, X, cache_dir=cache, chunk_size=128))
    damage(cache)
    with pytest.warns(CacheWarning, match=r"preprocess cache .* is damaged .*; rebuilding it"):
        check_split(preprocess_once(split, X, cache_dir=cache, chunk_size=128))
    store.verify(cache_folder(cache))  # the rebuilt cache is whole again
    assert temps(cache) == [] and len(list(cache.iterdir())) == 1
    check_split(preprocess_once(split, X, cache_dir=cache, chunk_size=128))  # and reused as it is


def test_issue13_edited_cache_header_no_longer_serves_empty_x_batches_with_full_y(tmp_path):
    x = np.random.default_rng(0).normal(size=(1000, 3))
    y = np.arange(1000)
    seq = PreprocessedSequence(x, y, batch_size=100, preprocess=np.tanh, cache_dir=tmp_path)
    edit_header_rows(cache_folder(tmp_path) / "0.npy", 1000, 100)
    with pytest.warns(CacheWarning, match=r"0\.npy: 100 rows in its header, 1000 in the manifest"):
        seq = PreprocessedSequence(x, y, batch_size=100, preprocess=np.tanh, cache_dir=tmp_path)
    for i in (0, 5, 9):
        bx, by = seq[i]
        assert len(bx) == len(by) == 100
        np.testing.assert_allclose(bx, np.tanh(x[by]))


def test_issue13_flipped_cache_bytes_are_found_by_verify_cache_and_rebuilt(tmp_path):
    cache = tmp_path / "cache"
    preprocess_once(split, X, cache_dir=cache)
    flip_data_byte(leaf_file(cache, "0"))
    with pytest.warns(CacheWarning, match=r"0\.npy: checksum .* does not match"):
        check_split(preprocess_once(split, X, cache_dir=cache, verify_cache=True))
    store.verify(cache_folder(cache))


# -- concurrent builders ---------------------------------------------------------------------------

BUILDER = """
import os, sys, time
from pathlib import Path
import numpy as np
from seqkit import preprocess_once

def slow_split(batch):
    (Path(sys.argv[2]) / f"computed-{os.getpid()}").touch()  # this process computes (found no cache)
    time.sleep(0.03)
    return batch * 2.0, {"sum": batch.sum(axis=1)}

x = np.arange(4000, dtype=np.float64).reshape(1000, 4)
ready = Path(sys.argv[2]) / f"ready-{os.getpid()}"
ready.touch()
if len(sys.argv) > 3:  # start together: wait until both builders are here
    deadline = time.monotonic() + 60
    while len(list(Path(sys.argv[2]).glob("ready-*"))) < int(sys.argv[3]) and time.monotonic() < deadline:
        time.sleep(0.01)
out = preprocess_once(slow_split, x, cache_dir=sys.argv[1], chunk_size=40)
ok = np.array_equal(out[0], x * 2.0) and np.array_equal(out[1]["sum"], x.sum(axis=1))
print("correct" if ok else "WRONG")
"""


def test_issue13_two_processes_building_the_same_multi_output_cache_both_succeed(tmp_path):
    cache, computed = tmp_path / "cache", tmp_path / "computed"
    computed.mkdir()
    builders = [run_script(tmp_path, BUILDER, str(cache), str(computed), "2", wait=False) for _ in range(2)]
    results = [b.communicate(timeout=120) for b in builders]
    for builder, (out, err) in zip(builders, results):
        assert builder.returncode == 0, err
        assert out.strip() == "correct"
    assert len(list(computed.glob("computed-*"))) == 2  # both built it at once: one committed, one adopted
    assert temps(cache) == []
    folder = cache_folder(cache)
    store.verify(folder)
    check = run_script(tmp_path, BUILDER, str(cache), str(computed))  # a third run reuses it
    assert check.stdout.strip() == "correct" and cache_folder(cache) == folder
    assert len(list(computed.glob("computed-*"))) == 2


# -- SIGKILL leftovers are swept -------------------------------------------------------------------

KILLED_BUILD = """
import sys, time
from pathlib import Path
import numpy as np
from seqkit import preprocess_once

def slow(batch):
    if batch[0, 0] >= 400:  # some chunks are on disk: tell the test, then take a while
        Path(sys.argv[2]).touch()
        time.sleep(60)
    return batch + 1

preprocess_once(slow, np.arange(4000.0).reshape(1000, 4), cache_dir=sys.argv[1], chunk_size=100, verify=False)
"""


def test_issue13_sigkill_during_a_cache_build_leaves_temps_that_the_next_run_sweeps(tmp_path):
    cache, started = tmp_path / "cache", tmp_path / "started"
    child = run_script(tmp_path, KILLED_BUILD, str(cache), str(started), wait=False)
    try:
        wait_for(started.exists)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.communicate(timeout=60)
    [left] = temps(cache)
    assert temp_owner(left)[0] == child.pid and any((cache / left).iterdir())  # a real half-written stage
    out = preprocess_once(np.negative, X, cache_dir=cache)  # any later run in that folder
    np.testing.assert_array_equal(out, -X)
    assert temps(cache) == []


KILLED_PACK = """
import sys, time
from pathlib import Path
import numpy as np
from seqkit import pack

def samples():
    for i in range(1000):
        if i == 600:
            Path(sys.argv[2]).touch()
            time.sleep(60)
        yield np.full(8, i, dtype=np.int32)

pack(samples(), sys.argv[1], chunk_size=100)
"""


def test_issue13_sigkill_during_a_pack_leaves_temps_that_the_next_pack_sweeps(tmp_path):
    out, started = tmp_path / "packed" / "x.npy", tmp_path / "started"
    out.parent.mkdir()
    child = run_script(tmp_path, KILLED_PACK, str(out), str(started), wait=False)
    try:
        wait_for(started.exists)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.communicate(timeout=60)
    [left] = temps(out.parent)
    assert temp_owner(left)[0] == child.pid and not out.exists() and not (out.parent / "manifest.json").exists()
    (out.parent / f".x.npy.{child.pid}.tmp").write_bytes(b"partial")  # seqkit 0.1's temp name, also swept
    pack(np.arange(10), out)
    assert temps(out.parent) == []
    assert sorted(p.name for p in out.parent.iterdir()) == ["manifest.json", "x.npy"]


# -- packs: committed whole, damage refused with the file named -------------------------------------


def make_images(root: Path, labels: list[str], seed: int) -> None:
    rng = np.random.default_rng(seed)
    for i, label in enumerate(labels):
        (root / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(root / label / f"{i:03d}.png")


CRASH_BETWEEN_X_AND_Y = """
import os, signal, sys
from seqkit import pack
from seqkit.packing import ImageFolder

real_replace = os.replace

def replace_then_die(src, dst):
    # The crash lands exactly between renaming the new x.npy and the new y.npy into place.
    real_replace(src, dst)
    if str(dst).endswith("x.npy"):
        os.kill(os.getpid(), signal.SIGKILL)

os.replace = replace_then_die
pack(ImageFolder(sys.argv[1], size=(8, 8)), sys.argv[2])
"""


def test_issue13_crash_between_x_and_y_never_mixes_new_images_with_old_labels(tmp_path):
    old, new, out = tmp_path / "old", tmp_path / "new", tmp_path / "packed"
    make_images(old, ["a"] * 6 + ["b"] * 6, seed=1)  # same size as the new pack, other labels
    make_images(new, ["a"] * 2 + ["b"] * 10, seed=2)
    pack(ImageFolder(old, size=(8, 8)), out)
    crashed = run_script(tmp_path, CRASH_BETWEEN_X_AND_Y, str(new), str(out))
    assert crashed.returncode == -signal.SIGKILL
    with pytest.raises(store.StoreError, match=r"x: .*x\.npy: its folder's manifest\.json says an update .* did not finish"):
        MemmapSequence(str(out / "x.npy"), str(out / "y.npy"))
    with pytest.raises(store.StoreError, match=r"did not finish"):
        store.open_dataset(out)
    pack(ImageFolder(new, size=(8, 8)), out)  # packing again repairs it
    seq = MemmapSequence(str(out / "x.npy"), str(out / "y.npy"), batch_size=12)
    assert seq[0][1].tolist() == [0] * 2 + [1] * 10
    assert temps(out) == []


def test_issue13_edited_header_in_a_pack_is_refused_naming_the_file(tmp_path):
    pack(np.zeros((1000, 5), dtype=np.float32), tmp_path / "x.npy")
    pack(np.arange(1000), tmp_path / "y.npy")
    edit_header_rows(tmp_path / "x.npy", 1000, 100)
    with pytest.raises(store.StoreError, match=r"x: .*x\.npy: 100 rows in its header, 1000 in the manifest"):
        MemmapSequence(str(tmp_path / "x.npy"), str(tmp_path / "y.npy"))


def test_issue13_flipped_bytes_in_a_pack_are_named_by_verify(tmp_path):
    make_images(tmp_path / "images", ["a", "b"] * 3, seed=3)
    out = pack(ImageFolder(tmp_path / "images", size=(6, 6)), tmp_path / "packed")
    flip_data_byte(out / "x.npy")
    with pytest.raises(store.StoreError, match=r"x\.npy: checksum .* does not match .* the data is damaged"):
        store.verify(out)


def test_issue13_zero_byte_x_npy_gives_an_error_with_the_file_name(tmp_path):
    pack(np.ones((10, 2)), tmp_path / "packed" / "x.npy")
    (tmp_path / "packed" / "x.npy").write_bytes(b"")
    with pytest.raises(store.StoreError, match=r"x: .*packed/x\.npy: 0 bytes, \d+ in the manifest"):
        MemmapSequence(str(tmp_path / "packed" / "x.npy"))
    plain = tmp_path / "plain.npy"
    plain.write_bytes(b"")
    with pytest.raises(store.StoreError, match=r"x: .*plain\.npy: empty file \(0 bytes\)"):
        preprocess_once(np.sqrt, str(plain))


# -- ~ is expanded everywhere a path is taken --------------------------------------------------------


def test_issue13_tilde_is_expanded_in_every_path(tmp_path, monkeypatch):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    x = np.arange(60, dtype=np.float32).reshape(20, 3)

    preprocess_once(np.sqrt, x, cache_dir="~/cache")
    PreprocessedSequence(x, batch_size=4, preprocess=np.sqrt, cache_dir="~/cache2")
    pack(x, "~/packed/x.npy")
    np.save(home / "y.npy", np.arange(20))
    seq = MemmapSequence("~/packed/x.npy", "~/y.npy", batch_size=5)
    np.testing.assert_array_equal(seq[1][0], x[5:10])
    make_images(home / "images", ["a", "b"], seed=4)
    pack(ImageFolder("~/images", size=(4, 4)), "~/imgpack")
    pack("~/images", "~/imgpack2")
    store.verify("~/imgpack")
    cli = subprocess.run(
        [sys.executable, "-m", "seqkit.cli", "pack", "~/images", "~/clipack", "--size", "4", "4"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(home)}, cwd=work,
    )
    assert cli.returncode == 0, cli.stderr
    assert list(work.iterdir()) == []  # no literal ./~ anywhere
    assert {"cache", "cache2", "packed", "imgpack", "imgpack2", "clipack"} <= {p.name for p in home.iterdir()}
    assert json.loads((home / "clipack" / "classes.json").read_text()) == ["a", "b"]
