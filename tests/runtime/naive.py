"""The generators users write (and seqlint flags): preprocessing per batch, a Python loop over the rows.

The seqkit classes are checked against these: unshuffled, they must yield exactly the same batches.
"""

from __future__ import annotations

import math

import keras
import numpy as np


def scale_rows(batch: np.ndarray) -> np.ndarray:
    """Row-wise preprocessing: each sample standardised with its own statistics, then clipped."""
    batch = batch.astype(np.float32)
    centred = batch - batch.mean(axis=tuple(range(1, batch.ndim)), keepdims=True)
    return np.clip(centred / 64.0, -1.5, 1.5)


class NaiveGenerator(keras.utils.PyDataset):
    def __init__(self, x, y, batch_size, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index):
        rows = self.x[index * self.batch_size : (index + 1) * self.batch_size]
        out = []
        for row in rows:  # the per-row loop of the kind seqlint's SEQ102 flags
            out.append(scale_rows(row[None])[0])
        return np.stack(out), self.y[index * self.batch_size : (index + 1) * self.batch_size]
