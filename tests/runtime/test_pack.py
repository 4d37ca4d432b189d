"""pack and `seqkit pack`: every kind of source, real files, real images, nothing partial on failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seqkit import MemmapSequence, pack
from seqkit.pack import Chunks, ImageFolder


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_array_chunks_samples_and_files_round_trip(tmp_path):
    x = np.random.default_rng(0).normal(size=(500, 3, 2)).astype(np.float32)
    np.testing.assert_array_equal(np.load(pack(x, tmp_path / "a.npy", chunk_size=64)), x)
    np.testing.assert_array_equal(np.load(pack(Chunks([x[:120], x[120:]]), tmp_path / "b.npy")), x)
    np.testing.assert_array_equal(np.load(pack((row for row in x), tmp_path / "c.npy", chunk_size=7)), x)
    files = []
    for i in range(5):
        files.append(tmp_path / f"s{i}.npy")
        np.save(files[-1], x[i])
    np.testing.assert_array_equal(np.load(pack(files, tmp_path / "d.npy")), x[:5])
    mapped = np.load(tmp_path / "c.npy", mmap_mode="r")  # the header is a valid, mappable .npy header
    assert mapped.shape == x.shape and mapped.offset % 64 == 0


def test_transform_is_applied_per_chunk_in_processes(tmp_path):
    import functools

    x = np.arange(1000, dtype=np.float64).reshape(250, 4)
    out = pack(x, tmp_path / "t.npy", transform=functools.partial(np.multiply, 0.5), chunk_size=30, processes=2)
    np.testing.assert_array_equal(np.load(out), x * 0.5)


def test_failure_midway_leaves_nothing(tmp_path):
    def samples(odd):
        for i in range(50):
            yield np.full(3, i) if not odd(i) else np.zeros(4)  # samples of a different shape

    with pytest.raises(ValueError, match="same shape"):
        pack(samples(lambda i: i == 35), tmp_path / "bad.npy", chunk_size=10)
    with pytest.raises(ValueError, match=r"bad\.npy: samples change shape or dtype after row 30"):
        pack(samples(lambda i: i >= 30), tmp_path / "bad.npy", chunk_size=10)
    with pytest.raises(TypeError, match="object-dtype"):
        pack(Chunks([np.array([None, 1])]), tmp_path / "obj.npy")
    with pytest.raises(FileNotFoundError, match=r"missing\.npy"):
        pack([tmp_path / "missing.npy"], tmp_path / "m.npy")
    assert leftovers(tmp_path) == []


def make_images(root: Path) -> None:
    rng = np.random.default_rng(5)
    for label, count in (("cats", 3), ("dogs", 4)):
        (root / label).mkdir(parents=True)
        for i in range(count):
            size = (20 + i, 30 + 2 * i)  # sizes differ: pack resizes
            Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(root / label / f"{i}.png")
    (root / "dogs" / "notes.txt").write_text("not an image")


def test_image_folder_is_decoded_resized_and_labelled(tmp_path):
    make_images(tmp_path / "images")
    out = pack(ImageFolder(tmp_path / "images", size=(16, 24)), tmp_path / "packed", processes=2)
    x, y = np.load(out / "x.npy"), np.load(out / "y.npy")
    assert x.shape == (7, 16, 24, 3) and x.dtype == np.uint8
    assert y.tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert json.loads((out / "classes.json").read_text()) == ["cats", "dogs"]
    expected = np.asarray(Image.open(tmp_path / "images" / "dogs" / "2.png").convert("RGB").resize((24, 16), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(x[5], expected)
    batch_x, batch_y = MemmapSequence(str(out / "x.npy"), str(out / "y.npy"), batch_size=4)[1]
    assert batch_x.shape == (3, 16, 24, 3) and batch_y.tolist() == [1, 1, 1]


def test_broken_image_is_named_and_nothing_is_written(tmp_path):
    make_images(tmp_path / "images")
    (tmp_path / "images" / "cats" / "9.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=r"cannot decode image .*9\.jpg"):
        pack(ImageFolder(tmp_path / "images", size=(8, 8)), tmp_path / "out")
    assert leftovers(tmp_path / "out") == []


def test_cli_pack(tmp_path):
    make_images(tmp_path / "images")
    env = {**os.environ, "COLUMNS": "100"}
    run = subprocess.run(
        [sys.executable, "-m", "seqkit.cli", "pack", str(tmp_path / "images"), str(tmp_path / "out"), "--size", "10", "12"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "packed 7 images of 2 classes" in run.stdout
    assert np.load(tmp_path / "out" / "x.npy").shape == (7, 10, 12, 3)

    bad = subprocess.run(
        [sys.executable, "-m", "seqkit.cli", "pack", str(tmp_path / "nowhere"), str(tmp_path / "o2"), "--size", "10", "12"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert bad.returncode == 2 and "nowhere" in bad.stderr and "does not exist" in bad.stderr
    usage = subprocess.run([sys.executable, "-m", "seqkit.cli", "pack", "a", "b"], capture_output=True, text=True, timeout=120)
    assert usage.returncode == 2 and "--size" in usage.stderr
