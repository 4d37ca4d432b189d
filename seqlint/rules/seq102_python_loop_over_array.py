"""SEQ102 python-loop-over-array: per-row arithmetic in a Python loop that NumPy would vectorise."""

from __future__ import annotations

from typing import NamedTuple

import libcst as cst

from seqlint.analysis import effects
from seqlint.analysis.arrays import ValueKinds, dtype_class, is_index_vector
from seqlint.analysis.hoisting import statement_lines
from seqlint.analysis.hotpath import Phase, assignment_targets, bound_names, is_self_attr, names_in, variables, walk
from seqlint.analysis.packing import fill_target
from seqlint.analysis.tables import elementwise_numpy
from seqlint.findings import Applicability, Edit, Location
from seqlint.fixes import indentation_of, insert_lines_before, make_fix
from seqlint.rules.base import Invalid, Rule

_ARITH = (
    cst.Add, cst.Subtract, cst.Multiply, cst.Divide, cst.FloorDivide, cst.Modulo, cst.Power,
)
_ARITH_AUG = (
    cst.AddAssign, cst.SubtractAssign, cst.MultiplyAssign, cst.DivideAssign, cst.FloorDivideAssign,
    cst.ModuloAssign, cst.PowerAssign,
)
_AUG_TO_OP = {
    cst.AddAssign: "+", cst.SubtractAssign: "-", cst.MultiplyAssign: "*", cst.DivideAssign: "/",
    cst.FloorDivideAssign: "//", cst.ModuloAssign: "%", cst.PowerAssign: "**",
}
# Builtins a numeric loop body may call without doing anything NumPy could not do on the whole array.
_NUMERIC_BUILTINS = {"abs", "min", "max", "float", "int", "round", "len", "range", "enumerate", "zip", "pow"}
_LIST_METHODS = {"append", "extend"}


