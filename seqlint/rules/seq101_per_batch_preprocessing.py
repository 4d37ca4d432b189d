"""SEQ101 per-batch-preprocessing: deterministic preprocessing of the dataset redone on every batch."""

from __future__ import annotations

from functools import lru_cache

import libcst as cst

from seqlint.analysis.dataflow import FILE, MEMORY, RANDOM, is_self_attr
from seqlint.analysis.hotpath import Phase, names_in, walk
from seqlint.analysis import effects
from seqlint.analysis.rowwise import (
    THRESHOLD_OPS, RowWiseProof, attribute_root, call_table, in_place_target, is_module_name,
    vectorised_loop,
)
from seqlint.analysis.tables import elementwise_arithmetic, load_data_table, preprocessing_table
from seqlint.findings import Applicability, Edit
from seqlint.fixes import ensure_import, indentation_of, insert, is_docstring, line_start, make_fix, replace
from seqlint.rules.base import Invalid, Rule

_SCALING_OPS = (cst.Add, cst.Subtract, cst.Multiply, cst.Divide)
_MEMORY_HINT = "preprocess once: `seqkit.preprocess_once(fn, x)` in `__init__`, or `seqkit.PreprocessedSequence`"
_FILE_HINT = "read and preprocess once: `seqkit.pack(files, path, transform=fn)`, then `seqkit.MemmapSequence`"


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
(`to_categorical`, `tf.one_hot`, `pd.get_dummies`), tokenising (`tokenizer.texts_to_sequences`,
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
because the steps are cost of their own and moving them is a separate decision. The hint differs:
for in-memory data it is `seqkit.preprocess_once` / `PreprocessedSequence`; for file data it is
`seqkit.pack(files, path, transform=fn)`, which reads and preprocesses once, then `MemmapSequence`.

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
Three fixes, tried in this order. All three are **safe** only when the preprocessing is proven
row-wise and deterministic: straight-line NumPy over the batch where every step keeps one result
per row (element-wise operators and ufuncs with settings, `astype`, `copy`, reductions and FFTs
over axes other than the first, `x[:, ...]` indexing, `reshape(len(x), ...)`, `x @ W` on a batch
of rank 2 or more, `to_categorical(y, num_classes=...)`), reading only literals, module names and
attributes set in `__init__` and never changed per batch or epoch, and never writing into the
caller's batch. A loop `for i in range(len(b)): t[i] = E(b[i])` (or over `enumerate(b)`) with an
element-wise `E` becomes `t[:] = E(b)` on the way. Other loops over the rows
(`for i, text in enumerate(texts)`) are proven row-wise when their body reads only its own row and
settings, through Python builtins and the non-mutating methods of str, dict and list (trusted by name:
a custom object with a mutating `get` would fool it), and writes only row `i` of an array made fresh
in the function: a tokenizer with padding is hoisted whole.

1. **Rebase**: when the class holds only data, a batch size and settings, `__len__` is
   `ceil(len(self.x) / self.batch_size)` and `__getitem__` slices batch `idx` of x and y, preprocesses
   one of them and returns both, the class is rebased on `seqkit.PreprocessedSequence` with a
   `preprocess_x`/`preprocess_y` method holding the steps; the slicing boilerplate goes away.
2. **Helper hoist**: when per-batch code only ever passes a dataset attribute, sliced, to one helper
   (a method or module function), `self.data = seqkit.preprocess_once(helper, self.data)` is added to
   `__init__` and the call is replaced by the slice.
3. **Expression hoist**: otherwise, for `x = self.data[s]` (or `self.data[s]` itself)
feeding one preprocessing expression `E(x)` in `__getitem__` or a method it calls, it appends
`self.data = seqkit.preprocess_once(lambda rows: E(rows), self.data)` to `__init__` (adding
`import seqkit`) and leaves `x` in place of `E(x)`. It is offered only when `E` uses nothing but the
data, literals, module-level names and attributes never reassigned per batch or epoch, when `x` is
assigned once and used once, and when `self.data` is read nowhere else per batch.

It is **safe** when `E` is element-wise arithmetic (operators, NumPy ufuncs) with such constants and
`self.data` is assigned from a NumPy call in `__init__`: each row's result is then the same whether
computed in a batch or all at once, so the batches are identical. Otherwise (other preprocessing
calls, or data that may be a list or DataFrame) it is **unsafe**; `preprocess_once` still checks at
run time, on a probe, that the function is row-wise. Preprocessing of data read from files has no
fix (it is `seqkit pack`'s job; see SEQ201).
"""

    valid = [
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
        self.y = seqkit.preprocess_once(lambda rows: rows / 2, self.y)

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
        self.x = seqkit.preprocess_once(lambda rows: (rows * 2.5).astype(rows.dtype), self.x)

    def __getitem__(self, idx):
        batch = np.copy(self.x[idx * self.batch_size:(idx + 1) * self.batch_size])
        return batch

    def __len__(self):
        return -(-len(self.x) // self.batch_size)
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


class Windows(seqkit.PreprocessedSequence):
    def __init__(self, x, y, batch_size=8, gain=2.0, **kwargs):
        self.gain = gain
        super().__init__(x, y, batch_size=batch_size, preprocess=self.preprocess_x, **kwargs)

    def preprocess_x(self, batch_x):
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
        self.x = seqkit.preprocess_once(window, self.x)
        self.masks = seqkit.preprocess_once(self._binarize, self.masks)

    def _binarize(self, masks):
        out = np.empty(masks.shape, dtype=np.float32)
        out[:] = masks > self.cut
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
        flow = ctx.dataflow
        table = preprocessing_table()
        rebases: dict[int, object] = {}
        for func, seq, path in flow.placements:
            volatile = flow.volatile_attrs(seq)
            const_locals = _constant_locals(ctx, flow, func, volatile)
            where = " -> ".join(path)
            skip: set[int] = set()
            for node in walk(func.body):
                if id(node) in skip:
                    continue
                message = None
                if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, _SCALING_OPS):
                    message = self._scaling(ctx, flow, func, node, volatile, const_locals)
                elif isinstance(node, cst.Call):
                    message = self._call(ctx, flow, func, node, table)
                elif isinstance(node, cst.Comparison) and len(node.comparisons) == 1:
                    message = self._threshold(ctx, flow, func, node, volatile, const_locals)
                if (
                    message is None
                    or _in_index(ctx, node, func)
                    or _under_random_branch(ctx, flow, func, node)
                    or _draws_random(flow, func, node)
                ):
                    continue
                skip.update(id(n) for n in walk(node))
                from_file = FILE in flow.taint(func, node)
                yield ctx.report(
                    self,
                    node,
                    f"{message} on every batch (in {where}); do it once",
                    fix=None if from_file else (
                        _cached_rebase(rebases, ctx, seq)
                        or (
                            _cached_helper_hoist(rebases, ctx, seq, func, volatile)
                            if func is not seq.methods.get("__getitem__") else None
                        )
                        or hoist_fix(ctx, seq, func, node, volatile)
                    ),
                    hint=_FILE_HINT if from_file else _MEMORY_HINT,
                )

    def _scaling(self, ctx, flow, func, node, volatile, const_locals):
        sides = (node.left, node.right)
        taints = [flow.taint(func, side) for side in sides]
        if any(_random_only(t) for t in taints) or _is_text(node):
            return None
        for data, other in ((0, 1), (1, 0)):
            if taints[data] & {MEMORY, FILE} and (
                taints[other] or _constant(ctx, sides[other], volatile, const_locals)
            ):
                return f"`{_short(ctx.code(node))}` scales/normalises the data"
        return None

    def _threshold(self, ctx, flow, func, node, volatile, const_locals):
        """`mask > 127`: binarising data against a constant."""
        if not isinstance(node.comparisons[0].operator, THRESHOLD_OPS):
            return None
        sides = (node.left, node.comparisons[0].comparator)
        for data, other in ((0, 1), (1, 0)):
            taint = flow.taint(func, sides[data])
            if taint & {MEMORY, FILE} and _constant(ctx, sides[other], volatile, const_locals):
                return f"`{_short(ctx.code(node))}` thresholds the data"
        return None

    def _call(self, ctx, flow, func, call, table):
        if flow.callee(flow.seq_of[id(func)], call, func) is not None:
            return None  # a helper of this module: its own body is checked, where the work is
        qual = ctx.qualified_name(call.func)
        arg_taint = frozenset().union(*(flow.taint(func, a.value) for a in call.args)) if call.args else frozenset()
        receiver_taint = frozenset()
        method = None
        receiver = None
        if isinstance(call.func, cst.Attribute):
            method = call.func.attr.value
            receiver = call.func.value
            receiver_taint = flow.taint(func, receiver)
        data = {MEMORY, FILE}
        taint = arg_taint | receiver_taint
        if not taint & data or _random_only(receiver_taint) or any(
            _random_only(flow.taint(func, a.value)) for a in call.args
        ):
            return None
        if qual is not None and (effects.is_random_call(qual) or effects.is_io_call(qual)):
            return None
        if table.is_function(qual) or qual in elementwise_arithmetic():
            return f"`{qual.rsplit('.', 1)[-1]}(...)` preprocesses the data"
        if method == "astype" and not (MEMORY in receiver_taint and FILE not in receiver_taint):
            return None  # converting freshly decoded file data is part of decoding it
        if method in table.methods and (receiver_taint & data or arg_taint & data):
            return f"`.{method}(...)` preprocesses the data"
        callee_name = (is_self_attr(call.func) or (call.func.value if isinstance(call.func, cst.Name) else "")).lower()
        if callee_name and any(word in callee_name for word in table.callable_receivers) and arg_taint & data:
            return f"`{ctx.code(call.func)}(...)` preprocesses the data"
        return None


def _short(code: str, limit: int = 60) -> str:
    code = " ".join(code.split())
    return code if len(code) <= limit else code[: limit - 3] + "..."


def _is_text(node: cst.BinaryOperation) -> bool:
    """String building (paths, labels) is not numeric preprocessing."""
    strings = (cst.SimpleString, cst.FormattedString, cst.ConcatenatedString)
    return isinstance(node.left, strings) or isinstance(node.right, strings)


def _random_only(taint) -> bool:
    """A random draw that is not data (noise, a random factor): the operation is augmentation.
    Data that went through augmentation earlier is still data: scaling it is deterministic."""
    return RANDOM in taint and not taint & {MEMORY, FILE}


def _constant(ctx, expr, volatile: set[str], const_locals: set[str]) -> bool:
    """True for values fixed for the whole training run: literals, attributes set once, module names."""
    if isinstance(expr, (cst.Integer, cst.Float, cst.Imaginary)):
        return True
    if isinstance(expr, cst.UnaryOperation):
        return _constant(ctx, expr.expression, volatile, const_locals)
    if isinstance(expr, cst.BinaryOperation):
        return _constant(ctx, expr.left, volatile, const_locals) and _constant(ctx, expr.right, volatile, const_locals)
    if isinstance(expr, cst.Name):
        return expr.value in const_locals
    if isinstance(expr, cst.Attribute):
        root = expr
        while isinstance(root, cst.Attribute):
            root = root.value
        if isinstance(root, cst.Name) and root.value == "self":
            attr = expr
            while isinstance(attr.value, cst.Attribute):
                attr = attr.value
            return attr.attr.value not in volatile
        return isinstance(root, cst.Name) and root.value in ctx.imports  # np.pi
    if isinstance(expr, cst.Subscript):
        return _constant(ctx, expr.value, volatile, const_locals)
    if isinstance(expr, cst.Call):
        qual = ctx.qualified_name(expr.func)
        known = qual in call_table().constant_calls or qual in elementwise_arithmetic() or effects.is_pure_numpy(qual)
        return known and all(
            _constant(ctx, a.value, volatile, const_locals) or isinstance(a.value, (cst.List, cst.Tuple, cst.SimpleString))
            for a in expr.args
        )
    return False


def _constant_locals(ctx, flow, func, volatile: set[str]) -> set[str]:
    """Names that hold a constant in this function: module-level names, imports, untainted parameters
    and locals assigned only constants."""
    module_names = set(ctx.imports)
    for stmt in ctx.module.body:
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, (cst.Assign, cst.AnnAssign)):
                    targets = small.targets if isinstance(small, cst.Assign) else [small]
                    for target in targets:
                        module_names.update(n.value for n in walk(target.target) if isinstance(n, cst.Name))
    assigned: dict[str, list] = {}
    for node in walk(func.body):
        if isinstance(node, cst.Assign):
            for target in node.targets:
                if isinstance(target.target, cst.Name):
                    assigned.setdefault(target.target.value, []).append(node.value)
        elif isinstance(node, (cst.AugAssign, cst.For, cst.CompFor)):
            target = node.target
            for sub in walk(target):
                if isinstance(sub, cst.Name):
                    assigned.setdefault(sub.value, []).append(None)
    params = {p.name.value for p in list(func.params.params) + list(func.params.kwonly_params)}
    env = flow.env.get(id(func), {})
    result = {n for n in module_names if n not in assigned and n not in params}
    # A helper parameter no call site feeds data into holds a setting (`std`, `scale`).
    result |= {p for p in params if p not in assigned and not env.get(p) and p != "self"}
    for _ in range(2):
        for name, values in assigned.items():
            if name not in params and all(v is not None and _constant(ctx, v, volatile, result) for v in values):
                result.add(name)
    return result


def _in_index(ctx, node, func) -> bool:
    """Inside the brackets of a subscript: index arithmetic, not data."""
    for ancestor in ctx.ancestors(node):
        if ancestor is func:
            return False
        if isinstance(ancestor, cst.SubscriptElement):
            return True
    return False


def _draws_random(flow, func, node) -> bool:
    """Whether a random draw feeds `node` directly (`np.clip(x * uniform(0.8, 1.2), 0, 1)`): the value
    differs every epoch, so caching it would freeze the augmentation. Indices are skipped (a random
    row of preprocessed data is still preprocessed data), and so is data augmented earlier and only
    named here (`x / 255.` after `x = x + noise` is a deterministic step of its own)."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, cst.SubscriptElement):
            continue
        if current is not node and isinstance(current, (cst.Name, cst.Call)) and _random_only(flow.taint(func, current)):
            return True
        stack.extend(current.children)
    return False


def _under_random_branch(ctx, flow, func, node) -> bool:
    for ancestor in ctx.ancestors(node):
        if ancestor is func:
            return False
        if isinstance(ancestor, (cst.If, cst.While, cst.IfExp)) and RANDOM in flow.taint(func, ancestor.test):
            return True
    return False


def hoist_fix(ctx, seq, func, expr, volatile: set[str]):
    """The fix moving `expr` (preprocessing of `self.<attr>[...]`) into `__init__`, or None."""
    init = seq.own_methods.get("__init__")
    if init is None or not isinstance(init.body, cst.IndentedBlock) or any(
        isinstance(n, (cst.Return, cst.Yield)) for n in walk(init.body)
    ):
        return None
    found = _hoistable_data(ctx, func, expr)
    if found is None:
        return None
    data, attr, _assign = found
    if attr in volatile or not _only_use_of(ctx, seq, attr):
        return None
    names = names_in(expr)
    param = "rows"
    while param in names:
        param += "_"
    rewritten = expr.visit(_Swap(data, param))
    if not _uses_only_constants(ctx, rewritten, param, volatile, attr):
        return None
    body = cst.Module([]).code_for_node(rewritten)
    statement_small = ctx.parent(expr)
    in_place = isinstance(statement_small, cst.Assign) and statement_small.value is expr and in_place_target(
        statement_small.targets[0].target, getattr(data, "value", "")
    )
    if in_place:  # `x[:] = E(x)` keeps x's dtype: so must the hoisted result
        body = f"({body}).astype({param}.dtype)"
    line = f"self.{attr} = seqkit.preprocess_once(lambda {param}: {body}, self.{attr})"
    last = init.body.body[-1]
    indent = indentation_of(ctx, last)
    _, end = ctx.position(last)
    edits = [insert(line_start(end.row + 1), f"{indent}{line}\n"), ensure_import(ctx, "seqkit")]
    statement = ctx.parent(ctx.parent(expr)) if isinstance(ctx.parent(expr), (cst.Assign,)) else None
    if (
        statement is not None
        and isinstance(statement, cst.SimpleStatementLine)
        and len(statement.body) == 1
        and isinstance(data, cst.Name)
        and _assigns_name(statement.body[0], data.value)
    ):
        start, stop = ctx.position(statement)
        edits.append(Edit("", line_start(start.row), line_start(stop.row + 1)))  # `x = E(x)` goes away
    else:
        edits.append(replace(ctx, expr, ctx.code(data)))
    safe = _elementwise_only(ctx, rewritten) and _numpy_assigned(ctx, init, attr)
    return make_fix(
        Applicability.SAFE if safe else Applicability.UNSAFE,
        f"Preprocess `self.{attr}` once in `__init__` with `seqkit.preprocess_once`",
        edits,
    )


class _Swap(cst.CSTTransformer):
    """Replace the data node (`x` or `self.data[s]`) by the lambda's parameter."""

    def __init__(self, target: cst.CSTNode, name: str):
        self.target, self.name = target, name

    def on_leave(self, original, updated):
        if original is self.target:
            return cst.Name(self.name)
        if isinstance(self.target, cst.Name) and isinstance(original, cst.Name) and original.value == self.target.value:
            return cst.Name(self.name)
        return updated


def _assigns_name(small, name: str) -> bool:
    """`x = ...`, or `x[:] = ...` / `x[...] = ...` (rewriting all of x in place)."""
    if not (isinstance(small, cst.Assign) and len(small.targets) == 1):
        return False
    target = small.targets[0].target
    if isinstance(target, cst.Name):
        return target.value == name
    return in_place_target(target, name)




def _batch_of(ctx, value):
    """`self.data[s]`, or a copy of it (`np.copy(...)`, `np.array(...)`, `.copy()`): the subscript."""
    if isinstance(value, cst.Subscript) and is_self_attr(value.value) is not None:
        return value
    if isinstance(value, cst.Call):
        if isinstance(value.func, cst.Attribute) and value.func.attr.value == "copy" and not value.args:
            return _batch_of(ctx, value.func.value) if isinstance(value.func.value, cst.Subscript) else None
        if ctx.qualified_name(value.func) in ("numpy.copy", "numpy.array") and len(value.args) == 1:
            inner = value.args[0].value
            return inner if isinstance(inner, cst.Subscript) and is_self_attr(inner.value) is not None else None
    return None


def _hoistable_data(ctx, func, expr):
    """(data node inside expr, dataset attribute, its local assignment or None)."""
    subscripts = [
        n for n in walk(expr)
        if isinstance(n, cst.Subscript) and is_self_attr(n.value) is not None
    ]
    if len(subscripts) == 1 and not any(
        n.value != "self" and not is_module_name(ctx, n.value)
        for n in _variables(expr) if not _inside(n, subscripts[0])
    ):
        return subscripts[0], is_self_attr(subscripts[0].value), None
    if subscripts:
        return None
    local_names = {
        n.value for n in _variables(expr) if n.value != "self" and not is_module_name(ctx, n.value)
    }
    if len(local_names) != 1:
        return None
    (name,) = local_names
    e_assign = ctx.parent(expr)
    e_assign = e_assign if _assigns_name(e_assign, name) and e_assign.value is expr else None
    assigns = [
        n for n in walk(func.body)
        if isinstance(n, (cst.Assign, cst.AugAssign, cst.AnnAssign, cst.For, cst.CompFor, cst.NamedExpr))
        and n is not e_assign
        and any(isinstance(t, cst.Name) and t.value == name for t in _targets(n))
    ]
    params = {p.name.value for p in list(func.params.params) + list(func.params.kwonly_params)}
    if len(assigns) != 1 or name in params or not isinstance(assigns[0], cst.Assign):
        return None
    assign = assigns[0]
    value = _batch_of(ctx, assign.value)
    if value is None:
        return None
    if len(assign.targets) != 1 or not isinstance(assign.targets[0].target, cst.Name):
        return None
    uses_in_expr = [n for n in _variables(expr) if n.value == name]
    if len(uses_in_expr) != 1:
        return None
    # Any other read must come after `x = E(x)` (it then sees preprocessed rows either way); with E
    # inline there may be none.
    skip = {id(n) for n in walk(assign.targets[0].target)} | {id(uses_in_expr[0])}
    if e_assign is not None:
        skip |= {id(n) for n in walk(e_assign.targets[0].target)}
    after = ctx.position(e_assign)[1] if e_assign is not None else None
    for node in _variables(func.body):
        if node.value == name and id(node) not in skip:
            if after is None or ctx.position(node)[0] < after:
                return None
    return uses_in_expr[0], is_self_attr(value.value), assign


def _variables(tree) -> list[cst.Name]:
    """Name nodes that are variables: not the `attr` of `a.attr`, nor keyword argument names."""
    skip = set()
    for node in walk(tree):
        if isinstance(node, cst.Attribute):
            skip.add(id(node.attr))
        elif isinstance(node, cst.Arg) and node.keyword is not None:
            skip.add(id(node.keyword))
    return [n for n in walk(tree) if isinstance(n, cst.Name) and id(n) not in skip]


def _targets(node):
    if isinstance(node, cst.Assign):
        return [t.target for t in node.targets]
    if isinstance(node, (cst.AugAssign, cst.AnnAssign, cst.For, cst.CompFor, cst.NamedExpr)):
        return list(walk(node.target))
    return []


def _inside(node, container) -> bool:
    return any(n is node for n in walk(container))




def _only_use_of(ctx, seq, attr: str) -> bool:
    """`self.<attr>` appears once in per-batch code: in the data subscript being hoisted."""
    count = 0
    for func in ctx.batch_functions(seq):
        for node in walk(func.body):
            if is_self_attr(node) == attr:
                count += 1
    return count == 1


def _uses_only_constants(ctx, rewritten, param: str, volatile: set[str], attr: str) -> bool:
    for node in _variables(rewritten):
        if node.value not in (param, "self") and not is_module_name(ctx, node.value):
            return False
    for node in walk(rewritten):
        if (name := is_self_attr(node)) is not None and (name in volatile or name == attr):
            return False
        if isinstance(node, (cst.Lambda, cst.Yield, cst.Await, cst.NamedExpr)):
            return False
        if isinstance(node, cst.Call):
            qual = ctx.qualified_name(node.func)
            if qual is not None and (effects.is_random_call(qual) or effects.is_io_call(qual)):
                return False
    return True


def _elementwise_only(ctx, rewritten) -> bool:
    for node in walk(rewritten):
        if isinstance(node, cst.Call):
            if ctx.qualified_name(node.func) not in elementwise_arithmetic():
                return False
        elif isinstance(node, (cst.Subscript, cst.Comparison, cst.BooleanOperation, cst.IfExp)):
            return False
    return True


def _numpy_assigned(ctx, init, attr: str) -> bool:
    for node in walk(init.body):
        if isinstance(node, cst.Assign) and len(node.targets) == 1 and is_self_attr(node.targets[0].target) == attr:
            qual = ctx.qualified_name(node.value) if isinstance(node.value, cst.Call) else None
            return bool(qual and qual.startswith("numpy."))
    return False


# ---------------------------------------------------------------------------------------------------
# Rebase on seqkit.PreprocessedSequence (safe when analysis.rowwise proves the preprocessing row-wise).






def _cached_rebase(cache: dict, ctx, seq):
    if id(seq.node) not in cache:
        cache[id(seq.node)] = rebase_fix(ctx, seq)
    return cache[id(seq.node)]


def rebase_fix(ctx, seq):
    """The safe fix rebasing a slice-then-preprocess class on `seqkit.PreprocessedSequence`, or None.

    Offered only for the plain pattern, where nothing of the class is lost: `__init__` stores the
    data, the batch size and settings; `__len__` is the ceiling of rows over batch size; `__getitem__`
    slices batch `idx` of x and y, preprocesses one of them and returns both. The preprocessing must be
    proven row-wise (`RowWiseProof`), because PreprocessedSequence runs it over the whole array once."""
    found = _plain_sequence(ctx, seq)
    if found is None:
        return None
    init, x_attr, y_attr, bs_attr, consts, getitem = found
    index = getitem.params.params[1].name.value
    body = list(getitem.body.body)
    batches = {}
    for stmt in body[:2]:
        sliced = _batch_slice(ctx, stmt, index, bs_attr)
        if sliced is None:
            return None
        name, attr, copied = sliced
        batches[attr] = (name, copied)
    if set(batches) != {x_attr, y_attr} or body[-1] is body[1]:
        return None
    last = body[-1]
    returned = last.body[0].value if isinstance(last, cst.SimpleStatementLine) and len(last.body) == 1 and isinstance(
        last.body[0], cst.Return
    ) else None
    if not (isinstance(returned, cst.Tuple) and len(returned.elements) == 2):
        return None
    outputs = [e.value for e in returned.elements]
    (bx, x_copied), (by, y_copied) = batches[x_attr], batches[y_attr]
    middle = body[2:-1]
    read = {n.value for n in _variables(cst.Module(body=middle))}

    def passed_through(output, name, copied):
        return isinstance(output, cst.Name) and output.value == name and not copied and name not in read

    if passed_through(outputs[1], by, y_copied) and not passed_through(outputs[0], bx, x_copied):
        kind, name, copied, result, other = "x", bx, x_copied, outputs[0], by
    elif passed_through(outputs[0], bx, x_copied) and not passed_through(outputs[1], by, y_copied):
        kind, name, copied, result, other = "y", by, y_copied, outputs[1], bx
    else:
        return None
    steps = []
    assigned = {name}
    for stmt in middle:
        loop = vectorised_loop(stmt, assigned)
        steps.append(loop if loop is not None else stmt)
        for node in walk(steps[-1]):
            if isinstance(node, cst.AssignTarget) and isinstance(node.target, cst.Name):
                assigned.add(node.target.value)
    if copied:
        steps.insert(0, cst.parse_statement(f"{name} = {name}.copy()\n"))
    returns = cst.parse_statement("return x\n")
    returns = returns.with_changes(body=[returns.body[0].with_changes(value=result)], leading_lines=last.leading_lines)
    method_body = cst.Module(body=steps + [returns])
    uses_self = False
    for node in walk(method_body):
        if isinstance(node, cst.Name) and node.value in (index, other):
            return None
        if isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name) and node.value.value == "self":
            if node.attr.value not in consts:
                return None
            uses_self = True
    self_reads = sum(1 for n in walk(method_body) if isinstance(n, cst.Attribute) and attribute_root(n) == "self"
                     and isinstance(n.value, cst.Name))
    if sum(1 for n in _variables(method_body) if n.value == "self") != self_reads:
        return None  # `self` passed on: something may read the per-batch state
    proof = RowWiseProof(ctx, name, set(consts), ctx.batch_functions(seq, (Phase.BATCH, Phase.EPOCH)))
    if not proof.statements(steps):
        return None
    rows = proof.rows(result)
    if rows is None or not rows.filled:
        return None
    method = f"preprocess_{kind}"
    header = f"def {method}(self, {name}):\n    pass\n" if uses_self else f"@staticmethod\ndef {method}({name}):\n    pass\n"
    function = cst.parse_statement(header)
    function = function.with_changes(
        body=function.body.with_changes(body=steps + [returns]),
        leading_lines=[cst.EmptyLine(indent=False)],
    )
    params = init.params
    kwargs = params.star_kwarg.name.value if isinstance(params.star_kwarg, cst.Param) else "kwargs"
    if not isinstance(params.star_kwarg, cst.Param):
        params = params.with_changes(star_kwarg=cst.Param(cst.Name("kwargs")))
    keyword = "preprocess" if kind == "x" else "preprocess_y"
    stored = _init_params(init)
    x_param, y_param, bs_param = stored[x_attr], stored[y_attr], stored[bs_attr]
    call = cst.parse_statement(
        f"super().__init__({x_param}, {y_param}, batch_size={bs_param}, {keyword}=self.{method}, **{kwargs})\n"
    )
    kept = [stmt for stmt in init.body.body if _stored_attr(stmt) in consts]
    new_init = init.with_changes(params=params, body=init.body.with_changes(body=kept + [call]))
    members = []
    for stmt in seq.node.body.body:
        if stmt is init:
            members.append(new_init)
        elif isinstance(stmt, cst.FunctionDef):
            continue
        else:
            members.append(stmt)
    members.append(function)
    new_class = seq.node.with_changes(
        bases=[cst.Arg(cst.parse_expression("seqkit.PreprocessedSequence"))],
        body=seq.node.body.with_changes(body=members),
        leading_lines=[],
    )
    code = ctx.module.code_for_node(new_class).rstrip("\n")
    edits = [replace(ctx, seq.node, code), ensure_import(ctx, "seqkit")]
    return make_fix(
        Applicability.SAFE,
        f"Rebase `{seq.name}` on `seqkit.PreprocessedSequence`: preprocess {kind} once, not per batch",
        edits,
    )


def _init_params(init) -> dict[str, str]:
    """attribute -> the `__init__` parameter stored in it (`self.x = x`)."""
    stored = {}
    for stmt in init.body.body:
        attr = _stored_attr(stmt)
        if attr is not None:
            stored[attr] = stmt.body[0].value.value
    return stored


def _stored_attr(stmt) -> str | None:
    if (
        isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Assign)
        and len(stmt.body[0].targets) == 1 and isinstance(stmt.body[0].value, cst.Name)
    ):
        return is_self_attr(stmt.body[0].targets[0].target)
    return None


