"""SEQ201 file-read-per-batch: files read and decoded again for every batch."""

from __future__ import annotations

from collections.abc import Iterable

import libcst as cst

from seqlint.analysis.effects import io_kind, io_method_kind
from seqlint.analysis.hotpath import Phase, walk
from seqlint.findings import Applicability, Finding
from seqlint.fixes import ensure_import, indentation_of, insert, line_start, make_fix
from seqlint.rules.base import Invalid, Rule

_LOOPS = (cst.For, cst.While, cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp)
_WRITE_MODES = ("w", "a", "x", "+")

_KIND_WORDS = {
    "npy": "an .npy file", "binary": "a binary file", "text": "a text file", "mat": "a .mat file",
    "file": "a file", "archive": "an archive", "image": "an image", "video": "a video",
    "hdf5": "an HDF5 file", "csv": "a CSV file", "table": "a table file", "pickle": "a pickle",
    "json": "a JSON file", "audio": "an audio file", "medical": "a medical image", "tensor": "a tensor file",
}

_HEAD = "import keras\nimport numpy as np\n"

_CLIPS = """import numpy as np
import keras


class Clips(keras.utils.PyDataset):
    def __init__(self, ids, labels, root, batch_size=4, **kwargs):
        super().__init__(**kwargs)
        self.ids, self.labels, self.root = ids, labels, root
        self.batch_size = batch_size

    def __len__(self):
        return -(-len(self.ids) // self.batch_size)

    def __getitem__(self, index):
        batch = self.ids[index * self.batch_size:(index + 1) * self.batch_size]
        X = np.empty((len(batch), 16), dtype=np.float32)
        y = np.empty(len(batch), dtype=int)
        for i, ID in enumerate(batch):
            X[i] = np.load(f"{self.root}/{ID}.npy") / 100.0
            y[i] = self.labels[ID]
        return X, y
"""

_CLIPS_FIXED = """import numpy as np
import keras
import seqkit


class Clips(keras.utils.PyDataset):
    def __init__(self, ids, labels, root, batch_size=4, **kwargs):
        super().__init__(**kwargs)
        self.ids, self.labels, self.root = ids, labels, root
        self.batch_size = batch_size
        self._samples = seqkit.pack_samples(self._load_sample, self.ids)
        self._labels_by_key = np.asarray([self.labels[k] for k in self._samples.keys], dtype=int)

    def __len__(self):
        return -(-len(self.ids) // self.batch_size)

    def __getitem__(self, index):
        batch = self.ids[index * self.batch_size:(index + 1) * self.batch_size]
        X = np.empty((len(batch), 16), dtype=np.float32)
        X[:len(batch)] = self._samples.take(batch)
        y = self._labels_by_key[self._samples.rows(batch)]
        return X, y

    def _load_sample(self, ID):
        return np.load(f"{self.root}/{ID}.npy") / 100.0
"""

_PATCHES = """import h5py
import numpy as np
import keras


class Patches(keras.utils.PyDataset):
    def __init__(self, path, n, batch_size=4, **kwargs):
        super().__init__(**kwargs)
        self.path, self.batch_size = path, batch_size
        self.order = np.arange(n)

    def __len__(self):
        return -(-len(self.order) // self.batch_size)

    def on_epoch_end(self):
        np.random.shuffle(self.order)

    def __getitem__(self, index):
        rows = np.sort(self.order[index * self.batch_size:(index + 1) * self.batch_size])
        with h5py.File(self.path, "r") as f:
            x = f["x"][rows]
            y = f["y"][rows]
        return np.clip(x, 0, 100) / 100.0, y
"""

_PATCHES_FIXED = """import h5py
import numpy as np
import keras
import seqkit


class Patches(keras.utils.PyDataset):
    def __init__(self, path, n, batch_size=4, **kwargs):
        super().__init__(**kwargs)
        self.path, self.batch_size = path, batch_size
        self.order = np.arange(n)
        self._x_samples = seqkit.pack_samples(self._load_x, self.order)
        self._y_samples = seqkit.pack_samples(self._load_y, self.order)

    def __len__(self):
        return -(-len(self.order) // self.batch_size)

    def on_epoch_end(self):
        np.random.shuffle(self.order)

    def __getitem__(self, index):
        rows = np.sort(self.order[index * self.batch_size:(index + 1) * self.batch_size])
        x = self._x_samples.take(rows)
        y = self._y_samples.take(rows)
        return x, y

    def _load_x(self, row):
        with h5py.File(self.path, "r") as f:
            x = f["x"][row]
        return np.clip(x, 0, 100) / 100.0

    def _load_y(self, row):
        with h5py.File(self.path, "r") as f:
            return f["y"][row]
"""

