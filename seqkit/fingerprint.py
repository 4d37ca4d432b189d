"""Fingerprints that decide whether a preprocessing cache may be reused.

Data: shape, dtype and a hash of every byte (sha256 runs at hardware speed; chunks are hashed on two
threads, since hashlib releases the GIL). Function: its bytecode, constants, names, the values its
closure captured and the plain-value globals it reads, recursing into nested functions and helper
functions it calls, so editing the function, a captured threshold or a module constant rebuilds.
"""

from __future__ import annotations

import functools
import hashlib
import pickle
import types
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

_HASH_CHUNK = 32 << 20
_PLAIN = (int, float, complex, str, bytes, bool, type(None))


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
    h = hashlib.sha256()
    _feed(h, fn, set(), depth=0)
    return h.hexdigest()


def _feed(h, obj: Any, seen: set, depth: int) -> None:
    """Feed a description of `obj` into `h`; `seen` stops recursion through mutually calling helpers."""
    if depth > 20:
        return
    if isinstance(obj, _PLAIN):
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
    elif isinstance(obj, np.ndarray):
        h.update(f"ndarray:{array_digest(obj)};".encode())
    elif isinstance(obj, np.generic):
        h.update(f"np:{obj.dtype.str}:{obj!r};".encode())
    elif isinstance(obj, (tuple, list, frozenset, set)):
        items = sorted(obj, key=repr) if isinstance(obj, (set, frozenset)) else obj
        h.update(f"{type(obj).__name__}[".encode())
        for item in items:
            _feed(h, item, seen, depth + 1)
        h.update(b"]")
    elif isinstance(obj, dict):
        h.update(b"dict{")
        for key, value in obj.items():
            _feed(h, key, seen, depth + 1)
            _feed(h, value, seen, depth + 1)
        h.update(b"}")
    elif isinstance(obj, types.CodeType):
        _feed_code(h, obj, seen, depth)
    elif isinstance(obj, functools.partial):
        h.update(b"partial(")
        _feed(h, obj.func, seen, depth + 1)
        _feed(h, obj.args, seen, depth + 1)
        _feed(h, obj.keywords, seen, depth + 1)
        h.update(b")")
    elif isinstance(obj, types.MethodType):
        _feed(h, obj.__func__, seen, depth + 1)
        _feed_object(h, obj.__self__, seen, depth + 1)
    elif isinstance(obj, types.FunctionType):
        _feed_function(h, obj, seen, depth)
    elif isinstance(obj, types.ModuleType):
        h.update(f"module:{obj.__name__};".encode())
    elif isinstance(obj, (types.BuiltinFunctionType, np.ufunc, type)):
        h.update(f"named:{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', getattr(obj, '__name__', repr(obj)))};".encode())
    else:
        _feed_object(h, obj, seen, depth + 1)


def _feed_function(h, fn: types.FunctionType, seen: set, depth: int) -> None:
    key = id(fn)
    h.update(f"function:{fn.__module__}.{fn.__qualname__};".encode())
    if key in seen:
        return
    seen.add(key)
    _feed_code(h, fn.__code__, seen, depth + 1)
    _feed(h, fn.__defaults__, seen, depth + 1)
    _feed(h, fn.__kwdefaults__, seen, depth + 1)
    for cell in fn.__closure__ or ():
        try:
            _feed(h, cell.cell_contents, seen, depth + 1)
        except ValueError:  # an empty cell (a name assigned after the function was defined)
            h.update(b"empty-cell;")
    for name in _global_names(fn.__code__):
        if name in fn.__globals__:
            value = fn.__globals__[name]
            if isinstance(value, types.ModuleType):
                continue  # a module's identity is its name, already in the bytecode's names
            h.update(f"global:{name}=".encode())
            _feed(h, value, seen, depth + 1)


def _global_names(code: types.CodeType) -> list[str]:
    names = list(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names += _global_names(const)
    return sorted(set(names))


def _feed_code(h, code: types.CodeType, seen: set, depth: int) -> None:
    h.update(b"code:")
    h.update(code.co_code)
    h.update(repr((code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars)).encode())
    for const in code.co_consts:
        _feed(h, const, seen, depth + 1)


def _feed_object(h, obj: Any, seen: set, depth: int) -> None:
    """Callable objects and other values: their class (and its __call__) plus their state."""
    cls = type(obj)
    h.update(f"object:{cls.__module__}.{cls.__qualname__};".encode())
    call = getattr(cls, "__call__", None)
    if isinstance(call, types.FunctionType):
        _feed_function(h, call, seen, depth + 1)
    state = getattr(obj, "__dict__", None)
    if state is not None:
        _feed(h, state, seen, depth + 1)
        return
    try:
        h.update(hashlib.sha256(pickle.dumps(obj, protocol=4)).digest())
    except Exception:
        h.update(repr(obj).encode())