def _plain_sequence(ctx, seq):
    """(__init__, x attribute, y attribute, batch-size attribute, setting attributes, __getitem__) of a
    class that holds nothing but data, batch size and settings, or None."""
    cls = seq.node
    methods = seq.own_methods
    if cls.decorators or len(cls.bases) != 1 or cls.keywords or set(seq.methods) != {"__init__", "__len__", "__getitem__"}:
        return None
    for stmt in cls.body.body:
        if isinstance(stmt, cst.FunctionDef):
            if stmt.decorators or stmt.asynchronous:
                return None
        elif not is_docstring(stmt):
            return None
    init, length, getitem = methods["__init__"], methods["__len__"], methods["__getitem__"]
    params = init.params
    if params.posonly_params or params.kwonly_params or isinstance(params.star_arg, (cst.Param, cst.ParamStar)):
        return None
    names = [p.name.value for p in params.params]
    if not names or names[0] != "self":
        return None
    kwargs = params.star_kwarg.name.value if isinstance(params.star_kwarg, cst.Param) else None
    stored: dict[str, str] = {}
    for stmt in init.body.body:
        attr = _stored_attr(stmt)
        if attr is not None and stmt.body[0].value.value in names[1:] and attr not in stored:
            stored[attr] = stmt.body[0].value.value
        elif not (kwargs and ctx.code(stmt).strip() == f"super().__init__(**{kwargs})"):
            return None
    ceiling = _ceil_len(ctx, length)
    if ceiling is None:
        return None
    x_attr, bs_attr = ceiling
    if len(getitem.params.params) != 2 or x_attr not in stored or bs_attr not in stored or x_attr == bs_attr:
        return None
    others = [a for a in stored if a not in (x_attr, bs_attr)]
    if len(others) > 1 and any(a in _base_attributes() or a.startswith("_") for a in others):
        return None  # a setting would shadow (or be shadowed by) the new base class's own state
    for y_attr in others:
        consts = [a for a in others if a != y_attr]
        if _mentions_attr(getitem, y_attr):
            return init, x_attr, y_attr, bs_attr, consts, getitem
    return None


