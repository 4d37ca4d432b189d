"""SEQ305 augmentation-in-generator: random augmentation a Keras preprocessing layer could do."""

from __future__ import annotations

from collections.abc import Iterable

import libcst as cst

from seqlint.analysis.effects import (
    augmentation_layers,
    is_augmentation_method,
    is_generator_method,
    is_global_rng_call,
    is_random_call,
    is_rng_seeding_call,
)
from seqlint.analysis.hotpath import Phase, children, walk
from seqlint.findings import Finding
from seqlint.rules.base import Invalid, Rule

# Random, but not augmentation: shuffling a dataset, drawing seeds.
_NOT_AUGMENTATION_PREFIXES = ("sklearn.", "os.", "uuid.", "secrets.")

# Calls that pass a random number through unchanged in kind (`int(np.random.uniform(...))`).
_CONVERSIONS = {"int", "float", "round", "abs", "numpy.float32", "numpy.int32", "numpy.asarray", "numpy.array"}

_HEAD = "import numpy as np\nimport keras\n"
_CLASS = "\nclass Aug(keras.utils.PyDataset):\n"
_LEN = "    def __len__(self):\n        return 1\n\n"


class AugmentationInGenerator(Rule):
    code = "SEQ305"
    name = "augmentation-in-generator"
    summary = "random augmentation runs per batch in the generator instead of in the model"
    fix_availability = "none"
    docs = """
## What it does
Flags random augmentation in per-batch code (`__getitem__` and what it calls):
- augmentation libraries, where they are applied: `tf.image.random_*`, albumentations / imgaug /
  torchvision transforms, `ImageDataGenerator.random_transform`, and pipelines built in `__init__`
  and applied per batch (`self.aug(image=x)`);
- hand-written augmentation, where its randomness is drawn: a draw (`np.random.*`, `random.*`, or a
  generator's `rng.normal(...)`) whose value decides a transform (`if np.random.rand() < 0.5:
  x = np.fliplr(x)`), parametrises one (`np.rot90(x, k)`, `rotate(img, angle)`), offsets a crop of a
  sample (`wav[start:start + n]`), or is added to or multiplies the data (noise, gain).
Draws that only pick samples (`random.choice(self.files)`, `self.x[rng.integers(n)]`) are sampling,
not augmentation. The message names the Keras preprocessing layers (`RandomFlip`, `RandomRotation`,
`RandomZoom`, `RandomCrop`, `RandomTranslation`, `GaussianNoise`, ...) that do the same in the model.
A global-RNG draw is also SEQ301's (where the randomness comes from); this rule is about where the
augmentation runs.

## Why is this bad?
The generator runs in Python on the CPU, one sample at a time, while the accelerator waits; with
worker processes each batch is also pickled back. Keras preprocessing layers run the same
augmentation batched, inside the model's graph, on the accelerator, and only in training
(`model.predict` and `evaluate` skip them). Random augmentation cannot be cached (SEQ101's
preprocess-once would freeze it), so moving it out of the generator is how it gets fast.

## Example
```python
def __getitem__(self, i):
    x = self.x[i * 32:(i + 1) * 32]
    if np.random.rand() < 0.5:
        x = x[:, :, ::-1]
    return x + np.random.normal(0, 0.05, x.shape), self.y[i * 32:(i + 1) * 32]
```

## Use instead
```python
augment = keras.Sequential([keras.layers.RandomFlip("horizontal"), keras.layers.GaussianNoise(0.05)])
model = keras.Sequential([keras.Input((32, 32, 3)), augment, backbone])
```
When the augmentation must stay in the generator (no layer does it, or it needs the labels), wrap
the dataset in `seqkit.MultiprocessSequence`, which runs it in persistent worker processes with
per-batch seeds and returns batches through shared memory.

## Fix safety
No automatic fix: moving augmentation into the model changes the model, and layers draw different
random numbers. The message names the layers to use.
"""

    valid = [
        # Deterministic preprocessing (that is SEQ101's business, not augmentation).
        _HEAD + _CLASS + _LEN + "    def __getitem__(self, i):\n        return np.fliplr(self.x[i]) / 255.0\n",
        # A random index choice is sampling, not augmentation.
        _HEAD + _CLASS + _LEN
        + "    def __getitem__(self, i):\n        rng = np.random.default_rng(i)\n"
        "        rows = rng.choice(len(self.x), 4)\n        return self.x[rows]\n",
        # Augmentation pipeline built but applied in on_epoch_end-free __init__ only (once).
        "import albumentations as A\nimport keras\n\nclass Once(keras.utils.PyDataset):\n"
        "    def __init__(self, x, **kwargs):\n        super().__init__(**kwargs)\n"
        "        aug = A.HorizontalFlip(p=1.0)\n        self.x = [aug(image=im)['image'] for im in x]\n\n"
        + _LEN + "    def __getitem__(self, i):\n        return self.x[i]\n",
        # A sample picked at random and then normalised: sampling, not noise.
        _HEAD + _CLASS + _LEN
        + "    def __getitem__(self, i):\n        img = self.load(np.random.choice(self.paths))\n"
        "        return img - self.mean\n",
        # A random window of the dataset is sampling, not a crop.
        _HEAD + _CLASS + _LEN
        + "    def __getitem__(self, i):\n        start = np.random.randint(0, len(self.x) - 8)\n"
        "        return self.x[start:start + 8]\n",
        # Not a Keras Sequence.
        "import tensorflow as tf\n\nclass Loader:\n    def __getitem__(self, i):\n"
        "        return tf.image.random_flip_left_right(self.x[i])\n",
    ]
    invalid = [
        Invalid(
            "import tensorflow as tf\n\nclass Aug(tf.keras.utils.Sequence):\n" + _LEN
            + "    def __getitem__(self, i):\n"
            "        x = tf.image.random_flip_left_right(self.x[i])\n"
            "        x = tf.image.random_brightness(x, 0.2)\n        return x\n",
            expected=[(8, 13), 9],
        ),
        # A pipeline built in __init__ and applied per batch through a helper.
        Invalid(
            "import albumentations as A\nimport keras\n\nclass Aug(keras.utils.PyDataset):\n"
            "    def __init__(self, x, **kwargs):\n        super().__init__(**kwargs)\n        self.x = x\n"
            "        self.transform = A.Compose([A.HorizontalFlip(), A.ShiftScaleRotate(p=0.5)])\n\n"
            + _LEN + "    def one(self, im):\n        return self.transform(image=im)['image']\n\n"
            "    def __getitem__(self, i):\n        return [self.one(im) for im in self.x[i]]\n",
            expected=[14],
        ),
        # Hand-written, reported where the randomness is drawn: a random flip, a crop offset, noise.
        Invalid(
            _HEAD + "from numpy import random as npr\n" + _CLASS + _LEN
            + "    def __getitem__(self, i):\n        x = self.x[i]\n"
            "        if npr.rand() < 0.5:\n            x = np.fliplr(x)\n"
            "        top = npr.randint(0, 4)\n        x = x[top:top + 28]\n"
            "        return x + npr.normal(0, 0.1, x.shape)\n",
            expected=[11, 13, 15],
        ),
        # A rotation whose angle was drawn a line before.
        Invalid(
            "import random\nimport cv2\nimport keras\n\nclass Rot(keras.utils.PyDataset):\n" + _LEN
            + "    def __getitem__(self, i):\n        angle = random.uniform(-10, 10)\n"
            "        m = cv2.getRotationMatrix2D((16, 16), angle, 1.0)\n"
            "        return cv2.warpAffine(self.x[i], m, (32, 32))\n",
            expected=[10],
        ),
        # ImageDataGenerator kept in the dataset.
        Invalid(
            "from tensorflow.keras.preprocessing.image import ImageDataGenerator\nfrom tensorflow.keras.utils import Sequence\n\n"
            "class Gen(Sequence):\n    def __init__(self, x):\n        self.x = x\n"
            "        self.datagen = ImageDataGenerator(rotation_range=15, horizontal_flip=True)\n\n"
            + _LEN + "    def __getitem__(self, i):\n        return self.datagen.random_transform(self.x[i])\n",
            expected=[13],
        ),
    ]

    def check(self, ctx) -> Iterable[Finding]:
        seen: set[int] = set()
        for func, seq, _path in ctx.functions_in_phase(Phase.BATCH):
            pipelines = _random_pipelines(ctx, seq)
            found: list[tuple[cst.CSTNode, list[str], str]] = []
            # Augmentation libraries and pipelines: reported where they are applied.
            for node in walk(func.body):
                if isinstance(node, cst.Call):
                    hit = _library_augmentation(ctx, node, pipelines)
                    if hit is not None:
                        found.append((node, *hit))
            library_nodes = {id(node) for node, _, _ in found}
            # Hand-written augmentation: reported where its randomness is drawn.
            for draw, layers in _augmenting_draws(ctx, func).items():
                found.append((draw, layers, f"drawn by `{ctx.code(draw.func)}`"))
            for node, layers, what in found:
                if id(node) in seen or any(id(a) in library_nodes for a in ctx.ancestors(node)):
                    continue
                seen.add(id(node))
                yield ctx.report(self, node, message=_message(what, layers), hint=_hint(layers))