_PATCHES_RUNS = """
import tempfile
with tempfile.TemporaryDirectory() as folder:
    with h5py.File(folder + "/patches.h5", "w") as f:
        f.create_dataset("x", data=np.random.default_rng(1).integers(-20, 140, size=(10, 3, 3)))
        f.create_dataset("y", data=np.arange(10) % 4)
    ds = Patches(folder + "/patches.h5", 10)
    result = [ds[i] for i in range(len(ds))]
"""

_CLIPS_RUNS = """
import tempfile
with tempfile.TemporaryDirectory() as root:
    rng = np.random.default_rng(0)
    ids = [f"clip{k:02d}" for k in range(10)]
    for k in ids:
        np.save(f"{root}/{k}.npy", rng.normal(size=16))
    ds = Clips(ids, {k: n % 3 for n, k in enumerate(ids)}, root)
    result = [ds[i] for i in range(len(ds))]
"""

_MISALIGNED_PAIRS = """import keras
import numpy as np
from PIL import Image


class Pairs(keras.utils.Sequence):
    def __init__(self, images, masks):
        self.images = images
        self.masks = masks

    def __getitem__(self, i):
        imgs = self.images[i * 4:(i + 1) * 4]
        masks = self.masks[i * 4 + 1:(i + 1) * 4 + 1]
        x, y = [], []
        for img_path, mask_path in zip(imgs, masks):
            x.append(np.asarray(Image.open(img_path)))
            y.append(np.asarray(Image.open(mask_path)))
        return np.stack(x), np.stack(y)

    def __len__(self):
        return 3
"""


