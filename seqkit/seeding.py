"""Where randomness comes from: one stream per (seed, epoch) for shuffling and per (seed, epoch, index)
for a batch, so results depend neither on the number of workers nor on which worker ran a batch.
"""

from __future__ import annotations

import numpy as np


def _entropy(seed: int | None) -> int:
    # No seed means "different every run", as with Keras; one draw from the OS fixes it for the object.
    if seed is None:
        return int(np.random.SeedSequence().entropy)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    return int(seed)


def resolve_seed(seed: int | None) -> int:
    """The seed an object keeps for its lifetime (a fresh one when the user gave None)."""
    return _entropy(seed)


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The generator that orders the samples of one epoch."""
    return np.random.default_rng(np.random.SeedSequence([seed, 0, epoch]))


def batch_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator for the random work of one batch (augmentation), independent of any other batch's."""
    return np.random.default_rng(np.random.SeedSequence([seed, 1, epoch, index]))