def _message(what: str, layers: list[str]) -> str:
    message = f"random augmentation {what} runs per batch in the generator"
    if layers:
        message += "; " + ", ".join(f"`keras.layers.{layer}`" for layer in layers) + " can do it in the model"
    return message


def _hint(layers: list[str]) -> str:
    if layers:
        names = ", ".join(f"`keras.layers.{layer}`" for layer in layers)
        return (f"Put {names} at the start of the model (they run batched on the accelerator, in training "
                "only), or wrap the dataset in `seqkit.MultiprocessSequence` if it must stay here.")
    return ("Wrap the dataset in `seqkit.MultiprocessSequence` so the augmentation runs in parallel worker "
            "processes with per-batch seeds.")


def _self_attr(expr: cst.BaseExpression) -> str | None:
    if isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name) and expr.value.value == "self":
        return expr.attr.value
    return None


def _is_augmentation_call(ctx, call: cst.Call) -> bool:
    qualname = ctx.qualified_name(call) or ""
    return (
        is_random_call(qualname)
        and not is_global_rng_call(qualname)
        and not qualname.startswith(_NOT_AUGMENTATION_PREFIXES)
    )


def _names_in(ctx, expr: cst.CSTNode) -> list[str]:
    """Call names and keyword names inside an expression, to map them to layers."""
    names = []
    for node in walk(expr):
        if isinstance(node, cst.Call):
            names.append(ctx.qualified_name(node) or "")
            names.extend(a.keyword.value for a in node.args if a.keyword is not None)
    return names


