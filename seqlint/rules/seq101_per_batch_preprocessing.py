"""SEQ101 per-batch-preprocessing: deterministic preprocessing of the dataset redone on every batch."""

from __future__ import annotations

import libcst as cst

from seqlint.analysis.hoisting import attribute_code, deletion_edits, init_line, statement_lines
from seqlint.analysis.hotpath import walk
from seqlint.analysis.regions import is_file, location
from seqlint.analysis.values import Op
from seqlint.findings import Applicability
from seqlint.fixes import ensure_import, indentation_of, insert, line_start, make_fix, source_lines
from seqlint.rules.base import Invalid, Rule

_MEMORY_HINT = "preprocess once: `seqkit.preprocess_once(fn, x)` in `__init__`, or `seqkit.PreprocessedSequence`"
_FILE_HINT = ("read and preprocess once: SEQ201's unsafe fix packs the read and these steps with "
              "`seqkit.pack_samples`; or `seqkit.pack(files, path, transform=fn)`, then `seqkit.MemmapSequence`")


class PerBatchPreprocessing(Rule):
    code = "SEQ101"
    name = "per-batch-preprocessing"
    summary = "deterministic preprocessing of the dataset is redone on every batch"
    fix_availability = "sometimes"
    docs = """
## What it does
Flags deterministic preprocessing in per-batch code (`__getitem__` and the methods and module
functions it calls): scaling and normalising (`x / 255.`, `(x - self.mean) / self.std`,
`(m - m.mean()) / m.std()`), element-wise NumPy transforms (`np.clip`, `np.log1p`), `astype`,
resizing and colour conversion (`cv2.resize`, `tf.image.resize`, `img.resize`), one-hot encoding
(`to_categorical`, `tf.one_hot`, `pd.get_dummies`, `np.eye(k)[y]`), tokenising (`tokenizer.texts_to_sequences`,
`self.tokenizer(texts)`), a fitted `self.scaler.transform(x)`, and helpers doing so. The rule follows
the data: values come from indexing a dataset attribute (`self.x[...]`, `self.df.iloc[...]`) or from
reading a file, through variables, loops, comprehensions, helper parameters and return values. One
finding per expression: the outermost preprocessing expression of a statement is reported.

Not flagged, on purpose:
- **random** work (anything fed by `np.random`, `random`, `tf.random`, an `rng`, or under a random
  `if`): caching augmentation would freeze it; SEQ301/SEQ305 cover it;
- index arithmetic (`idx * self.batch_size`, sizes from `len()`/`.shape`, anything inside `[...]`)
  and string building (paths).

**Policy with SEQ201** (file read per batch): both are reported, on their own lines. SEQ201 points at
the read (`cv2.imread`), SEQ101 at each preprocessing step of what was read (`cv2.resize`, `/ 255.`),
because the steps are cost of their own. For file data SEQ201's fix is the one that moves them: its
loader, packed once, carries the read and the deterministic steps after it.

## Why is this bad?
The result for a sample is the same in every epoch, yet it is recomputed for every batch of every
epoch, and in the worker that Keras waits on. Done once, the cost is paid once; training then only
slices ready arrays. Scaling alone also allocates a float copy of every batch.

## Example
```python
class Images(keras.utils.PyDataset):
    def __getitem__(self, idx):
        x = self.x[idx * self.bs:(idx + 1) * self.bs]
        return (x / 255.0 - self.mean) / self.std, self.y[idx * self.bs:(idx + 1) * self.bs]
```

## Use instead
```python
import seqkit

ds = seqkit.PreprocessedSequence(
    x, y, batch_size=32, preprocess=lambda x: (x / 255.0 - mean) / std
)
```
or compute `self.x = seqkit.preprocess_once(fn, x)` in `__init__` and only slice in `__getitem__`.

## Fix safety
For in-memory data the fix keeps the class as it is and computes the preprocessing once: `__init__`
ends with `self.x = seqkit.preprocess_once(f, self.x)`, and per-batch code reads the rows of the
result where it used to compute them. `f` is a lambda when the steps are one expression, the helper
itself when per-batch code only passes the rows to it, else a new method `_preprocess_x` holding the
statements that compute the steps, moved out of `__getitem__` (or the helper it calls) unchanged,
with the constants they need. The steps are found by following the data (what is a sample, what is
bookkeeping) through variables, loops over rows, comprehensions, helpers and their returns; they
stop where randomness, another dataset attribute or the batch's output takes over. When the raw
rows are still read elsewhere per batch, the result goes to a new attribute (`self._x_preprocessed`)
instead of replacing `self.x`. Steps written per sample (`[resize(im) for im in self.x[sl]]`,
`self.x[i] / 255.` in a loop over ids) are applied with `per_sample=True`, one sample at a time, as
before. Element-wise steps after a gather by index (`self.x[self.order[sl]] / 255.`) run on the
dataset's rows, before the gather. The result is read-only: code left per batch that writes into the
rows in place reads `self.x[sl].copy()`, except after a gather by an index array, which is a new
array already.

Element-wise steps that follow a random rearrangement of the rows (a flip, a crop by slicing, a roll,
rows picked or written back by a random mask: `x[flip] = x[flip, :, ::-1]`) are moved up before it
first, and the next pass preprocesses them with the steps before: an element-wise step computes each
element from itself, so it gives the same values before or after elements move. Without the move the
fix would hoist only the steps before the rearrangement, and each batch would gather the widened rows
and still normalise them, which measured slower than no fix. The move is **safe** when the moved
steps' settings are single numbers; an array setting (a per-channel mean) commutes only when the
rearrangement leaves its axis alone, which seqlint cannot see, so then the move, and with it the fix,
is unsafe.

The fix is **safe** when the batches provably stay identical: per-sample steps; or steps over the batch
proven row-wise (element-wise operators and ufuncs with settings, `astype`, `copy`, reductions and
FFTs over axes other than the first, `x[:, ...]`, `reshape(len(x), ...)`, `reshape(-1, ...)`
(`preprocess_once` refuses a result with another count of rows), `x @ W`, concatenation and stacking
along later axes, `to_categorical(y, num_classes=...)`, a lookup in an array made from settings
(`np.eye(k)[y]`, through a local name or an attribute only ever set to one), loops writing only row `i` of a fresh
array from row `i` alone), reading only literals, module names and attributes set in `__init__` and
never reassigned per batch or epoch. After a gather or a pick within the rows (a window, a column) the
steps must be element-wise with scalar settings and no preallocated array may cast the values. An
attribute of unknown type goes through `np.asarray`, and the fix is unsafe when it may be a Python list
whose `*` and `+` would repeat or extend it. Otherwise the fix is **unsafe** (shown with
`--unsafe-fixes`, the reason in its title). It is also unsafe when the per-batch code changed the
dataset's own rows in place (`x = self.x[a:b]; x /= 255.`, a view): it did so again every epoch, and
preprocessed once they change once; `preprocess_once` still checks on a probe, at run time,
that the function maps rows to rows. Preprocessing of data read from files is fixed through SEQ201.
"""

    valid = [
        # Noise drawn from a generator attribute whatever its name (`self.rs` is only ever set to a
        # RandomState): the clip after it is random work, not preprocessing.
        """
import numpy as np
import keras


class Noisy(keras.utils.PyDataset):
    def __init__(self, x, bs, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.x, self.bs = x, bs
        self.rs = np.random.RandomState(seed)

    def __len__(self):
        return -(-len(self.x) // self.bs)

    def __getitem__(self, idx):
        batch = self.x[idx * self.bs:(idx + 1) * self.bs]
        noisy = batch + self.rs.normal(0.0, 0.1, batch.shape)
        return np.clip(noisy, 0.0, 1.0)
""",
        # Already preprocessed once: __getitem__ only slices.
        """
import numpy as np
import keras

class Gen(keras.utils.PyDataset):
    def __init__(self, x, bs, **kwargs):
        super().__init__(**kwargs)
        self.x = (x / 255.0).astype("float32")
        self.bs = bs

    def __getitem__(self, idx):
        return self.x[idx * self.bs:(idx + 1) * self.bs]
""",
        # Random augmentation: caching would freeze it (SEQ301/SEQ305 territory).
        """
import numpy as np
from keras.utils import Sequence

class Gen(Sequence):
    def __getitem__(self, idx):
        x = self.x[idx * self.bs:(idx + 1) * self.bs]
        noise = np.random.normal(0, 0.1, x.shape)
        x = x + noise
        x = x * self.rng.uniform(0.8, 1.2)
        if np.random.rand() < 0.5:
            x = x / 2.0
        return x
""",
        # Paths built from strings and random crops of what was read are not cacheable preprocessing.
        """
import random
import cv2
import numpy as np
from tensorflow.keras.utils import Sequence

class Gen(Sequence):
    def __getitem__(self, idx):
        paths = [self.root + "/" + p for p in self.paths[idx * self.bs:(idx + 1) * self.bs]]
        images = [cv2.imread(p) for p in paths]
        top = random.randint(0, 8)
        return np.stack([im[top:top + 56] for im in images]) * random.uniform(0.9, 1.1)
""",
        # Random brightness mixed into the data inside an element-wise call: the whole value is a new draw.
        """
from random import uniform
import numpy as np
from keras.utils import Sequence

class Gen(Sequence):
    def __getitem__(self, idx):
        xs = []
        for arr in self.x[idx * 8:(idx + 1) * 8]:
            xs.append(np.clip(arr * uniform(0.8, 1.2), 0.0, 1.0))
        return np.array(xs), np.log1p(self.x[idx] + np.random.normal(0, 0.1))
""",
        # Index arithmetic, sizes and slicing only.
        """
import keras

class Gen(keras.utils.PyDataset):
    def __getitem__(self, idx):
        start = idx * self.batch_size
        stop = min(start + self.batch_size, len(self.x))
        x = self.x[self.indexes[start:stop]]
        return x, self.y[self.indexes[start:stop]], x.shape[0] - 1
""",
        # Not a Keras Sequence (collections.abc), so nothing runs per batch.
        """
from collections.abc import Sequence

class Scaled(Sequence):
    def __getitem__(self, i):
        return self.x[i] / 255.0

    def __len__(self):
        return len(self.x)
""",
    ]

    invalid = [
        # Sample weights computed from labels that are also returned as they are: the weights are
        # computed once into a new attribute, read with the labels' own bounds.
        Invalid(
            """import numpy as np
import keras


class Weighted(keras.utils.PyDataset):
    def __init__(self, x, y, batch_size=8, pos_weight=4.0, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y = x, y
        self.batch_size, self.pos_weight = batch_size, pos_weight

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, idx):
        lo, hi = idx * self.batch_size, (idx + 1) * self.batch_size
        y = self.y[lo:hi]
        w = np.where(y == 1, self.pos_weight, 1.0)
        return self.x[lo:hi], y, w
""",
            expected=[(17, 13)],
            fixed="""import numpy as np
import keras
import seqkit


class Weighted(keras.utils.PyDataset):
    def __init__(self, x, y, batch_size=8, pos_weight=4.0, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y = x, y
        self.batch_size, self.pos_weight = batch_size, pos_weight
        self._y_preprocessed = seqkit.preprocess_once(lambda rows: np.where(rows == 1, self.pos_weight, 1.0), np.asarray(self.y))

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, idx):
        lo, hi = idx * self.batch_size, (idx + 1) * self.batch_size
        y = self.y[lo:hi]
        w = self._y_preprocessed[lo:hi]
        return self.x[lo:hi], y, w
""",
            runs="""
import numpy as np
gen = Weighted(np.arange(20.0).reshape(10, 2), np.arange(10) % 2, 4)
result = [gen[i] for i in range(len(gen))]
""",
        ),
        # TensorFlow ops on the batch: a cast then a scale, and a one-hot by `depth`, in a module that
        # never imports NumPy (the fix adds it, with seqkit).
        Invalid(
            """import tensorflow as tf


class Tensors(tf.keras.utils.Sequence):
    def __init__(self, x, y, batch_size=32, classes=10, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y = x, y
        self.batch_size, self.classes = batch_size, classes

    def __len__(self):
        return (len(self.x) + self.batch_size - 1) // self.batch_size

    def __getitem__(self, idx):
        start = idx * self.batch_size
        images = tf.cast(self.x[start:start + self.batch_size], tf.float32) / 255.0
        labels = tf.one_hot(self.y[start:start + self.batch_size], depth=self.classes)
        return images, labels
""",
            expected=[(15, 18), (16, 18)],
            fixed="""import tensorflow as tf
import numpy
import seqkit


class Tensors(tf.keras.utils.Sequence):
    def __init__(self, x, y, batch_size=32, classes=10, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y = x, y
        self.batch_size, self.classes = batch_size, classes
        self.x = seqkit.preprocess_once(lambda rows: tf.cast(rows, tf.float32) / 255.0, numpy.asarray(self.x))
        self.y = seqkit.preprocess_once(lambda rows: tf.one_hot(rows, depth=self.classes), numpy.asarray(self.y))

    def __len__(self):
        return (len(self.x) + self.batch_size - 1) // self.batch_size

    def __getitem__(self, idx):
        start = idx * self.batch_size
        images = self.x[start:start + self.batch_size]
        labels = self.y[start:start + self.batch_size]
        return images, labels
""",
            runs="""
import numpy as np
gen = Tensors(np.arange(10 * 3, dtype=np.uint8).reshape(10, 3), np.arange(10) % 3, 4, classes=3)
result = [tuple(np.asarray(t) for t in gen[i]) for i in range(len(gen))]
""",
        ),
        # Rows gathered by ids into float32, then scaled: the scaling moves ahead of the gather and takes
        # the gather's cast with it (uint8 / 127.5 would compute in float64).
        Invalid(
            """import numpy as np
import keras


class Pictures(keras.utils.PyDataset):
    def __init__(self, images, labels, batch_size=16, **kwargs):
        super().__init__(**kwargs)
        self.images, self.labels = images, labels
        self.batch_size = batch_size
        self.order = np.arange(len(images))

    def on_epoch_end(self):
        np.random.shuffle(self.order)

    def __len__(self):
        return -(-len(self.images) // self.batch_size)

    def __getitem__(self, index):
        ids = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        X = np.array([self.images[k] for k in ids], dtype=np.float32)
        X = X / 127.5 - 1.0
        return X, self.labels[ids]
""",
            expected=[(21, 13)],
            fixed="""import numpy as np
import keras
import seqkit


class Pictures(keras.utils.PyDataset):
    def __init__(self, images, labels, batch_size=16, **kwargs):
        super().__init__(**kwargs)
        self.images, self.labels = images, labels
        self.batch_size = batch_size
        self.order = np.arange(len(images))
        self.images = seqkit.preprocess_once(lambda rows: rows.astype(np.float32) / 127.5 - 1.0, np.asarray(self.images))

    def on_epoch_end(self):
        np.random.shuffle(self.order)

    def __len__(self):
        return -(-len(self.images) // self.batch_size)

    def __getitem__(self, index):
        ids = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        X = np.array([self.images[k] for k in ids], dtype=np.float32)
        return X, self.labels[ids]
""",
            runs="""
import numpy as np
gen = Pictures(np.arange(9 * 4 * 3, dtype=np.uint8).reshape(9, 4, 3), np.arange(9), 4)
result = [gen[i] for i in range(len(gen))]
""",
        ),
        # One-hot labels by a lookup in an identity matrix, through a local name: done once, safely.
        Invalid(
            """import numpy as np
import tensorflow as tf


class Digits(tf.keras.utils.Sequence):
    def __init__(self, images, labels, batch_size=64, classes=10, **kwargs):
        super().__init__(**kwargs)
        self.images, self.labels = images, labels
        self.batch_size, self.classes = batch_size, classes

    def __len__(self):
        return -(-len(self.images) // self.batch_size)

    def __getitem__(self, idx):
        lo = idx * self.batch_size
        eye = np.eye(self.classes, dtype=np.float32)
        return self.images[lo:lo + self.batch_size], eye[self.labels[lo:lo + self.batch_size]]
""",
            expected=[(17, 54)],
            fixed="""import numpy as np
import tensorflow as tf
import seqkit


class Digits(tf.keras.utils.Sequence):
    def __init__(self, images, labels, batch_size=64, classes=10, **kwargs):
        super().__init__(**kwargs)
        self.images, self.labels = images, labels
        self.batch_size, self.classes = batch_size, classes
        self.labels = seqkit.preprocess_once(self._preprocess_labels, np.asarray(self.labels))

    def __len__(self):
        return -(-len(self.images) // self.batch_size)

    def __getitem__(self, idx):
        lo = idx * self.batch_size
        return self.images[lo:lo + self.batch_size], self.labels[lo:lo + self.batch_size]

    def _preprocess_labels(self, labels):
        eye = np.eye(self.classes, dtype=np.float32)
        return eye[labels]
""",
            runs="""
import numpy as np
gen = Digits(np.arange(10 * 3, dtype=np.uint8).reshape(10, 3), np.arange(10) % 4, 4, classes=4)
result = [gen[i] for i in range(len(gen))]
""",
        ),
        Invalid(
            """import numpy as np
import keras


class Gen(keras.utils.PyDataset):
    def __init__(self, x, y, bs, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.bs = x, y, bs
        self.mean, self.std = x.mean(), x.std()

    def __getitem__(self, idx):
        x = self.x[idx * self.bs:(idx + 1) * self.bs]
        x = (x / 255.0 - self.mean) / self.std
        y = keras.utils.to_categorical(self.y[idx * self.bs:(idx + 1) * self.bs], 10)
        return x.astype(np.float32), y
""",
            expected=[(13, 13), (14, 13), (15, 16)],
        ),
        # A helper method called from __getitem__, aliases, module constants, resize and one-hot.
        Invalid(
            """import cv2 as cv
import tensorflow as tf
from tensorflow.keras.utils import Sequence as S

MEAN = 0.5

def normalise(batch, std):
    return (batch - MEAN) / std

class Base(S):
    pass

class Gen(Base):
    def _prep(self, img):
        return cv.resize(img, (32, 32))

    def __getitem__(self, idx):
        rows = [self._prep(r) for r in self.images[idx]]
        labels = tf.one_hot(self.labels[idx], 5)
        return normalise(tf.stack(rows), 0.25), labels

    def __len__(self):
        return len(self.images)
""",
            expected=[8, 15, 19],
        ),
        # Tokenising and a fitted scaler in notebook code without imports.
        Invalid(
            """class TextGen(Sequence):
    def __getitem__(self, i):
        texts = self.texts[i * 8:(i + 1) * 8]
        ids = self.tokenizer(texts, padding=True)
        feats = self.scaler.transform(self.feats[i * 8:(i + 1) * 8])
        return ids, feats

    def __len__(self):
        return len(self.texts) // 8
""",
            expected=[4, 5],
        ),
        # The fix: hoisted into __init__ with seqkit.preprocess_once (safe for x: element-wise arithmetic
        # on an array from np.asarray; unsafe for y, whose type is unknown).
        Invalid(
            """import numpy as np
import keras


class Gen(keras.utils.PyDataset):
    def __init__(self, x, y, bs, **kwargs):
        super().__init__(**kwargs)
        self.x = np.asarray(x)
        self.y, self.bs = y, bs
        self.mean, self.std = self.x.mean(), self.x.std()

    def __getitem__(self, idx):
        x = self.x[idx * self.bs:(idx + 1) * self.bs]
        x = (x / 255.0 - self.mean) / np.sqrt(self.std)
        return x, self.y[idx * self.bs:(idx + 1) * self.bs] / 2
""",
            expected=[(14, 13), (15, 19)],
            fixed="""import numpy as np
import keras
import seqkit


class Gen(keras.utils.PyDataset):
    def __init__(self, x, y, bs, **kwargs):
        super().__init__(**kwargs)
        self.x = np.asarray(x)
        self.y, self.bs = y, bs
        self.mean, self.std = self.x.mean(), self.x.std()
        self.x = seqkit.preprocess_once(lambda rows: (rows / 255.0 - self.mean) / np.sqrt(self.std), self.x)
        self.y = seqkit.preprocess_once(lambda rows: rows / 2, np.asarray(self.y))

    def __getitem__(self, idx):
        x = self.x[idx * self.bs:(idx + 1) * self.bs]
        return x, self.y[idx * self.bs:(idx + 1) * self.bs]
""",
            runs="""
import numpy as np
data = np.arange(3 * 10 * 4, dtype=np.uint8).reshape(10, 3, 4)
gen = Gen(data, np.arange(10.0), 4)
result = [gen[i] for i in range(3)]
""",
        ),
        # A random roll between the scaling and `* 2.0 - 1.0`: the roll only moves elements and the
        # step after it has single-number settings, so the step moves up (a first pass) and both are
        # preprocessed once (a second); the roll stays per batch.
        Invalid(
            """import numpy as np
import keras


class Spectra(keras.utils.PyDataset):
    def __init__(self, x, bs, **kwargs):
        super().__init__(**kwargs)
        self.x, self.bs = x, bs

    def __len__(self):
        return -(-len(self.x) // self.bs)

    def __getitem__(self, idx):
        rng = np.random.default_rng(idx)
        batch = self.x[idx * self.bs:(idx + 1) * self.bs] / 255.0
        batch = np.roll(batch, rng.integers(0, 4), axis=1)
        batch = batch * 2.0 - 1.0
        return batch
""",
            expected=[15],
            fixed="""import numpy as np
import keras
import seqkit


class Spectra(keras.utils.PyDataset):
    def __init__(self, x, bs, **kwargs):
        super().__init__(**kwargs)
        self.x, self.bs = x, bs
        self.x = seqkit.preprocess_once(self._preprocess_x, np.asarray(self.x))

    def __len__(self):
        return -(-len(self.x) // self.bs)

    def __getitem__(self, idx):
        rng = np.random.default_rng(idx)
        batch = self.x[idx * self.bs:(idx + 1) * self.bs]
        batch = np.roll(batch, rng.integers(0, 4), axis=1)
        return batch

    def _preprocess_x(self, x):
        batch = x / 255.0
        return batch * 2.0 - 1.0
""",
            runs="""
import numpy as np
gen = Spectra(np.arange(10 * 4 * 3, dtype=np.uint8).reshape(10, 4, 3), 4)
result = [gen[i] for i in range(len(gen))]
""",
        ),
        # A random cutout writes zeros, which `* 2.0 - 1.0` would turn into -1: not a rearrangement,
        # so only the scaling before it is preprocessed once.
        Invalid(
            """import numpy as np
import keras


class Spectra(keras.utils.PyDataset):
    def __init__(self, x, bs, **kwargs):
        super().__init__(**kwargs)
        self.x, self.bs = x, bs

    def __len__(self):
        return -(-len(self.x) // self.bs)

    def __getitem__(self, idx):
        rng = np.random.default_rng(idx)
        batch = self.x[idx * self.bs:(idx + 1) * self.bs] / 255.0
        batch[:, rng.integers(0, 4)] = 0.0
        batch = batch * 2.0 - 1.0
        return batch
""",
            expected=[15],
            fixed="""import numpy as np
import keras
import seqkit


class Spectra(keras.utils.PyDataset):
    def __init__(self, x, bs, **kwargs):
        super().__init__(**kwargs)
        self.x, self.bs = x, bs
        self.x = seqkit.preprocess_once(lambda rows: rows / 255.0, np.asarray(self.x))

    def __len__(self):
        return -(-len(self.x) // self.bs)

    def __getitem__(self, idx):
        rng = np.random.default_rng(idx)
        batch = self.x[idx * self.bs:(idx + 1) * self.bs].copy()
        batch[:, rng.integers(0, 4)] = 0.0
        batch = batch * 2.0 - 1.0
        return batch
""",
            runs="""
import numpy as np
gen = Spectra(np.arange(10 * 4 * 3, dtype=np.uint8).reshape(10, 4, 3), 4)
result = [gen[i] for i in range(len(gen))]
""",
        ),
        # In place on a copy of the batch: the hoisted result keeps the array's dtype.
        Invalid(
            """import numpy as np
from tensorflow.keras.utils import Sequence


class Doubler(Sequence):
    def __init__(self, x, batch_size=32):
        self.x = np.load(x) if isinstance(x, str) else np.array(x)
        self.batch_size = batch_size

    def __getitem__(self, idx):
        batch = np.copy(self.x[idx * self.batch_size:(idx + 1) * self.batch_size])
        batch[:] = batch * 2.5  # scale
        return batch

    def __len__(self):
        return -(-len(self.x) // self.batch_size)
""",
            expected=[12],
            fixed="""import numpy as np
from tensorflow.keras.utils import Sequence
import seqkit


class Doubler(Sequence):
    def __init__(self, x, batch_size=32):
        self.x = np.load(x) if isinstance(x, str) else np.array(x)
        self.batch_size = batch_size
        self.x = seqkit.preprocess_once(self._preprocess_x, self.x)

    def __getitem__(self, idx):
        batch = self.x[idx * self.batch_size:(idx + 1) * self.batch_size]
        return batch

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def _preprocess_x(self, x):
        batch = np.copy(x)
        batch[:] = batch * 2.5  # scale
        return batch
""",
            runs="""
import numpy as np
gen = Doubler(np.arange(30, dtype=np.int64).reshape(10, 3), 4)
result = [gen[i] for i in range(len(gen))]
""",
        ),
        # The plain slice-then-preprocess class, proven row-wise (a reduction over axis 1 keeps one value
        # per row): rebased on PreprocessedSequence, its slicing boilerplate gone.
        Invalid(
            """import numpy as np
import keras


class Windows(keras.utils.PyDataset):
    def __init__(self, x, y, batch_size=8, gain=2.0, **kwargs):
        super().__init__(**kwargs)
        self.x = x
        self.y = y
        self.batch_size = batch_size
        self.gain = gain

    def __len__(self):
        return int(np.ceil(len(self.x) / self.batch_size))

    def __getitem__(self, idx):
        batch_x = self.x[idx * self.batch_size:(idx + 1) * self.batch_size]
        batch_y = self.y[idx * self.batch_size:(idx + 1) * self.batch_size]
        # each window scaled by its own peak
        peak = np.abs(batch_x).max(axis=1, keepdims=True)
        return self.gain * batch_x / np.maximum(peak, 1e-6), batch_y
""",
            expected=[(20, 16), (21, 16)],
            fixed="""import numpy as np
import keras
import seqkit


class Windows(keras.utils.PyDataset):
    def __init__(self, x, y, batch_size=8, gain=2.0, **kwargs):
        super().__init__(**kwargs)
        self.x = x
        self.y = y
        self.batch_size = batch_size
        self.gain = gain
        self.x = seqkit.preprocess_once(self._preprocess_x, np.asarray(self.x))

    def __len__(self):
        return int(np.ceil(len(self.x) / self.batch_size))

    def __getitem__(self, idx):
        batch_x = self.x[idx * self.batch_size:(idx + 1) * self.batch_size]
        batch_y = self.y[idx * self.batch_size:(idx + 1) * self.batch_size]
        return batch_x, batch_y

    def _preprocess_x(self, batch_x):
        # each window scaled by its own peak
        peak = np.abs(batch_x).max(axis=1, keepdims=True)
        return self.gain * batch_x / np.maximum(peak, 1e-6)
""",
            runs="""
import numpy as np
gen = Windows(np.arange(40.0).reshape(10, 4) - 20.0, np.arange(10), batch_size=4)
result = [gen[i] for i in range(len(gen))]
""",
        ),
        # Helpers proven row-wise (a window with literal defaults; a threshold loop over rows, vectorised on
        # the way): each is hoisted whole into preprocess_once and the call becomes the slice.
        Invalid(
            """import numpy as np
from keras.utils import PyDataset

LOW, HIGH = -1000.0, 400.0


def window(volumes, lo=LOW, hi=HIGH):
    v = np.clip(volumes.astype(np.float32), lo, hi)
    return ((v - lo) / (hi - lo))[..., np.newaxis]


class Scans(PyDataset):
    def __init__(self, x, masks, bs, cut=0.5, **kwargs):
        super().__init__(**kwargs)
        self.x, self.masks, self.bs, self.cut = x, masks, bs, cut

    def _binarize(self, masks):
        out = np.empty(masks.shape, dtype=np.float32)
        for i, m in enumerate(masks):
            out[i] = m > self.cut
        return out

    def __getitem__(self, idx):
        sl = slice(idx * self.bs, (idx + 1) * self.bs)
        return window(self.x[sl]), self._binarize(self.masks[sl])
""",
            expected=[(8, 9), (9, 13), (20, 22)],
            fixed="""import numpy as np
from keras.utils import PyDataset
import seqkit

LOW, HIGH = -1000.0, 400.0


def window(volumes, lo=LOW, hi=HIGH):
    v = np.clip(volumes.astype(np.float32), lo, hi)
    return ((v - lo) / (hi - lo))[..., np.newaxis]


class Scans(PyDataset):
    def __init__(self, x, masks, bs, cut=0.5, **kwargs):
        super().__init__(**kwargs)
        self.x, self.masks, self.bs, self.cut = x, masks, bs, cut
        self.x = seqkit.preprocess_once(window, np.asarray(self.x))
        self.masks = seqkit.preprocess_once(self._binarize, np.asarray(self.masks))

    def _binarize(self, masks):
        out = np.empty(masks.shape, dtype=np.float32)
        for i, m in enumerate(masks):
            out[i] = m > self.cut
        return out

    def __getitem__(self, idx):
        sl = slice(idx * self.bs, (idx + 1) * self.bs)
        return self.x[sl], self.masks[sl]
""",
            runs="""
import numpy as np
gen = Scans(np.arange(-1200, 600, 30, dtype=np.int16).reshape(15, 4), np.linspace(0, 1, 30).reshape(15, 2), 4)
result = [gen[i] for i in range(4)]
""",
        ),
        # Data read from files: SEQ201 reports line 8, SEQ101 the steps on lines 9, 10 and 14.
        Invalid(
            """import cv2
import numpy as np
from keras.utils import PyDataset

class Gen(PyDataset):
    def _read(self, path):
        # decoded per batch
        img = cv2.imread(path)
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        return cv2.resize(img, (64, 64))

    def __getitem__(self, idx):
        images = [self._read(p) for p in self.paths[idx * 8:(idx + 1) * 8]]
        return np.stack(images).astype("float32") / 255.0, self.y[idx * 8:(idx + 1) * 8]
""",
            expected=[9, 10, 14],
        ),
        # A lambda mapped over the batch and a function defined inside __getitem__; class built by a factory.
        Invalid(
            """import cv2
import numpy as np
from tensorflow.keras.utils import Sequence

def make(images, bs):
    class Fold(Sequence):
        def __getitem__(self, idx):
            sl = slice(idx * bs, (idx + 1) * bs)
            faces = list(map(lambda im: cv2.resize(im, (96, 96)), self.images[sl]))

            def to_unit(a):
                return a / 255.0

            return to_unit(np.stack(faces)), self.ages[sl]

        def __len__(self):
            return (len(self.images) + bs - 1) // bs

    return Fold()
""",
            expected=[9, 12],
        ),
    ]

    def check(self, ctx):
        for seq in ctx.sequences:
            flow = ctx.batch_flow(seq)
            clean = ctx.clean_steps(seq)
            plans = ctx.hoist_plans(seq)
            moves = ctx.commuting_moves(seq)
            steps: dict[int, tuple] = {}
            for value in flow.values:
                step = clean.of(value)
                if step is None or not step.work or id(value) not in flow.live or value.node is None:
                    continue
                node = _reported_node(value)
                if node is not None and id(node) not in steps:
                    steps[id(node)] = (node, value, step)
            fixes: dict[tuple, object] = {}
            for node, value, step in _one_per_statement(ctx, flow, clean, steps):
                loc = location(step.source)
                from_file = is_file(step.source)
                fix = None
                if not from_file and loc in plans:
                    if loc not in fixes:
                        fixes[loc] = _move_fix(ctx, moves[loc]) if loc in moves else _hoist_fix(ctx, seq, plans[loc])
                    fix = fixes[loc]
                where = " -> ".join(_where(ctx, value.func))
                yield ctx.report(
                    self,
                    node,
                    f"{_describe(ctx, node, value)} {_source_name(ctx, step.source)} on every batch (in {where}); "
                    "do it once",
                    fix=fix,
                    hint=_FILE_HINT if from_file else _MEMORY_HINT,
                )