class PythonLoopOverArray(Rule):
    code = "SEQ102"
    name = "python-loop-over-array"
    summary = "Python loop over the rows of an array doing arithmetic NumPy can vectorise"
    fix_availability = "sometimes"
    docs = """
## What it does
Flags, in per-batch code (`__getitem__` and what it calls), a `for`/`while` loop or a list
comprehension that walks the rows or elements of an array (`for i in range(len(batch))`,
`for row in batch`, `[r * 2 for r in batch]`) and only does arithmetic on them: operators,
comparisons, NumPy ufuncs and numeric builtins. The loop must walk data (rows of the dataset or of
what was read), not settings or shapes; nested loops are reported once, at the outermost. Loops that
read files per sample are SEQ201's; loops calling other functions (a resize, an augmentation) are not
flagged here.

It also flags a loop that gathers an array one row, or one window `a[s:s + n]`, at a time into a list
(`for i in rows: parts.append(self.x[i])`): NumPy takes all of them with one index.

It flags a loop that fills a batch array one row at a time by id from an array
(`for i, ID in enumerate(ids): X[i,] = self.images[ID].reshape(28, 28, 1)`, the Stanford template
fed from memory): one fancy index takes every row at once. Only rows from an ndarray count; a dict of
labels or a list of arrays takes no id list, and such statements stay in the loop unreported.

And a loop that copies a sequence into an array one element at a time
(`for j in range(len(seq)): padded[i, j] = seq[j]`, `for j, t in enumerate(tokens): out[i][j] = t`):
one slice assignment copies them all.

Which values are data is the batch data-flow model's answer (`seqlint/analysis/batchflow.py`): rows
of a dataset attribute or of what was read, followed through variables, helpers and their returns;
loops over ids, paths, shapes and settings are bookkeeping and are not reported.

## Why is this bad?
Each Python iteration costs around a microsecond of interpreter overhead before any arithmetic is
done, and the arithmetic itself runs on one row at a time, without SIMD. The same expression applied
to the whole array runs in compiled code, commonly 10-100x faster, on every batch.

## Example
```python
batch = np.array(self.x[lo:hi])
for i in range(len(batch)):
    batch[i] = batch[i] * 2
```

## Use instead
```python
batch = np.array(self.x[lo:hi])
batch[:] = batch * 2
```

Gathering rows one at a time:
```python
parts = [np.empty((0, 8))]
for r in rows:
    parts.append(self.x[r])
batch = np.vstack(parts)
```
is one fancy index:
```python
batch = np.vstack([np.empty((0, 8)), self.x[rows]])
```

A batch filled row by row:
```python
X = np.empty((len(ids), 28, 28, 1))
for i, ID in enumerate(ids):
    X[i,] = self.images[ID].reshape(28, 28, 1)
    y[i] = self.labels[ID]
```
takes the rows with one index; the dict lookup stays in the loop:
```python
X = np.empty((len(ids), 28, 28, 1))
X[:len(ids)] = self.images[ids].reshape(len(ids), 28, 28, 1)
for i, ID in enumerate(ids):
    y[i] = self.labels[ID]
```

## Fix safety
The fix handles the loop `for i in range(len(a))` (or `range(a.shape[0])`, `enumerate(a)`) whose body
is the single statement `a[i] = <expression of a[i]>` or `a[i] <op>= <expression>`, where the
expression uses operators, comparisons and element-wise NumPy functions, no other `[i]` and no other
use of `a`. It becomes `a[:] = <expression of a>`, which writes the same values into the same array
(with the same casting to `a`'s dtype).
It is **safe** when `a` is assigned from a NumPy call in the same function, so it is an ndarray; otherwise
**unsafe**: for a Python list `a * 2` repeats the list instead of doubling its items.

A gather loop is fixed when the statement after it is `x = np.vstack(parts)` (or `return np.vstack(parts)`),
nothing else reads the list, and seqlint can tell from how the values are made (NumPy constructors,
slices, literals, returns of module functions; see `seqlint/analysis/arrays.py`) that the array is an
ndarray of rank 2 (rank 1: the fix writes `self.x[rows][:, None]`) and that `rows` is a 1-D integer array
or a `range`. A DataFrame's `[r]` is a column, a list takes no index array, a boolean array is a mask:
without that proof there is no fix. The loop becomes `parts.append(self.x[rows])`; when it directly
follows `parts = [seed]` (or `parts = []`), the three statements become
`x = np.vstack([seed, self.x[rows]])` (or `x = self.x[rows]`). Comments inside the loop go with it.
For every non-empty `rows` the index picks the same rows in the same order (negative indices too) and the
stack has the same shape and dtype. The fix is **safe** when the seed is an empty twin of the array,
`np.empty((0, x.shape[1]))` of the array's own dtype (what SEQ103's fix leaves after
`batch = np.empty((0, d))`): then an empty `rows` gives the seed back either way. Otherwise it is
**unsafe**: with no rows the loop adds nothing, while the index adds an empty piece that can change the
stacked dtype or fail its width check, and `np.vstack([])` raises where the index gives an empty array.
An element-by-element copy becomes one slice assignment: `padded[i, :len(seq)] = seq`, or
`padded[i, :n] = seq[:n]` for `range(n)` / `range(min(len(seq), n))`. It is **safe** when the bound
never exceeds the sequence (`len(seq)`, `min(len(seq), n)`, `enumerate(seq)`) and `padded` is an
ndarray made in the function; otherwise **unsafe** (`range(n)` past the end of `seq` raises in the
loop, while the slice copies fewer elements). A copy that advances a counter of its own
(`out[i, k] = box; k += 1`) is reported without a fix.
A fill `X[i] = a[k]` (or `a[ids[i]]`, with `.reshape(...)`/`.astype(...)` on the row) in
`for i, k in enumerate(ids)` or `for i in range(len(ids))` becomes `X[:len(ids)] = a[ids]` (a reshape
takes the row count first), placed before the loop; the loop keeps its other statements, or goes.
It is offered only when `a` is an ndarray (made by NumPy, by a `seqkit.preprocess_once` of one array,
or replaced by one in `__init__` before any method reads it) and `X` an ndarray the function made,
and when the rest of the loop neither reads `X` nor changes what the fill reads. It is **safe** when
`ids` is a 1-D integer array or a range, the row has the batch row's shape (reshaped to the very
shape `X` was allocated with after its first axis, or both ranks known and equal), and the rest of
the loop calls nothing that could see the order of the writes. Otherwise **unsafe**: a list of
tuples picks single elements one at a time but rows as one index; a row of lower rank than the
batch's row broadcasts against the batch axis when all rows go at once; `reshape(n, -1)` raises for
an empty batch, where the loop did nothing. When some fills of a loop are proven and others are not,
the safe fix moves the proven ones and the others stay in the loop for `--unsafe-fixes`. An error in the rest of the loop now comes after the
fills instead of between them (the batch is a local, so nothing can tell).
A window gather `a[s:s + n]` over a 1-D array becomes `a[starts[:, None] + np.arange(n)]` and is
**unsafe** too: for a window running past the end the slice is shorter (and the stack raises or mixes
lengths) where the index raises IndexError, and a negative start reads the array from its end.
"""

    valid = [
        # Already vectorised.
        """
import numpy as np
import keras

class Gen(keras.utils.PyDataset):
    def __getitem__(self, idx):
        batch = np.array(self.x[idx])
        return batch * 2
""",
        # Loop reading files per sample: SEQ201's business, not this rule's.
        """
import cv2
import numpy as np
from keras.utils import Sequence

class Gen(Sequence):
    def __getitem__(self, idx):
        out = np.zeros((len(self.files), 32, 32, 3))
        for i, path in enumerate(self.files):
            out[i] = cv2.imread(path) / 255.0
        return out
""",
        # Loop calling a non-numpy function (augmentation/resize) and building paths from strings.
        """
import numpy as np
from tensorflow.keras.utils import Sequence

class Gen(Sequence):
    def __getitem__(self, idx):
        names = ["img/" + n for n in self.names[idx]]
        rows = [self.augment(r) for r in self.x[idx]]
        return np.stack(rows), names
""",
        # Loop in __init__ runs once; not per batch.
        """
import numpy as np
from keras.utils import PyDataset

class Gen(PyDataset):
    def __init__(self, x, **kwargs):
        super().__init__(**kwargs)
        for i in range(len(x)):
            x[i] = x[i] * 2
        self.x = x

    def __getitem__(self, idx):
        return self.x[idx]
""",
        # A non-Keras class with a __getitem__ loop.
        """
class Matrix:
    def __getitem__(self, idx):
        row = self.rows[idx]
        for j in range(len(row)):
            row[j] = row[j] * 2
        return row
""",
        # A batch filled by id from a list of arrays and a dict of labels: neither takes the id list as
        # one index, so the loop is how it has to be.
        """
import numpy as np
import keras


class Clips(keras.utils.PyDataset):
    def __init__(self, paths, labels, **kwargs):
        super().__init__(**kwargs)
        self.clips = [np.load(p) for p in paths]
        self.labels = labels
        self.ids = list(labels)

    def __getitem__(self, idx):
        ids = self.ids[idx * 8:(idx + 1) * 8]
        x = np.zeros((len(ids), 100))
        y = np.zeros(len(ids))
        for i, k in enumerate(ids):
            x[i] = self.clips[k]
            y[i] = self.labels[k]
        return x, y
""",
    ]

    invalid = [
        Invalid(
            """import numpy as np
import keras


class Gen(keras.utils.PyDataset):
    def __getitem__(self, idx):
        batch = np.array(self.x[idx * 32:(idx + 1) * 32])
        for i in range(len(batch)):  # double every row
            batch[i] = batch[i] * 2
        return batch
""",
            expected=[(8, 9)],
            fixed="""import numpy as np
import keras


class Gen(keras.utils.PyDataset):
    def __getitem__(self, idx):
        batch = np.array(self.x[idx * 32:(idx + 1) * 32])
        batch[:] = batch * 2  # double every row
        return batch
""",
            runs="""
import numpy as np
gen = Gen.__new__(Gen)
gen.x = np.arange(140, dtype=np.int16).reshape(70, 2)
result = [gen[i] for i in range(3)]
""",
        ),
        # Augmented assignment, shape-based range, provenance unknown (unsafe fix), ufunc call.
        Invalid(
            """import numpy as np
from tensorflow.keras.utils import Sequence as KSeq

class Gen(KSeq):
    def __getitem__(self, idx):
        x = self.x[idx]
        for i in range(x.shape[0]):
            x[i] -= np.sqrt(x[i]) + self.offset
        return x
""",
            expected=[7],
            fixed="""import numpy as np
from tensorflow.keras.utils import Sequence as KSeq

class Gen(KSeq):
    def __getitem__(self, idx):
        x = self.x[idx]
        x[:] = x - (np.sqrt(x) + self.offset)
        return x
""",
            runs="""
import numpy as np
gen = Gen.__new__(Gen)
gen.x = np.arange(24, dtype=np.float64).reshape(4, 3, 2)
gen.offset = 0.5
result = [gen[i] for i in range(4)] + [gen.x]
""",
        ),
        # In a helper called from __getitem__: a row loop with append, a while loop, a comprehension.
        Invalid(
            """import numpy as np
import tensorflow as tf

def scale_rows(rows, k):
    out = []
    for r in rows:
        out.append(r * k)
    return np.array(out)

class Gen(tf.keras.utils.Sequence):
    def _norm(self, b):
        i = 0
        while i < len(b):
            b[i] = b[i] / self.std
            i += 1
        return np.array([v - self.mean for v in b])

    def __getitem__(self, idx):
        return scale_rows(self._norm(self.x[idx]), 2)

    def __len__(self):
        return len(self.x)
""",
            expected=[6, 13, 16],
        ),
        # Rows gathered one at a time into a list seeded with an empty twin of the array (same dtype and
        # width: what SEQ103's fix leaves): one index, one vstack, the same even for a batch of no rows.
        Invalid(
            """import numpy as np
from keras.utils import PyDataset


class Rows(PyDataset):
    def __init__(self, path, batch_size=4, **kwargs):
        super().__init__(**kwargs)
        self.x = np.loadtxt(path, delimiter=",", ndmin=2)
        self.order = np.arange(len(self.x))
        self.batch_size = batch_size

    def __getitem__(self, idx):
        rows = self.order[idx * self.batch_size:(idx + 1) * self.batch_size]
        batch_parts = [np.empty((0, self.x.shape[1]))]
        for r in rows:
            batch_parts.append(self.x[r])  # one row at a time
        batch = np.vstack(batch_parts)
        return batch
""",
            expected=[(15, 9)],
            fixed="""import numpy as np
from keras.utils import PyDataset


class Rows(PyDataset):
    def __init__(self, path, batch_size=4, **kwargs):
        super().__init__(**kwargs)
        self.x = np.loadtxt(path, delimiter=",", ndmin=2)
        self.order = np.arange(len(self.x))
        self.batch_size = batch_size

    def __getitem__(self, idx):
        rows = self.order[idx * self.batch_size:(idx + 1) * self.batch_size]
        batch = np.vstack([np.empty((0, self.x.shape[1])), self.x[rows]])
        return batch
""",
            runs="""
import os, tempfile
import numpy as np
path = os.path.join(tempfile.mkdtemp(), "rows.csv")
np.savetxt(path, np.arange(24.0).reshape(8, 3) ** 1.5, delimiter=",")
gen = Rows(path)
result = [gen[0], gen[1], gen[2]]  # the third batch has no rows
""",
        ),
        # A 1-D array gathered by a range into an empty list, returned stacked: one column per row. Unsafe:
        # with no rows np.vstack([]) raises, the index gives an empty array.
        Invalid(
            """import numpy as np
from keras.utils import PyDataset


class Labels(PyDataset):
    def __init__(self, labels, batch_size=4, **kwargs):
        super().__init__(**kwargs)
        self.y = np.array([int(v) for v in labels])
        self.batch_size = batch_size

    def __getitem__(self, idx):
        parts = []
        for i in range(idx * self.batch_size, min((idx + 1) * self.batch_size, len(self.y))):
            parts.append(self.y[i])
        return np.vstack(parts)
""",
            expected=[13],
            fixed="""import numpy as np
from keras.utils import PyDataset


class Labels(PyDataset):
    def __init__(self, labels, batch_size=4, **kwargs):
        super().__init__(**kwargs)
        self.y = np.array([int(v) for v in labels])
        self.batch_size = batch_size

    def __getitem__(self, idx):
        return self.y[range(idx * self.batch_size, min((idx + 1) * self.batch_size, len(self.y)))][:, None]
""",
            runs="""
gen = Labels(["3", "1", "4", "1", "5", "9"])
result = [gen[0], gen[1]]
""",
        ),
        # Reported without a fix: a table of unknown type (a DataFrame's [r] is a column), a boolean
        # index (a mask), a list joined by np.stack, a list whose length is read after the join.
        Invalid(
            """import numpy as np
import pandas as pd
from keras.utils import PyDataset


class Mixed(PyDataset):
    def __init__(self, path, **kwargs):
        super().__init__(**kwargs)
        self.table = pd.read_csv(path)
        self.x = np.zeros((100, 4), dtype=np.float32)
        self.keep = np.array([True, False, True])

    def __getitem__(self, idx):
        rows = np.arange(idx * 8, (idx + 1) * 8)
        frames = []
        for r in rows:
            frames.append(self.table[r])
        kept = []
        for k in self.keep:
            kept.append(self.x[k])
        stacked = []
        for r in rows:
            stacked.append(self.x[r])
        parts = []
        for r in rows:
            parts.append(self.x[r])
        joined = np.vstack(parts)
        return np.vstack(frames), np.vstack(kept), np.stack(stacked), joined, len(parts)
""",
            expected=[16, 19, 22, 25],
        ),
        # The list gets another piece first: only the loop becomes one piece (unsafe: with no rows the
        # empty piece could change the stack's dtype or fail its width check).
        Invalid(
            """import numpy as np
from keras.utils import PyDataset


class Padded(PyDataset):
    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        self.x = np.zeros((n, 3), dtype=np.int16)

    def __getitem__(self, idx):
        rows = np.arange(idx * 4, idx * 4 + 4)
        parts = [self.x[:1]]
        parts.append(self.x[-1:])
        for r in rows:
            parts.append(self.x[r])
        return np.vstack(parts)
""",
            expected=[14],
            fixed="""import numpy as np
from keras.utils import PyDataset


class Padded(PyDataset):
    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        self.x = np.zeros((n, 3), dtype=np.int16)

    def __getitem__(self, idx):
        rows = np.arange(idx * 4, idx * 4 + 4)
        parts = [self.x[:1]]
        parts.append(self.x[-1:])
        parts.append(self.x[rows])
        return np.vstack(parts)
""",
            runs="""
import numpy as np
gen = Padded.__new__(Padded)
gen.x = np.arange(36, dtype=np.int16).reshape(12, 3)
result = [gen[0], gen[1], gen[2]]
""",
        ),
        # Sliding windows of a 1-D series: an unsafe fix (a start past the end would fail differently).
        Invalid(
            """import numpy as np
from keras.utils import PyDataset


class Windows(PyDataset):
    def __init__(self, path, width=5, **kwargs):
        super().__init__(**kwargs)
        self.series = np.fromfile(path, dtype=np.float32)
        self.width = width
        self.starts = np.arange(0, len(self.series) - width, 2)

    def __getitem__(self, idx):
        starts = self.starts[idx * 4:(idx + 1) * 4]
        windows = [np.zeros((0, self.width), dtype=np.float32)]
        for s in starts:
            windows.append(self.series[s:s + self.width])
        return np.vstack(windows)
""",
            expected=[15],
            fixed="""import numpy as np
from keras.utils import PyDataset


class Windows(PyDataset):
    def __init__(self, path, width=5, **kwargs):
        super().__init__(**kwargs)
        self.series = np.fromfile(path, dtype=np.float32)
        self.width = width
        self.starts = np.arange(0, len(self.series) - width, 2)

    def __getitem__(self, idx):
        starts = self.starts[idx * 4:(idx + 1) * 4]
        return np.vstack([np.zeros((0, self.width), dtype=np.float32), self.series[starts[:, None] + np.arange(self.width)]])
""",
            runs="""
gen = Windows.__new__(Windows)
gen.series = __import__("numpy").linspace(0, 1, 23, dtype="float32")
gen.width = 5
gen.starts = __import__("numpy").arange(0, 18, 2)
result = [gen[0], gen[1], gen[2]]
""",
        ),
        # The Stanford template fed from memory: rows by id from an array into a batch made with
        # np.empty, labels from a dict. The fill leaves the loop as one index (safe: the ids are a slice of
        # an integer range, the row is reshaped to the batch's own row shape); the dict lookup stays.
        Invalid(
            """import numpy as np
import keras


class Letters(keras.utils.PyDataset):
    def __init__(self, pixels, labels, batch_size=4, dim=(4, 4), **kwargs):
        super().__init__(**kwargs)
        self.pixels = np.asarray(pixels, dtype=np.uint8)
        self.labels = labels
        self.dim = dim
        self.batch_size = batch_size
        self.order = np.arange(len(self.pixels))

    def __len__(self):
        return -(-len(self.order) // self.batch_size)

    def __getitem__(self, idx):
        ids = self.order[idx * self.batch_size:(idx + 1) * self.batch_size]
        X = np.empty((len(ids), *self.dim, 1))
        y = np.empty(len(ids), dtype=int)
        for i, ID in enumerate(ids):
            # one flat row per letter
            X[i,] = self.pixels[ID].reshape(*self.dim, 1)

            y[i] = self.labels[ID]
        return X / 255.0, y
""",
            expected=[(21, 9)],
            fixed="""import numpy as np
import keras


class Letters(keras.utils.PyDataset):
    def __init__(self, pixels, labels, batch_size=4, dim=(4, 4), **kwargs):
        super().__init__(**kwargs)
        self.pixels = np.asarray(pixels, dtype=np.uint8)
        self.labels = labels
        self.dim = dim
        self.batch_size = batch_size
        self.order = np.arange(len(self.pixels))

    def __len__(self):
        return -(-len(self.order) // self.batch_size)

    def __getitem__(self, idx):
        ids = self.order[idx * self.batch_size:(idx + 1) * self.batch_size]
        X = np.empty((len(ids), *self.dim, 1))
        y = np.empty(len(ids), dtype=int)
        # one flat row per letter
        X[:len(ids)] = self.pixels[ids].reshape(len(ids), *self.dim, 1)
        for i, ID in enumerate(ids):
            y[i] = self.labels[ID]
        return X / 255.0, y
""",
            runs="""
import numpy as np
gen = Letters(np.arange(80).reshape(5, 16) * 3, {k: k % 3 for k in range(5)})
result = [gen[0], gen[1]]  # the second batch has one row
""",
        ),
        # Every statement of the loop fills from an array: the loop goes. Unsafe: the keys are a list of
        # unknown items (a tuple would pick one element where the list of them picks rows), and
        # `reshape(n, -1, 1)` fails for an empty batch, where the loop did nothing.
        Invalid(
            """import numpy as np
from tensorflow import keras


class Frames(keras.utils.Sequence):
    def __init__(self, clips, scores, names, batch_size=3):
        self.clips = np.stack(clips)
        self.scores = np.asarray(scores, dtype=np.float32)
        self.names = names
        self.batch_size = batch_size

    def __len__(self):
        return (len(self.names) + self.batch_size - 1) // self.batch_size

    def __getitem__(self, idx):
        keys = [int(n.split("_")[1]) for n in self.names[idx * self.batch_size:(idx + 1) * self.batch_size]]
        batch = np.zeros((len(keys), 6, 1), dtype=np.float32)
        target = np.zeros((len(keys), 1))
        for i in range(len(keys)):
            batch[i] = self.clips[keys[i]].reshape(-1, 1)  # frames as a column
            target[i, 0] = self.scores[keys[i]]
        return batch, target
""",
            expected=[19],
            fixed="""import numpy as np
from tensorflow import keras


class Frames(keras.utils.Sequence):
    def __init__(self, clips, scores, names, batch_size=3):
        self.clips = np.stack(clips)
        self.scores = np.asarray(scores, dtype=np.float32)
        self.names = names
        self.batch_size = batch_size

    def __len__(self):
        return (len(self.names) + self.batch_size - 1) // self.batch_size

    def __getitem__(self, idx):
        keys = [int(n.split("_")[1]) for n in self.names[idx * self.batch_size:(idx + 1) * self.batch_size]]
        batch = np.zeros((len(keys), 6, 1), dtype=np.float32)
        target = np.zeros((len(keys), 1))
        batch[:len(keys)] = self.clips[keys].reshape(len(keys), -1, 1)  # frames as a column
        target[:len(keys), 0] = self.scores[keys]
        return batch, target
""",
            runs="""
import numpy as np
gen = Frames([np.arange(6.0) * k for k in range(5)], [0.5 * k for k in range(5)], [f"clip_{k}" for k in (4, 0, 3, 1, 2)])
result = [gen[0], gen[1]]
""",
        ),
    ]

    def check(self, ctx):
        for func, seq, _path in ctx.functions_in_phase(Phase.BATCH):
            kinds = ValueKinds(ctx, seq)
            skip: set[int] = set()
            for node in walk(func.body):
                if id(node) in skip:
                    continue
                finding = None
                gather = _gather_loop(ctx, node) if isinstance(node, cst.For) else None
                copy = _element_copy(ctx, node) if isinstance(node, cst.For) else None
                fill = _fill_loop(ctx, node, func, kinds) if isinstance(node, cst.For) else None
                if fill is not None:
                    filled = ", ".join(dict.fromkeys(f"`{ctx.code(m.array)}`" for m in fill.moves))
                    finding = ctx.report(
                        self,
                        node,
                        f"Python loop over `{ctx.code(fill.ids)}` fills `{fill.moves[0].batch}` one row at a time "
                        f"from {filled}; index it once with the whole id list",
                        fix=_fill_fix(ctx, fill, func, kinds),
                    )
                elif gather is not None and (
                    ctx.is_sample_data(gather.piece) or _over_data(ctx, node, {gather.index})
                    or _self_attribute(gather.array)
                ):
                    what = "one row at a time" if gather.window is None else "one window at a time"
                    finding = ctx.report(
                        self,
                        node,
                        f"Python loop over `{ctx.code(node.iter)}` gathers `{ctx.code(gather.array)}` {what}; "
                        "index it once with the whole index array",
                        fix=_gather_fix(ctx, gather, func, kinds),
                    )
                elif copy is not None:
                    finding = ctx.report(
                        self,
                        node,
                        f"Python loop copies `{ctx.code(copy.source)}` into `{ctx.code(copy.target)}` one element "
                        "at a time; assign the slice at once",
                        fix=_copy_fix(ctx, copy, func),
                    )
                elif isinstance(node, cst.For):
                    element = _loop_element(ctx, node)
                    if element and _over_data(ctx, node, element) and _arithmetic_only(ctx, node.body, element) \
                            and not _exits(node.body):
                        finding = ctx.report(
                            self,
                            node,
                            f"Python loop over `{ctx.code(node.iter)}` does element-wise arithmetic; "
                            "apply it to the whole array",
                            fix=_fix(ctx, node, func),
                        )
                elif isinstance(node, cst.While):
                    index = _while_index(node)
                    if index and _over_data(ctx, node, index) and _arithmetic_only(ctx, node.body, index) \
                            and not _exits(node.body):
                        finding = ctx.report(
                            self, node,
                            "Python `while` loop over array elements does element-wise arithmetic; "
                            "apply it to the whole array",
                        )
                elif isinstance(node, (cst.ListComp, cst.GeneratorExp)):
                    comp = node.for_in
                    if comp.inner_for_in is not None or comp.ifs:
                        continue
                    element = _loop_element(ctx, comp)
                    if element and _over_data(ctx, comp, element) and _arithmetic_only(ctx, node.elt, element):
                        finding = ctx.report(
                            self, node,
                            f"comprehension over `{ctx.code(comp.iter)}` does element-wise arithmetic "
                            "row by row; apply it to the whole array",
                        )
                if finding is not None:
                    skip.update(id(n) for n in walk(node))  # nested loops belong to this finding
                    yield finding