def _layers_for(names: Iterable[str]) -> list[str]:
    layers: list[str] = []
    for name in names:
        layers.extend(layer for layer in augmentation_layers(name.rsplit(".", 1)[-1]) if layer not in layers)
    return layers


def _random_pipelines(ctx, seq) -> dict[str, list[str]]:
    """`self.<attr>` holding random transforms (`A.Compose([...])`, `ImageDataGenerator(...)`) -> layers."""
    pipelines: dict[str, list[str]] = {}
    for method in seq.methods.values():
        for node in walk(method.body):
            if not isinstance(node, cst.Assign):
                continue
            for target in node.targets:
                attr = _self_attr(target.target)
                if attr is None:
                    continue
                calls = [n for n in walk(node.value) if isinstance(n, cst.Call)]
                if any(_is_augmentation_call(ctx, c) or (ctx.qualified_name(c) or "").endswith("ImageDataGenerator")
                       for c in calls):
                    pipelines[attr] = _layers_for(_names_in(ctx, node.value))
    return pipelines


def _library_augmentation(ctx, call: cst.Call, pipelines: dict[str, list[str]]) -> tuple[list[str], str] | None:
    func = call.func
    if _is_augmentation_call(ctx, call):
        return _layers_for([ctx.qualified_name(call) or ctx.code(func)]), f"`{ctx.code(func)}`"
    receiver = func.value if isinstance(func, cst.Attribute) else func
    attr = _self_attr(func) or _self_attr(receiver)
    if attr is not None and attr in pipelines:
        return pipelines[attr], f"`{ctx.code(func)}`"
    if isinstance(func, cst.Attribute) and is_augmentation_method(func.attr.value):
        return pipelines.get(_self_attr(func.value) or "", []), f"`{ctx.code(func)}`"
    return None


