"""seqkit: fast Keras data pipelines: preprocess once, read memory-mapped, work in processes.

Names are imported on first use so that `seqkit pack` and `preprocess_once` do not pay for Keras.
No submodule may be named like an exported name: importing `seqkit.pack` (a module) would replace the
function `seqkit.pack` on the package, so the module is `seqkit.packing` (tests check every name).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "preprocess_once": "seqkit.preprocess",
    "PreprocessedSequence": "seqkit.preprocess",
    "MemmapSequence": "seqkit.memmap",
    "pack": "seqkit.packing",
    "ImageFolder": "seqkit.packing",
    "Chunks": "seqkit.packing",
    "ShardedArray": "seqkit.sharded",
    "open_array": "seqkit.sharded",
    "pack_samples": "seqkit.samples",
    "MultiprocessSequence": "seqkit.multiprocess",
    "WorkerError": "seqkit.multiprocess",
    "current_rng": "seqkit.worker",
    "profile": "seqkit.profiling.runner",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'seqkit' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
