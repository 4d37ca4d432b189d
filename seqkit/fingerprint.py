"""Fingerprints that decide whether a preprocessing cache may be reused.

Data: shape, dtype and a hash of every byte (sha256 runs at hardware speed; chunks are hashed on two
threads, since hashlib releases the GIL).

Functions: everything the function can reach that decides its result, transitively: its bytecode and
constants, default arguments, the values its closure captured, the globals it reads, and through them
the helper functions it calls, the classes it uses (their methods and class attributes, e.g. `Norm.k`),
and the attributes it reads from modules of the project (`import m; m.f(x)`, `m.CONST`). Code of
installed libraries (the standard library, site-packages) is identified by name and the library's
version rather than walked. Objects are identified by their class and state.

A bound method (`self._helper`, as seqlint's fixes write inside a Sequence) is identified by its
function and only the attributes of `self` that it, and the methods it calls on `self`, read: not by
all of `self`, which in a Sequence holds the dataset arrays and index arrays reshuffled every epoch.
Reads the bytecode does not show (`getattr(self, name)`, `self` handed to another function, `vars(self)`)
make the fingerprint fall back to all of `self`, with a `FingerprintWarning` saying where.

What cannot be fingerprinted (an object with no visible state that cannot be pickled, such as a lock
or an open file) raises `FingerprintError` naming it and how it was reached: caching without it could
serve a stale result.
"""

from __future__ import annotations

import dis
import functools
import hashlib
import importlib.metadata
import inspect
import os
import pickle
import site
import sys
import sysconfig
import types
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_HASH_CHUNK = 32 << 20
_PLAIN = (int, float, complex, str, bytes, bool, type(None), range, slice, type(Ellipsis))
_MAX_OBJECTS = 200_000  # a walk this large means the function reaches a whole framework's state
_GLOBAL_LOADS = {"LOAD_GLOBAL", "LOAD_NAME", "LOAD_FROM_DICT_OR_GLOBALS"}
_ATTR_LOADS = {"LOAD_ATTR", "LOAD_METHOD"}
_CLASS_NOISE = {"__dict__", "__weakref__", "__module__", "__qualname__", "__doc__", "__slotnames__", "__annotations__"}
_MISSING = object()


class FingerprintError(TypeError):
    """Something the function reaches has no state that can be fingerprinted; caching is refused."""


class FingerprintWarning(UserWarning):
    """A bound method's reads of `self` are not all visible; all of `self` was fingerprinted instead."""


