"""pack and `seqkit pack`: every kind of source, real files, real images, nothing partial on failure,
Pillow's own resampling (issue 12), and the command line's arguments (issue 13 section 3)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seqkit import MemmapSequence, pack, store
from seqkit.packing import Chunks, ImageFolder, PackWarning


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
    with pytest.raises(ValueError, match=r"bad\.npy: rows change shape or dtype after row 30"):
        pack(samples(lambda i: i >= 30), tmp_path / "bad.npy", chunk_size=10)
    with pytest.raises(TypeError, match="object-dtype"):
        pack(Chunks([np.array([None, 1])]), tmp_path / "obj.npy")
    with pytest.raises(FileNotFoundError, match=r"missing\.npy"):
        pack([tmp_path / "missing.npy"], tmp_path / "m.npy")
    assert leftovers(tmp_path) == []  # not even the manifest of a folder that received nothing


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
    expected = np.asarray(Image.open(tmp_path / "images" / "dogs" / "2.png").convert("RGB").resize((24, 16)))
    np.testing.assert_array_equal(x[5], expected)  # Pillow's own default filter (issue 12)
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


# -- issue 12: Pillow's own resampling by default ----------------------------------------------------


def mixed_images(root: Path) -> list[Path]:
    """Images of several sizes, saved as RGB, RGBA, L and 16-bit grey files."""
    rng = np.random.default_rng(9)
    files = []
    (root / "c").mkdir(parents=True)
    for i, (h, w) in enumerate([(20, 30), (31, 17), (16, 24), (9, 40)]):
        if i == 3:
            image = Image.fromarray(rng.integers(0, 65535, (h, w), dtype=np.uint16))  # I;16
        else:
            image = Image.fromarray(rng.integers(0, 255, (h, w, 4 if i == 1 else 3), dtype=np.uint8))
            image = image.convert("L") if i == 2 else image
        files.append(root / "c" / f"{i}.png")
        image.save(files[-1])
    return files


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "1", "P", "I;16", "I", "F", "LA"])
def test_issue12_pack_equals_pillows_own_resize_default_for_every_mode(tmp_path, mode):
    files = mixed_images(tmp_path / "images")
    out = pack(ImageFolder(tmp_path / "images", size=(11, 13), mode=mode), tmp_path / "packed")
    x = np.load(out / "x.npy")
    for row, path in zip(x, files):
        expected = np.asarray(Image.open(path).convert(mode).resize((13, 11)))
        assert row.dtype == expected.dtype
        np.testing.assert_array_equal(row, expected)


@pytest.mark.parametrize("resample", ["nearest", "bilinear", "lanczos", "box"])
def test_an_explicit_resample_is_pillows_filter_of_that_name(tmp_path, resample):
    files = mixed_images(tmp_path / "images")
    out = pack(ImageFolder(tmp_path / "images", size=(11, 13), resample=resample), tmp_path / "packed")
    filt = Image.Resampling[resample.upper()]
    expected = np.stack([np.asarray(Image.open(p).convert("RGB").resize((13, 11), filt)) for p in files])
    np.testing.assert_array_equal(np.load(out / "x.npy"), expected)
    with pytest.raises(ValueError, match=r"resample 'smooth' is not a Pillow resampling filter; use one of nearest, "):
        ImageFolder(tmp_path / "images", size=(4, 4), resample="smooth")


def test_image_pack_manifest_records_how_it_was_made(tmp_path):
    make_images(tmp_path / "images")
    out = pack(ImageFolder(tmp_path / "images", size=(8, 8)), tmp_path / "packed")
    dataset = store.verify(out)
    assert dataset.names == ["x", "y"] and dataset.rows("x") == dataset.rows("y") == 7
    assert dataset.meta["classes"] == ["cats", "dogs"] and dataset.meta["resample"] == "pillow default"
    assert dataset.meta["skipped"] == [] and dataset.fingerprint


def test_on_error_skip_drops_broken_images_keeps_labels_aligned_and_reports_them(tmp_path):
    make_images(tmp_path / "images")
    (tmp_path / "images" / "cats" / "1b.png").write_bytes(b"not a png")
    with pytest.warns(PackWarning, match=r"skipped 1 images that could not be read: .*1b\.png"):
        out = pack(ImageFolder(tmp_path / "images", size=(8, 8)), tmp_path / "packed", on_error="skip", chunk_size=2)
    dataset = store.open_dataset(out)
    assert [Path(s["file"]).name for s in dataset.meta["skipped"]] == ["1b.png"]
    assert np.load(out / "y.npy").tolist() == [0, 0, 0, 1, 1, 1, 1]
    expected = np.asarray(Image.open(tmp_path / "images" / "cats" / "2.png").convert("RGB").resize((8, 8)))
    np.testing.assert_array_equal(np.load(out / "x.npy")[2], expected)  # the row after the skipped file


def test_on_error_skip_for_a_list_of_npy_files(tmp_path):
    files = []
    for i in range(4):
        files.append(tmp_path / f"{i}.npy")
        np.save(files[-1], np.full(3, i))
    files[2].write_bytes(b"")
    with pytest.raises(ValueError, match=r"2\.npy: empty file"):
        pack(files, tmp_path / "out" / "x.npy")
    with pytest.warns(PackWarning, match=r"skipped 1 files"):
        out = pack(files, tmp_path / "out" / "x.npy", on_error="skip")
    assert np.load(out)[:, 0].tolist() == [0, 1, 3]
    assert store.open_dataset(tmp_path / "out").manifest["arrays"]["x"]["meta"]["skipped"][0]["file"].endswith("2.npy")


# -- the command line --------------------------------------------------------------------------------


def seqkit_cli(*args, env=None, prelude=""):
    code = f"{prelude}import sys; from seqkit.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env, timeout=120)


def test_cli_version():
    run = seqkit_cli("--version")
    assert run.returncode == 0 and run.stdout.strip() == "seqkit 0.1.0"


def test_issue13_cli_pack_without_pillow_says_so_in_one_line_and_writes_nothing(tmp_path):
    make_images(tmp_path / "images")
    run = seqkit_cli("pack", tmp_path / "images", tmp_path / "out", "--size", 8, 8, prelude="import sys; sys.modules['PIL'] = None; ")
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == ["seqkit pack: packing images needs Pillow, which is not installed: pip install pillow (or seqkit[images])"]
    assert not (tmp_path / "out").exists()


def test_issue13_cli_bad_mode_is_blamed_on_the_mode(tmp_path):
    make_images(tmp_path / "images")
    run = seqkit_cli("pack", tmp_path / "images", tmp_path / "out", "--size", 8, 8, "--mode", "XYZ")
    assert run.returncode == 2 and "--mode 'XYZ' is not a Pillow colour mode; use one of" in run.stderr
    assert "image" not in run.stderr.split("use one of")[0] and not (tmp_path / "out").exists()
    run = seqkit_cli("pack", tmp_path / "images", tmp_path / "out", "--size", 8, 8, "--resample", "smooth")
    assert run.returncode == 2 and "--resample 'smooth' is not a Pillow resampling filter" in run.stderr


def test_issue13_cli_on_error_skip_packs_the_rest_and_reports_what_was_skipped(tmp_path):
    make_images(tmp_path / "images")
    (tmp_path / "images" / "dogs" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    run = seqkit_cli("pack", tmp_path / "images", tmp_path / "out", "--size", 8, 8)
    assert run.returncode == 2 and "broken.jpg" in run.stderr and not (tmp_path / "out").exists()
    run = seqkit_cli("pack", tmp_path / "images", tmp_path / "out", "--size", 8, 8, "--on-error", "skip", "--resample", "bilinear")
    assert run.returncode == 0, run.stderr
    assert "skipped " in run.stderr and "broken.jpg" in run.stderr
    assert "packed 7 images of 2 classes" in run.stdout and "skipped 1 that could not be decoded" in run.stdout
    assert np.load(tmp_path / "out" / "y.npy").tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert store.open_dataset(tmp_path / "out").meta["resample"] == "bilinear"


def test_a_failed_pack_removes_the_folders_it_created(tmp_path):
    def broken():
        yield np.zeros(3)
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        pack(broken(), tmp_path / "a" / "b" / "x.npy", chunk_size=1)
    with pytest.raises(ValueError, match="cannot decode image"):
        make_images(tmp_path / "images")
        (tmp_path / "images" / "cats" / "z.png").write_bytes(b"broken")
        pack(ImageFolder(tmp_path / "images", size=(4, 4)), tmp_path / "c" / "d")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]


# -- sharded packs on the local engine (issue 15; the Dask and Ray engines: test_engines_*.py) ------------


def shard_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*-*.npy"))}


def test_sharded_pack_in_processes_writes_the_bytes_of_the_inline_run(tmp_path):
    import functools

    from seqkit import open_array

    x = np.random.default_rng(4).normal(size=(5000, 8)).astype(np.float32)
    half = functools.partial(np.multiply, 0.5)
    pack(x, tmp_path / "inline" / "x.npy", transform=half, shard_mb=0.05, chunk_size=300)
    pack(x, tmp_path / "pool" / "x.npy", transform=half, shard_mb=0.05, chunk_size=300, processes=2)
    inline, pooled = shard_files(tmp_path / "inline"), shard_files(tmp_path / "pool")
    assert list(inline) == [f"x-{i:05d}.npy" for i in range(4)] and inline == pooled
    # 0.05 MB is 1638 rows of 32 bytes, rounded down to whole 4096-byte blocks (store.SHARD_ALIGN): 1536
    assert [f["rows"] for f in store.open_dataset(tmp_path / "pool").manifest["arrays"]["x"]["files"]] == [1536, 1536, 1536, 392]
    np.testing.assert_array_equal(np.asarray(open_array(tmp_path / "pool" / "x.npy")), x * 0.5)
    seq = MemmapSequence(str(tmp_path / "pool" / "x.npy"), batch_size=1000)
    np.testing.assert_array_equal(seq[1][0], x[1000:2000] * 0.5)  # across the first shard boundary


def test_sharded_pack_of_an_iterable_or_npy_files_and_replacing_a_single_file(tmp_path):
    from seqkit import open_array

    x = np.arange(2000 * 4, dtype=np.int64).reshape(2000, 4)
    pack(x[:10], tmp_path / "x.npy")  # an earlier single-file pack of the same array
    pack((row for row in x), tmp_path / "x.npy", shard_mb=0.02, chunk_size=100)  # rows by output bytes: 655 per shard
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "x-00000.npy", "x-00001.npy", "x-00002.npy", "x-00003.npy"]
    np.testing.assert_array_equal(np.asarray(open_array(tmp_path / "x.npy")), x)
    pack(str(tmp_path / "x.npy"), tmp_path / "single" / "x.npy")  # a sharded pack, read back into one file
    np.testing.assert_array_equal(np.load(tmp_path / "single" / "x.npy"), x)
    files = []
    for i in range(6):
        files.append(tmp_path / "samples" / f"{i}.npy")
        files[-1].parent.mkdir(exist_ok=True)
        np.save(files[-1], np.full(3, i))
    files[4].write_bytes(b"")
    with pytest.warns(PackWarning, match=r"skipped 1 files .*4\.npy"):
        pack(files, tmp_path / "out" / "s.npy", shard_mb=0.0001, on_error="skip")  # 4 samples per shard
    dataset = store.verify(tmp_path / "out")
    assert dataset.rows("s") == 5 and len(dataset.files("s")) == 2
    assert np.asarray(open_array(tmp_path / "out" / "s.npy"))[:, 0].tolist() == [0, 1, 2, 3, 5]
    assert dataset.manifest["arrays"]["s"]["meta"]["skipped"][0]["file"].endswith("4.npy")


def test_a_sharded_pack_that_fails_or_is_interrupted_leaves_nothing(tmp_path):
    x = np.arange(3000, dtype=np.float64)[:, None]

    def breaks_at(row, error):
        def transform(chunk):
            if chunk[0, 0] >= row:
                raise error
            return chunk

        return transform

    with pytest.raises(ZeroDivisionError):
        pack(x, tmp_path / "a" / "x.npy", transform=breaks_at(2000, ZeroDivisionError()), shard_mb=0.004, chunk_size=100)
    with pytest.raises(KeyboardInterrupt):
        pack(x, tmp_path / "b" / "x.npy", transform=breaks_at(1500, KeyboardInterrupt()), shard_mb=0.004, chunk_size=100)
    assert leftovers(tmp_path) == []


def test_cli_pack_shard_mb_and_engine_arguments(tmp_path):
    make_images(tmp_path / "images")
    run = seqkit_cli("pack", tmp_path / "images", tmp_path / "out", "--size", 8, 8, "--shard-mb", "0.0005")
    assert run.returncode == 0, run.stderr
    assert f"packed 7 images of 2 classes into {tmp_path / 'out'}: x in 4 shards, y in 1, classes.json" in run.stdout
    np.testing.assert_array_equal(MemmapSequence(str(tmp_path / "out" / "x.npy"), batch_size=7)[0][0].shape, (7, 8, 8, 3))
    run = seqkit_cli("pack", tmp_path / "images", tmp_path / "o2", "--size", 8, 8, "--scheduler", "tcp://head:8786")
    assert run.returncode == 2 and "scheduler='tcp://head:8786' was given with engine='local'" in run.stderr
    run = seqkit_cli("pack", tmp_path / "images", tmp_path / "o2", "--size", 8, 8, "--shard-mb", "-1")
    assert run.returncode == 2 and "--shard-mb must be a size in MB > 0" in run.stderr
    run = seqkit_cli("pack", tmp_path / "images", tmp_path / "o2", "--size", 8, 8, "--engine", "spark")
    assert run.returncode == 2 and "invalid choice: 'spark'" in run.stderr
    assert not (tmp_path / "o2").exists()
