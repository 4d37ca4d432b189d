"""`FILE.py:NAME` -> the dataset (and model) to profile, with errors that name what is wrong.

The file is imported the way `python FILE.py` would see its neighbours (its folder first on sys.path)
but under its own module name, not `__main__`: code under `if __name__ == "__main__":` does not run,
and classes defined in it can be pickled to worker processes, which import the module by that name.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
from pathlib import Path
from types import ModuleType


class ProfileError(ValueError):
    """Bad input to the profiler (a target, a dataset, a model or an option): the message says which."""


def split_target(spec: str, what: str = "TARGET") -> tuple[Path, str]:
    path, sep, name = str(spec).rpartition(":")
    if not sep or not path or not name:
        raise ProfileError(f"{what} must look like path/to/file.py:name, got {spec!r}")
    if not name.isidentifier():
        raise ProfileError(f"{what}: {name!r} is not a Python name (in {spec!r})")
    return Path(path), name


def import_file(path: Path, what: str = "TARGET") -> ModuleType:
    if not path.is_file():
        raise ProfileError(f"{what}: no such file: {path}")
    path = path.resolve()
    name = path.stem if path.stem.isidentifier() else "seqkit_profile_target"
    existing = sys.modules.get(name)
    if existing is not None:
        if os.path.realpath(getattr(existing, "__file__", "") or "") == str(path):
            return existing
        name = f"seqkit_profile_{name}"  # another module owns the name: workers cannot import this one
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ProfileError(f"{what}: cannot import {path} as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        sys.modules.pop(name, None)
        raise ProfileError(f"{what}: importing {path} raised {type(error).__name__}: {error}") from error
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def resolve(spec: str, what: str = "TARGET"):
    """The object `spec` names; a zero-argument callable is called and its result returned."""
    path, name = split_target(spec, what)
    module = import_file(path, what)
    if not hasattr(module, name):
        public = sorted(n for n in vars(module) if not n.startswith("_"))
        shown = ", ".join(public[:12]) + (", ..." if len(public) > 12 else "")
        raise ProfileError(f"{what}: {path} defines no {name!r} (it defines: {shown or 'nothing public'})")
    value = getattr(module, name)
    if inspect.isclass(value):
        raise ProfileError(f"{what}: {name} is a class; name an instance, or a function that builds one")
    if callable(value) and not is_dataset(value) and not is_model(value):
        try:
            inspect.signature(value).bind()
        except TypeError:
            raise ProfileError(f"{what}: {name}() needs arguments; name a zero-argument function") from None
        except ValueError:
            pass  # no signature to check (a builtin): just call it
        try:
            value = value()
        except Exception as error:
            raise ProfileError(f"{what}: {name}() raised {type(error).__name__}: {error}") from error
    return value


def is_dataset(obj) -> bool:
    return hasattr(type(obj), "__getitem__") and (hasattr(type(obj), "__len__") or hasattr(obj, "num_batches"))


def is_model(obj) -> bool:
    return hasattr(obj, "train_on_batch") and hasattr(obj, "fit")


def load_target(spec: str, model_spec: str | None = None):
    """(dataset, model or None) for `FILE.py:NAME` (a dataset, or a callable returning one or
    `(dataset, model)`) and an optional `--model FILE.py:NAME`."""
    value = resolve(spec, "TARGET")
    model = None
    if isinstance(value, (tuple, list)) and len(value) == 2 and is_dataset(value[0]) and is_model(value[1]):
        value, model = value
    if not is_dataset(value):
        raise ProfileError(
            f"TARGET: {spec} gave a {type(value).__name__}, not a dataset (an object with __getitem__ and "
            "__len__, such as a keras.utils.PyDataset) nor a (dataset, model) pair"
        )
    if model_spec is not None:
        model = resolve(model_spec, "--model")
        if not is_model(model):
            raise ProfileError(f"--model: {model_spec} gave a {type(model).__name__}, not a Keras model")
    return value, model