def array_digest(array: np.ndarray) -> str:
    """Hash of an array's meaning: shape, dtype and contents in C order."""
    header = f"{array.shape}|{array.dtype.str}|".encode()
    flat = array.reshape(-1) if array.flags.c_contiguous else None
    rows = max(1, _HASH_CHUNK // max(1, array.itemsize * (array.size // max(1, len(array)) if array.ndim else 1)))

    def chunk_digest(start: int) -> bytes:
        if flat is not None:
            step = max(1, _HASH_CHUNK // array.itemsize)
            piece = flat[start * step : (start + 1) * step]
        else:
            piece = np.ascontiguousarray(array[start * rows : (start + 1) * rows])
        return hashlib.sha256(memoryview(piece).cast("B")).digest()

    if flat is not None:
        count = max(1, -(-flat.size // max(1, _HASH_CHUNK // array.itemsize)))
    else:
        count = max(1, -(-len(array) // rows))
    if count == 1:
        digests = [chunk_digest(0)]
    else:
        with ThreadPoolExecutor(2) as pool:
            digests = list(pool.map(chunk_digest, range(count)))
    return hashlib.sha256(header + b"".join(digests)).hexdigest()


def function_digest(fn: Any) -> str:
    """The fingerprint of `fn` and everything it reaches (see the module docstring).

    Raises FingerprintError for what cannot be fingerprinted; warns FingerprintWarning where a bound
    method's reads of `self` are not visible and all of `self` is used instead.
    """
    walker = _Walker(_name_of(fn))
    try:
        walker.feed(fn)
    except RecursionError:
        raise FingerprintError(f"cannot fingerprint {walker.root}: what it reaches is nested too deeply") from None
    return walker.h.hexdigest()


# -- what code reads -----------------------------------------------------------------------------


@dataclass
class _Usage:
    """How code uses one name: the attribute chains read from it (`m.f` -> ("f",)), and whether the
    object itself is used otherwise (passed on, called, returned)."""

    chains: set = field(default_factory=set)
    whole: bool = False


def _code_objects(code: types.CodeType):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


@functools.lru_cache(maxsize=4096)
def _instructions(code: types.CodeType) -> tuple:
    return tuple(dis.get_instructions(code))


@functools.lru_cache(maxsize=4096)
def _name_usage(code: types.CodeType) -> tuple[dict, dict]:
    """(globals, closure variables) read by `code` and the code nested in it, with their usage."""
    globals_: dict[str, _Usage] = {}
    cells: dict[str, _Usage] = {}
    for inner in _code_objects(code):
        instrs = _instructions(inner)
        for i, ins in enumerate(instrs):
            if ins.opname in _GLOBAL_LOADS:
                table = globals_
            elif ins.opname in ("LOAD_DEREF", "LOAD_CLASSDEREF"):
                table = cells
            else:
                continue
            chain = []
            j = i + 1
            while j < len(instrs) and instrs[j].opname in _ATTR_LOADS:
                chain.append(instrs[j].argval)
                j += 1
            usage = table.setdefault(ins.argval, _Usage())
            if chain:
                usage.chains.add(tuple(chain))
            else:
                usage.whole = True
    return globals_, cells


def _self_name(code: types.CodeType) -> str | None:
    return code.co_varnames[0] if code.co_argcount + code.co_posonlyargcount > 0 else None


def _line(ins) -> Any:
    positions = getattr(ins, "positions", None)
    return positions.lineno if positions is not None and positions.lineno else getattr(ins, "starts_line", None) or "?"


def _receiver_loads(code: types.CodeType, name: str, qualname: str) -> tuple[set, set, list]:
    """Attributes read from the local `name` (a method's `self`) in `code` and the code nested in it:
    (attribute names, names looked up through zero-argument `super()`, escapes). An escape is a use
    of `name` other than reading or writing one of its attributes: what is read then is not visible."""
    attrs: set[str] = set()
    supers: set[str] = set()
    escapes: list[str] = []
    for inner in _code_objects(code):
        if inner is not code and name not in inner.co_freevars:
            continue
        instrs = _instructions(inner)
        for i, ins in enumerate(instrs):
            op = ins.opname
            where = f"{qualname} line {_line(ins)}"
            if op in _GLOBAL_LOADS and ins.argval == "super" and "__class__" in inner.co_freevars:
                attr = _zero_arg_super_attr(instrs, i)
                if attr is not None:
                    supers.add(attr)
                elif not (i + 1 < len(instrs) and instrs[i + 1].opname == "LOAD_DEREF"):  # 3.12+: self is loaded next
                    escapes.append(f"{where}: super() is used other than as super().name")
                continue
            loaded = ins.argval if isinstance(ins.argval, tuple) else (ins.argval,)
            if name not in loaded or op in ("LOAD_CLOSURE", "MAKE_CELL", "COPY_FREE_VARS"):
                continue  # (a closure over self: its code is walked as nested code)
            if op in ("STORE_FAST", "STORE_DEREF", "DELETE_FAST", "DELETE_DEREF") or op.startswith("STORE_FAST_"):
                escapes.append(f"{where}: `{name}` is reassigned")
                continue
            if not (op.startswith("LOAD_FAST") or op in ("LOAD_DEREF", "LOAD_CLASSDEREF")):
                continue
            nxt = instrs[i + 1] if i + 1 < len(instrs) else None
            if loaded[-1] != name or loaded.count(name) > 1 or nxt is None:
                escapes.append(f"{where}: `{name}` is used other than by reading its attributes")
            elif nxt.opname in _ATTR_LOADS:
                attrs.add(nxt.argval)
            elif nxt.opname == "LOAD_SUPER_ATTR":
                supers.add(nxt.argval)
            elif nxt.opname in ("STORE_ATTR", "DELETE_ATTR"):
                pass  # a write: what the result depends on is what is read
            elif any(_is_global(instrs[k], "getattr") for k in (i - 1, i - 2) if k >= 0):
                escapes.append(f"{where}: getattr({name}, ...) reads an attribute whose name is known only at run time")
            else:
                escapes.append(f"{where}: `{name}` is passed on or used as a value, so what is read from it is not visible")
    if "__dict__" in attrs:
        escapes.append(f"{qualname}: reads {name}.__dict__")
    return attrs, supers, escapes


def _is_global(ins, name: str) -> bool:
    return ins.opname in _GLOBAL_LOADS and ins.argval == name


def _zero_arg_super_attr(instrs: tuple, i: int) -> str | None:
    """For `super().name` compiled as LOAD_GLOBAL super, (PRECALL 0,) CALL 0, LOAD_ATTR name: the name."""
    j = i + 1
    while j < len(instrs) and instrs[j].opname in ("PRECALL", "CALL", "PUSH_NULL") and (instrs[j].arg or 0) == 0:
        j += 1
    if j < len(instrs) and j > i + 1 and instrs[j].opname in _ATTR_LOADS:
        return instrs[j].argval
    return None


def receiver_reads(method: types.FunctionType, cls: type) -> tuple[set, list, list]:
    """What `method` of class `cls` reads from `self`, directly or through the methods and properties
    it reaches on `self` (transitively): (attribute names, functions reached through super(), escapes
    that hide further reads)."""
    reads: set[str] = set()
    via_super: list = []
    escapes: list[str] = []
    todo: list = [method]
    done: set[int] = set()
    while todo:
        fn = todo.pop()
        if id(fn) in done or not isinstance(fn, types.FunctionType):
            continue
        done.add(id(fn))
        name = _self_name(fn.__code__)
        if name is None:
            escapes.append(f"{fn.__qualname__} takes no `self`")
            continue
        attrs, supers, found = _receiver_loads(fn.__code__, name, fn.__qualname__)
        escapes += found
        for attr in sorted(attrs):
            reads.add(attr)
            todo += _functions_of(inspect.getattr_static(cls, attr, None))
        for attr in sorted(supers):
            target = _super_lookup(cls, _closure_value(fn, "__class__"), attr)
            if target is _MISSING:
                escapes.append(f"{fn.__qualname__}: super().{attr} could not be resolved")
                continue
            via_super.append(target)
            todo += _functions_of(target)
    dynamic = inspect.getattr_static(cls, "__getattr__", None)
    if dynamic is not None:
        missing = sorted(a for a in reads if inspect.getattr_static(cls, a, _MISSING) is _MISSING)
        if missing:
            escapes.append(f"{cls.__qualname__} defines __getattr__, which may compute {', '.join(missing)}")
    return reads, via_super, escapes


def _functions_of(attr: Any) -> list:
    """The functions that run with `self` when an attribute is read: a method, or a property's getter."""
    if isinstance(attr, types.FunctionType):
        return [attr]
    if isinstance(attr, property):
        return [f for f in (attr.fget,) if isinstance(f, types.FunctionType)]
    return []


def _closure_value(fn: types.FunctionType, name: str) -> Any:
    try:
        return fn.__closure__[fn.__code__.co_freevars.index(name)].cell_contents
    except (ValueError, TypeError, IndexError):
        return None


def _super_lookup(cls: type, defining: Any, attr: str) -> Any:
    if not isinstance(defining, type) or defining not in cls.__mro__:
        return _MISSING
    mro = cls.__mro__
    for base in mro[mro.index(defining) + 1 :]:
        if attr in vars(base):
            return vars(base)[attr]
    return _MISSING


# -- library or project? -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _library_roots() -> tuple[str, ...]:
    paths = set()
    for scheme_vars in ({}, {"base": sys.base_prefix, "platbase": sys.base_exec_prefix}):
        found = sysconfig.get_paths(vars=scheme_vars or None)
        for key in ("stdlib", "platstdlib", "purelib", "platlib"):
            if found.get(key):
                paths.add(found[key])
    try:
        paths.update(site.getsitepackages())
        paths.add(site.getusersitepackages())
    except AttributeError:  # some embedded interpreters lack these
        pass
    return tuple(os.path.join(os.path.realpath(p), "") for p in paths)


@functools.lru_cache(maxsize=None)
def library_version(module_name: str | None) -> str | None:
    """`"numpy==2.1.0"` if `module_name` belongs to an installed library or the standard library (its
    code is identified by name and version, not walked); None for the project's own code."""
    if not module_name:
        return None
    module = sys.modules.get(module_name)
    if module is None:
        return None
    file = getattr(module, "__file__", None)
    top = module_name.partition(".")[0]
    if file is None:
        if top in sys.builtin_module_names:
            return f"python=={sys.version.split()[0]}"  # built into the interpreter
        return None  # a notebook's __main__, code run with exec, a namespace package: the user's code
    if not os.path.realpath(file).startswith(_library_roots()):
        return None
    if top in getattr(sys, "stdlib_module_names", ()):
        return f"python=={sys.version.split()[0]}"
    version = getattr(sys.modules.get(top), "__version__", None)
    if not isinstance(version, str):
        try:
            names = importlib.metadata.packages_distributions().get(top) or [top]
            version = importlib.metadata.version(names[0])
        except Exception:
            version = "unknown"
    return f"{top}=={version}"


def _caller_stacklevel() -> int:
    """The stacklevel of the first frame outside seqkit, so that a warning points at the user's call."""
    here = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == here:
        frame, level = frame.f_back, level + 1
    return level


def _is_library_function(fn: Any) -> bool:
    return library_version(getattr(fn, "__module__", None)) is not None


def _project_class(cls: type) -> bool:
    """Whether `cls` is the project's own (walked) rather than a library's or a C extension's (named)."""
    module = getattr(cls, "__module__", None)
    if module == "builtins" or module not in sys.modules:
        return False  # builtins, and extension types whose module is not importable by that name
    return library_version(module) is None


def _qualified(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', getattr(obj, '__name__', type(obj).__name__))}"


def _name_of(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or getattr(getattr(fn, "func", None), "__qualname__", None) or type(fn).__qualname__


# -- the walk ------------------------------------------------------------------------------------------


class _Walker:
    """Feeds a description of everything reachable into one hash, each object once (later visits are
    back-references, which also ends cycles); `path` says how the current object was reached."""

    def __init__(self, root: str):
        self.root = root
        self.h = hashlib.sha256()
        self.seen: dict[int, int] = {}
        self.alive: list = []  # keeps walked objects alive, so that ids stay unique during the walk
        self.path: list[str] = [root]

    def put(self, text: str) -> None:
        self.h.update(text.encode())
        self.h.update(b";")

    def feed(self, obj: Any, label: str | None = None) -> None:
        if label is not None:
            self.path.append(label)
        try:
            self._feed(obj)
        finally:
            if label is not None:
                self.path.pop()

    def _first_visit(self, obj: Any) -> bool:
        key = id(obj)
        if key in self.seen:
            self.put(f"ref:{self.seen[key]}")
            return False
        if len(self.seen) >= _MAX_OBJECTS:
            self._refuse(obj, f"it reaches more than {_MAX_OBJECTS} objects (a whole framework's state?)")
        self.seen[key] = len(self.seen)
        self.alive.append(obj)
        return True

    def _refuse(self, obj: Any, reason: str) -> None:
        raise FingerprintError(
            f"cannot fingerprint {type(obj).__module__}.{type(obj).__qualname__} object reached from "
            f"{' -> '.join(self.path)}: {reason}"
        )

    def _feed(self, obj: Any) -> None:
        if isinstance(obj, _PLAIN):
            self.put(f"{type(obj).__name__}:{obj!r}")
        elif isinstance(obj, np.ndarray):
            self.put(f"ndarray:{array_digest(obj)}")
        elif isinstance(obj, np.generic):
            self.put(f"np:{obj.dtype.str}:{obj!r}")
        elif isinstance(obj, np.dtype):
            self.put(f"dtype:{obj.str}:{obj.descr!r}")
        elif isinstance(obj, (tuple, list, frozenset, set, dict)):
            self._feed_container(obj)
        elif isinstance(obj, types.CodeType):
            self._feed_code(obj)
        elif isinstance(obj, functools.partial):
            if self._first_visit(obj):
                self.put("partial")
                self.feed(obj.func, "partial.func")
                self.feed(obj.args, "partial.args")
                self.feed(obj.keywords, "partial.keywords")
        elif isinstance(obj, types.MethodType):
            if self._first_visit(obj):
                self._feed_method(obj)
        elif isinstance(obj, types.FunctionType):
            self._feed_function(obj)
        elif isinstance(obj, types.ModuleType):
            self._feed_module(obj)
        elif isinstance(obj, (types.BuiltinFunctionType, types.MethodWrapperType, types.WrapperDescriptorType, types.MethodDescriptorType, types.ClassMethodDescriptorType, np.ufunc)):
            self.put(f"builtin:{_qualified(obj)}")
            owner = getattr(obj, "__self__", None)
            if owner is not None and not isinstance(owner, (types.ModuleType, type)):
                self.feed(owner, "__self__")  # a builtin method bound to an object: rng.normal reads the rng
        elif isinstance(obj, type):
            self._feed_class(obj)
        elif isinstance(obj, (staticmethod, classmethod)):
            self.put(type(obj).__name__)
            self.feed(obj.__func__)
        elif isinstance(obj, (types.GetSetDescriptorType, types.MemberDescriptorType)):
            self.put(f"descriptor:{_qualified(obj)}")  # a C-level attribute slot: part of its class
        elif isinstance(obj, property):
            self.put("property")
            for part in (obj.fget, obj.fset, obj.fdel):
                self.feed(part)
        else:
            self._feed_object(obj)

    def _feed_container(self, obj: Any) -> None:
        if not self._first_visit(obj):
            return
        self.put(f"{type(obj).__name__}[{len(obj)}")
        if isinstance(obj, dict):
            for key, value in obj.items():
                self.feed(key)
                self.feed(value, f"[{key!r}]" if isinstance(key, (str, int)) else None)
        else:
            items = sorted(obj, key=repr) if isinstance(obj, (set, frozenset)) else obj
            for item in items:
                self.feed(item)
        self.put("]")

    def _feed_code(self, code: types.CodeType) -> None:
        self.put("code")
        self.h.update(code.co_code)
        self.put(repr((code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars)))
        for const in code.co_consts:
            self.feed(const)

    def _feed_function(self, fn: types.FunctionType) -> None:
        if not self._first_visit(fn):
            return
        library = library_version(fn.__module__)
        if library is not None:
            self.put(f"libfunction:{_qualified(fn)}@{library}")
            return
        self.put(f"function:{_qualified(fn)}")
        self._feed_code(fn.__code__)
        self.feed(fn.__defaults__, "defaults")
        self.feed(fn.__kwdefaults__, "keyword defaults")
        globals_, cells = _name_usage(fn.__code__)
        for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell (a name assigned after the function was defined)
                self.put(f"empty-cell:{name}")
                continue
            if name == "__class__":
                self.put(f"class-cell:{_qualified(value)}")  # zero-argument super(): the class is walked elsewhere
                continue
            self._feed_binding(f"closure {name!r}", value, cells.get(name, _Usage(whole=True)))
        builtins = fn.__globals__.get("__builtins__", {})
        builtins = vars(builtins) if isinstance(builtins, types.ModuleType) else builtins
        for name in sorted(globals_):
            if name in fn.__globals__:
                self.put(f"global:{name}")
                self._feed_binding(f"global {name!r}", fn.__globals__[name], globals_[name])
            elif name in builtins:
                self.put(f"builtin-name:{name}")
            else:
                self.put(f"undefined-global:{name}")

    def _feed_binding(self, label: str, value: Any, usage: _Usage) -> None:
        """A global or closure value: a project module through the attributes read from it."""
        self.path.append(label)
        try:
            if isinstance(value, types.ModuleType) and library_version(value.__name__) is None and not usage.whole:
                self.put(f"module:{value.__name__}")
                for chain in sorted(usage.chains):
                    self._feed_chain(value, chain)
            else:
                self._feed(value)
        finally:
            self.path.pop()

    def _feed_chain(self, module: types.ModuleType, chain: tuple) -> None:
        """`m.a.b`: through project modules to the first other value, which is fed whole."""
        value: Any = module
        for attr in chain:
            if not isinstance(value, types.ModuleType) or library_version(value.__name__) is not None:
                break
            self.put(f"attr:{attr}")
            value = vars(value).get(attr, _MISSING)
            if value is _MISSING:
                self.put("missing")  # resolved at call time (a module __getattr__), or an AttributeError
                return
        self.feed(value, "." + ".".join(chain))

    def _feed_module(self, module: types.ModuleType) -> None:
        if not self._first_visit(module):
            return
        library = library_version(module.__name__)
        if library is not None:
            self.put(f"libmodule:{module.__name__}@{library}")
            return
        # A project module used as a value (passed on, not just read from): all it defines.
        self.put(f"module:{module.__name__}")
        for name, value in sorted(vars(module).items()):
            if name.startswith("__") or isinstance(value, types.ModuleType):
                continue
            defined_here = getattr(value, "__module__", module.__name__) == module.__name__
            if isinstance(value, (types.FunctionType, type)) and not defined_here:
                self.put(f"imported:{name}={_qualified(value)}")
                continue
            self.put(f"member:{name}")
            self.feed(value, f"{module.__name__}.{name}")

    def _feed_class(self, cls: type) -> None:
        if not self._first_visit(cls):
            return
        if not _project_class(cls):
            self.put(f"libclass:{_qualified(cls)}@{library_version(cls.__module__) or 'builtin'}")
            return
        self.put(f"class:{_qualified(cls)}")
        for base in cls.__bases__:
            self.feed(base, f"base {base.__qualname__}")
        for name, value in sorted(vars(cls).items()):
            if name in _CLASS_NOISE:
                continue
            if name.startswith("__") and name.endswith("__") and not isinstance(value, (types.FunctionType, staticmethod, classmethod, property)):
                continue
            self.put(f"classattr:{name}")
            self.feed(value, f"{cls.__qualname__}.{name}")

    def _feed_method(self, method: types.MethodType) -> None:
        fn, receiver = method.__func__, method.__self__
        self.put("method")
        if isinstance(receiver, type):  # a classmethod bound to its class: the class is walked whole
            self.feed(fn, getattr(fn, "__qualname__", None))
            self.feed(receiver, "cls")
            return
        if not isinstance(fn, types.FunctionType) or _is_library_function(fn):
            # A library's (or compiled) method: what it reads is its own business; all of self counts.
            self.put(f"libmethod:{_qualified(fn)}@{library_version(getattr(fn, '__module__', None)) or 'compiled'}")
            self.feed(receiver, "self")
            return
        self.feed(fn, fn.__qualname__)
        cls = type(receiver)
        reads, via_super, escapes = receiver_reads(fn, cls)
        if escapes:
            warnings.warn(
                FingerprintWarning(
                    f"fingerprint of {fn.__qualname__}: {escapes[0]}"
                    + (f" (and {len(escapes) - 1} more)" if len(escapes) > 1 else "")
                    + f". Hashing every attribute of the {cls.__qualname__} instance instead: slower if it holds "
                    "large arrays, and a change to any of them rebuilds the cache."
                ),
                stacklevel=_caller_stacklevel(),
            )
            self.feed(receiver, "self")
            return
        self.put(f"receiver:{_qualified(cls)}")
        for target in via_super:
            self.feed(target, "super()")
        state = getattr(receiver, "__dict__", {})
        for attr in sorted(reads):
            self.put(f"reads:{attr}")
            if attr == "__class__":
                self.feed(cls, "self.__class__")
            elif attr in state:
                self.feed(state[attr], f"self.{attr}")
            else:
                static = inspect.getattr_static(receiver, attr, _MISSING)
                if static is _MISSING:
                    self.put("missing")
                elif type(static).__name__ in ("member_descriptor", "getset_descriptor"):
                    self.feed(getattr(receiver, attr, None), f"self.{attr}")  # a __slots__ value
                else:
                    self.feed(static, f"{cls.__qualname__}.{attr}")
                    if isinstance(static, classmethod):
                        self.feed(cls, f"{cls.__qualname__} (its classmethod {attr} reads the class)")

    def _feed_object(self, obj: Any) -> None:
        if not self._first_visit(obj):
            return
        cls = type(obj)
        self.feed(cls, None)
        wrapped = getattr(obj, "__wrapped__", None) if not isinstance(obj, type) else None
        if wrapped is not None:
            # A decorator's wrapper (functools.lru_cache, jax.jit...) pickles by name: the code is in here.
            self.feed(wrapped, "__wrapped__")
        if not _project_class(cls):
            # A library's object says what its state is through pickling (a Path pickles as its parts;
            # its __slots__ also hold caches filled lazily, which would make the fingerprint unstable).
            try:
                blob = pickle.dumps(obj, protocol=4)
            except Exception:
                pass
            else:
                self.put("pickle")
                self.h.update(hashlib.sha256(blob).digest())
                return
        state = getattr(obj, "__dict__", None)
        slots = [name for klass in cls.__mro__ for name in getattr(klass, "__slots__", ()) if isinstance(name, str)]
        if isinstance(state, dict):
            self.put("state")
            self.feed(state, None)
        if slots:
            self.put("slots")
            for name in slots:
                if name not in ("__dict__", "__weakref__"):
                    self.feed(getattr(obj, name, None), f".{name}")
        if isinstance(state, dict) or slots:
            return
        try:
            blob = pickle.dumps(obj, protocol=4)
        except Exception as exc:
            self._refuse(obj, f"it has no attributes to read and cannot be pickled ({exc.__class__.__name__}: {exc})")
        self.put("pickle")
        self.h.update(hashlib.sha256(blob).digest())
