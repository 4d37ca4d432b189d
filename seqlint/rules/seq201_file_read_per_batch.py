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
Decode everything once into `.npy` arrays and memory-map them. An image folder with one subfolder
per class:
```sh
seqkit pack images/ packed/ --size 224 224     # writes packed/x.npy, packed/y.npy
```
```python
train = seqkit.MemmapSequence("packed/x.npy", "packed/y.npy", batch_size=32, shuffle=True, seed=0)
```
Other sources (audio, HDF5, CSV rows, per-sample `.npy` files):
`seqkit.pack((load(p) for p in files), "x.npy")` from Python, then the same `MemmapSequence`.

## Fix safety
No automatic fix: the packed data lives in new files and the generator changes shape. The finding's
hint shows the replacement.
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
    method = "".join(f"{member_indent}{line}\n" if line.strip() else "\n" for line in plan.method.splitlines())
    _, class_end = ctx.position(members[-1])
    lines = [f"self.{plan.attribute} = seqkit.pack_samples(self.{plan.method_name}, {plan.keys})", *plan.init_lines]
    numpy = ensure_import(ctx, "numpy") if plan.init_lines and "numpy" not in ctx.imports.values() else None
    numpy_name = next((n for n, m in ctx.imports.items() if m == "numpy"), "numpy")
    lines = [line.replace("np.asarray(", f"{numpy_name}.asarray(") for line in lines]
    edits = [
        *plan.edits,
        numpy,
        insert(line_start(end.row + 1), "".join(f"{indent}{line}\n" for line in lines)),
        insert(line_start(class_end.row + 1), method),
        ensure_import(ctx, "seqkit"),
    ]
    return make_fix(
        Applicability.UNSAFE,
        f"Pack `{plan.method_name}` of every key of `{plan.keys}` once with `seqkit.pack_samples` (writes a "
        "cache to disk); read the packed rows per batch",
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
