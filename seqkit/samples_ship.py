"""How `pack_samples` sends the user's loader to worker processes without importing the user's script.

Pickle sends a function by reference ("module.name"), so a worker must import the module that defines
it. For the loaders `pack_samples` gets that is the wrong trade: a method of a Keras Sequence lives in a
module that imports Keras, so every worker would spend seconds importing TensorFlow to read a few
`.npy` files, and a loader written in a training script (`__main__`) cannot be imported at all without
running the script again. So the user's own code travels by value:

- a function of the user's project (any module that is not an installed library, nor seqkit): its
  bytecode (marshal: the workers run this very interpreter), defaults, closure values and the globals
  its code reads, recursively (helpers it calls travel the same way);
- a bound method of such a function: the function, plus a stand-in for `self` that carries only the
  attributes the method reads, directly or through the methods and properties it calls on `self`
  (found from the bytecode by `seqkit.fingerprint.receiver_reads`, the same reads its fingerprint
  covers). Not the dataset arrays and not the class, whose module imports Keras. When those reads are
  not all visible (`self` passed on, `getattr(self, name)`, `super()`), `self` is pickled whole;
- a module: by name, imported in the worker (numpy, PIL, cv2);
- anything else: ordinary pickle. Whatever would need the script itself (a class defined in
  `__main__`, or an instance of one) raises `NotShippable`: `pack_samples` then loads in threads.

Workers must also not run the script again. multiprocessing starts every spawn or forkserver child by
importing the parent's `__main__` again from its file (as `__mp_main__`): a script without an
`if __name__ == "__main__":` guard re-runs its training in every worker, and a guarded one still
imports everything it imports. A worker that gets its loader by value needs nothing from `__main__`,
so `MainHidden` puts a stand-in main module without a file in `sys.modules` for the moment the
workers are started (the only moment multiprocessing looks), and puts the real one back at once.
"""

from __future__ import annotations

import builtins
import dis
import functools
import importlib
import inspect
import io
import marshal
import pickle
import sys
import types
from dataclasses import dataclass
from typing import Any

__all__ = ["NotShippable", "Shipped", "ship", "MainHidden"]

_GLOBAL_OPS = {"LOAD_GLOBAL", "LOAD_NAME", "STORE_GLOBAL", "DELETE_GLOBAL", "LOAD_FROM_DICT_OR_GLOBALS"}
_MISSING = object()


class NotShippable(TypeError):
    """The loader (or a key) reaches something a worker process could get only by running the user's
    script again (a class defined in `__main__`), or something that cannot be pickled at all."""


@dataclass(frozen=True)
class Shipped:
    """A pickle made by `ship`: it unpickles, in the worker, into the object that was shipped."""

    blob: bytes
    # Top-level packages a worker imports to unpickle it (what the user's code uses by reference):
    # one of them may cost seconds to import (TensorFlow), which decides whether workers pay.
    imports: frozenset = frozenset()

    def __reduce__(self):
        return (_unship, (self.blob,))


def _unship(blob: bytes) -> Any:
    return pickle.loads(blob)


def ship(obj: Any) -> Shipped:
    """`obj` pickled with the user's code by value (see the module docstring); NotShippable says why not."""
    buffer = io.BytesIO()
    pickler = _Pickler(buffer)
    try:
        pickler.dump(obj)
    except NotShippable:
        raise
    except RecursionError:
        raise NotShippable("what the loader reaches is nested too deeply to pickle") from None
    except Exception as exc:  # pickle reports the unpicklable in many ways (PicklingError, TypeError...)
        raise NotShippable(f"it cannot be pickled ({type(exc).__name__}: {exc})") from None
    return Shipped(buffer.getvalue(), frozenset(pickler.imports))


def by_value(module_name: str | None) -> bool:
    """Whether code of `module_name` travels by value: the user's code, not a library's or seqkit's."""
    from seqkit.fingerprint import library_version  # (here: workers import this module, and need none of it)

    if module_name == "seqkit" or (module_name or "").startswith("seqkit."):
        return False
    return library_version(module_name) is None