def _where(ctx, func) -> tuple[str, ...]:
    """The call path from the Keras entry point to `func`, through the functions it is nested in."""
    path = ctx.call_path(func)
    if path:
        return path
    name = func.name.value if isinstance(func, cst.FunctionDef) else "lambda"
    outer = ctx.enclosing_function(func)
    return (*_where(ctx, outer), name) if outer is not None else (name,)


def _reported_node(value):
    """Where a step is shown: the expression, or for a loop computing rows, the first value it assigns."""
    node = value.node
    if value.op is Op.LOOP and isinstance(node, cst.For):
        for sub in walk(node.body):
            if isinstance(sub, cst.Assign):
                return sub.value
        return None
    if isinstance(node, (cst.AugAssign, cst.BaseExpression)):
        return node
    return None


def _one_per_statement(ctx, flow, clean, steps: dict):
    """One finding per expression: the steps of one source in one statement are reported once, at the
    step that holds them all (`[vocab.get(w) for w in text.lower().split()]`), or each outermost one
    when no step holds them all. Nesting is read from source ranges, which keeps this linear."""
    groups: dict[tuple, list] = {}
    for node, value, step in steps.values():
        groups.setdefault((id(ctx.statement_of(node)), id(step.source)), []).append((node, value, step))
    for group in groups.values():
        if len(group) == 1:
            yield group[0]
            continue
        spans = [(ctx.position(node), node, value, step) for node, value, step in group]
        spans.sort(key=lambda item: (item[0][0], -item[0][1].row, -item[0][1].column))  # outer ones first
        start, end = spans[0][0][0], max(e for (_s, e), _n, _v, _st in spans)
        if spans[0][0][1] == end:  # the first-starting step also ends last: it holds all the others
            yield spans[0][1], spans[0][2], spans[0][3]
            continue
        cover = _covering_step(ctx, flow, clean, group)
        if cover is not None:
            yield cover, group[0][1], group[0][2]
            continue
        reach = None  # the end of the last outermost step: anything starting before it is inside
        for (s, e), node, value, step in spans:
            if reach is not None and e <= reach:
                continue
            reach = e
            yield node, value, step


