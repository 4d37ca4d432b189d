"""Proof that the fixes keep the batches: every before/after pair in fixtures/fix is executed.

For each pair both versions are imported as separate modules, built on the same generated data by the
pair's harness, and every batch of every index is compared over two epochs (on_epoch_end between), nested
dict/tuple batches included: exactly, or within the harness' tolerance where a fix reorders float
arithmetic. Unsafe versions that change the batches on purpose are held to what they promise instead
(the batches both versions serve are equal; or: reproducible for a seed). The fixed version then trains
one epoch of a real `model.fit`. A second test runs `seqlint fix` on a copy of each before.py and
requires exactly the after.py text, and no change on a second run.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "fixtures" / "fix"))
import _pairs  # noqa: E402

PAIRS = _pairs.discover()
CASES = [pytest.param(pair, variant, id=f"{pair.name}-{variant}") for pair in PAIRS for variant in pair.variants]
EPOCHS = 2


def test_there_are_enough_realistic_pairs():
    assert len(PAIRS) >= 20
    for pair in PAIRS:
        assert pair.before.exists(), pair.name
        assert pair.variants, f"{pair.name}: neither after.py nor after_unsafe.py"
        for variant in pair.variants:
            assert pair.variant(variant).read_text() != pair.before.read_text(), f"{pair.name}/{variant} fixes nothing"
        harness = pair.harness()
        assert harness.FIXES and all(code.startswith("SEQ") for code in harness.FIXES), pair.name
    # several pairs exercise more than one fix in one class, and every fix of the brief is covered
    assert sum(len(pair.harness().FIXES) > 1 for pair in PAIRS) >= 5
    covered = {code for pair in PAIRS for code in pair.harness().FIXES}
    assert {"SEQ101", "SEQ102", "SEQ103", "SEQ202", "SEQ301", "SEQ302", "SEQ303", "SEQ306"} <= covered


# ---------------------------------------------------------------------------------------------------
# Batches


def _batch(dataset, index, harness, epoch):
    """dataset[index], with the global RNGs reseeded first when the pair's code still uses them."""
    seed = getattr(harness, "GLOBAL_RNG_SEED", None)
    if seed is not None:
        np.random.seed(seed + 1000 * epoch + index)
        random.seed(seed + 1000 * epoch + index)
    return dataset[index]


def assert_same_structure(expected, actual, where, rtol=0.0, atol=0.0, values=True):
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected a dict, got {type(actual).__name__}"
        assert list(actual) == list(expected), f"{where}: keys {list(actual)} != {list(expected)}"
        for key in expected:
            assert_same_structure(expected[key], actual[key], f"{where}[{key!r}]", rtol, atol, values)
        return
    if isinstance(expected, (tuple, list)):
        assert isinstance(actual, (tuple, list)), f"{where}: expected a sequence, got {type(actual).__name__}"
        assert len(actual) == len(expected), f"{where}: {len(actual)} parts != {len(expected)}"
        for i, (e, a) in enumerate(zip(expected, actual)):
            assert_same_structure(e, a, f"{where}[{i}]", rtol, atol, values)
        return
    expected, actual = np.asarray(expected), np.asarray(actual)
    assert actual.shape == expected.shape, f"{where}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{where}: dtype {actual.dtype} != {expected.dtype}"
    if not values:
        return
    if rtol or atol:
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=where)
    else:
        np.testing.assert_array_equal(actual, expected, err_msg=where)


def _epochs(dataset, harness, indices):
    """Yield (epoch, index, batch) over EPOCHS epochs, calling on_epoch_end between them as fit does."""
    seed = getattr(harness, "GLOBAL_RNG_SEED", None)
    for epoch in range(EPOCHS):
        for index in indices:
            yield epoch, index, _batch(dataset, index, harness, epoch)
        if seed is not None:  # an on_epoch_end shuffling with the global RNG reshuffles alike
            np.random.seed(seed + 7919 * (epoch + 1))
            random.seed(seed + 7919 * (epoch + 1))
        dataset.on_epoch_end()


def _compare(before, after, harness, indices, rtol, atol, values=True):
    # Interleaved, so that both versions see the same on_epoch_end calls at the same time.
    for (epoch, index, expected), (_, _, actual) in zip(_epochs(before, harness, indices), _epochs(after, harness, indices)):
        assert_same_structure(expected, actual, f"epoch {epoch} batch {index}", rtol, atol, values)