def _over_data(ctx, loop, element: set[str]) -> bool:
    """The loop walks data (the dataset or what was read), not a list of settings or shapes."""
    iterable = getattr(loop, "iter", None)
    if iterable is not None and ctx.is_sample_data(iterable):
        return True
    body = loop.body if not isinstance(loop, cst.CompFor) else None
    for node in walk(body if body is not None else loop):
        if isinstance(node, cst.Subscript) and any(_uses(el, element) for el in node.slice) \
                and ctx.is_sample_data(node.value):
            return True
    return False


def _loop_element(ctx, loop) -> set[str] | None:
    """Names bound to a row/element (or its index) by the loop, or None when it is not a row loop."""
    target, iterable = loop.target, loop.iter
    if isinstance(iterable, cst.Call):
        qual = ctx.qualified_name(iterable.func)
        if qual == "range":
            return names_in(target) if isinstance(target, cst.Name) else None
        if qual == "enumerate" and isinstance(target, cst.Tuple):
            return names_in(target)
        if qual == "zip":
            return names_in(target)
        return None  # os.listdir(...), glob(...), some function: not rows of an array
    if isinstance(iterable, (cst.Name, cst.Attribute, cst.Subscript)):
        return names_in(target)
    return None


def _while_index(loop: cst.While) -> set[str] | None:
    test = loop.test
    if isinstance(test, cst.Comparison) and isinstance(test.left, cst.Name):
        return {test.left.value}
    return None


