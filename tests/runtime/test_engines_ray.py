"""Issue 15 on Ray, when Ray is installed (`pip install 'seqkit[ray]'`; skipped otherwise): one local
Ray instance of 2 CPUs for the module. The same promises as on Dask (test_engines_dask): the local
engine's bytes, in-memory batches and covering host parts read back, a killed task retried with a
correct result, and runs that fail, stall or lose their driver leave no manifest."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from scale_work import FailAt, KillOnce, SlowWhile, double, halve_image  # noqa: E402
from seqkit import open_array, pack, preprocess_once, store  # noqa: E402
from seqkit.lifeline import WorkerError  # noqa: E402
from seqkit.tempfiles import temp_owner  # noqa: E402
from test_engines_dask import TINY_MB, leftovers, rows_with_ids, same_dataset  # noqa: E402
from test_sharded import check_reading  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PYTHONPATH = os.pathsep.join([str(HERE), str(REPO)])


@pytest.fixture(scope="module")
def cluster():
    # The tasks' functions live in tests/runtime/scale_work.py: Ray's workers import it by name.
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": PYTHONPATH}})
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def test_pack_and_preprocess_on_ray_write_the_local_engines_bytes(tmp_path, cluster):
    x = rows_with_ids()
    np.save(tmp_path / "input.npy", x)
    for source, name in ((x, "memory"), (str(tmp_path / "input.npy"), "file")):
        pack(source, tmp_path / f"local-{name}" / "x.npy", transform=double, shard_mb=TINY_MB, chunk_size=50)
        pack(source, tmp_path / f"ray-{name}" / "x.npy", transform=double, shard_mb=TINY_MB, chunk_size=50, engine="ray")
        same_dataset(tmp_path / f"local-{name}", tmp_path / f"ray-{name}")
    pack(np.arange(len(x)), tmp_path / "ray-file" / "y.npy", shard_mb=0.001, engine="ray")
    check_reading(str(tmp_path / "ray-file" / "x.npy"), str(tmp_path / "ray-file" / "y.npy"), x * 2, np.arange(len(x)))

    images = np.random.default_rng(2).integers(0, 255, (300, 6, 6), dtype=np.uint8)
    local = preprocess_once(halve_image, images, per_sample=True, cache_dir=tmp_path / "c-local", shard_mb=TINY_MB)
    on_ray = preprocess_once(halve_image, images, per_sample=True, cache_dir=tmp_path / "c-ray", shard_mb=TINY_MB, engine="ray")
    same_dataset(next((tmp_path / "c-local").iterdir()), next((tmp_path / "c-ray").iterdir()))
    np.testing.assert_array_equal(np.asarray(on_ray), np.asarray(local))


def test_a_task_whose_worker_is_killed_is_retried_on_ray(tmp_path, cluster):
    x = rows_with_ids()
    pack(x, tmp_path / "ray" / "x.npy", transform=KillOnce(str(tmp_path / "killed"), 330.0), shard_mb=TINY_MB, chunk_size=20, engine="ray")
    assert (tmp_path / "killed").exists()
    pack(x, tmp_path / "local" / "x.npy", transform=double, shard_mb=TINY_MB, chunk_size=20)
    same_dataset(tmp_path / "local", tmp_path / "ray", same_code=False)
    store.verify(tmp_path / "ray")


def test_failed_and_stalled_runs_on_ray_leave_no_manifest(tmp_path, cluster):
    x = rows_with_ids()
    counter = tmp_path / "attempts"
    with pytest.raises(RuntimeError, match="row 500.0 is bad"):
        pack(x, tmp_path / "out" / "x.npy", transform=FailAt(str(counter), 500.0), shard_mb=TINY_MB, engine="ray")
    assert counter.read_text() == "xxx"  # tried once and retried twice by Ray
    assert leftovers(tmp_path / "out") == []
    gate = tmp_path / "gate"
    gate.write_text("hold")
    try:
        with pytest.raises(WorkerError, match=r"no task finished on ray for timeout=1\.5s"):
            pack(x, tmp_path / "out" / "x.npy", transform=SlowWhile(str(gate)), shard_mb=TINY_MB, engine="ray", timeout=1.5)
    finally:
        gate.unlink()
    assert leftovers(tmp_path / "out") == []


def test_a_killed_driver_on_ray_leaves_no_manifest(tmp_path, cluster):
    gate = tmp_path / "gate"
    gate.write_text("hold")
    (tmp_path / "out").mkdir()
    script = tmp_path / "driver.py"
    script.write_text(textwrap.dedent(f"""
        import numpy as np, ray
        from scale_work import SlowWhile
        from seqkit import pack
        if __name__ == "__main__":
            ray.init(address={cluster!r}, log_to_driver=False)
            x = np.arange(700 * 5, dtype=np.float32).reshape(700, 5)
            x[:, 0] = np.arange(700)
            pack(x, {str(tmp_path / "out" / "x.npy")!r}, transform=SlowWhile({str(gate)!r}), shard_mb={TINY_MB},
                 chunk_size=20, engine="ray")
    """))
    driver = subprocess.Popen([sys.executable, str(script)], env={**os.environ, "PYTHONPATH": PYTHONPATH}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not [p for p in (tmp_path / "out").iterdir() if temp_owner(p.name)]:
            assert driver.poll() is None, driver.communicate()
            assert time.monotonic() < deadline, "the driver never started writing"
            time.sleep(0.05)
        time.sleep(0.5)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.communicate()
    gate.unlink()
    assert not (tmp_path / "out" / store.MANIFEST).exists()
    x = np.arange(700 * 5, dtype=np.float32).reshape(700, 5)
    pack(x, tmp_path / "out" / "x.npy", transform=double, shard_mb=TINY_MB, engine="ray")
    assert leftovers(tmp_path / "out") == ["manifest.json"] + [f"x-{i:05d}.npy" for i in range(4)]
    np.testing.assert_array_equal(np.asarray(open_array(tmp_path / "out" / "x.npy")), x * 2)
