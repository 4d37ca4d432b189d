"""Cache keys follow everything a preprocessing function reaches (issue 13 section 1), or refuse; bound
methods are keyed by the attributes of `self` they read, not by all of `self`."""

from __future__ import annotations

import importlib
import sys
import textwrap
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

from seqkit import preprocess_once
from seqkit.fingerprint import FingerprintError, FingerprintWarning, function_digest, library_version, receiver_reads


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A user project on sys.path: `write(name, source)` creates or edits a module and (re)imports it."""
    monkeypatch.syspath_prepend(str(tmp_path))
    created: list[str] = []

    def write(name: str, source: str):
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        if name in sys.modules:
            return importlib.reload(sys.modules[name])
        created.append(name)
        return importlib.import_module(name)

    yield write
    for name in created:
        sys.modules.pop(name, None)


def counting(cache: Path, fn, x):
    """preprocess_once through a cache, and whether it had to compute (True) or reused (False)."""
    before = {p.name for p in cache.iterdir()} if cache.exists() else set()
    out = preprocess_once(fn, x, cache_dir=cache)
    return out, {p.name for p in cache.iterdir()} != before


X = np.arange(12, dtype=np.float64).reshape(6, 2)


def test_issue13_edit_to_a_module_function_reached_as_m_f_rebuilds(project, tmp_path):
    helpers = project("helpers", "def f(x):\n    return x * 2\n")
    pipeline = project("pipeline", "import helpers\n\ndef prepare(batch):\n    return helpers.f(batch) + 1\n")
    out, built = counting(tmp_path / "cache", pipeline.prepare, X)
    assert built
    np.testing.assert_array_equal(out, X * 2 + 1)
    assert not counting(tmp_path / "cache", pipeline.prepare, X)[1]
    project("helpers", "def f(x):\n    return x * 3\n")  # the edit the old key missed
    out, built = counting(tmp_path / "cache", pipeline.prepare, X)
    assert built and helpers is sys.modules["helpers"]
    np.testing.assert_array_equal(out, X * 3 + 1)


def test_issue13_edit_to_a_module_constant_reached_as_m_const_rebuilds(project, tmp_path):
    project("settings", "SCALE = 2.0\n")
    pipeline = project("pipeline2", "import settings\n\ndef prepare(batch):\n    return batch * settings.SCALE\n")
    np.testing.assert_array_equal(counting(tmp_path / "c", pipeline.prepare, X)[0], X * 2)
    project("settings", "SCALE = 5.0\n")
    out, built = counting(tmp_path / "c", pipeline.prepare, X)
    assert built
    np.testing.assert_array_equal(out, X * 5)


def test_issue13_edits_are_followed_transitively_through_modules_and_packages(project, tmp_path):
    project("deep", "OFFSET = 1\n\ndef g(x):\n    return x + OFFSET\n")
    project("middle", "import deep\n\ndef f(x):\n    return deep.g(x) * 2\n")
    pipeline = project("pipeline3", "import middle as m\n\ndef prepare(batch):\n    return m.f(batch)\n")
    np.testing.assert_array_equal(counting(tmp_path / "c", pipeline.prepare, X)[0], (X + 1) * 2)
    project("deep", "OFFSET = 10\n\ndef g(x):\n    return x + OFFSET\n")
    np.testing.assert_array_equal(counting(tmp_path / "c", pipeline.prepare, X)[0], (X + 10) * 2)


def test_issue13_edit_to_a_class_attribute_norm_k_rebuilds(project, tmp_path):
    pipeline = project(
        "pipeline4",
        """
        class Norm:
            k = 2.0

            @staticmethod
            def apply(x):
                return x / Norm.k

        def prepare(batch):
            return Norm.apply(batch) + Norm.k
        """,
    )
    np.testing.assert_array_equal(counting(tmp_path / "c", pipeline.prepare, X)[0], X / 2 + 2)
    pipeline.Norm.k = 4.0  # changed at run time, or edited in the source: the same for the key
    out, built = counting(tmp_path / "c", pipeline.prepare, X)
    assert built
    np.testing.assert_array_equal(out, X / 4 + 4)


def test_a_module_reached_through_a_closure_is_followed_too(project, tmp_path):
    settings = project("settings5", "SCALE = 2.0\n")

    def make():
        module = settings
        return lambda batch: batch * module.SCALE

    np.testing.assert_array_equal(counting(tmp_path / "c", make(), X)[0], X * 2)
    project("settings5", "SCALE = 3.0\n")
    np.testing.assert_array_equal(counting(tmp_path / "c", make(), X)[0], X * 3)


def test_libraries_are_keyed_by_name_and_version_not_walked():
    assert library_version("numpy") == f"numpy=={np.__version__}"
    assert library_version("json.decoder") == f"python=={sys.version.split()[0]}"  # the standard library
    assert library_version(__name__) is None  # this project's own code is walked

    def prepare(batch):
        return np.sqrt(np.clip(batch, 0, None))

    assert function_digest(prepare) == function_digest(prepare)


def test_issue13_what_cannot_be_fingerprinted_is_refused_and_said(tmp_path):
    lock = threading.Lock()

    def guarded(batch):
        with lock:
            return batch + 1

    with pytest.raises(FingerprintError, match=r"cannot fingerprint _thread\.lock object reached from .*guarded -> closure 'lock'.*cannot be pickled"):
        preprocess_once(guarded, X, cache_dir=tmp_path / "c")
    assert not any((tmp_path / "c").iterdir())
    np.testing.assert_array_equal(preprocess_once(guarded, X), X + 1)  # without a cache it runs


# -- bound methods: only the attributes of self they read ---------------------------------------------


class Loader:
    """What seqlint's fixes produce: a generator whose helper is preprocessed once from __init__."""

    def __init__(self, n=200):
        rng = np.random.default_rng(0)
        self.x = rng.normal(size=(n, 3))  # the big data array: read by __getitem__, not by the helper
        self.indices = rng.permutation(n)  # reshuffled every epoch
        self.mean = 0.5
        self.std = 2.0

    def _scale(self, batch):
        return batch / self.std

    def _helper(self, batch):
        return self._scale(batch - self.mean)

    @property
    def offset(self):
        return self.mean * 2

    def _with_property(self, batch):
        return batch + self.offset

    def _dynamic(self, batch):
        return batch * getattr(self, "std")

    def _passes_self(self, batch):
        return helper_of(self, batch)