def _mentions_attr(func, attr: str) -> bool:
    return any(is_self_attr(n) == attr for n in walk(func.body))


def _ceil_len(ctx, length):
    """(data attribute, batch-size attribute) when `__len__` is `ceil(len(self.x) / self.bs)`."""
    body = length.body.body
    if len(length.params.params) != 1 or len(body) != 1 or not isinstance(body[0], cst.SimpleStatementLine):
        return None
    ret = body[0].body[0]
    if not isinstance(ret, cst.Return) or ret.value is None:
        return None
    expr = ret.value
    if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Name) and expr.func.value == "int" and len(expr.args) == 1:
        expr = expr.args[0].value
    if not (isinstance(expr, cst.Call) and ctx.qualified_name(expr.func) in ("math.ceil", "numpy.ceil") and len(expr.args) == 1):
        return None
    ratio = expr.args[0].value
    if not (isinstance(ratio, cst.BinaryOperation) and isinstance(ratio.operator, cst.Divide)):
        return None
    rows, size = ratio.left, ratio.right
    if not (isinstance(rows, cst.Call) and isinstance(rows.func, cst.Name) and rows.func.value == "len" and len(rows.args) == 1):
        return None
    if isinstance(size, cst.Call) and isinstance(size.func, cst.Name) and size.func.value == "float" and len(size.args) == 1:
        size = size.args[0].value
    x_attr, bs_attr = is_self_attr(rows.args[0].value), is_self_attr(size)
    return (x_attr, bs_attr) if x_attr and bs_attr else None


