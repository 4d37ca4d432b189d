"""Issue 13 section 3: bad arguments fail at once, naming the argument (the MultiprocessSequence items
are tested with it)."""

from __future__ import annotations

import importlib
import pkgutil
import types

import numpy as np
import pytest

from seqkit import MemmapSequence, PreprocessedSequence, pack, preprocess_once


def never_called(batch):
    raise AssertionError("preprocessing ran before the arguments were checked")


@pytest.mark.parametrize("cls", [MemmapSequence, PreprocessedSequence])
@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"workers": "a"}, TypeError, r"workers must be an integer, got 'a'"),
        ({"workers": 2.5}, TypeError, r"workers must be an integer, got 2\.5"),
        ({"workers": -1}, ValueError, r"workers must be at least 0, got -1"),
        ({"workers": True}, TypeError, r"workers must be an integer, got True"),
        ({"max_queue_size": 0}, ValueError, r"max_queue_size must be a positive integer, got 0"),
        ({"use_multiprocessing": "yes"}, TypeError, r"use_multiprocessing must be True or False, got 'yes'"),
    ],
)
def test_issue13_bad_keras_worker_arguments_fail_at_construction(cls, kwargs, error, message):
    extra = {"preprocess": never_called} if cls is PreprocessedSequence else {}
    with pytest.raises(error, match=message):
        cls(np.zeros((10, 2)), np.zeros(10), batch_size=4, **extra, **kwargs)


def test_good_keras_worker_arguments_still_reach_keras():
    seq = PreprocessedSequence(np.zeros((10, 2)), batch_size=4, preprocess=np.sqrt, workers=2, use_multiprocessing=False, max_queue_size=4)
    assert (seq.workers, seq.use_multiprocessing, seq.max_queue_size) == (2, False, 4)
    assert MemmapSequence(np.zeros((10, 2)), workers=0).workers == 0  # Keras' "in the main thread"


def test_issue13_a_list_of_rows_as_long_as_its_rows_is_refused_not_read_as_inputs():
    rows = [np.arange(3.0), np.arange(3.0) + 1, np.arange(3.0) + 2]  # 3 rows of length 3
    with pytest.raises(ValueError, match=r"x is a list of 3 arrays of shape \(3,\): seqkit cannot tell 3 inputs .* np\.stack\(x\)"):
        MemmapSequence(rows)
    with pytest.raises(ValueError, match=r"x is a list of 3 arrays"):
        preprocess_once(np.sqrt, rows)
    with pytest.raises(TypeError, match=r"x is a Python list of lists.*np\.asarray\(x\)"):
        MemmapSequence([[1, 2], [3, 4]])
    with pytest.raises(TypeError, match=r"y is a Python list of 3 numbers; pass np\.asarray\(y\)"):
        MemmapSequence(np.zeros((3, 2)), [0, 1, 0])
    with pytest.raises(ValueError, match=r"x\['image'\] is a list of 2 arrays"):
        MemmapSequence({"image": [np.zeros(2), np.ones(2)]})


def test_real_multi_input_lists_still_work():
    a, b = np.zeros((10, 3)), np.ones((10, 5))
    bx, _ = MemmapSequence([a, b], np.arange(10), batch_size=4)[0]
    assert isinstance(bx, list) and bx[0].shape == (4, 3) and bx[1].shape == (4, 5)
    square = [np.zeros((4, 4)), np.ones((4, 4))]  # 2 inputs of 4 samples: the list length is not the row length
    assert len(MemmapSequence(square, batch_size=2)) == 2


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"transform": lambda chunk: chunk * 2, "processes": 2}, TypeError, r"pack\(processes=2\) sends transform to worker processes, but transform cannot be pickled.*module level"),
        ({"processes": "a"}, TypeError, r"processes must be an integer, got 'a'"),
        ({"processes": 2.5}, TypeError, r"processes must be an integer, got 2\.5"),
        ({"processes": 0}, ValueError, r"processes must be a positive integer, got 0"),
        ({"chunk_size": 1.5}, TypeError, r"chunk_size must be an integer, got 1\.5"),
        ({"on_error": "ignore"}, ValueError, r"on_error must be 'raise' or 'skip', got 'ignore'"),
        ({"transform": "double"}, TypeError, r"transform must be a function"),
        ({"engine": "spark"}, ValueError, r"engine must be one of 'local', 'dask', 'ray', got 'spark'"),
    ],
)
def test_issue13_pack_arguments_are_checked_up_front(tmp_path, kwargs, error, message):
    def source():
        raise AssertionError("the source was read before the arguments were checked")
        yield

    with pytest.raises(error, match=message):
        pack(source(), tmp_path / "x.npy", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_preprocess_once_processes_are_named_too():
    with pytest.raises(TypeError, match=r"processes must be an integer, got 2\.5"):
        preprocess_once(np.sqrt, np.zeros((4, 2)), processes=2.5)


def test_issue13_seqkit_pack_stays_the_function_after_imagefolder_chunks_and_a_cached_preprocess(tmp_path):
    import seqkit

    seqkit.ImageFolder, seqkit.Chunks  # the uses the issue named, in the order that broke seqkit.pack
    seqkit.preprocess_once(np.sqrt, np.ones((4, 2)), cache_dir=tmp_path)
    assert callable(seqkit.pack) and not isinstance(seqkit.pack, types.ModuleType)
    np.testing.assert_array_equal(np.load(seqkit.pack(np.arange(3), tmp_path / "x.npy")), np.arange(3))


def test_issue13_no_submodule_shadows_a_public_name():
    """Importing a submodule sets it as an attribute of the package, over an exported name of the same
    name; so no module may be named like one, and after importing them all every name is intact."""
    import seqkit

    modules = {info.name for info in pkgutil.iter_modules(seqkit.__path__)}
    assert not modules & set(seqkit._EXPORTS)
    for info in pkgutil.walk_packages(seqkit.__path__, "seqkit."):
        importlib.import_module(info.name)
    for name in seqkit._EXPORTS:
        assert not isinstance(getattr(seqkit, name), types.ModuleType), f"seqkit.{name} is shadowed by a module"