def _exits(body) -> bool:
    return any(isinstance(n, (cst.Return, cst.Break, cst.Yield, cst.Raise)) for n in walk(body))


def _uses(node, names: set[str]) -> bool:
    return any(isinstance(n, cst.Name) and n.value in names for n in walk(node))


def _arithmetic_only(ctx, body, element: set[str]) -> bool:
    """Arithmetic on the loop's elements and nothing NumPy could not do on the whole array."""
    arithmetic = False
    for node in walk(body):
        if isinstance(node, cst.Call):
            if not _allowed_call(ctx, node):
                return False
        elif isinstance(node, (cst.SimpleString, cst.FormattedString, cst.ConcatenatedString)):
            return False  # string building (paths, labels), not numbers
        elif isinstance(node, (cst.With, cst.Try, cst.FunctionDef, cst.Lambda)):
            return False
        elif isinstance(node, cst.BinaryOperation) and isinstance(node.operator, _ARITH):
            arithmetic = arithmetic or (_uses(node, element) and _on_data(ctx, node))
        elif isinstance(node, cst.AugAssign) and isinstance(node.operator, _ARITH_AUG):
            arithmetic = arithmetic or ((_uses(node.target, element) and isinstance(node.target, cst.Subscript)) \
                or _uses(node.value, element) and not isinstance(node.target, cst.Name)) and _on_data(ctx, node)
    return arithmetic


def _on_data(ctx, node) -> bool:
    """Arithmetic on sample data that reaches the batch; not on lengths, counters or indices (nor in
    code seqlint did not interpret, where it cannot tell)."""
    if isinstance(node, cst.AugAssign):
        return ctx.is_sample_data(node, live=True) or ctx.is_sample_data(node.value, live=True)
    return ctx.is_sample_data(node, live=True)


def _allowed_call(ctx, call: cst.Call) -> bool:
    qual = ctx.qualified_name(call.func)
    if qual is not None and (effects.is_io_call(qual) or effects.is_random_call(qual)):
        return False
    if qual in _NUMERIC_BUILTINS or (qual is not None and effects.is_pure_numpy(qual)):
        return True
    if isinstance(call.func, cst.Attribute):
        method = call.func.attr.value
        receiver = ctx.code(call.func.value)
        if receiver == "self" or receiver.startswith("self."):
            return False
        return method in _LIST_METHODS or effects.is_pure_array_method(method)
    return False