def helper_of(loader, batch):
    return batch * loader.std


class Sub(Loader):
    def _scale(self, batch):
        return super()._scale(batch) * self.factor

    def __init__(self):
        super().__init__()
        self.factor = 3


def test_bound_method_reads_only_what_it_and_its_self_calls_read():
    reads, _, escapes = receiver_reads(Loader._helper, Loader)
    assert reads == {"_scale", "mean", "std"} and escapes == []
    loader = Loader()
    key = function_digest(loader._helper)
    loader.indices = loader.indices[::-1].copy()  # a new epoch's order
    loader.x = loader.x + 1  # even the data itself: the helper never reads it
    assert function_digest(loader._helper) == key
    loader.std = 3.0  # read through self._scale
    assert function_digest(loader._helper) != key


def test_bound_method_follows_properties_and_super():
    loader = Loader()
    key = function_digest(loader._with_property)
    loader.x = None
    assert function_digest(loader._with_property) == key
    loader.mean = 1.0  # read by the property's getter
    assert function_digest(loader._with_property) != key

    sub = Sub()
    assert receiver_reads(Sub._scale, Sub)[0] == {"factor", "std"}
    key = function_digest(sub._scale)
    sub.std = 7.0  # read by Loader._scale, reached through super()
    assert function_digest(sub._scale) != key


@pytest.mark.parametrize("method, seen", [("_dynamic", r"getattr\(self, \.\.\.\)"), ("_passes_self", "passed on or used as a value")])
def test_bound_method_reads_that_cannot_be_seen_fall_back_to_all_of_self_loudly(method, seen):
    loader = Loader()
    with pytest.warns(FingerprintWarning, match=rf"Loader\.{method}.*{seen}.*Hashing every attribute of the Loader instance"):
        key = function_digest(getattr(loader, method))
    loader.indices = loader.indices[::-1].copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FingerprintWarning)
        assert function_digest(getattr(loader, method)) != key  # all of self: any change rebuilds


def test_preprocess_once_of_a_helper_in_a_real_pydataset_is_reused_across_epochs(tmp_path):
    import keras

    class Generator(keras.utils.PyDataset):
        def __init__(self, x, **kwargs):
            super().__init__(**kwargs)
            self.x = x
            self.indices = np.random.default_rng().permutation(len(x))  # a different order every time
            self.scale = 4.0
            self.x = preprocess_once(self._normalise, self.x, cache_dir=tmp_path / "cache")

        def _normalise(self, batch):
            return batch.astype(np.float32) / self.scale

        def __len__(self):
            return 1

        def __getitem__(self, index):
            return self.x[self.indices[:8]]

    x = np.arange(300, dtype=np.uint8).reshape(100, 3)
    first = Generator(x)
    [cache] = list((tmp_path / "cache").iterdir())
    second = Generator(x)
    assert not np.array_equal(first.indices, second.indices)
    assert list((tmp_path / "cache").iterdir()) == [cache]  # reused: the index arrays are not in the key
    np.testing.assert_array_equal(second.x, x.astype(np.float32) / 4)
    np.testing.assert_array_equal(first.x, second.x)


def test_code_of_a_notebook_or_exec_is_the_users_and_walked(tmp_path):
    """A notebook's __main__ has no __file__: its functions must be walked, not taken for a library's."""
    import types as pytypes

    notebook = pytypes.ModuleType("notebook_main")  # no __file__, like Jupyter's __main__
    sys.modules["notebook_main"] = notebook
    try:
        assert library_version("notebook_main") is None and library_version("sys") is not None
        exec("SCALE = 2\ndef prepare(batch):\n    return batch * SCALE\n", notebook.__dict__)
        key = function_digest(notebook.prepare)
        notebook.SCALE = 3
        assert function_digest(notebook.prepare) != key
    finally:
        del sys.modules["notebook_main"]


def test_a_helper_behind_a_compiled_decorator_is_still_walked(project):
    pipeline = project(
        "pipeline6",
        """
        import functools

        @functools.lru_cache(maxsize=None)
        def factor():
            return 2

        def prepare(batch):
            return batch * factor()
        """,
    )
    key = function_digest(pipeline.prepare)
    pipeline = project("pipeline6", pipeline.__loader__.get_source("pipeline6").replace("return 2", "return 3"))
    assert function_digest(pipeline.prepare) != key
