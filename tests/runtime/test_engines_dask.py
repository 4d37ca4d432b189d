"""Issue 15 on a real Dask LocalCluster with 2 worker processes (one for the whole module): pack and
preprocess_once with engine="dask" write the local engine's bytes; the output reads back as the
in-memory batches and splits into disjoint covering host parts; a task whose worker is SIGKILLed is
retried with a correct result; a run that fails, hangs or whose driver is killed leaves no manifest.
`seqkit pack --engine dask --scheduler ADDRESS` is run for real too."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from distributed import Client, LocalCluster
from PIL import Image

from scale_work import FailAt, KillOnce, KillOnceSample, SlowWhile, double, halve_image, split
from seqkit import ImageFolder, open_array, pack, preprocess_once, store
from seqkit.lifeline import WorkerError
from seqkit.tempfiles import temp_owner
from test_sharded import check_reading

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TINY_MB = 0.004  # 4 KiB shards: 209 rows of 5 float32 each, so 700 such rows make 4 tasks


@pytest.fixture(scope="module")
def client():
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=logging.ERROR)
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()


def same_dataset(a: Path, b: Path, *, same_code: bool = True) -> dict:
    """Both folders hold the same files, byte for byte, and the same manifest but for who wrote it (and,
    when two different functions computed the same values, for the fingerprint of their code)."""
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        if name != store.MANIFEST:
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
    ma, mb = (json.loads((folder / store.MANIFEST).read_text()) for folder in (a, b))
    if not same_code:
        for manifest in (ma, mb):
            for entry in manifest["arrays"].values():
                entry.get("meta", {}).pop("fingerprint", None)
    assert {k: v for k, v in ma.items() if k != "writer"} == {k: v for k, v in mb.items() if k != "writer"}
    return ma


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def rows_with_ids(n: int = 700) -> np.ndarray:
    """Rows whose first column is their row number (KillOnce and FailAt look for one)."""
    x = np.random.default_rng(7).normal(size=(n, 5)).astype(np.float32)
    x[:, 0] = np.arange(n)
    return x


@pytest.mark.parametrize("kind", ["array", "npy path", "sharded input"])
def test_pack_on_dask_writes_the_local_engines_bytes_and_reads_back_as_in_memory(tmp_path, client, kind):
    x = rows_with_ids()
    if kind == "npy path":
        np.save(tmp_path / "input.npy", x)
        source = str(tmp_path / "input.npy")  # a file on shared storage: each task maps its own rows
    elif kind == "sharded input":
        source = open_array(pack(x, tmp_path / "input" / "x.npy", shard_mb=0.01))
    else:
        source = x  # in memory: each task carries its rows
    pack(source, tmp_path / "local" / "x.npy", transform=double, shard_mb=TINY_MB, chunk_size=50)
    pack(source, tmp_path / "dask" / "x.npy", transform=double, shard_mb=TINY_MB, chunk_size=50, engine="dask", scheduler=client)
    manifest = same_dataset(tmp_path / "local", tmp_path / "dask")
    assert len(manifest["arrays"]["x"]["files"]) == 4 and manifest["arrays"]["x"]["meta"]["fingerprint"]
    store.verify(tmp_path / "dask")
    pack(np.arange(len(x)), tmp_path / "dask" / "y.npy", shard_mb=0.001, engine="dask", scheduler=client)
    check_reading(str(tmp_path / "dask" / "x.npy"), str(tmp_path / "dask" / "y.npy"), x * 2, np.arange(len(x)))


def test_rows_held_in_memory_travel_to_the_workers_as_data_not_in_the_task_graph(tmp_path, client):
    import warnings

    x = np.random.default_rng(3).normal(size=(20_000, 512)).astype(np.float32)  # 41 MB, in shards of 16 MB
    pack(x, tmp_path / "local" / "x.npy", shard_mb=16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Dask warns about objects over 10 MB in a task graph
        pack(x, tmp_path / "dask" / "x.npy", shard_mb=16, engine="dask", scheduler=client)
    same_dataset(tmp_path / "local", tmp_path / "dask")


def make_images(root: Path, count: int = 24) -> None:
    rng = np.random.default_rng(5)
    for i in range(count):
        label = ("cats", "dogs", "owls")[i % 3]
        (root / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (20 + i % 5, 16 + i % 7, 3), dtype=np.uint8)).save(root / label / f"{i}.png")
    (root / "dogs" / "broken.png").write_bytes(b"not a png")


def test_seqkit_pack_cli_with_engine_dask_and_a_scheduler_address(tmp_path, client):
    make_images(tmp_path / "images")
    with pytest.warns(UserWarning, match="broken.png"):
        pack(ImageFolder(tmp_path / "images", size=(12, 10)), tmp_path / "local", shard_mb=0.002, chunk_size=4, on_error="skip")
    run = subprocess.run(
        [sys.executable, "-m", "seqkit.cli", "pack", str(tmp_path / "images"), str(tmp_path / "dask"), "--size", "12", "10",
         "--engine", "dask", "--scheduler", client.scheduler.address, "--shard-mb", "0.002", "--on-error", "skip"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"},
    )
    assert run.returncode == 0, run.stderr
    assert "packed 24 images of 3 classes" in run.stdout and ": x in 5 shards, y in 1, classes.json" in run.stdout and "broken.png" in run.stderr
    manifest = same_dataset(tmp_path / "local", tmp_path / "dask")  # the CLI's default chunking: the same bytes
    assert manifest["meta"]["skipped"][0]["file"].endswith("broken.png") and manifest["fingerprint"]
    x, y = open_array(tmp_path / "dask" / "x.npy"), open_array(tmp_path / "dask" / "y.npy")
    folder = ImageFolder(tmp_path / "images", size=(12, 10))
    kept = [i for i, f in enumerate(folder.files) if f.name != "broken.png"]
    assert y[:].tolist() == [folder.labels[i] for i in kept]  # labels stay aligned with the images kept
    expected = np.asarray(Image.open(folder.files[kept[7]]).convert("RGB").resize((10, 12)))
    np.testing.assert_array_equal(x[7], expected)


def test_preprocess_once_on_dask_equals_local_for_both_forms(tmp_path, client):
    x = np.random.default_rng(2).integers(0, 255, (400, 6, 6), dtype=np.uint8)
    preprocess_once(halve_image, x, per_sample=True, cache_dir=tmp_path / "local", shard_mb=TINY_MB)
    dask = preprocess_once(halve_image, x, per_sample=True, cache_dir=tmp_path / "dask", shard_mb=TINY_MB, engine="dask", scheduler=client)
    [a], [b] = (list(p.iterdir()) for p in (tmp_path / "local", tmp_path / "dask"))
    assert a.name == b.name  # one cache key, whatever the engine
    same_dataset(a, b)
    expected = x[:, ::2, ::2].astype(np.float32) / 255
    np.testing.assert_array_equal(np.asarray(dask), expected)
    check_reading(dask, np.arange(len(x)), expected, np.arange(len(x)), batch_size=32)

    rows = np.arange(600 * 3, dtype=np.int64).reshape(600, 3)
    out = preprocess_once(split, rows, cache_dir=tmp_path / "batch", shard_mb=TINY_MB, engine="dask", scheduler=client)
    np.testing.assert_array_equal(np.asarray(out["scaled"]), rows.astype(np.float32) * 0.5)
    np.testing.assert_array_equal(np.asarray(out["total"]), rows.sum(axis=1))
    mtime = next((tmp_path / "batch").iterdir()).stat().st_mtime_ns
    again = preprocess_once(split, rows, cache_dir=tmp_path / "batch", engine="dask", scheduler=client)  # reused, not rebuilt
    np.testing.assert_array_equal(np.asarray(again["total"]), rows.sum(axis=1))
    assert next((tmp_path / "batch").iterdir()).stat().st_mtime_ns == mtime


def test_a_task_whose_worker_is_killed_is_retried_with_a_correct_result(tmp_path, client):
    x = rows_with_ids()
    kill = KillOnce(str(tmp_path / "killed"), row=330.0)  # in the middle of a shard: rows before it are on disk
    pack(x, tmp_path / "dask" / "x.npy", transform=kill, shard_mb=TINY_MB, chunk_size=20, engine="dask", scheduler=client)
    assert (tmp_path / "killed").exists()  # a worker really died
    pack(x, tmp_path / "local" / "x.npy", transform=double, shard_mb=TINY_MB, chunk_size=20)
    same_dataset(tmp_path / "local", tmp_path / "dask", same_code=False)  # no temp file of the killed attempt left in it
    store.verify(tmp_path / "dask")

    samples = np.arange(300, dtype=np.float32)[:, None].repeat(4, axis=1)
    kill = KillOnceSample(str(tmp_path / "killed-sample"), index_value=123.0)
    out = preprocess_once(kill, samples, per_sample=True, cache_dir=tmp_path / "cache", shard_mb=0.001, chunk_size=10, engine="dask", scheduler=client)
    assert (tmp_path / "killed-sample").exists()
    np.testing.assert_array_equal(np.asarray(out), samples + 1)


def test_a_task_that_keeps_failing_fails_the_run_and_leaves_no_manifest(tmp_path, client):
    x = rows_with_ids()
    counter = tmp_path / "attempts"
    with pytest.raises(RuntimeError, match="row 500.0 is bad"):
        pack(x, tmp_path / "out" / "x.npy", transform=FailAt(str(counter), 500.0), shard_mb=TINY_MB, engine="dask", scheduler=client)
    assert counter.read_text() == "xxx"  # tried once and retried twice by Dask
    assert leftovers(tmp_path / "out") == []  # no manifest, no shard, no stage folder
    with pytest.raises(RuntimeError, match="row 100.0 is bad"):
        preprocess_once(FailAt(str(counter), 100.0), x, cache_dir=tmp_path / "cache", shard_mb=TINY_MB, engine="dask", scheduler=client, verify=False)
    assert leftovers(tmp_path / "cache") == []


def test_a_run_without_progress_for_timeout_seconds_is_stopped(tmp_path, client):
    gate = tmp_path / "gate"
    gate.write_text("hold")
    x = rows_with_ids()
    try:
        with pytest.raises(WorkerError, match=r"no task finished on dask for timeout=1\.5s, so the run was stopped; still running or waiting: shard 1 \(rows 209:418\), shard 2"):
            pack(x, tmp_path / "out" / "x.npy", transform=SlowWhile(str(gate)), shard_mb=TINY_MB, engine="dask", scheduler=client, timeout=1.5)
    finally:
        gate.unlink()  # the tasks stuck on the workers finish now
    assert leftovers(tmp_path / "out") == []


def test_a_killed_driver_leaves_no_manifest_and_the_next_run_cleans_up(tmp_path, client):
    gate = tmp_path / "gate"
    gate.write_text("hold")
    (tmp_path / "out").mkdir()
    script = tmp_path / "driver.py"
    script.write_text(textwrap.dedent(f"""
        import numpy as np
        from scale_work import SlowWhile
        from seqkit import pack
        if __name__ == "__main__":
            x = np.arange(700 * 5, dtype=np.float32).reshape(700, 5)
            x[:, 0] = np.arange(700)  # SlowWhile holds every chunk but the first
            pack(x, {str(tmp_path / "out" / "x.npy")!r}, transform=SlowWhile({str(gate)!r}), shard_mb={TINY_MB},
                 chunk_size=20, engine="dask", scheduler={client.scheduler.address!r})
    """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(REPO)])}
    driver = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not [p for p in (tmp_path / "out").iterdir() if temp_owner(p.name)]:  # its stage folder: tasks submitted
            assert driver.poll() is None, driver.communicate()
            assert time.monotonic() < deadline, "the driver never started writing"
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.communicate()
    gate.unlink()
    assert not (tmp_path / "out" / store.MANIFEST).exists()
    with pytest.raises(store.StoreError, match="no manifest.json"):
        store.open_dataset(tmp_path / "out")
    x = np.arange(700 * 5, dtype=np.float32).reshape(700, 5)
    pack(x, tmp_path / "out" / "x.npy", transform=double, shard_mb=TINY_MB, engine="dask", scheduler=client)
    assert leftovers(tmp_path / "out") == ["manifest.json"] + [f"x-{i:05d}.npy" for i in range(4)]  # the dead run's stage swept
    np.testing.assert_array_equal(np.asarray(open_array(tmp_path / "out" / "x.npy")), x * 2)


def test_a_local_cluster_started_for_the_run_leaves_no_process_behind(tmp_path):
    x = rows_with_ids(300)
    before = {p.pid for p in multiprocessing.active_children()}
    pack(x, tmp_path / "out" / "x.npy", transform=double, shard_mb=TINY_MB, engine="dask", processes=2)
    np.testing.assert_array_equal(np.asarray(open_array(tmp_path / "out" / "x.npy")), x * 2)
    deadline = time.monotonic() + 10
    while {p.pid for p in multiprocessing.active_children()} - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert {p.pid for p in multiprocessing.active_children()} - before == set()


def test_engine_arguments_are_checked_before_anything_is_written(tmp_path, client):
    x = rows_with_ids(50)
    out = tmp_path / "out" / "x.npy"
    with pytest.raises(ValueError, match=r"scheduler='tcp://h:1' was given with engine='local'"):
        pack(x, out, scheduler="tcp://h:1")
    with pytest.raises(ValueError, match=r"processes=2 sets the size of a cluster started for this run; with scheduler="):
        pack(x, out, engine="dask", scheduler=client, processes=2)
    with pytest.raises(TypeError, match=r"scheduler must be a Dask scheduler address or a distributed.Client, got 42"):
        pack(x, out, engine="dask", scheduler=42)
    with pytest.raises(TypeError, match=r"engine='dask' runs one task per shard.*An iterable can only be read here"):
        pack((row for row in x), out, engine="dask", scheduler=client)
    with pytest.raises(ValueError, match=r"shard_mb must be a size in MB > 0"):
        pack(x, out, shard_mb=0)
    with pytest.raises(ValueError, match=r"timeout must be a number of seconds > 0 or None, got -1"):
        pack(x, out, timeout=-1)
    with pytest.raises(ValueError, match=r"timeout must be a number of seconds > 0 or None, got 0"):
        preprocess_once(double, x, timeout=0)
    with pytest.raises(ValueError, match=r"preprocess_once\(engine='dask', shard_mb=256\) writes its result as shards into cache_dir"):
        preprocess_once(double, x, engine="dask", scheduler=client)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("engine, module, extra", [("dask", "distributed", "dask"), ("ray", "ray", "ray")])
def test_without_the_extra_the_error_says_which_to_install(tmp_path, engine, module, extra):
    code = (
        f"import sys; sys.modules[{module!r}] = None\n"
        "import numpy as np, seqkit\n"
        f"try:\n    seqkit.pack(np.zeros((10, 2)), {str(tmp_path / 'out' / 'x.npy')!r}, engine={engine!r})\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert f"pip install 'seqkit[{extra}]'" in run.stdout and f"engine={engine!r} needs" in run.stdout
    assert not (tmp_path / "out").exists()


def test_the_workers_of_a_cluster_started_for_the_run_die_with_a_killed_driver(tmp_path):
    from test_pool import _descendants, alive

    gate = tmp_path / "gate"
    gate.write_text("hold")
    script = tmp_path / "driver.py"
    script.write_text(textwrap.dedent(f"""
        import numpy as np
        from scale_work import SlowWhile
        from seqkit import pack
        if __name__ == "__main__":
            x = np.arange(700 * 5, dtype=np.float32).reshape(700, 5)
            x[:, 0] = np.arange(700)
            pack(x, {str(tmp_path / "out" / "x.npy")!r}, transform=SlowWhile({str(gate)!r}), shard_mb={TINY_MB}, engine="dask", processes=2)
    """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(REPO)])}
    driver = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        family: dict = {}
        while len([cmd for cmd in family.values() if "spawn_main" in cmd]) < 2:  # the cluster's two workers
            assert driver.poll() is None, driver.communicate()
            assert time.monotonic() < deadline, f"the cluster's workers never started: {family}"
            time.sleep(0.1)
            family = _descendants(driver.pid)
        time.sleep(1.0)  # tasks running (held by the gate)
        family = _descendants(driver.pid)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.communicate()
        gate.unlink()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(alive(pid) for pid in family):
        time.sleep(0.1)
    assert {pid: cmd for pid, cmd in family.items() if alive(pid)} == {}
    assert not (tmp_path / "out" / store.MANIFEST).exists()