def _covers_all_rows(ctx, loop: cst.For, array: str) -> str | None:
    """The index name when the loop visits every row of `array` in order."""
    iterable = loop.iter
    if not isinstance(iterable, cst.Call):
        return None
    qual = ctx.qualified_name(iterable.func)
    args = [a.value for a in iterable.args]
    if qual == "enumerate" and len(args) == 1 and ctx.code(args[0]) == array:
        target = loop.target
        if isinstance(target, cst.Tuple) and len(target.elements) == 2 and isinstance(target.elements[0].value, cst.Name):
            return target.elements[0].value.value
        return None
    if qual != "range" or not isinstance(loop.target, cst.Name):
        return None
    if len(args) == 2 and ctx.code(args[0]) == "0":
        args = args[1:]
    if len(args) != 1:
        return None
    bound = ctx.code(args[0]).replace(" ", "")
    if bound in (f"len({array})", f"{array}.shape[0]"):
        return loop.target.value
    return None


class _Unindex(cst.CSTTransformer):
    """a[i] -> a."""

    def __init__(self, ctx, array: str, index: str):
        self.ctx, self.array, self.index = ctx, array, index

    def leave_Subscript(self, original, updated):
        if (
            isinstance(original.value, cst.Name)
            and original.value.value == self.array
            and len(original.slice) == 1
            and isinstance(original.slice[0].slice, cst.Index)
            and isinstance(original.slice[0].slice.value, cst.Name)
            and original.slice[0].slice.value.value == self.index
        ):
            return cst.Name(self.array, lpar=updated.lpar, rpar=updated.rpar)
        return updated


def _fix(ctx, loop: cst.For, func):
    if loop.orelse is not None or not isinstance(loop.body, cst.IndentedBlock) or len(loop.body.body) != 1:
        return None
    line = loop.body.body[0]
    if not isinstance(line, cst.SimpleStatementLine) or len(line.body) != 1:
        return None
    stmt = line.body[0]
    if isinstance(stmt, cst.Assign) and len(stmt.targets) == 1:
        target, value, op = stmt.targets[0].target, stmt.value, None
    elif isinstance(stmt, cst.AugAssign) and type(stmt.operator) in _AUG_TO_OP:
        target, value, op = stmt.target, stmt.value, _AUG_TO_OP[type(stmt.operator)]
    else:
        return None
    if not (isinstance(target, cst.Subscript) and isinstance(target.value, cst.Name)):
        return None
    array = target.value.value
    index = _covers_all_rows(ctx, loop, array)
    if index is None or ctx.code(target).replace(" ", "") != f"{array}[{index}]":
        return None
    if not _elementwise(ctx, value):
        return None
    new_value = value.visit(_Unindex(ctx, array, index))
    if index in names_in(new_value):
        return None  # another `[i]` or the index itself in the arithmetic
    whole_uses = sum(1 for n in walk(value) if isinstance(n, cst.Name) and n.value == array)
    indexed_uses = sum(
        1 for n in walk(value) if isinstance(n, cst.Subscript) and ctx.code(n).replace(" ", "") == f"{array}[{index}]"
    )
    if whole_uses != indexed_uses:
        return None  # `a` used whole (a.max()) while the loop changes it row by row
    text = cst.Module([]).code_for_node(new_value)
    if op is not None:
        if not isinstance(new_value, (cst.Name, cst.Attribute, cst.Integer, cst.Float, cst.Call, cst.Subscript)):
            text = f"({text})"
        text = f"{array} {op} {text}"
    applicability = Applicability.SAFE if _is_ndarray(ctx, func, array, loop) else Applicability.UNSAFE
    # The loop header's comment moves to the new line; everything after the statement stays as it was.
    header_comment = loop.body.header.comment
    suffix = f"  {header_comment.value}" if header_comment is not None else ""
    start, _ = ctx.position(loop)
    _, body_end = ctx.position(stmt)
    return make_fix(
        applicability,
        f"Vectorise: `{array}[:] = {text}`",
        [Edit(f"{array}[:] = {text}{suffix}", start, body_end)],
    )


def _elementwise(ctx, value) -> bool:
    for node in walk(value):
        if isinstance(node, cst.Call):
            qual = ctx.qualified_name(node.func)
            if qual not in elementwise_numpy():
                return False
        elif isinstance(node, (cst.Lambda, cst.ListComp, cst.GeneratorExp, cst.DictComp, cst.SetComp)):
            return False
    return True


def _is_ndarray(ctx, func, array: str, loop) -> bool:
    """True when the last assignment of `array` before the loop is a NumPy call."""
    loop_row = ctx.position(loop)[0].row
    value = None
    for node in walk(func.body):
        if isinstance(node, cst.Assign) and len(node.targets) == 1:
            t = node.targets[0].target
            if isinstance(t, cst.Name) and t.value == array and ctx.position(node)[0].row < loop_row:
                value = node.value
    if not isinstance(value, cst.Call):
        return False
    qual = ctx.qualified_name(value.func) or ""
    return qual.startswith("numpy.") and qual not in {"numpy.ndarray.tolist"}


class _Gather(NamedTuple):
    """`for <index> in <iter>: <parts>.append(<array>[<index>])`, or a window `[<index>:<index> + <window>]`."""

    loop: cst.For
    index: str
    parts: str
    array: cst.BaseExpression
    window: cst.BaseExpression | None
    piece: cst.Subscript


def _gather_loop(ctx, loop: cst.For) -> _Gather | None:
    if loop.orelse is not None or not isinstance(loop.target, cst.Name):
        return None
    body = loop.body
    if not isinstance(body, cst.IndentedBlock) or len(body.body) != 1:
        return None
    line = body.body[0]
    if not isinstance(line, cst.SimpleStatementLine) or len(line.body) != 1 or not isinstance(line.body[0], cst.Expr):
        return None
    call = line.body[0].value
    if not (
        isinstance(call, cst.Call)
        and isinstance(call.func, cst.Attribute)
        and isinstance(call.func.value, cst.Name)
        and call.func.attr.value == "append"
        and len(call.args) == 1
        and call.args[0].keyword is None
        and not call.args[0].star
    ):
        return None
    index, parts, piece = loop.target.value, call.func.value.value, call.args[0].value
    if not isinstance(piece, cst.Subscript) or len(piece.slice) != 1:
        return None
    array = piece.value
    if not isinstance(array, (cst.Name, cst.Attribute)) or {index, parts} & names_in(array):
        return None
    part = piece.slice[0].slice
    if isinstance(part, cst.Index) and isinstance(part.value, cst.Name) and part.value.value == index:
        return _Gather(loop, index, parts, array, None, piece)
    if (
        isinstance(part, cst.Slice)
        and part.step is None
        and isinstance(part.lower, cst.Name)
        and part.lower.value == index
        and isinstance(part.upper, cst.BinaryOperation)
        and isinstance(part.upper.operator, cst.Add)
        and isinstance(part.upper.left, cst.Name)
        and part.upper.left.value == index
        and not ({index, parts} & names_in(part.upper.right))
        and not any(isinstance(n, cst.Call) for n in walk(part.upper.right))
    ):
        return _Gather(loop, index, parts, array, part.upper.right, piece)
    return None


def _gather_fix(ctx, gather: _Gather, func, kinds: ValueKinds):
    """One fancy index in place of the loop, when the pieces are joined by `np.vstack(parts)` after it."""
    loop = gather.loop
    block = ctx.parent(loop)
    siblings = list(block.body) if isinstance(block, cst.IndentedBlock) else []
    position = next((k for k, stmt in enumerate(siblings) if stmt is loop), None)
    if position is None or position + 1 >= len(siblings):
        return None
    join_line = siblings[position + 1]
    join = _vstack_of(ctx, join_line, gather.parts)
    if join is None:
        return None
    receiver, numpy = join
    array_kind, index_kind = kinds.of(gather.array, func), kinds.of(loop.iter, func)
    array, rows = ctx.code(gather.array), ctx.code(loop.iter)
    if not isinstance(loop.iter, (cst.Name, cst.Attribute, cst.Subscript, cst.Call)):
        rows = f"({rows})"
    if gather.window is None:
        if not is_index_vector(index_kind) or array_kind is None or array_kind.rank not in (1, 2):
            return None
        gathered = f"{array}[{rows}]" if array_kind.rank == 2 else f"{array}[{rows}][:, None]"
    else:
        if index_kind is None or index_kind.type != "ndarray" or not is_index_vector(index_kind) \
                or array_kind is None or array_kind.rank != 1:
            return None
        gathered = f"{array}[{rows}[:, None] + {numpy}.arange({ctx.code(gather.window)})]"
    if not _only_built_and_joined(ctx, func, gather.parts, join_line):
        return None
    seed = _seed_before(ctx, siblings, position, gather.parts, func)
    # With no rows the loop adds nothing; the index still adds an empty piece, which leaves the stack
    # alone only when the seed is an empty array of the same dtype and width.
    width = f"{array}.shape[1]" if array_kind.rank == 2 else "1"
    same_when_empty = gather.window is None and seed is not None and seed[1] is not None \
        and _empty_twin(ctx, kinds, func, seed[1], array_kind, width)
    applicability = Applicability.SAFE if same_when_empty else Applicability.UNSAFE
    start = ctx.position(loop)[0]
    if seed is None:
        content = f"{gather.parts}.append({gathered})"
        end = ctx.position(loop)[1]
    else:
        seed_line, seed_value = seed
        start = ctx.position(seed_line)[0]
        end = ctx.position(join_line.body[0])[1]
        pieces = ", ".join([*([ctx.code(seed_value)] if seed_value is not None else []), gathered])
        content = f"{receiver}{numpy}.vstack([{pieces}])" if seed_value is not None else f"{receiver}{gathered}"
    return make_fix(applicability, f"Gather with one index: `{gathered}`", [Edit(content, start, end)])


