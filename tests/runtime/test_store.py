"""seqkit.store, the one on-disk format of caches and packs: manifest written last, cheap checks on
every open, checksums on demand, commits that are whole, temps of dead writers swept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seqkit import store
from seqkit.npyfile import read_npy_header
from seqkit.structure import flatten
from seqkit.tempfiles import HOST, process_alive, sweep, temp_name, temp_owner


def write_dataset(path: Path, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    x = np.arange(1000 * 3, dtype=np.float32).reshape(1000, 3)
    y = np.arange(1000, dtype=np.int64)
    with store.DatasetWriter(path, **kwargs) as writer:
        for start in range(0, 1000, 128):
            writer.append("x", x[start : start + 128])
        writer.append("y", y)
        writer.attach("classes.json", b'["a", "b"]\n')
        writer.commit()
    return x, y


def manifest(path: Path) -> dict:
    return json.loads((path / store.MANIFEST).read_text())


def edit_header_rows(path: Path, old: int, new: int) -> None:
    """What the issue did by hand: the shape in a .npy header edited (1000 rows to 100), padding kept."""
    data = bytearray(path.read_bytes())
    header = read_npy_header(path)
    text = data[: header.offset].decode("latin1")
    edited = text.replace(f"({old},", f"({new},", 1)
    edited = edited[: edited.rindex("\n")].ljust(header.offset - 1) + "\n"
    data[: header.offset] = edited.encode("latin1")
    path.write_bytes(bytes(data))


def flip_data_byte(path: Path, at_end: int = 5) -> None:
    with open(path, "r+b") as f:
        f.seek(-at_end, os.SEEK_END)
        byte = f.read(1)
        f.seek(-at_end, os.SEEK_END)
        f.write(bytes([byte[0] ^ 0xFF]))


# -- the format ----------------------------------------------------------------------------------


def test_round_trip_and_the_manifest_fields(tmp_path):
    x, y = write_dataset(tmp_path / "ds", fingerprint="f00d", meta={"note": 1})
    data = manifest(tmp_path / "ds")
    assert data["format"] == "seqkit-store" and data["version"] == 1 and data["fingerprint"] == "f00d"
    assert data["meta"] == {"note": 1} and data["writer"]["pid"] == os.getpid() and data["writer"]["host"] == HOST
    entry = data["arrays"]["x"]
    assert (entry["dtype"], entry["shape"], entry["rows"]) == ("<f4", [3], 1000)
    [file] = entry["files"]
    assert file["file"] == "x.npy" and file["rows"] == 1000 and file["offset"] % 64 == 0
    assert file["bytes"] == (tmp_path / "ds" / "x.npy").stat().st_size and file["checksum"].startswith("crc32:")
    assert data["attachments"]["classes.json"]["bytes"] == len(b'["a", "b"]\n')

    dataset = store.open_dataset(tmp_path / "ds", verify=True)
    assert dataset.names == ["x", "y"] and dataset.rows("x") == 1000
    np.testing.assert_array_equal(dataset.array("x"), x)
    np.testing.assert_array_equal(np.load(tmp_path / "ds" / "y.npy"), y)  # plain .npy files, for numpy too
    assert isinstance(dataset.array("x"), np.memmap) and not dataset.array("x").flags.writeable
    assert sorted(p.name for p in (tmp_path / "ds").iterdir()) == ["classes.json", "manifest.json", "x.npy", "y.npy"]
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no temp left beside it


def test_an_array_may_be_split_over_shards(tmp_path):
    x, _ = write_dataset(tmp_path / "ds", rows_per_file=300)
    dataset = store.open_dataset(tmp_path / "ds", verify=True)
    assert [f.name for f in dataset.files("x")] == ["x-00000.npy", "x-00001.npy", "x-00002.npy", "x-00003.npy"]
    assert [len(s) for s in dataset.shards("x")] == [300, 300, 300, 100]
    np.testing.assert_array_equal(np.concatenate(dataset.shards("x")), x)
    with pytest.raises(ValueError, match="split over 4 files; read it with shards"):
        dataset.array("x")


def test_shards_written_by_other_processes_are_committed_by_the_driver(tmp_path):
    """The API a Dask/Ray engine uses: tasks write_npy into writer.stage, the driver adds and commits."""
    rows = [np.full((n, 2), i, dtype=np.int16) for i, n in enumerate((5, 7, 3))]
    writer = store.DatasetWriter(tmp_path / "ds", fingerprint="abc")
    script = (
        "import sys, json, numpy as np; from seqkit.store import write_npy; "
        "i, n, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]; "
        "print(json.dumps(write_npy(out, [np.full((n, 2), i, dtype=np.int16)])))"
    )
    entries = []
    for i, chunk in enumerate(rows):
        out = writer.stage / store.shard_file("x", i)
        done = subprocess.run([sys.executable, "-c", script, str(i), str(len(chunk)), str(out)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        entries.append(json.loads(done.stdout))
    writer.add_files("x", entries)
    dataset = writer.commit()
    np.testing.assert_array_equal(np.concatenate(dataset.shards("x")), np.concatenate(rows))
    store.verify(tmp_path / "ds")


def test_structure_is_stored_as_json_not_a_pickle(tmp_path):
    tree = {"image": np.zeros((4, 2)), "meta": (np.ones(4), [np.arange(4)])}
    leaves, treedef = flatten(tree)
    with store.DatasetWriter(tmp_path / "ds", structure=treedef) as writer:
        for i, leaf in enumerate(leaves):
            writer.append(str(i), leaf)
        writer.commit()
    assert manifest(tmp_path / "ds")["structure"]["kind"] == "dict"
    back = store.open_dataset(tmp_path / "ds").tree()
    assert list(back) == ["image", "meta"] and isinstance(back["meta"], tuple) and isinstance(back["meta"][1], list)
    np.testing.assert_array_equal(back["meta"][1][0], np.arange(4))
    assert not list((tmp_path / "ds").glob("*.pickle"))


# -- no manifest, no dataset; cheap checks on every open -------------------------------------------


def test_a_folder_without_a_manifest_is_not_a_dataset(tmp_path):
    (tmp_path / "ds").mkdir()
    np.save(tmp_path / "ds" / "x.npy", np.zeros((3, 2)))
    with pytest.raises(store.StoreError, match=r"ds: no manifest\.json: not a complete seqkit dataset"):
        store.open_dataset(tmp_path / "ds")
    with pytest.raises(FileNotFoundError):
        store.open_dataset(tmp_path / "nothing")


def test_dataset_is_invisible_until_committed(tmp_path):
    writer = store.DatasetWriter(tmp_path / "ds")
    writer.append("x", np.zeros((10, 2)))
    assert not (tmp_path / "ds").exists()  # everything is in the temp stage folder
    assert [temp_owner(p.name) for p in tmp_path.iterdir()] == [(os.getpid(), HOST)]
    writer.abort()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "damage, message",
    [
        ("edited header", r"x\.npy: 100 rows in its header, 1000 in the manifest"),
        ("truncated", r"x\.npy: 9000 bytes, \d+ in the manifest \(truncated"),
        ("zero bytes", r"x\.npy: 0 bytes, \d+ in the manifest"),
        ("deleted", r"x\.npy: missing \(listed in manifest\.json\)"),
        ("manifest truncated", r"manifest\.json: damaged: not valid JSON"),
        ("manifest empty", r"manifest\.json: empty file \(0 bytes\)"),
        ("attachment truncated", r"classes\.json: 3 bytes, 11 in the manifest"),
    ],
)
def test_cheap_checks_name_the_file_and_what_is_wrong(tmp_path, damage, message):
    write_dataset(tmp_path / "ds")
    x = tmp_path / "ds" / "x.npy"
    if damage == "edited header":
        edit_header_rows(x, 1000, 100)
    elif damage == "truncated":
        x.write_bytes(x.read_bytes()[:9000])
    elif damage == "zero bytes":
        x.write_bytes(b"")
    elif damage == "deleted":
        x.unlink()
    elif damage == "manifest truncated":
        path = tmp_path / "ds" / "manifest.json"
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "manifest empty":
        (tmp_path / "ds" / "manifest.json").write_bytes(b"")
    else:
        (tmp_path / "ds" / "classes.json").write_bytes(b"[]\n")
    with pytest.raises(store.StoreError, match=message):
        store.open_dataset(tmp_path / "ds")


def test_flipped_data_bytes_pass_the_cheap_checks_and_fail_verify(tmp_path):
    write_dataset(tmp_path / "ds")
    flip_data_byte(tmp_path / "ds" / "x.npy")
    store.open_dataset(tmp_path / "ds")  # sizes and headers are right: only the checksum can tell
    with pytest.raises(store.StoreError, match=r"x\.npy: checksum crc32:\w+ does not match crc32:\w+ in the manifest: the data is damaged"):
        store.verify(tmp_path / "ds")
    with pytest.raises(store.StoreError, match=r"x: .*x\.npy: checksum"):
        store.open_npy(tmp_path / "ds" / "x.npy", "x", verify=True)


def test_plain_npy_files_are_checked_against_their_size(tmp_path):
    """No manifest (a user's own file): the header must still match the size, which numpy does not check."""
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((1000, 4), dtype=np.float32))
    edit_header_rows(path, 1000, 100)
    with pytest.raises(store.StoreError, match=r"x: .*x\.npy: 14400 bytes more than its header declares \(100 rows"):
        store.open_npy(path, "x")
    path.write_bytes(b"")
    with pytest.raises(store.StoreError, match=r"x: .*x\.npy: empty file \(0 bytes\), not a \.npy file"):
        store.open_npy(path, "x")
    path.write_bytes(b"not numpy at all")
    with pytest.raises(store.StoreError, match=r"not a \.npy file"):
        store.open_npy(path, "x")