# -- hand-written augmentation: random draws and where their values go ---------------------------------

def _is_draw(ctx, node: cst.CSTNode) -> bool:
    if not isinstance(node, cst.Call):
        return False
    qualname = ctx.qualified_name(node) or ""
    if is_global_rng_call(qualname):
        return not is_rng_seeding_call(qualname)
    func = node.func
    return isinstance(func, cst.Attribute) and is_generator_method(func.attr.value) and _looks_like_rng(func.value)


def _looks_like_rng(expr: cst.BaseExpression) -> bool:
    name = expr.attr.value if isinstance(expr, cst.Attribute) else expr.value if isinstance(expr, cst.Name) else ""
    lowered = name.lower()
    return "rng" in lowered or "random" in lowered or lowered in ("gen", "generator", "rs", "state")


class _Taint:
    """Which random draws each expression's value depends on, through the function's local names.

    Indexing the dataset (`self.x[i]`) with a random index is sampling, not augmentation: the index
    does not taint the sample it picks.

    Linear in the function's size: each assignment's value is read once, names are propagated over
    a worklist, and `sources` folds every node once (memoised), so a 5,000-term expression chain
    costs 5,000 steps, not 5,000 walks of its ever longer left operand.
    """

    def __init__(self, ctx, func: cst.FunctionDef):
        self.ctx = ctx
        self.names: dict[str, set[int]] = {}
        # Names assigned an expression that draws itself (`noise = random.choice(clips)`), in source
        # order: a later assignment sees what the earlier ones drew.
        self.direct_names: dict[str, set[int]] = {}
        self.draws: dict[int, cst.Call] = {}
        self._draw_memo: dict[int, bool] = {}
        self._memo: dict[bool, dict[int, frozenset[int]]] = {True: {}, False: {}}
        assigns = [n for n in walk(func.body) if isinstance(n, (cst.Assign, cst.AugAssign))]
        flow: list[tuple[list[str], set[str]]] = []
        for node in assigns:
            targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
            bound = [name for target in targets for name in _flat_names(target)]
            draws, read = self._reads(node.value, direct=True)
            drawn = set(draws).union(*(self.direct_names.get(name, ()) for name in read))
            for name in bound:
                self.direct_names.setdefault(name, set()).update(drawn)
            draws, read = self._reads(node.value, direct=False)
            for name in bound:
                self.names.setdefault(name, set()).update(draws)
            flow.append((bound, read))
        # Propagate along `target = f(name)` edges until nothing changes (each name is re-queued only
        # when its set grew, and sets only hold the function's few draws).
        edges: dict[str, set[str]] = {}
        for bound, read in flow:
            for name in read:
                edges.setdefault(name, set()).update(bound)
        pending = [name for name in edges if self.names.get(name)]
        while pending:
            name = pending.pop()
            drawn = self.names.get(name, set())
            for target in edges.get(name, ()):
                known = self.names.setdefault(target, set())
                if not drawn <= known:
                    known.update(drawn)
                    pending.append(target)

    def _is_draw(self, node: cst.CSTNode) -> bool:
        key = id(node)
        if key not in self._draw_memo:
            self._draw_memo[key] = _is_draw(self.ctx, node)
            if self._draw_memo[key]:
                self.draws[key] = node
        return self._draw_memo[key]

    def _followed(self, node: cst.CSTNode, direct: bool) -> list[cst.CSTNode]:
        """The parts of `node` whose values flow into its value."""
        if isinstance(node, cst.Subscript):
            # A value picked or cropped at a random position is not itself random noise; what
            # decides the position is judged where it is used (a slice of one sample is a crop).
            return [node.value]
        if isinstance(node, (cst.FunctionDef, cst.Lambda)):
            return []
        if (direct and isinstance(node, cst.Call) and not self._is_draw(node)
                and self.ctx.qualified_name(node) not in _CONVERSIONS):
            # `self.load(random.choice(paths))` is a sample picked at random, not random values:
            # follow only the receiver (`rng.normal(...).astype(...)`), not the arguments.
            return [node.func]
        return children(node)

    def _reads(self, expr: cst.CSTNode | None, direct: bool) -> tuple[list[int], set[str]]:
        """(draws made in `expr`, local names it reads): one walk, for the assignment pass."""
        draws: list[int] = []
        read: set[str] = set()
        stack = [expr] if expr is not None else []
        while stack:
            node = stack.pop()
            if isinstance(node, cst.Call) and self._is_draw(node):
                draws.append(id(node))
            elif isinstance(node, cst.Name):
                read.add(node.value)
            stack.extend(self._followed(node, direct))
        return draws, read

    def sources(self, expr: cst.CSTNode | None, direct: bool = False) -> frozenset[int]:
        """Draws the value of `expr` depends on; `direct`: drawn in it or one assignment before it."""
        if expr is None:
            return frozenset()
        memo = self._memo[direct]
        names = self.direct_names if direct else self.names
        stack: list[tuple[cst.CSTNode, list[cst.CSTNode] | None]] = [(expr, None)]
        while stack:  # post-order: a node is folded once all the parts it follows are
            node, parts = stack.pop()
            if id(node) in memo:
                continue
            if parts is None:
                parts = self._followed(node, direct)
                stack.append((node, parts))
                stack.extend((part, None) for part in parts if id(part) not in memo)
                continue
            own: set[int] = set()
            if isinstance(node, cst.Call) and self._is_draw(node):
                own.add(id(node))
            elif isinstance(node, cst.Name):
                own.update(names.get(node.value, ()))
            found = [memo[id(part)] for part in parts if memo[id(part)]]
            if not own and len(found) <= 1:
                memo[id(node)] = found[0] if found else frozenset()  # shared, not copied up a chain
            else:
                memo[id(node)] = frozenset(own).union(*found)
        return memo[id(expr)]