def _vstack_of(ctx, line, parts: str) -> tuple[str, str] | None:
    """(what receives the result, numpy alias) when `line` is `<name> = <np>.vstack(<parts>)` or
    `return <np>.vstack(<parts>)`; the first is `<name> = ` or `return `."""
    if not isinstance(line, cst.SimpleStatementLine) or len(line.body) != 1:
        return None
    stmt = line.body[0]
    if isinstance(stmt, cst.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0].target, cst.Name):
        receiver = f"{stmt.targets[0].target.value} = "
    elif isinstance(stmt, cst.Return) and stmt.value is not None:
        receiver = "return "
    else:
        return None
    call = stmt.value
    if not isinstance(call, cst.Call) or ctx.qualified_name(call.func) != "numpy.vstack" \
            or not isinstance(call.func, cst.Attribute):
        return None
    if len(call.args) != 1 or call.args[0].keyword is not None or call.args[0].star:
        return None
    if not (isinstance(call.args[0].value, cst.Name) and call.args[0].value.value == parts):
        return None
    return receiver, ctx.code(call.func.value)


def _seed_before(ctx, siblings, position: int, parts: str, func):
    """(line, first element or None) when the loop directly follows `<parts> = [<seed>]` or `<parts> = []`
    and the list is used nowhere else, so the three statements can become one."""
    if position == 0:
        return None
    line = siblings[position - 1]
    if not isinstance(line, cst.SimpleStatementLine) or len(line.body) != 1:
        return None
    stmt = line.body[0]
    if not (
        isinstance(stmt, cst.Assign)
        and len(stmt.targets) == 1
        and isinstance(stmt.targets[0].target, cst.Name)
        and stmt.targets[0].target.value == parts
        and isinstance(stmt.value, cst.List)
        and len(stmt.value.elements) <= 1
        and not any(isinstance(el, cst.StarredElement) for el in stmt.value.elements)
    ):
        return None
    if sum(1 for n in walk(func.body) if isinstance(n, cst.Name) and n.value == parts) != 3:
        return None  # the list, its append and its join: nothing else may see it
    elements = stmt.value.elements
    if elements and parts in names_in(elements[0].value):
        return None
    return line, (elements[0].value if elements else None)


def _only_built_and_joined(ctx, func, parts: str, join_line) -> bool:
    """Nothing but `parts = [...]`, `parts.append(...)` and the join touches the list, so no code can
    tell one piece holding all the rows from one piece per row."""
    join_arg = join_line.body[0].value.args[0].value
    for node in walk(func.body):
        if not (isinstance(node, cst.Name) and node.value == parts) or node is join_arg:
            continue
        parent = ctx.parent(node)
        if isinstance(parent, cst.AssignTarget) and isinstance(ctx.parent(parent).value, cst.List):
            continue
        if isinstance(parent, cst.Attribute) and parent.attr.value == "append" and isinstance(ctx.parent(parent), cst.Call):
            continue
        return False
    return True


def _empty_twin(ctx, kinds: ValueKinds, func, seed, array_kind, width: str) -> bool:
    """`seed` is `np.zeros/empty/ones((0, <width>))` (maybe through a local) of the array's exact dtype."""
    value = seed
    if isinstance(seed, cst.Name):
        assignment = kinds.reaching_assignment(seed, func)
        if assignment is None or len(assignment.targets) != 1 or not isinstance(assignment.targets[0].target, cst.Name):
            return False
        value = assignment.value
    if not isinstance(value, cst.Call) or ctx.qualified_name(value.func) not in ("numpy.zeros", "numpy.empty", "numpy.ones"):
        return False
    shape = value.args[0].value if value.args and value.args[0].keyword is None else None
    if not (isinstance(shape, cst.Tuple) and len(shape.elements) == 2):
        return False
    first, second = (ctx.code(el.value).replace(" ", "") for el in shape.elements)
    seed_kind = kinds.of(value, func)
    return (
        first == "0"
        and second == width.replace(" ", "")
        and seed_kind is not None
        and seed_kind.dtype == array_kind.dtype
        and dtype_class(array_kind.dtype) in ("int", "float", "bool")
    )


# ---------------------------------------------------------------------------------------------------
# Element-by-element copies: `for j in range(len(s)): padded[i][j] = s[j]` is one slice assignment.


class _Copy(NamedTuple):
    loop: cst.For                     # the loop copying one element per iteration
    outer: cst.For                    # the loop reported: the outermost one holding only this copy
    target: cst.BaseExpression        # where the elements go, without the element index: `padded[i]`
    prefix: list                      # the destination's index before the element: [`i`]
    array: str                        # the destination array's name
    source: cst.BaseExpression        # the sequence the elements come from: `batch[i]`
    bound: cst.BaseExpression | None  # how many elements, when not all of the source
    exact: bool                       # the bound never exceeds the source's length
    counted: bool = False             # the element's position is a counter of the loop's own


def _element_copy(ctx, loop: cst.For, outer: cst.For | None = None) -> _Copy | None:
    outer = outer or loop
    body = loop.body.body if isinstance(loop.body, cst.IndentedBlock) else ()
    if len(body) == 1 and isinstance(body[0], cst.For) and loop.orelse is None:
        return _element_copy(ctx, body[0], outer)
    if loop.orelse is not None or loop.asynchronous is not None:
        return None
    if len(body) == 2:
        return _counted_copy(ctx, loop, outer, body)
    if len(body) != 1:
        return None
    line = body[0]
    if not (isinstance(line, cst.SimpleStatementLine) and len(line.body) == 1 and isinstance(line.body[0], cst.Assign)
            and len(line.body[0].targets) == 1):
        return None
    target, value = line.body[0].targets[0].target, line.body[0].value
    parsed = _element_target(target)
    if parsed is None:
        return None
    array, prefix, index = parsed
    header = _copy_header(ctx, loop)
    if header is None:
        return None
    name, item, source, bound, exact = header
    if index != name or any(_uses(p, {name}) for p in prefix):
        return None
    if item is not None:
        if not (isinstance(value, cst.Name) and value.value == item):
            return None
    else:
        if not (isinstance(value, cst.Subscript) and len(value.slice) == 1 and isinstance(value.slice[0].slice, cst.Index)
                and isinstance(value.slice[0].slice.value, cst.Name) and value.slice[0].slice.value.value == name):
            return None
        if source is not None and ctx.code(value.value) != ctx.code(source):
            return None
        source = value.value
    if source is None or _uses(source, {name}) or (bound is not None and _uses(bound, {name})):
        return None
    if not ctx.is_sample_data(source, live=True):
        return None
    return _Copy(loop, outer, target, prefix, array, source, bound, exact)