def _covering_step(ctx, flow, clean, group):
    """The smallest expression holding every step of the group that is itself a step of their source
    (a comprehension over the tokens of a text), walking up from one of them."""
    source = group[0][2].source
    first = group[0][0]
    statement = ctx.statement_of(first)
    for ancestor in ctx.ancestors(first):
        if ancestor is statement or isinstance(ancestor, (cst.Tuple, cst.List, cst.Dict, cst.Set)):
            return None  # a batch's parts put together (`return x / 255., to_categorical(y)`): each apart
        if isinstance(ancestor, cst.BaseExpression) and all(ctx.contains(ancestor, node) for node, _v, _s in group):
            if any((st := clean.of(v)) is not None and st.source is source for v in flow.values_at(ancestor)):
                return ancestor
            return None
    return None


def _describe(ctx, node, value) -> str:
    code = _short(ctx.code(node))
    if isinstance(node, cst.Comparison):
        return f"`{code}` thresholds"
    if isinstance(node, (cst.BinaryOperation, cst.UnaryOperation, cst.AugAssign)):
        return f"`{code}` scales/normalises"
    if isinstance(node, cst.Call):
        qual = ctx.qualified_name(node.func) or ctx.code(node.func)
        name = qual.rsplit(".", 1)[-1]
        if isinstance(node.func, cst.Attribute) and value.qual and value.qual.startswith("."):
            return f"`.{name}(...)` preprocesses"
        return f"`{name}(...)` preprocesses"
    return f"`{code}` preprocesses"