def _augmenting_draws(ctx, func: cst.FunctionDef) -> dict[cst.Call, list[str]]:
    """Random draws whose value decides or parametrises an augmentation, with the layers doing it."""
    taint = _Taint(ctx, func)
    transforms = _TransformLayers(ctx)
    result: dict[int, list[str]] = {}

    def mark(sources: set[int], layers: list[str]) -> None:
        for source in sources:
            known = result.setdefault(source, [])
            known.extend(layer for layer in layers if layer not in known)

    for node, in_index in _walk_marking_indices(func.body):
        if isinstance(node, (cst.If, cst.IfExp)):
            # A transform applied under a random condition: `if np.random.rand() < 0.5: x = np.fliplr(x)`.
            branches = [node.body] if isinstance(node, cst.If) else [node.body, node.orelse]
            layers = []
            for branch in branches:
                layers.extend(layer for layer in transforms.of(branch) if layer not in layers)
            if layers:
                mark(taint.sources(node.test), layers)
        elif isinstance(node, cst.Call):
            # A transform with a random parameter: `np.rot90(x, k)`, `rotate(img, angle)`.
            # The first positional argument is the data itself; the parameters come after it.
            layers = _layers_for([ctx.qualified_name(node) or ""])
            if layers and not _is_augmentation_call(ctx, node):
                positional = [a for a in node.args if a.keyword is None]
                parameters = positional[1:] + [a for a in node.args if a.keyword is not None]
                for arg in parameters:
                    mark(taint.sources(arg.value, direct=True), layers)
        elif isinstance(node, cst.BinaryOperation) and isinstance(node.operator, (cst.Add, cst.Subtract, cst.Multiply)):
            # Noise or gain applied to the data: `x + rng.normal(0, 0.1, x.shape)`, `wav * uniform(0.8, 1.2)`.
            if in_index:  # arithmetic inside a subscript (`self.x[i * bs + r]`) computes positions
                continue
            for side, other in ((node.left, node.right), (node.right, node.left)):
                sources = taint.sources(side, direct=True)
                if sources and not isinstance(other, (cst.Integer, cst.Float)):
                    mark(sources, ["GaussianNoise"] if isinstance(node.operator, (cst.Add, cst.Subtract)) else [])
        elif isinstance(node, cst.Subscript) and _self_attr(node.value) is None:
            # A random window of one sample: `wav[start:start + n]` is a random crop.
            for element in node.slice:
                part = element.slice
                if isinstance(part, cst.Slice):
                    mark(taint.sources(part.lower) | taint.sources(part.upper), ["RandomCrop"])
    return {taint.draws[key]: layers for key, layers in result.items()}