def _counted_copy(ctx, loop: cst.For, outer: cst.For, body) -> _Copy | None:
    """`for box in boxes: out[i, k] = box; k = k + 1`: the same copy with a counter of its own. Reported
    without a fix (the counter's value after the loop would have to be rebuilt too)."""
    if not isinstance(loop.target, cst.Name):
        return None
    first, second = body
    if not all(isinstance(b, cst.SimpleStatementLine) and len(b.body) == 1 for b in body):
        return None
    assign, step = first.body[0], second.body[0]
    if not (isinstance(assign, cst.Assign) and len(assign.targets) == 1 and isinstance(assign.value, cst.Name)
            and assign.value.value == loop.target.value):
        return None
    parsed = _element_target(assign.targets[0].target)
    if parsed is None:
        return None
    array, prefix, counter = parsed
    increments = (
        isinstance(step, cst.AugAssign) and isinstance(step.operator, cst.AddAssign)
        and isinstance(step.target, cst.Name) and step.target.value == counter
        and isinstance(step.value, cst.Integer) and step.value.value == "1"
    ) or (
        isinstance(step, cst.Assign) and len(step.targets) == 1 and isinstance(step.targets[0].target, cst.Name)
        and step.targets[0].target.value == counter and ctx.code(step.value).replace(" ", "") == f"{counter}+1"
    )
    if not increments or not ctx.is_sample_data(loop.iter, live=True):
        return None
    return _Copy(loop, outer, assign.targets[0].target, prefix, array, loop.iter, None, False, counted=True)


def _element_target(target) -> tuple[str, list, str] | None:
    """("padded", [i], "j") for `padded[i][j]` and `padded[i, j]`."""
    if not isinstance(target, cst.Subscript) or not all(isinstance(e.slice, cst.Index) for e in target.slice):
        return None
    last = target.slice[-1].slice.value
    if not isinstance(last, cst.Name):
        return None
    prefix = [e.slice.value for e in target.slice[:-1]]
    base = target.value
    while isinstance(base, cst.Subscript):
        if not all(isinstance(e.slice, cst.Index) for e in base.slice):
            return None
        prefix = [e.slice.value for e in base.slice] + prefix
        base = base.value
    if not isinstance(base, cst.Name) or not prefix:
        return None
    return base.value, prefix, last.value


def _copy_header(ctx, loop: cst.For):
    """(index, item, source, bound, exact) of `for j in range(len(s))`, `range(min(len(s), w))`,
    `range(n)` and `for j, v in enumerate(s)`."""
    it = loop.iter
    if not (isinstance(it, cst.Call) and isinstance(it.func, cst.Name) and len(it.args) == 1 and not it.args[0].keyword):
        return None
    arg = it.args[0].value
    if it.func.value == "enumerate" and isinstance(loop.target, cst.Tuple) and len(loop.target.elements) == 2:
        index, item = (e.value for e in loop.target.elements)
        if isinstance(index, cst.Name) and isinstance(item, cst.Name):
            return index.value, item.value, arg, None, True
        return None
    if it.func.value != "range" or not isinstance(loop.target, cst.Name):
        return None
    name = loop.target.value
    if _is_len(arg):
        return name, None, arg.args[0].value, None, True
    if isinstance(arg, cst.Call) and ctx.qualified_name(arg.func) == "min" and len(arg.args) == 2:
        lens = [a.value for a in arg.args if _is_len(a.value)]
        if len(lens) == 1:
            return name, None, lens[0].args[0].value, arg, True
    return name, None, None, arg, False


def _is_len(expr) -> bool:
    return isinstance(expr, cst.Call) and isinstance(expr.func, cst.Name) and expr.func.value == "len" \
        and len(expr.args) == 1


def _copy_fix(ctx, copy: _Copy, func):
    """`padded[i, :len(s)] = s` (or `[:n] = s[:n]` for a bound), replacing the copying loop."""
    if copy.counted:
        return None
    prefix = ", ".join(ctx.code(p) for p in copy.prefix)
    source = ctx.code(copy.source)
    if copy.bound is None:
        text = f"{copy.array}[{prefix}, :len({source})] = {source}"
    else:
        bound = ctx.code(copy.bound)
        text = f"{copy.array}[{prefix}, :{bound}] = {source}[:{bound}]"
    safe = copy.exact and _is_ndarray(ctx, func, copy.array, copy.outer)
    start, _ = ctx.position(copy.loop)
    _, end = ctx.position(copy.loop.body.body[0])
    return make_fix(
        Applicability.SAFE if safe else Applicability.UNSAFE,
        f"Assign the slice at once: `{text}`",
        [Edit(text, start, end)],
    )


def _self_attribute(expr) -> bool:
    """`self.x`: a dataset attribute, whose rows a gather loop picks even when the picks are fixed."""
    return isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name) and expr.value.value == "self"


# ---------------------------------------------------------------------------------------------------
# A batch filled one row at a time from an array: `for i, k in enumerate(ids): X[i] = self.x[k]` is one
# fancy index, `X[:len(ids)] = self.x[ids]`. Statements that fill from a dict or call functions stay.

_ROW_METHODS = ("reshape", "astype")  # what a fill may do to the row on its way into the batch


class _Move(NamedTuple):
    line: cst.SimpleStatementLine   # the fill, which leaves the loop
    target: cst.Subscript           # `X[i]`, `X[i,]`, `X[i, ..., 0]`
    batch: str                      # `X`: an ndarray the function made
    array: cst.BaseExpression       # `self.x`: an ndarray the row comes from
    methods: list                   # `.reshape(...)`/`.astype(...)` calls on the row, innermost first


class _FillLoop(NamedTuple):
    loop: cst.For
    ids: cst.BaseExpression         # what the loop walks: the rows' ids
    moves: list                     # the fills that become one index each
    stays: list                     # every other statement of the body, in order


def _fill_loop(ctx, loop: cst.For, func, kinds: ValueKinds) -> _FillLoop | None:
    """The loop when it fills a batch array row by row from ndarrays (and may do other things too)."""
    if loop.orelse is not None or loop.asynchronous is not None or not isinstance(loop.body, cst.IndentedBlock):
        return None
    header = _fill_header(ctx, loop)
    if header is None or _exits(loop.body) or any(isinstance(n, cst.Continue) for n in walk(loop.body)):
        return None
    counter, item, ids = header
    moves, stays = [], []
    for stmt in loop.body.body:
        move = _fill_move(ctx, stmt, counter, item, ids, func, kinds)
        (moves if move is not None else stays).append(move or stmt)
    if not moves:
        return None
    read = set().union(*(variables(m.array) | variables(ids) | {n for c in m.methods for n in variables(c)}
                         for m in moves))
    batches = {m.batch for m in moves}
    if read & batches:
        return None  # one fill reads what another writes
    for stmt in stays:
        if variables(stmt) & batches:
            return None  # the rest of the body reads or writes the batch the fills write
        written = {n for node in walk(stmt) for t in assignment_targets(node) for n in variables(t)}
        if written & read or bound_names(stmt) & read:
            return None  # ... or changes what they read
    return _FillLoop(loop, ids, moves, stays)


def _fill_header(ctx, loop: cst.For):
    """(counter, item or None, ids) for `for i, k in enumerate(ids)` and `for i in range(len(ids))`."""
    it = loop.iter
    if not isinstance(it, cst.Call) or len(it.args) != 1 or it.args[0].keyword is not None or it.args[0].star:
        return None
    qual, arg = ctx.qualified_name(it.func), it.args[0].value
    if qual == "enumerate" and isinstance(loop.target, cst.Tuple) and len(loop.target.elements) == 2:
        counter, item = (e.value for e in loop.target.elements)
        if not (isinstance(counter, cst.Name) and isinstance(item, cst.Name)):
            return None
        counter, item, ids = counter.value, item.value, arg
    elif qual == "range" and isinstance(loop.target, cst.Name) and _is_len(arg):
        counter, item, ids = loop.target.value, None, arg.args[0].value
    else:
        return None
    # `ids` is evaluated again by the fix (`len(ids)`, `x[ids]`): it must be a plain read
    if not isinstance(ids, (cst.Name, cst.Attribute, cst.Subscript)) or any(isinstance(n, cst.Call) for n in walk(ids)):
        return None
    if {counter, item} & variables(ids):
        return None
    return counter, item, ids