def test_a_foreign_manifest_is_neither_read_nor_overwritten(tmp_path):
    (tmp_path / "manifest.json").write_text('{"name": "my web app"}')
    np.save(tmp_path / "x.npy", np.arange(5))
    np.testing.assert_array_equal(store.open_npy(tmp_path / "x.npy", "x"), np.arange(5))  # a plain .npy file
    with pytest.raises(store.StoreError, match=r"manifest\.json: exists and is not a seqkit manifest"):
        store.DatasetWriter(tmp_path, in_place=True)
    assert json.loads((tmp_path / "manifest.json").read_text()) == {"name": "my web app"}


# -- whole commits ---------------------------------------------------------------------------------


def test_a_second_writer_of_the_same_dataset_adopts_the_first(tmp_path):
    first = store.DatasetWriter(tmp_path / "ds", fingerprint="k")
    second = store.DatasetWriter(tmp_path / "ds", fingerprint="k")
    first.append("x", np.arange(10))
    second.append("x", np.arange(10))
    first.commit()
    mtime = (tmp_path / "ds" / "manifest.json").stat().st_mtime_ns
    np.testing.assert_array_equal(second.commit().array("x"), np.arange(10))
    assert (tmp_path / "ds" / "manifest.json").stat().st_mtime_ns == mtime
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_a_damaged_dataset_in_the_way_is_replaced(tmp_path):
    write_dataset(tmp_path / "ds", fingerprint="k")
    (tmp_path / "ds" / "y.npy").write_bytes(b"")
    with store.DatasetWriter(tmp_path / "ds", fingerprint="k") as writer:
        writer.append("x", np.arange(4))
        dataset = writer.commit()
    assert dataset.names == ["x"] and [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_in_place_writes_keep_the_other_arrays_and_files_of_the_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    for name in ("x", "y"):
        with store.DatasetWriter(tmp_path, in_place=True) as writer:
            writer.append(name, np.arange(6) * (2 if name == "y" else 1))
            writer.commit()
    with store.DatasetWriter(tmp_path, in_place=True, rows_per_file=4) as writer:  # x again, now in shards
        writer.append("x", np.arange(6) + 100)
        writer.commit()
    dataset = store.open_dataset(tmp_path, verify=True)
    assert dataset.names == ["x", "y"] and (tmp_path / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "x.npy").exists()  # the replaced single file is gone, its shards are in
    np.testing.assert_array_equal(np.concatenate(dataset.shards("x")), np.arange(6) + 100)
    np.testing.assert_array_equal(dataset.array("y"), np.arange(6) * 2)


def test_an_unfinished_in_place_update_is_refused_until_rewritten(tmp_path):
    write_dataset(tmp_path, in_place=True)
    data = manifest(tmp_path)
    data["writing"] = {"pid": 1, "host": HOST, "arrays": ["x", "y"], "attachments": [], "files": ["x.npy", "y.npy"]}
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(store.StoreError, match=r"manifest\.json: an update of x, y by process 1 .* did not finish"):
        store.open_dataset(tmp_path)
    with pytest.raises(store.StoreError, match=r"y: .*y\.npy: its folder's manifest\.json says an update .* did not finish"):
        store.open_npy(tmp_path / "y.npy", "y")
    with store.DatasetWriter(tmp_path, in_place=True) as writer:  # rewriting x alone leaves y refused
        writer.append("x", np.zeros((3, 3), dtype=np.float32))
        writer.commit()
    store.open_npy(tmp_path / "x.npy", "x")
    with pytest.raises(store.StoreError, match=r"an update of y by process 1"):
        store.open_dataset(tmp_path)


# -- temps and sweeping ----------------------------------------------------------------------------


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_sweep_removes_only_temps_of_dead_processes_on_this_host(tmp_path):
    dead = dead_pid()
    assert not process_alive(dead)
    names = {
        f".x.npy.seqkit-{dead}@{HOST}.tmp": False,  # dead writer, this host: swept
        f".cache-1.seqkit-{dead}@{HOST}.tmp": False,  # a stage folder
        f".x.npy.{dead}.tmp": False,  # seqkit 0.1's temp name
        f".x.npy.seqkit-{os.getppid()}@{HOST}.tmp": True,  # a live process
        f".x.npy.seqkit-{dead}@another-host.tmp": True,  # someone else's machine on a shared disk
        temp_name("y.npy"): True,  # this very process
        ".hidden": True,
        "x.npy": True,
    }
    for name in names:
        if "cache" in name:
            (tmp_path / name).mkdir()
            (tmp_path / name / "0.npy").write_bytes(b"partial")
        else:
            (tmp_path / name).write_bytes(b"partial")
    removed = sweep(tmp_path)
    assert sorted(p.name for p in removed) == sorted(n for n, keep in names.items() if not keep)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n for n, keep in names.items() if keep)