class _TransformLayers:
    """The preprocessing layers that could do the transforms under a node (calls of transform functions
    and reversing slices), folded once per node: an `a if c else b if d else ...` chain is not
    re-walked for every `if` in it."""

    def __init__(self, ctx):
        self.ctx = ctx
        self._memo: dict[int, tuple[str, ...]] = {}

    def _own(self, node: cst.CSTNode) -> list[str]:
        if isinstance(node, cst.Call):
            return _layers_for([self.ctx.qualified_name(node) or ""])
        if isinstance(node, cst.Subscript) and _is_reversing(node):
            return ["RandomFlip"]
        return []

    def of(self, root: cst.CSTNode) -> tuple[str, ...]:
        memo = self._memo
        stack: list[tuple[cst.CSTNode, list[cst.CSTNode] | None]] = [(root, None)]
        while stack:
            node, parts = stack.pop()
            if id(node) in memo:
                continue
            if parts is None:
                parts = children(node)
                stack.append((node, parts))
                stack.extend((part, None) for part in parts if id(part) not in memo)
                continue
            # Pre-order, as a walk would list them: the node's own layers, then its parts' in order.
            layers = list(self._own(node))
            for part in parts:
                layers.extend(layer for layer in memo[id(part)] if layer not in layers)
            memo[id(node)] = tuple(layers)
        return memo[id(root)]


def _walk_marking_indices(root: cst.CSTNode):
    """(node, inside a subscript's index) for every node under `root`, parents before children."""
    stack = [(root, False)]
    while stack:
        node, in_index = stack.pop()
        yield node, in_index
        inner = in_index or isinstance(node, (cst.SubscriptElement, cst.Slice))
        stack.extend((child, inner) for child in reversed(children(node)))


def _is_reversing(node: cst.Subscript) -> bool:
    for element in node.slice:
        part = element.slice
        if isinstance(part, cst.Slice) and part.step is not None:
            step = part.step
            if isinstance(step, cst.UnaryOperation) and isinstance(step.operator, cst.Minus):
                return True
    return False


def _flat_names(target: cst.BaseExpression) -> list[str]:
    if isinstance(target, cst.Name):
        return [target.value]
    if isinstance(target, (cst.Tuple, cst.List)):
        return [name for element in target.elements for name in _flat_names(element.value)]
    return []
