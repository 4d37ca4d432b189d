"""Files that readers written in C open, made visible to pack_samples' "open" audit hook.

Python's `open` (and everything built on it: np.load, PIL, pandas) raises an "open" audit event, which
samples_load records while a loader runs. OpenCV, h5py, libsndfile and libtiff open files in C, out of
its sight: a cache of their samples would not know which files to watch. Their entry points are
wrapped here to raise the same event with the path they were given, then do exactly what they did.

The wrapping is done in place and once per process: a function attribute of the module is replaced by
a wrapper, a class keeps its identity and only its `__init__` is wrapped (isinstance checks and
subclasses are unaffected). Only modules already imported are touched; `watch()` runs again at every
recording, so a module a loader imports later is picked up then. Outside a recording the event is
ignored, at the cost of one `sys.audit` call.
"""

from __future__ import annotations

import functools
import os
import sys
import threading

# module -> (attribute, name of the path argument when given by keyword); the path is else the first
# positional argument. Classes are listed like functions: their __init__ gets the wrapper.
C_READERS: dict[str, tuple[tuple[str, str], ...]] = {
    "cv2": (("imread", "filename"), ("imreadmulti", "filename"), ("VideoCapture", "filename")),
    "h5py": (("File", "name"),),
    "soundfile": (("read", "file"), ("SoundFile", "file"), ("info", "file"), ("blocks", "file")),
    "tifffile": (("imread", "files"), ("TiffFile", "arg")),
    "netCDF4": (("Dataset", "filename"),),
}

_done: set[tuple[str, str]] = set()
_lock = threading.Lock()


def watch() -> None:
    """Wrap the readers of every listed module that is imported by now (each once)."""
    for module_name, readers in C_READERS.items():
        module = sys.modules.get(module_name)
        if module is None:
            continue
        for attribute, keyword in readers:
            if (module_name, attribute) in _done:
                continue
            with _lock:
                if (module_name, attribute) in _done:
                    continue
                _done.add((module_name, attribute))
                target = getattr(module, attribute, None)
                if isinstance(target, type):
                    init = target.__init__
                    if isinstance(init, type(object.__init__)):  # a C slot wrapper: nothing to wrap
                        continue
                    target.__init__ = _announcing(init, keyword, skip_self=True)
                elif callable(target):
                    setattr(module, attribute, _announcing(target, keyword, skip_self=False))


def _announcing(function, keyword: str, skip_self: bool):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        positional = args[1:] if skip_self else args
        path = positional[0] if positional else kwargs.get(keyword)
        if isinstance(path, (str, bytes, os.PathLike)):
            try:
                sys.audit("open", os.fspath(path), "r", 0)
            except Exception:  # an audit hook of someone else's refusing: let the reader decide
                pass
        return function(*args, **kwargs)

    wrapper.__seqkit_announces__ = True
    return wrapper
