"""SEQ101 per-batch-preprocessing: deterministic preprocessing of the dataset redone on every batch."""

from __future__ import annotations

import libcst as cst

from seqlint.analysis.dataflow import FILE, MEMORY, RANDOM, is_self_attr
from seqlint.analysis.hotpath import walk
from seqlint.analysis import effects
from seqlint.analysis.tables import elementwise_arithmetic, preprocessing_table
from seqlint.rules.base import Invalid, Rule

_THRESHOLD_OPS = (cst.GreaterThan, cst.GreaterThanEqual, cst.LessThan, cst.LessThanEqual)
_SCALING_OPS = (cst.Add, cst.Subtract, cst.Multiply, cst.Divide)
_MEMORY_HINT = "preprocess once: `seqkit.preprocess_once(fn, x)` in `__init__`, or `seqkit.PreprocessedSequence`"
_FILE_HINT = "read and preprocess once: `seqkit.pack(files, path, transform=fn)`, then `seqkit.MemmapSequence`"
_CONSTANT_CALLS = {"float", "int", "numpy.float32", "numpy.float64", "numpy.float16", "numpy.array", "numpy.asarray"}


class PerBatchPreprocessing(Rule):
    code = "SEQ101"
    name = "per-batch-preprocessing"
    summary = "deterministic preprocessing of the dataset is redone on every batch"
    fix_availability = "none"
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
No automatic fix yet. Hoisting is only equivalent when the preprocessing is row-wise and
deterministic; the planned fix (`seqkit.preprocess_once` in `__init__`, or rebasing the class on
`seqkit.PreprocessedSequence`) will be safe only when both are proven, unsafe otherwise.
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
    ]

    def check(self, ctx):
        flow = ctx.dataflow
        table = preprocessing_table()
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
                if message is None or _in_index(ctx, node, func) or _under_random_branch(ctx, flow, func, node):
                    continue
                skip.update(id(n) for n in walk(node))
                from_file = FILE in flow.taint(func, node)
                yield ctx.report(
                    self,
                    node,
                    f"{message} on every batch (in {where}); do it once",
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
        if not isinstance(node.comparisons[0].operator, _THRESHOLD_OPS):
            return None
        sides = (node.left, node.comparisons[0].comparator)
        for data, other in ((0, 1), (1, 0)):
            taint = flow.taint(func, sides[data])
            if taint & {MEMORY, FILE} and _constant(ctx, sides[other], volatile, const_locals):
                return f"`{_short(ctx.code(node))}` thresholds the data"
        return None

    def _call(self, ctx, flow, func, call, table):
        if flow.callee(flow.seq_of[id(func)], call) is not None:
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
        return qual in _CONSTANT_CALLS and all(
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


def _under_random_branch(ctx, flow, func, node) -> bool:
    for ancestor in ctx.ancestors(node):
        if ancestor is func:
            return False
        if isinstance(ancestor, (cst.If, cst.While, cst.IfExp)) and RANDOM in flow.taint(func, ancestor.test):
            return True
    return False