def _source_name(ctx, source) -> str:
    """What the step works on: the dataset attribute, or the file read."""
    loc = location(source)
    if loc is not None:
        return f"`{attribute_code(loc)}`"
    node = source.node
    if source.op is Op.PARAM:
        return f"`{node.value}`"
    if isinstance(node, cst.Call):
        return f"what `{_short(ctx.code(node.func))}` read"
    return f"what `{_short(ctx.code(node), 40)}` read"


def _short(code: str, limit: int = 60) -> str:
    code = " ".join(code.split())
    return code if len(code) <= limit else code[: limit - 3] + "..."


def _hoist_fix(ctx, seq, plan):
    """The edits computing `plan.location`'s preprocessing at the end of `__init__`."""
    init = seq.own_methods["__init__"]
    last = init.body.body[-1]
    indent = indentation_of(ctx, last)
    numpy_name = next((name for name, module in ctx.imports.items() if module == "numpy"), None)
    edits = list(plan.edits)
    if plan.as_array and plan.direct is None and numpy_name is None:
        numpy_name = "numpy"
        edits.append(ensure_import(ctx, "numpy"))
    line = init_line(plan, numpy_name or "np")
    _, end = ctx.position(last)
    edits.append(insert(line_start(end.row + 1), f"{indent}{line}\n"))
    if plan.method is not None:
        members = seq.node.body.body
        member_indent = indentation_of(ctx, members[0])
        text = "".join(
            f"{member_indent}{line}\n" if line.strip() else "\n" for line in plan.method.splitlines()
        )
        _, class_end = ctx.position(members[-1])
        edits.append(insert(line_start(class_end.row + 1), text))
    what = f"`{plan.source}`" + (f" into `{plan.target}`" if plan.target != plan.source else "")
    if plan.direct is None:
        edits.append(ensure_import(ctx, "seqkit"))
        title = f"Preprocess {what} once at the end of `__init__` with `seqkit.preprocess_once`"
    else:
        title = f"Preprocess {what} once at the end of `__init__` (all rows in one call)"
    if not plan.safe:
        title += f" (unsafe: {plan.reason})"
    return make_fix(Applicability.SAFE if plan.safe else Applicability.UNSAFE, title, edits)


def _move_fix(ctx, move):
    """Element-wise steps after a random rearrangement moved up to the region they continue: the next
    pass of `seqlint fix` preprocesses region and steps once, and the rearrangement stays per batch."""
    lines = source_lines(ctx.source)
    spans = [statement_lines(ctx, stmt) for stmt in move.statements]
    text = "".join(lines[row - 1] for first, last in spans for row in range(first, last + 1))
    _, end = ctx.position(move.after)
    edits = [insert(line_start(end.row + 1), text), *deletion_edits(ctx, spans)]
    moved = _short(" ".join(ctx.code(stmt).strip() for stmt in move.statements), 50)
    crossed = _short(ctx.code(move.crossed[0]).strip().splitlines()[0], 40)
    title = f"Move `{moved}` up before `{crossed}`, which only moves elements, and preprocess both steps once"
    if not move.safe:
        title += f" (unsafe: {move.reason})"
    return make_fix(Applicability.SAFE if move.safe else Applicability.UNSAFE, title, edits)