def _batch_slice(ctx, stmt, index: str, bs_attr: str):
    """(name, attribute, copied) for `name = self.attr[index * self.bs:(index + 1) * self.bs]` (or `.copy()` of it)."""
    if not (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Assign)):
        return None
    assign = stmt.body[0]
    if len(assign.targets) != 1 or not isinstance(assign.targets[0].target, cst.Name):
        return None
    value, copied = assign.value, False
    if isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) and value.func.attr.value == "copy" and not value.args:
        value, copied = value.func.value, True
    if not (isinstance(value, cst.Subscript) and (attr := is_self_attr(value.value)) and len(value.slice) == 1):
        return None
    part = value.slice[0].slice
    if not (isinstance(part, cst.Slice) and part.step is None and part.lower is not None and part.upper is not None):
        return None
    if " ".join(ctx.code(part.lower).split()) != f"{index} * self.{bs_attr}":
        return None
    if " ".join(ctx.code(part.upper).split()) != f"({index} + 1) * self.{bs_attr}":
        return None
    return assign.targets[0].target.value, attr, copied


# ---------------------------------------------------------------------------------------------------
# Hoisting a whole helper: `self._normalize(self.images[idx])` -> preprocess_once(self._normalize, ...)


def _cached_helper_hoist(cache: dict, ctx, seq, helper, volatile: set[str]):
    key = (id(seq.node), id(helper))
    if key not in cache:
        cache[key] = helper_hoist_fix(ctx, seq, helper, volatile)
    return cache[key]