class _Pickler(pickle.Pickler):
    def __init__(self, file):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.imports: set[str] = set()

    def _uses(self, module_name: str | None) -> None:
        if module_name:
            self.imports.add(module_name.split(".")[0])

    def reducer_override(self, obj: Any) -> Any:
        # (Not called for exact ints, strs, lists, dicts and the like: those pickle as they are.)
        if isinstance(obj, types.FunctionType):
            if by_value(obj.__module__):
                return _reduce_function(obj)
            self._uses(obj.__module__)
            return NotImplemented
        if isinstance(obj, types.MethodType):
            return _reduce_method(obj)
        if isinstance(obj, types.ModuleType):
            if obj.__name__ in ("__main__", "__mp_main__"):
                raise NotShippable("it uses the script's module (__main__) itself, which a worker would have to run again")
            self._uses(obj.__name__)
            return importlib.import_module, (obj.__name__,)
        if isinstance(obj, property):
            return property, (obj.fget, obj.fset, obj.fdel, obj.__doc__)
        if isinstance(obj, staticmethod):
            return staticmethod, (obj.__func__,)
        if isinstance(obj, type):
            if obj.__module__ in ("__main__", "__mp_main__"):
                raise NotShippable(f"it uses the class {obj.__qualname__}, defined in the script (__main__), which a worker would have to run again")
            self._uses(obj.__module__)
            return NotImplemented
        if isinstance(obj, types.BuiltinFunctionType):
            self._uses(getattr(obj, "__module__", None))
        if type(obj).__module__ in ("__main__", "__mp_main__"):
            raise NotShippable(
                f"it reaches an instance of {type(obj).__qualname__}, a class defined in the script (__main__), "
                "which a worker would have to run again to rebuild it"
            )
        return NotImplemented


# -- functions by value --------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _global_names(code: types.CodeType) -> tuple[str, ...]:
    """The global names `code` and the code nested in it (lambdas, comprehensions) use."""
    names: set[str] = set()
    todo = [code]
    while todo:
        current = todo.pop()
        names.update(ins.argval for ins in dis.get_instructions(current) if ins.opname in _GLOBAL_OPS)
        todo.extend(const for const in current.co_consts if isinstance(const, types.CodeType))
    return tuple(sorted(names))


class _EmptyCell:
    """Marks a closure cell that had no value yet (a name assigned after the function was made)."""


def _reduce_function(fn: types.FunctionType) -> tuple:
    """Rebuild `fn` from its bytecode in two steps, so that a function reaching itself (recursion, or
    a helper that calls back) finds the skeleton pickle has already memoised."""
    module_globals = fn.__globals__
    reads = {name: module_globals[name] for name in _global_names(fn.__code__) if name in module_globals}
    closure = []
    for cell in fn.__closure__ or ():
        try:
            closure.append(cell.cell_contents)
        except ValueError:
            closure.append(_EmptyCell())
    state = {
        "globals": reads,
        "defaults": fn.__defaults__,
        "kwdefaults": fn.__kwdefaults__,
        "closure": closure,
        "qualname": fn.__qualname__,
        "module": fn.__module__,
        "doc": fn.__doc__,
        "dict": dict(fn.__dict__),
    }
    skeleton_args = (marshal.dumps(fn.__code__), fn.__name__, len(closure), module_globals.get("__name__"))
    return (_function_skeleton, skeleton_args, state, None, None, _fill_function)


def _function_skeleton(code_bytes: bytes, name: str, cells: int, module_name: str | None) -> types.FunctionType:
    namespace = {"__builtins__": builtins, "__name__": module_name}
    closure = tuple(types.CellType() for _ in range(cells)) or None
    return types.FunctionType(marshal.loads(code_bytes), namespace, name, None, closure)


def _fill_function(fn: types.FunctionType, state: dict) -> None:
    fn.__globals__.update(state["globals"])
    fn.__defaults__ = state["defaults"]
    fn.__kwdefaults__ = state["kwdefaults"]
    for cell, value in zip(fn.__closure__ or (), state["closure"]):
        if not isinstance(value, _EmptyCell):
            cell.cell_contents = value
    fn.__qualname__ = state["qualname"]
    fn.__module__ = state["module"]
    fn.__doc__ = state["doc"]
    fn.__dict__.update(state["dict"])