@pytest.mark.parametrize("pair, variant", CASES)
def test_fixed_version_yields_the_same_batches(pair, variant, tmp_path):
    harness = pair.harness()
    before_module, after_module = pair.load("before"), pair.load(variant)
    rtol, atol = _pairs.tolerance(harness)

    if _pairs.preserves_batches(harness, variant):
        before = harness.build(before_module, tmp_path)
        after = harness.build(after_module, tmp_path)
        assert len(after) == len(before)
        _compare(before, after, harness, range(len(before)), rtol, atol)
        return

    mode = harness.UNSAFE_COMPARE
    if mode == "common":
        before = harness.build(before_module, tmp_path)
        after = harness.build(after_module, tmp_path)
        assert len(after) == len(before) + harness.UNSAFE_EXTRA_BATCHES
        _compare(before, after, harness, range(len(before)), rtol, atol)
        last = after[len(after) - 1]
        assert 0 < len(np.asarray(last[0])) < len(np.asarray(after[0][0])), "the new last batch is the partial one"
    elif mode == "reproducible":
        first = harness.build(after_module, tmp_path, seed=1234)
        second = harness.build(after_module, tmp_path, seed=1234)
        other = harness.build(after_module, tmp_path, seed=4321)
        before = harness.build(before_module, tmp_path)
        _compare(first, second, harness, range(len(first)), 0.0, 0.0)
        # Same shapes and dtypes as before the fix (values differ: the random stream changed).
        _compare(before, first, harness, range(min(len(before), len(first))), 0.0, 0.0, values=False)
        assert any(
            not np.array_equal(np.asarray(first[i][0]), np.asarray(other[i][0])) for i in range(len(first))
        ), "another seed must give other batches"
        # Epochs differ from one another, as augmentation should.
        epoch0 = np.asarray(first[0][0])
        first.on_epoch_end()
        assert not np.array_equal(epoch0, np.asarray(first[0][0]))
    else:
        raise AssertionError(f"{pair.name}: unknown UNSAFE_COMPARE {mode!r}")


PACKING_CASES = [
    pytest.param(pair, variant, id=f"{pair.name}-{variant}")
    for pair in PAIRS for variant in pair.variants if "pack_samples(" in pair.variant(variant).read_text()
]


@pytest.mark.parametrize("pair, variant", PACKING_CASES)
def test_fixed_class_reuses_its_pack_on_a_second_construction(pair, variant, tmp_path):
    """SEQ201's fix packs the samples in `__init__`: a second instance on unchanged files reads the pack
    the first one wrote instead of loading every file again, and serves the same batches."""
    from seqkit.samples import PackedSamples

    harness, module = pair.harness(), pair.load(variant)
    first = harness.build(module, tmp_path)
    second = harness.build(module, tmp_path)
    packs = [value for value in vars(second).values() if isinstance(value, PackedSamples)]
    assert packs, f"{pair.name}/{variant}: no PackedSamples attribute on the fixed instance"
    assert all(pack.reused for pack in packs), [(pack.path, pack.reused) for pack in packs]
    assert not any(pack.reused for pack in vars(first).values() if isinstance(pack, PackedSamples))
    if _pairs.preserves_batches(harness, variant):  # (random augmentation: each instance draws its own)
        _compare(first, second, harness, range(len(first)), 0.0, 0.0)


# ---------------------------------------------------------------------------------------------------
# Training


def _leaves(struct):
    if isinstance(struct, dict):
        return [leaf for value in struct.values() for leaf in _leaves(value)]
    if isinstance(struct, (tuple, list)):
        return [leaf for value in struct for leaf in _leaves(value)]
    return [np.asarray(struct)]


def tiny_model_for(batch):
    """The smallest model that accepts this batch: one Dense per target, on the flattened inputs."""
    import keras

    x, y = batch[0], batch[1]
    if isinstance(x, dict):
        inputs = {name: keras.Input(np.asarray(v).shape[1:], name=name) for name, v in x.items()}
        tensors = list(inputs.values())
    elif isinstance(x, (tuple, list)):
        inputs = [keras.Input(np.asarray(v).shape[1:]) for v in x]
        tensors = inputs
    else:
        inputs = keras.Input(np.asarray(x).shape[1:])
        tensors = [inputs]
    flat = [keras.layers.Flatten()(t) if len(t.shape) > 2 else t for t in tensors]
    hidden = keras.layers.Dense(4, activation="relu")(keras.layers.Concatenate()(flat) if len(flat) > 1 else flat[0])

    def head(target):
        shape = np.asarray(target).shape[1:]
        out = keras.layers.Dense(int(np.prod(shape)) if shape else 1)(hidden)
        return keras.layers.Reshape(shape)(out) if len(shape) > 1 else out

    outputs = [head(t) for t in y] if isinstance(y, (tuple, list)) else head(y)
    model = keras.Model(inputs, outputs)
    # Adam's step is bounded by its learning rate: raw 0-255 pixels cannot blow the loss up to inf.
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    return model