def test_seqkit_verify_command(tmp_path):
    write_dataset(tmp_path / "good")
    write_dataset(tmp_path / "bad")
    flip_data_byte(tmp_path / "bad" / "y.npy")
    cli = [sys.executable, "-m", "seqkit.cli", "verify"]
    run = subprocess.run([*cli, str(tmp_path / "good"), str(tmp_path / "good" / "x.npy")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "good: intact (3 files; x: 1000 rows, y: 1000 rows)" in run.stdout and "x.npy: intact (1000 rows" in run.stdout
    run = subprocess.run([*cli, str(tmp_path / "good"), str(tmp_path / "bad")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "intact" in run.stdout
    assert run.stderr.startswith("damaged: ") and "y.npy: checksum" in run.stderr
    run = subprocess.run([*cli, str(tmp_path / "nowhere")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "nowhere" in run.stderr


def test_shards_are_sized_by_a_target_in_mb_and_opened_as_one_array(tmp_path):
    from seqkit.sharded import ShardedArray

    assert store.rows_per_shard(1 << 20, 256) == 256 and store.rows_per_shard(3, 0.000001) == 1
    assert store.DEFAULT_SHARD_MB == 256 and store.check_shard_mb(None) is None and store.check_shard_mb(8) == 8.0
    for bad in (0, -1, float("nan"), float("inf"), "256", True):
        with pytest.raises(ValueError, match="shard_mb must be a"):
            store.check_shard_mb(bad)
    x, y = write_dataset(tmp_path / "ds", rows_per_file=store.rows_per_shard(12, 0.003))  # 262 rows of 3 float32
    dataset = store.open_dataset(tmp_path / "ds")
    opened = dataset.open("x")
    assert isinstance(opened, ShardedArray) and opened.shard_starts == [0, 262, 524, 786, 1000]
    np.testing.assert_array_equal(opened[250:270], x[250:270])
    assert isinstance(dataset.open("y"), ShardedArray)  # rows_per_file applies to every array of the writer
    with pytest.raises(ValueError, match=r"split over 4 files; read it with shards\(\) or open\(\)"):
        dataset.array("x")