# -- bound methods: the function and a stand-in for `self` ----------------------------------------


def _reduce_method(method: types.MethodType) -> Any:
    fn, receiver = method.__func__, method.__self__
    if not isinstance(fn, types.FunctionType) or not by_value(fn.__module__) or isinstance(receiver, type):
        return NotImplemented  # a library's method, or a classmethod: pickled as usual, by reference
    parts = _stand_in_parts(fn, receiver)
    if parts is None:
        return _bind, (fn, receiver)  # `self` whole: its class must be importable
    class_attrs, instance_attrs = parts
    cls = type(receiver)
    return _stand_in_method, (fn, cls.__name__, cls.__qualname__, cls.__module__, class_attrs, instance_attrs)


def _stand_in_parts(fn: types.FunctionType, receiver: Any) -> tuple[dict, dict] | None:
    """(class attributes, instance attributes) a stand-in for `receiver` needs for `fn`, or None if
    what `fn` reads from `self` is not all visible."""
    from seqkit.fingerprint import receiver_reads

    cls = type(receiver)
    reads, via_super, escapes = receiver_reads(fn, cls)
    if escapes or via_super or "__class__" in reads:
        return None
    state = getattr(receiver, "__dict__", {})
    class_attrs: dict[str, Any] = {}
    instance_attrs: dict[str, Any] = {}
    for attr in sorted(reads):
        if attr in state:
            instance_attrs[attr] = state[attr]
            continue
        static = inspect.getattr_static(receiver, attr, _MISSING)
        if static is _MISSING:
            continue  # an AttributeError in the worker too
        if isinstance(static, (types.MemberDescriptorType, types.GetSetDescriptorType)):
            if type(static).__name__ == "member_descriptor":  # a __slots__ value
                try:
                    instance_attrs[attr] = getattr(receiver, attr)
                except AttributeError:
                    pass
                continue
            return None  # a C-level attribute of the class: only the real class has it
        if isinstance(static, classmethod):
            return None  # it would read the stand-in class, which lacks the class's other attributes
        if isinstance(static, (types.FunctionType, staticmethod, property)) or not hasattr(type(static), "__get__"):
            class_attrs[attr] = static
            continue
        return None  # another kind of descriptor (cached_property, a library's): only the real class is faithful
    return class_attrs, instance_attrs


def _bind(fn, receiver) -> types.MethodType:
    return types.MethodType(fn, receiver)


def _stand_in_method(fn, name: str, qualname: str, module: str, class_attrs: dict, instance_attrs: dict) -> types.MethodType:
    namespace = {**class_attrs, "__module__": module, "__qualname__": qualname, "__doc__": f"stand-in for {qualname} in a worker"}
    stand_in = type(name, (), namespace)
    receiver = object.__new__(stand_in)
    receiver.__dict__.update(instance_attrs)
    return types.MethodType(fn, receiver)


# -- workers that do not run the script again ------------------------------------------------------


class MainHidden:
    """While active (until `restore()` or the end of the `with`), `sys.modules["__main__"]` is an empty
    stand-in: no `__file__`, no `__spec__`, so workers started meanwhile run nothing of the script.

    multiprocessing looks the main module up there once per worker, in `Process.start()`, to tell the
    child which script to import again before anything else. The script's own module object is left
    alone: its functions keep their globals (`__file__` included) while this process goes on loading
    samples during the workers' start. Active only while workers start; `restore` is idempotent.
    """

    def __init__(self):
        self.main: types.ModuleType | None = None
        self.stand_in: types.ModuleType | None = None

    def __enter__(self) -> "MainHidden":
        self.main = sys.modules.get("__main__")
        if self.main is not None:
            self.stand_in = types.ModuleType("__main__", "stand-in while seqkit starts worker processes")
            self.stand_in.__spec__ = None
            sys.modules["__main__"] = self.stand_in
        return self

    def restore(self) -> None:
        if self.stand_in is not None and sys.modules.get("__main__") is self.stand_in:
            sys.modules["__main__"] = self.main
        self.stand_in = None

    def __exit__(self, *exc) -> None:
        self.restore()