@pytest.mark.slow
def test_fixed_versions_train_in_model_fit(tmp_path):
    """One real fit epoch per fixed version (one test, so TensorFlow's start is paid once)."""
    import keras

    keras.utils.set_random_seed(0)
    trained = []
    for pair in PAIRS:
        harness = pair.harness()
        for variant in pair.variants:
            data_dir = tmp_path / f"{pair.name}-{variant}"
            data_dir.mkdir()
            dataset = harness.build(pair.load(variant), data_dir)
            model = tiny_model_for(dataset[0])
            history = model.fit(dataset, epochs=1, verbose=0)
            assert np.isfinite(history.history["loss"][0]), f"{pair.name}/{variant}"
            if hasattr(harness, "train"):  # the pair's own training code (the part SEQ303 rewrites)
                harness.train(pair.load(variant), data_dir)
            trained.append(f"{pair.name}/{variant}")
    assert len(trained) >= 20


def test_legacy_training_code_fails_on_keras3_before_the_fix(tmp_path):
    """The SEQ303 pairs' before versions really are broken on Keras 3, so the fix is needed, not cosmetic."""
    pairs = [pair for pair in PAIRS if "SEQ303" in pair.harness().FIXES]
    assert pairs
    for pair in pairs:
        with pytest.raises(AttributeError, match="_generator"):
            pair.harness().train(pair.load("before"), tmp_path)


# ---------------------------------------------------------------------------------------------------
# The fix command produces exactly the after files


def _fix_command_missing() -> str | None:
    runner = ROOT / "seqlint" / "runner.py"
    if not runner.exists() or "def apply_fixes" not in runner.read_text():
        return "seqlint fix does not exist yet (no fix function in seqlint/runner.py)"
    return None


def _missing_rules(codes) -> list[str]:
    from seqlint.engine import get_rule

    missing = []
    for code in codes:
        try:
            rule = get_rule(code)
        except KeyError:
            missing.append(f"{code} (not registered)")
            continue
        if rule.fix_availability == "none":
            missing.append(f"{code} (no fix)")
    return missing


def _seqlint_fix(path: Path, unsafe: bool) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "seqlint", "fix", "--output-format", "concise", str(path)]
    if unsafe:
        args.insert(4, "--unsafe-fixes")
    return subprocess.run(args, capture_output=True, text=True, cwd=path.parent, timeout=120)


FIX_CASES = [pytest.param(pair, False, id=f"{pair.name}-safe") for pair in PAIRS] + [
    pytest.param(pair, True, id=f"{pair.name}-unsafe") for pair in PAIRS if "after_unsafe" in pair.variants
]


@pytest.mark.parametrize("pair, unsafe", FIX_CASES)
def test_seqlint_fix_produces_the_after_file(pair, unsafe, tmp_path):
    reason = _fix_command_missing()
    if reason:
        pytest.skip(reason)
    missing = _missing_rules(pair.harness().FIXES)
    if missing:
        pytest.skip(f"rules this pair needs are not implemented yet: {', '.join(missing)}")
    if unsafe:
        expected = pair.variant("after_unsafe").read_text()
    elif "after" in pair.variants:
        expected = pair.variant("after").read_text()
    else:
        expected = pair.before.read_text()  # only unsafe fixes apply: the safe run must change nothing
    target = tmp_path / f"{pair.name}.py"
    shutil.copyfile(pair.before, target)

    first = _seqlint_fix(target, unsafe)
    assert first.returncode in (0, 1), first.stderr
    assert target.read_text() == expected, f"seqlint fix output differs from the spec\n{first.stdout}{first.stderr}"

    second = _seqlint_fix(target, unsafe)
    assert second.returncode in (0, 1), second.stderr
    assert target.read_text() == expected, "a second seqlint fix run changed the file again"
