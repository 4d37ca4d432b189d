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
from seqlint.analysis.hotpath import Phase, walk
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
    """

    def __init__(self, ctx, func: cst.FunctionDef):
        self.ctx = ctx
        self.names: dict[str, set[int]] = {}
        # Names assigned an expression that draws itself (`noise = random.choice(clips)`): one hop only.
        self.direct_names: dict[str, set[int]] = {}
        self.draws: dict[int, cst.Call] = {}
        assigns = [n for n in walk(func.body) if isinstance(n, (cst.Assign, cst.AugAssign))]
        for node in assigns:
            sources = self.sources(node.value, direct=True)
            targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
            for target in targets:
                for bound in _flat_names(target):
                    self.direct_names.setdefault(bound, set()).update(sources)
        changed = True
        while changed:
            changed = False
            for node in assigns:
                sources = self.sources(node.value)
                if not sources:
                    continue
                targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
                for target in targets:
                    for bound in _flat_names(target):
                        before = self.names.setdefault(bound, set())
                        if not sources <= before:
                            before.update(sources)
                            changed = True

    def sources(self, expr: cst.CSTNode | None, direct: bool = False) -> set[int]:
        """Draws the value of `expr` depends on; `direct`: drawn in it or one assignment before it."""
        if expr is None:
            return set()
        names = self.direct_names if direct else self.names
        found: set[int] = set()
        stack = [expr]
        while stack:
            node = stack.pop()
            if isinstance(node, cst.Call) and _is_draw(self.ctx, node):
                self.draws[id(node)] = node
                found.add(id(node))
            elif isinstance(node, cst.Name):
                found.update(names.get(node.value, ()))
            if isinstance(node, cst.Subscript):
                # A value picked or cropped at a random position is not itself random noise; what
                # decides the position is judged where it is used (a slice of one sample is a crop).
                stack.append(node.value)
                continue
            if isinstance(node, (cst.FunctionDef, cst.Lambda)):
                continue
            if (direct and isinstance(node, cst.Call) and not _is_draw(self.ctx, node)
                    and self.ctx.qualified_name(node) not in _CONVERSIONS):
                # `self.load(random.choice(paths))` is a sample picked at random, not random values:
                # follow only the receiver (`rng.normal(...).astype(...)`), not the arguments.
                stack.append(node.func)
                continue
            stack.extend(node.children)
        return found


def _augmenting_draws(ctx, func: cst.FunctionDef) -> dict[cst.Call, list[str]]:
    """Random draws whose value decides or parametrises an augmentation, with the layers doing it."""
    taint = _Taint(ctx, func)
    result: dict[int, list[str]] = {}

    def mark(sources: set[int], layers: list[str]) -> None:
        for source in sources:
            known = result.setdefault(source, [])
            known.extend(layer for layer in layers if layer not in known)

    for node in walk(func.body):
        if isinstance(node, (cst.If, cst.IfExp)):
            # A transform applied under a random condition: `if np.random.rand() < 0.5: x = np.fliplr(x)`.
            branches = [node.body] if isinstance(node, cst.If) else [node.body, node.orelse]
            layers = [layer for branch in branches for layer in _transform_layers(ctx, branch)]
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
            if _in_index(ctx, node, func):
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


def _transform_layers(ctx, branch: cst.CSTNode) -> list[str]:
    layers: list[str] = []
    for node in walk(branch):
        found: list[str] = []
        if isinstance(node, cst.Call):
            found = _layers_for([ctx.qualified_name(node) or ""])
        elif isinstance(node, cst.Subscript) and _is_reversing(node):
            found = ["RandomFlip"]
        layers.extend(layer for layer in found if layer not in layers)
    return layers


def _is_reversing(node: cst.Subscript) -> bool:
    for element in node.slice:
        part = element.slice
        if isinstance(part, cst.Slice) and part.step is not None:
            step = part.step
            if isinstance(step, cst.UnaryOperation) and isinstance(step.operator, cst.Minus):
                return True
    return False


def _in_index(ctx, node: cst.CSTNode, func: cst.FunctionDef) -> bool:
    """Arithmetic inside a subscript (`self.x[i * bs + r]`) computes positions, not data."""
    for ancestor in ctx.ancestors(node):
        if ancestor is func:
            return False
        if isinstance(ancestor, (cst.SubscriptElement, cst.Slice)):
            return True
    return False


def _flat_names(target: cst.BaseExpression) -> list[str]:
    if isinstance(target, cst.Name):
        return [target.value]
    if isinstance(target, (cst.Tuple, cst.List)):
        return [name for element in target.elements for name in _flat_names(element.value)]
    return []