class FileReadPerBatch(Rule):
    code = "SEQ201"
    name = "file-read-per-batch"
    summary = "a file is read and decoded again for every batch"
    fix_availability = "sometimes"
    docs = """
## What it does
Flags calls that read a file (`np.load`, `open`, `cv2.imread`, `PIL.Image.open`, `imageio`,
`h5py.File`, `pd.read_csv`, `librosa.load`, `nibabel.load`, `pydicom.dcmread`, `tf.io.read_file`,
`pickle.load`, `json.load`, ... the table is `seqlint/data/effects.toml`) in per-batch code:
`__getitem__` and the methods and module functions it calls.

Policy with SEQ202: an `np.load` without `mmap_mode` in per-batch code is this rule's (the file is
read every batch); SEQ202 covers loads that run once. `np.load(..., mmap_mode="r")` per batch maps the
file instead of reading it and is not flagged, nor is `open` for writing.

## Why is this bad?
Every epoch re-reads and re-decodes the same files: JPEG decoding, WAV parsing or CSV parsing then
dominates the step time and the GPU waits. The work is identical each epoch, so it can be done once.

## Example
```python
def __getitem__(self, idx):
    paths = self.paths[idx * self.bs:(idx + 1) * self.bs]
    x = np.stack([cv2.resize(cv2.imread(p), (224, 224)) for p in paths])
    return x, self.y[idx * self.bs:(idx + 1) * self.bs]
```

## Use instead
Read each sample once with the generator's own loading code, keep the results packed on disk, and
gather batches from the pack:
```python
class Clips(keras.utils.PyDataset):
    def __init__(self, ids, labels, root, batch_size=32, **kwargs):
        super().__init__(**kwargs)
        self.ids, self.labels, self.root, self.batch_size = ids, labels, root, batch_size
        self._samples = seqkit.pack_samples(self._load_sample, self.ids)   # once

    def _load_sample(self, ID):
        return np.load(f"{self.root}/{ID}.npy") / 100.0

    def __getitem__(self, index):
        batch = self.ids[index * self.batch_size:(index + 1) * self.batch_size]
        return self._samples.take(batch), np.asarray([self.labels[ID] for ID in batch])
```
`pack_samples` calls the loader once per key (in worker processes when that pays), stores the results
as one memory-mapped array and rebuilds it when the loader's code, the keys or the files it read
change. For an image folder with one subfolder per class, `seqkit pack images/ packed/ --size 224 224`
and `seqkit.MemmapSequence("packed/x.npy", "packed/y.npy", batch_size=32)` do the whole job.

## Fix safety
The fix is **unsafe**: it writes a cache to disk (under `$SEQKIT_CACHE_DIR`, else `~/.cache/seqkit`),
the first epoch pays for reading every sample, and the generator's memory changes. It is offered when
the batch loops over keys picked from one attribute set in `__init__` (`self.list_IDs[k] for k in
indexes`, `self.paths[lo:hi]`), or over `zip` of picks made alike from several such attributes that
are never reassigned, not even shuffled (`zip(self.images[lo:hi], self.masks[lo:hi])`: the keys are
the pairs, `list(zip(self.images, self.masks))`), and computes each sample from its key alone: the read and the
deterministic steps after it (through helpers, including a helper returning an image and its mask),
reading nothing else than the key, literals, module names and attributes never reassigned per batch
or epoch. That code moves, unchanged, into a loader method; the packed values are exactly what it
returned, so the batches stay equal. Random augmentation after the read stays in `__getitem__` and
runs on the packed sample. The loop then becomes one gather (`X[:len(keys)] = self._samples.take(keys)`)
when it fills a batch array row by row, `list(self._samples.take(keys))` for a comprehension, or one
packed row per key otherwise; labels looked up per key (`y[i] = self.labels[ID]`) become one array
built once and indexed by the pack's rows. Element-wise steps applied to the stacked batch right after
the loop (`x = np.stack(...) / 32768.0`) move into the loader too.

A file opened per batch to read the batch's rows (`with h5py.File(path) as f: t1 = f["t1"][rows]`,
`rows` picked from one attribute) is packed the same way: one loader per dataset read, the same code
with one key in place of `rows`; the element-wise steps after the read go with it, the file is no
longer opened per batch, and `t1 = self._t1_samples.take(rows)` gathers the same rows in the same order.

The keys' attribute may be shuffled per epoch (`np.random.shuffle(self.ids)`) but not otherwise
changed: the pack holds the keys `__init__` gave it. Not fixed: samples of different shapes (ragged
text), loops whose samples depend on anything but their key, and files used for more than reading
rows. Those findings carry a hint.
"""

    valid = [
        # Reading once in __init__ is the right place.
        _HEAD + "import cv2\n\nclass Images(keras.utils.PyDataset):\n"
        "    def __init__(self, paths, **kwargs):\n        super().__init__(**kwargs)\n"
        "        self.x = np.stack([cv2.imread(p) for p in paths])\n\n"
        "    def __len__(self):\n        return len(self.x)\n\n"
        "    def __getitem__(self, i):\n        return self.x[i:i + 1]\n",
        # A memory-mapped load per batch reads only the rows it indexes.
        _HEAD + "\nclass Rows(keras.utils.PyDataset):\n"
        "    def __getitem__(self, i):\n        return np.load(self.path, mmap_mode='r')[i:i + 8]\n\n"
        "    def __len__(self):\n        return 4\n",
        # Writing a log per batch is not reading data.
        _HEAD + "\nclass Logged(keras.utils.PyDataset):\n"
        "    def __getitem__(self, i):\n        with open('log.txt', 'a') as f:\n            f.write(str(i))\n"
        "        return self.x[i]\n\n    def __len__(self):\n        return 4\n",
        # A user function that happens to be called `load`, and a non-Keras class.
        _HEAD + "import cv2\n\nclass Folder:\n"
        "    def __getitem__(self, i):\n        return cv2.imread(self.paths[i])\n",
        # Opened lazily once per worker process and cached on the instance.
        "import h5py\nimport keras\n\nclass Slices(keras.utils.PyDataset):\n"
        "    @property\n    def file(self):\n        if self._file is None:\n"
        "            self._file = h5py.File(self.path, 'r')\n        return self._file\n\n"
        "    def __getitem__(self, i):\n        return self.file['x'][i * 8:(i + 1) * 8]\n\n"
        "    def __len__(self):\n        return 4\n",
        # on_epoch_end re-reading an index file is once per epoch, not per batch.
        _HEAD + "import json\n\nclass Data(keras.utils.PyDataset):\n"
        "    def on_epoch_end(self):\n        with open(self.index_file) as f:\n            self.order = json.load(f)\n\n"
        "    def __getitem__(self, i):\n        return self.x[self.order[i]]\n\n    def __len__(self):\n        return 4\n",
    ]
    invalid = [
        Invalid(
            _HEAD + "import cv2\n\nclass Images(keras.utils.PyDataset):\n"
            "    def __getitem__(self, idx):\n"
            "        paths = self.paths[idx * 32:(idx + 1) * 32]\n"
            "        x = np.stack([cv2.imread(p) for p in paths])\n"
            "        return x, self.y[idx * 32:(idx + 1) * 32]\n\n"
            "    def __len__(self):\n        return 4\n",
            expected=[(8, 23)],
        ),
        # Through a helper method, with PIL imported under another name.
        Invalid(
            "from PIL import Image as PILImage\nfrom tensorflow.keras.utils import Sequence\n\n"
            "class Faces(Sequence):\n"
            "    def load(self, path):\n        return PILImage.open(path).convert('RGB')\n\n"
            "    def __getitem__(self, i):\n        return [self.load(p) for p in self.files[i]]\n\n"
            "    def __len__(self):\n        return 3\n",
            expected=[6],
        ),
        # A module function called per batch; audio and HDF5 reads.
        Invalid(
            "import librosa\nimport h5py\nfrom keras.utils import Sequence\n\n"
            "def read_clip(path):\n    wave, _ = librosa.load(path, sr=16000)\n    return wave\n\n"
            "class Clips(Sequence):\n"
            "    def __getitem__(self, i):\n"
            "        with h5py.File(self.h5_path, 'r') as f:\n            y = f['labels'][i]\n"
            "        return [read_clip(p) for p in self.files[i]], y\n\n"
            "    def __len__(self):\n        return 3\n",
            expected=[6, 11],
        ),
        # A whole .npy file per batch (not SEQ202's: per-batch loads are this rule's).
        Invalid(
            _HEAD + "import pandas as pd\n\nclass Table(keras.utils.PyDataset):\n"
            "    def __getitem__(self, i):\n"
            "        frame = pd.read_csv(self.csv)\n"
            "        return np.load(f'{self.root}/{i}.npy'), frame.values[i]\n\n"
            "    def __len__(self):\n        return 3\n",
            expected=[7, 8],
        ),
        # The fix: the loop's read and scaling become a loader packed once; labels one array.
        Invalid(
            _CLIPS,
            expected=[19],
            fixed=_CLIPS_FIXED,
            runs=_CLIPS_RUNS,
        ),
        # An HDF5 file opened per batch for the batch's rows: each dataset packed, the file not opened.
        Invalid(_PATCHES, expected=[20], fixed=_PATCHES_FIXED, runs=_PATCHES_RUNS),
        # Keys zipped from two lists picked differently (a one-off shift): the pairs are not
        # `zip(self.images, self.masks)`, so no pack is offered.
        Invalid(
            _MISALIGNED_PAIRS,
            expected=[16, 17],
            fixed=_MISALIGNED_PAIRS,
        ),
    ]

    def check(self, ctx) -> Iterable[Finding]:
        seen: set[int] = set()
        fixes = {}
        for seq in ctx.sequences:
            for plan in ctx.pack_plans(seq).values():
                fixes[id(plan.read.node)] = _pack_fix(ctx, seq, plan)
        for func, _seq, path in ctx.functions_in_phase(Phase.BATCH):
            for node in walk(func.body):
                if not isinstance(node, cst.Call) or id(node) in seen:
                    continue
                qualname = ctx.qualified_name(node)
                kind = io_kind(qualname)
                if kind is None and isinstance(node.func, cst.Attribute):
                    kind = io_method_kind(node.func.attr.value)  # `path.read_bytes()`
                    qualname = qualname or node.func.attr.value
                if kind is None or _only_maps_or_writes(qualname, kind, node) or _opened_once(ctx, node, func):
                    continue
                seen.add(id(node))
                yield self._finding(ctx, node, func, path, kind, fixes.get(id(node)))

    def _finding(self, ctx, call, func, path, kind, fix=None) -> Finding:
        written = ctx.code(call.func)
        in_loop = any(isinstance(a, _LOOPS) for a in _ancestors_until(ctx, call, func))
        how_often = "for every sample of every batch" if in_loop else "for every batch"
        where = ""
        if func.name.value != "__getitem__" and path:
            where = f" (reached from `{' -> '.join(path)}`)"
        message = f"`{written}` reads {_KIND_WORDS.get(kind, 'a file')} {how_often}{where}"
        return ctx.report(self, call, message=message, fix=fix, hint=None if fix else _hint(kind))