def _fill_move(ctx, stmt, counter: str, item: str | None, ids, func, kinds: ValueKinds) -> _Move | None:
    if not (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Assign)):
        return None
    assign = stmt.body[0]
    found = fill_target(stmt, assign.value, counter)
    if found is None:
        return None
    batch, _rest = found
    value, methods = assign.value, []
    while isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) and value.func.attr.value in _ROW_METHODS:
        methods.insert(0, value)
        value = value.func.value
    if not (isinstance(value, cst.Subscript) and len(value.slice) == 1 and isinstance(value.slice[0].slice, cst.Index)):
        return None
    index = value.slice[0].slice.value
    picks_item = item is not None and isinstance(index, cst.Name) and index.value == item
    picks_id = ctx.code(index).replace(" ", "") == f"{ctx.code(ids).replace(' ', '')}[{counter}]"
    array = value.value
    if not (picks_item or picks_id) or not isinstance(array, (cst.Name, cst.Attribute)):
        return None
    loop_names = {counter, item, batch} - {None}
    if loop_names & variables(array) or any(loop_names & variables(a) for call in methods for a in call.args):
        return None
    if not (ctx.is_sample_data(value) or _self_attribute(array)):
        return None
    # Only an ndarray takes the whole id list as one index (a dict of labels, a list of arrays do not),
    # and only a batch the function made as an ndarray takes the rows as one slice.
    attr = is_self_attr(array)
    container = kinds.attribute_container(attr) if attr is not None else \
        ("ndarray" if (kind := kinds.of(array, func)) is not None and kind.type == "ndarray" else None)
    if container != "ndarray" or not _is_ndarray(ctx, func, batch, stmt):
        return None
    return _Move(stmt, assign.targets[0].target, batch, array, methods)


def _fill_fix(ctx, fill: _FillLoop, func, kinds: ValueKinds):
    ids = ctx.code(fill.ids)
    count = f"len({ids})"
    rewritten = [_fill_statement(ctx, move, ids, count) for move in fill.moves]
    if any(r is None for r in rewritten):
        return None
    ids_known = is_index_vector(kinds.of(fill.ids, func))
    # The fills now run before the rest of the body: the same unless that calls code that could see them.
    quiet = all(_allowed_call(ctx, n) for stmt in fill.stays for n in walk(stmt) if isinstance(n, cst.Call))
    proven = [ids_known and quiet and sure and _same_row_shape(ctx, kinds, func, move)
              for move, (_, sure) in zip(fill.moves, rewritten)]
    # Proven fills leave the loop first, by themselves: the others follow in a later pass, with
    # `--unsafe-fixes` (they only read arrays and write their own batch, so the order between them is free).
    chosen = [k for k, ok in enumerate(proven) if ok] or list(range(len(fill.moves)))
    applicability = Applicability.SAFE if all(proven[k] for k in chosen) else Applicability.UNSAFE
    moving = [fill.moves[k].line for k in chosen]
    kept = [stmt for stmt in fill.loop.body.body if not any(stmt is line for line in moving)]
    lines = []
    for k in chosen:
        line = fill.moves[k].line
        trailing = line.trailing_whitespace.comment
        lines += [ln.comment.value for ln in line.leading_lines if ln.comment is not None]
        lines.append(rewritten[k][0] + (f"  {trailing.value}" if trailing else ""))
    loop = fill.loop
    message = f"Fill with one index: `{rewritten[chosen[0]][0]}`" + (" and more" if len(chosen) > 1 else "")
    if not kept:
        indent = indentation_of(ctx, loop)
        header = loop.body.header.comment
        text = "\n".join(([header.value] if header else []) + lines).replace("\n", "\n" + indent)
        start, end = ctx.position(loop)
        return make_fix(applicability, message, [Edit(text, start, end)])
    rows: set[int] = set()
    for line in moving:
        first, last = statement_lines(ctx, line)
        rows.update(range(first, last + 1))
    # blank lines that would open the loop's body once the fills before them are gone
    if kept[0] is not loop.body.body[0]:
        first_kept = ctx.position(kept[0])[0].row - len(kept[0].leading_lines)
        for offset, blank in enumerate(kept[0].leading_lines):
            if blank.comment is not None:
                break
            rows.add(first_kept + offset)
    edits = [insert_lines_before(ctx, loop, lines)]
    for first, last in _runs(sorted(rows)):
        edits.append(Edit("", Location(first, 1), Location(last + 1, 1)))
    return make_fix(applicability, message, edits)


def _fill_statement(ctx, move: _Move, ids: str, count: str) -> tuple[str, bool] | None:
    """`X[:len(ids)] = a[ids]...` for one fill, and whether it also holds for an empty batch."""
    rest = "".join(f", {ctx.code(element.slice)}" for element in move.target.slice[1:])
    gathered, empty_ok = f"{ctx.code(move.array)}[{ids}]", True
    for call in move.methods:
        args = _with_rows_first(ctx, call, count) if call.func.attr.value == "reshape" else _arguments(ctx, call.args)
        if args is None:
            return None
        gathered += f".{call.func.attr.value}({args})"
        if any(isinstance(n, cst.UnaryOperation) for n in walk(call)):
            empty_ok = False  # `reshape(n, -1)` fails for an empty batch, where the loop did nothing
    return f"{move.batch}[:{count}{rest}] = {gathered}", empty_ok


def _with_rows_first(ctx, call: cst.Call, count: str) -> str | None:
    """The arguments of a row's `.reshape(...)` for all rows at once: the row count in front. None for a
    reshape in another memory order (`order="F"` would interleave the rows) or of a shape held in a name
    (an int or a tuple, which take the count differently)."""
    positional = [a for a in call.args if a.keyword is None]
    if not positional or any(a.keyword is not None for a in call.args):
        return None
    if len(positional) == 1 and not positional[0].star:
        shape = positional[0].value
        if isinstance(shape, cst.Tuple):
            return f"({count}, {_elements(ctx, shape.elements)})"
        if not isinstance(shape, (cst.Integer, cst.UnaryOperation)):
            return None
    return f"{count}, {_arguments(ctx, positional)}"


def _arguments(ctx, args) -> str:
    return ", ".join(ctx.code(a.with_changes(comma=cst.MaybeSentinel.DEFAULT)) for a in args)


def _elements(ctx, elements) -> str:
    return ", ".join(ctx.code(e.with_changes(comma=cst.MaybeSentinel.DEFAULT)) for e in elements)


def _same_row_shape(ctx, kinds: ValueKinds, func, move: _Move) -> bool:
    """The row has the shape of the batch's row, so the rows broadcast into the slice as each row did
    into its place (a row of lower rank broadcasts differently against many rows): the row is reshaped
    to the very shape the batch was allocated with after its first axis, or both ranks are known."""
    if len(move.target.slice) != 1:
        return False
    batch = next(n for n in walk(move.target) if isinstance(n, cst.Name) and n.value == move.batch)
    reshapes = [call for call in move.methods if call.func.attr.value == "reshape"]
    if reshapes:
        allocation = kinds.reaching_assignment(batch, func)
        call = allocation.value if allocation is not None else None
        if not (isinstance(call, cst.Call) and ctx.qualified_name(call.func) in _ALLOCATIONS and call.args
                and call.args[0].keyword is None and isinstance(call.args[0].value, cst.Tuple)):
            return False
        last = reshapes[-1]
        given = last.args[0].value if len(last.args) == 1 and isinstance(last.args[0].value, cst.Tuple) else None
        written = _elements(ctx, given.elements) if given is not None else _arguments(ctx, last.args)
        wanted = _elements(ctx, call.args[0].value.elements[1:])
        return written.replace(" ", "") == wanted.replace(" ", "")
    batch_kind, array_kind = kinds.of(batch, func), kinds.of(move.array, func)
    return batch_kind is not None and array_kind is not None and batch_kind.rank is not None \
        and batch_kind.rank == array_kind.rank


_ALLOCATIONS = ("numpy.empty", "numpy.zeros", "numpy.ones", "numpy.full")


def _runs(rows: list[int]):
    """(first, last) of each run of consecutive rows."""
    start = previous = None
    for row in rows:
        if start is None:
            start = previous = row
        elif row == previous + 1:
            previous = row
        else:
            yield start, previous
            start = previous = row
    if start is not None:
        yield start, previous
