"""SEQ101 per-batch-preprocessing: deterministic preprocessing of the dataset redone on every batch."""

from __future__ import annotations

import libcst as cst

from seqlint.analysis.dataflow import FILE, MEMORY, RANDOM, is_self_attr
from seqlint.analysis.hotpath import walk
from seqlint.analysis import effects
from seqlint.analysis.tables import elementwise_arithmetic, preprocessing_table
from seqlint.findings import Applicability, Edit
from seqlint.fixes import ensure_import, indentation_of, insert, line_start, make_fix, replace
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
The fix hoists the preprocessing into `__init__`: for `x = self.data[s]` (or `self.data[s]` itself)
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
                    fix=None if from_file else hoist_fix(ctx, seq, func, node, volatile),
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
        known = qual in _CONSTANT_CALLS or qual in elementwise_arithmetic() or effects.is_pure_numpy(qual)
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
    names = {n.value for n in walk(expr) if isinstance(n, cst.Name)}
    param = "rows"
    while param in names:
        param += "_"
    rewritten = expr.visit(_Swap(data, param))
    if not _uses_only_constants(ctx, rewritten, param, volatile, attr):
        return None
    body = cst.Module([]).code_for_node(rewritten)
    statement_small = ctx.parent(expr)
    in_place = isinstance(statement_small, cst.Assign) and statement_small.value is expr and _in_place_target(
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
    return _in_place_target(target, name)


def _in_place_target(target, name: str) -> bool:
    if not (isinstance(target, cst.Subscript) and isinstance(target.value, cst.Name) and target.value.value == name):
        return False
    if len(target.slice) != 1:
        return False
    index = target.slice[0].slice
    if isinstance(index, cst.Slice):
        return index.lower is None and index.upper is None and index.step is None
    return isinstance(index, cst.Index) and isinstance(index.value, cst.Ellipsis)


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
        n.value != "self" and not _is_module_name(ctx, n.value)
        for n in _variables(expr) if not _inside(n, subscripts[0])
    ):
        return subscripts[0], is_self_attr(subscripts[0].value), None
    if subscripts:
        return None
    local_names = {
        n.value for n in _variables(expr) if n.value != "self" and not _is_module_name(ctx, n.value)
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


def _is_module_name(ctx, name: str) -> bool:
    if name in ctx.imports or name in ("float", "int", "abs", "min", "max", "round"):
        return True
    for stmt in ctx.module.body:
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, cst.Assign) and any(
                    isinstance(n, cst.Name) and n.value == name for t in small.targets for n in walk(t.target)
                ):
                    return True
    return False


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
        if node.value not in (param, "self") and not _is_module_name(ctx, node.value):
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