def _pack_fix(ctx, seq, plan):
    """The edits packing the per-sample loader once (packing.py) and reading the pack per batch."""
    init = seq.own_methods["__init__"]
    last = init.body.body[-1]
    indent = indentation_of(ctx, last)
    _, end = ctx.position(last)
    members = seq.node.body.body
    member_indent = indentation_of(ctx, members[0])
    methods = "".join(
        f"{member_indent}{line}\n" if line.strip() else "\n"
        for pack in plan.packs for line in pack.method.splitlines()
    )
    _, class_end = ctx.position(members[-1])
    lines = [f"self.{pack.attribute} = seqkit.pack_samples(self.{pack.method_name}, {pack.keys})" for pack in plan.packs]
    lines += plan.init_lines
    numpy = ensure_import(ctx, "numpy") if plan.init_lines and "numpy" not in ctx.imports.values() else None
    numpy_name = next((n for n, m in ctx.imports.items() if m == "numpy"), "numpy")
    lines = [line.replace("np.asarray(", f"{numpy_name}.asarray(") for line in lines]
    edits = [
        *plan.edits,
        numpy,
        insert(line_start(end.row + 1), "".join(f"{indent}{line}\n" for line in lines)),
        insert(line_start(class_end.row + 1), methods),
        ensure_import(ctx, "seqkit"),
    ]
    return make_fix(
        Applicability.UNSAFE,
        f"Pack {' and '.join(f'`{p.method_name}`' for p in plan.packs)} of every key of `{plan.packs[0].keys}` once "
        "with `seqkit.pack_samples` (writes a cache to disk); read the packed rows per batch",
        edits,
    )


