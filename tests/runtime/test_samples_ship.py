"""seqkit.samples_ship: the user's loader travels to worker processes by value, so a worker neither
imports the loader's module (and Keras with it) nor runs the user's script again.

The shipped objects are loaded in a fresh Python process whose path does not reach this test module:
whatever they need must have travelled with them."""

from __future__ import annotations

import math
import pickle
import subprocess
import sys
import types

import numpy as np
import pytest

from seqkit.samples_ship import MainHidden, NotShippable, ship

OFFSET = 10


def helper(x):
    return x + OFFSET


def countdown(n):
    return 0 if n == 0 else 1 + countdown(n - 1)  # reaches itself through its globals


def outer(scale, *, power=2):
    def load(key, extra=1):
        values = [helper(k) ** power for k in range(key)]  # a comprehension: nested code reading globals
        return np.asarray(values, dtype=np.float64) * scale + extra + countdown(3) + math.floor(0.5)

    return load


class Loader:
    LIMIT = 4  # a class constant the method reads

    def __init__(self):
        self.scale = 3
        self.dataset = np.zeros(5_000_000, dtype=np.uint8)  # what a Sequence holds: not read, not shipped
        self.__secret = 2  # name-mangled, read by the method

    @property
    def factor(self):
        return self.scale * self.__secret

    @staticmethod
    def clip(x, limit):
        return min(x, limit)

    def _part(self, key):
        return self.clip(key, self.LIMIT) * self.factor

    def load(self, key):
        return np.full(2, self._part(key), dtype=np.int64)

    def load_escaping(self, key):
        return describe(self) + key  # `self` handed on: its reads cannot be seen


def describe(obj):
    return obj.scale


def run_elsewhere(tmp_path, obj, argument):
    """Unpickle `obj` in a new interpreter that cannot import this module, call it, report what it imported."""
    (tmp_path / "blob.pkl").write_bytes(pickle.dumps(obj))
    code = (
        "import pickle, sys\n"
        "fn = pickle.loads(open('blob.pkl', 'rb').read())\n"
        f"print(repr(fn({argument!r}).tolist()))\n"
        "print(sorted(m for m in ('keras', 'tensorflow', 'test_samples_ship', 'tests') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result, imported = done.stdout.splitlines()
    return eval(result), eval(imported)


def test_a_function_travels_with_its_closure_defaults_helpers_and_globals(tmp_path):
    fn = outer(0.5, power=3)
    result, imported = run_elsewhere(tmp_path, ship(fn), 3)
    assert result == fn(3).tolist()
    assert imported == []


def test_a_bound_method_travels_with_only_the_attributes_it_reads(tmp_path):
    loader = Loader()
    shipped = ship(loader.load)
    assert len(shipped.blob) < 20_000  # not the 5 MB dataset
    result, imported = run_elsewhere(tmp_path, shipped, 7)
    assert result == loader.load(7).tolist() == [24, 24]
    assert imported == []

    stand_in = pickle.loads(shipped.blob).__self__
    assert type(stand_in) is not Loader and type(stand_in).__qualname__ == "Loader"
    assert sorted(vars(stand_in)) == ["_Loader__secret", "scale"]


def test_a_method_whose_reads_are_not_visible_takes_self_whole(tmp_path):
    loader = Loader()
    copy = pickle.loads(ship(loader.load_escaping).blob)
    assert type(copy.__self__) is Loader and copy(1) == 4


def test_what_only_the_script_could_rebuild_is_not_shippable():
    script_class = types.new_class("Scaler")
    script_class.__module__ = "__main__"
    instance = script_class()
    with pytest.raises(NotShippable, match=r"instance of Scaler, a class defined in the script \(__main__\)"):
        ship(lambda key: key * instance.k)
    with pytest.raises(NotShippable, match=r"class Scaler, defined in the script"):
        ship(lambda key: script_class)
    with pytest.raises(NotShippable, match="cannot be pickled"):
        import threading

        lock = threading.Lock()
        ship(lambda key: lock)


def test_library_code_travels_by_reference():
    assert len(ship(np.load).blob) < 100
    assert pickle.loads(ship(np.load).blob) is np.load


def test_main_hidden_swaps_the_main_module_for_a_stand_in_and_puts_it_back():
    main = sys.modules["__main__"]
    before = dict(vars(main))
    with MainHidden() as hidden:
        stand_in = sys.modules["__main__"]
        assert stand_in is not main and not hasattr(stand_in, "__file__") and stand_in.__spec__ is None
        assert vars(main) == before  # the script's own module, whose dict its functions use, is untouched
        hidden.restore()
        assert sys.modules["__main__"] is main
        hidden.restore()  # idempotent
    assert sys.modules["__main__"] is main
