"""Files that stress seqlint's analysis by their size alone, for bench_seqlint's growth check and
tests/seqlint/test_linear_time.py (issue 13 §4: each of these took over 120 s at full size).

Both grow without growing anything else: `chain(n)` is one `return` with an n-term expression in
`__getitem__` (where every rule looks), `classes(n)` is n small generator classes (20 lines each,
so 2,000 make the issue's 42k-line file) with findings for most rules and a fix for several.
"""

from __future__ import annotations

CHAIN_HEAD = '''\
import numpy as np
from tensorflow import keras


class Gen(keras.utils.PyDataset):
    def __init__(self, x):
        self.x = x

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
'''

CLASS = '''
class Gen{k}(keras.utils.Sequence):
    def __init__(self, x, y, batch_size=32):
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.indexes = np.arange(len(x))

    def __len__(self):
        return len(self.x) // self.batch_size

    def __getitem__(self, i):
        idx = self.indexes[i * self.batch_size:(i + 1) * self.batch_size]
        batch = self.x[idx] / 255.0
        for j in range(len(batch)):
            batch[j] = batch[j] - batch[j].mean()
        noise = np.random.normal(0, 0.1, batch.shape)
        return batch + noise, self.y[idx]  # noqa: SEQ302

    def on_epoch_end(self):
        np.random.shuffle(self.indexes)
'''


def chain(n: int) -> str:
    """The issue's `x + 1 + 1 ...` with n terms, returned by `__getitem__`."""
    return CHAIN_HEAD + "        return self.x[i] / 255.0" + " + 1" * n + "\n"


def classes(n: int) -> str:
    """n generator classes in one module."""
    return "import numpy as np\nfrom tensorflow import keras\n" + "".join(CLASS.format(k=k) for k in range(n))


SHAPES = {"chain": chain, "classes": classes}