def _ancestors_until(ctx, node, stop):
    for ancestor in ctx.ancestors(node):
        if ancestor is stop:
            return
        yield ancestor


def _opened_once(ctx, call: cst.Call, func: cst.FunctionDef) -> bool:
    """`if self._file is None: self._file = h5py.File(...)`: opened on first use, then cached per process."""
    parent = ctx.parent(call)
    if not isinstance(parent, cst.Assign):
        return False
    attrs = {t.target.attr.value for t in parent.targets
             if isinstance(t.target, cst.Attribute) and isinstance(t.target.value, cst.Name)
             and t.target.value.value == "self"}
    if not attrs:
        return False
    for ancestor in _ancestors_until(ctx, call, func):
        if isinstance(ancestor, cst.If) and any(
            isinstance(n, cst.Attribute) and n.attr.value in attrs for n in walk(ancestor.test)
        ):
            return True
    return False


def _only_maps_or_writes(qualname: str, kind: str, call: cst.Call) -> bool:
    """np.load with mmap_mode maps the file lazily; open/h5py.File for writing reads nothing."""
    positional = [a for a in call.args if a.keyword is None and not a.star]
    keywords = {a.keyword.value: a.value for a in call.args if a.keyword is not None}
    if kind == "npy" and qualname.endswith(".load"):
        mode = keywords.get("mmap_mode", positional[1].value if len(positional) > 1 else None)
        return mode is not None and not (isinstance(mode, cst.Name) and mode.value == "None")
    if qualname in ("open", "builtins.open", "io.open", "h5py.File", "gzip.open"):
        mode = keywords.get("mode", positional[1].value if len(positional) > 1 else None)
        if isinstance(mode, cst.SimpleString):
            return any(flag in mode.evaluated_value for flag in _WRITE_MODES)
    return False


def _hint(kind: str) -> str:
    if kind in ("image", "medical"):
        pack = ("decode the images once: `seqkit pack IMAGES_DIR OUT_DIR --size H W` (a folder of class "
                "subfolders; writes OUT_DIR/x.npy and y.npy), or `seqkit.pack((load(p) for p in files), "
                "\"x.npy\")` for other layouts")
    elif kind == "npy":
        pack = ("pack the per-sample files into one array once with `seqkit.pack(files, \"x.npy\")` (or "
                "memory-map a whole-dataset file in `__init__` with `np.load(path, mmap_mode=\"r\")`)")
    else:
        pack = "read and decode every sample once with `seqkit.pack((load(p) for p in files), \"x.npy\")`"
    return f"{pack[0].upper()}{pack[1:]}, then read the packed arrays with `seqkit.MemmapSequence`."
