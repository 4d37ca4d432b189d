"""seqkit.profile: is my generator the bottleneck, which line costs the time, what would fixing it buy?

`seqkit.profile(dataset, model=None, ...)` returns a ProfileReport; `seqkit profile FILE.py:NAME` is the
same from the shell. The passes are described in seqkit.profiling.runner, line timing in
seqkit.profiling.lines, the JSON output in schema.json beside this file.

Names are imported on first use: seqkit.profiling.lines must import with the standard library alone.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "profile": "seqkit.profiling.runner",
    "DatasetError": "seqkit.profiling.runner",
    "ModelError": "seqkit.profiling.runner",
    "ProfileReport": "seqkit.profiling.report",
    "ProfileError": "seqkit.profiling.target",
    "load_target": "seqkit.profiling.target",
    "validate": "seqkit.profiling.schema",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'seqkit.profiling' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