def helper_hoist_fix(ctx, seq, helper, volatile: set[str]):
    """The safe fix preprocessing once, with the helper itself, every dataset attribute that per-batch
    code only ever passes, sliced, to `helper`; or None.

    The helper must be proven row-wise (`RowWiseProof`) with its one data parameter as the batch, and
    read only settings: `self` attributes set in `__init__` and never per batch or epoch, literals,
    module names, and parameters left at literal defaults."""
    init = seq.own_methods.get("__init__")
    if init is None or not isinstance(init.body, cst.IndentedBlock) or any(
        isinstance(n, (cst.Return, cst.Yield)) for n in walk(init.body)
    ):
        return None
    sites = []
    for func in ctx.batch_functions(seq):
        for node in walk(func.body):
            if isinstance(node, cst.Call) and _helper_of(ctx, seq, node) is helper:
                sites.append(node)
    if not sites:
        return None
    is_method = any(m is helper for m in seq.methods.values())
    params = list(helper.params.params)
    if is_method:
        if not params or params[0].name.value != "self":
            return None
        params = params[1:]
    if not params or helper.params.star_arg not in (cst.MaybeSentinel.DEFAULT,) or helper.params.star_kwarg is not None:
        return None
    if helper.params.kwonly_params or helper.params.posonly_params or helper.decorators:
        return None
    data, settings = params[0], params[1:]
    if data.default is not None or not all(p.default is not None and _literal(p.default) for p in settings):
        return None
    in_init = {
        is_self_attr(part) for n in walk(init.body) if isinstance(n, cst.Assign)
        for t in n.targets for part in walk(t.target)
    }
    consts = {a for a in in_init if a and a not in volatile} if is_method else set()
    body = list(helper.body.body) if isinstance(helper.body, cst.IndentedBlock) else []
    if body and is_docstring(body[0]):
        body = body[1:]
    if not body or not (
        isinstance(body[-1], cst.SimpleStatementLine) and len(body[-1].body) == 1
        and isinstance(body[-1].body[0], cst.Return) and body[-1].body[0].value is not None
    ):
        return None
    loop_edits = []
    assigned = {data.name.value}
    for position, stmt in enumerate(body[:-1]):
        loop = vectorised_loop(stmt, assigned)
        if loop is not None:
            body[position] = loop
            code = cst.Module([]).code_for_node(loop.with_changes(leading_lines=[])).rstrip("\n")
            loop_edits.append(replace(ctx, stmt, code))
        for node in walk(body[position]):
            if isinstance(node, cst.AssignTarget) and isinstance(node.target, cst.Name):
                assigned.add(node.target.value)
    proof = RowWiseProof(ctx, data.name.value, consts, ctx.batch_functions(seq, (Phase.BATCH, Phase.EPOCH)))
    proof.fixed.update(p.name.value for p in settings)
    if not proof.statements(body[:-1]):
        return None
    rows = proof.rows(body[-1].body[0].value)
    if rows is None or not rows.filled:
        return None
    for node in walk(helper.body):
        if isinstance(node, cst.Name) and node.value == "self" and is_method:
            parent = ctx.parent(node)
            if not (isinstance(parent, cst.Attribute) and parent.value is node):
                return None  # `self` handed on: the helper may read more than settings
    attrs = []
    edits = []
    for call in sites:
        if len(call.args) != 1 or call.args[0].keyword is not None or call.args[0].star:
            return None
        arg = call.args[0].value
        attr = is_self_attr(arg.value) if isinstance(arg, cst.Subscript) else None
        if attr is None or attr in volatile or attr in attrs or not _only_use_of(ctx, seq, attr):
            return None
        if _in_index(ctx, call, None) or attr in consts and is_method and any(
            is_self_attr(n) == attr for n in walk(helper.body)
        ):
            return None
        attrs.append(attr)
        edits.append(replace(ctx, call, ctx.code(arg)))
    function = ctx.code(sites[0].func)
    last = init.body.body[-1]
    indent = indentation_of(ctx, last)
    _, end = ctx.position(last)
    lines = "".join(f"{indent}self.{a} = seqkit.preprocess_once({function}, self.{a})\n" for a in attrs)
    edits += loop_edits + [insert(line_start(end.row + 1), lines), ensure_import(ctx, "seqkit")]
    names = ", ".join(f"`self.{a}`" for a in attrs)
    return make_fix(
        Applicability.SAFE, f"Preprocess {names} once in `__init__` with `seqkit.preprocess_once({function}, ...)`", edits
    )


def _helper_of(ctx, seq, call):
    """The FunctionDef a call runs: an own method (`self.f(...)`) or a module-level function (`f(...)`)."""
    if (name := is_self_attr(call.func)) is not None:
        method = seq.methods.get(name)
        return method if method is not None and any(m is method for m in seq.own_methods.values()) else None
    if isinstance(call.func, cst.Name):
        for stmt in ctx.module.body:
            if isinstance(stmt, cst.FunctionDef) and stmt.name.value == call.func.value:
                return stmt
    return None


def _literal(expr) -> bool:
    if isinstance(expr, (cst.Integer, cst.Float, cst.SimpleString)):
        return True
    if isinstance(expr, cst.UnaryOperation):
        return _literal(expr.expression)
    return isinstance(expr, cst.Name) and expr.value.isupper()  # a module constant such as HU_MIN


@lru_cache(maxsize=None)
def _base_attributes() -> frozenset[str]:
    return frozenset(load_data_table("seqkit_api.toml")["preprocessed_sequence_attributes"])
