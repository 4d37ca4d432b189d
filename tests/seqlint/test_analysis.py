"""The analysis every rule relies on: which classes are Keras Sequences, where code runs, names,
cross-file bases, and the fix helpers. Real sources through the real engine; no mocks."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap

import libcst as cst
import pytest

from seqlint.analysis import Phase, ProjectIndex
from seqlint.analysis.hotpath import walk
from seqlint.engine import ParseError, build_context, get_rule, lint_source
from seqlint.findings import Applicability, Fix
from seqlint.fixes import ensure_import
from seqlint.runner import apply_fixes

GETITEM = """
    def __getitem__(self, i):
        return self.x[i]

    def __len__(self):
        return len(self.x)
"""


def _seqs(source: str, filename: str = "m.py", project=None) -> dict[str, tuple[str, bool]]:
    ctx = build_context(textwrap.dedent(source), filename, project)
    return {s.name: (s.base_qualname, s.keras3) for s in ctx.sequences}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import keras\nclass A(keras.utils.PyDataset): pass\n", ("keras.utils.PyDataset", True)),
        ("import tensorflow as tf\nclass A(tf.keras.utils.Sequence): pass\n", ("tensorflow.keras.utils.Sequence", True)),
        ("from tensorflow.keras.utils import Sequence as S\nclass A(S): pass\n", ("tensorflow.keras.utils.Sequence", True)),
        ("from keras import utils\nclass A(utils.Sequence): pass\n", ("keras.utils.Sequence", True)),
        ("from tensorflow import keras as K\nclass A(K.utils.Sequence): pass\n", ("tensorflow.keras.utils.Sequence", True)),
        ("import tf_keras\nclass A(tf_keras.utils.Sequence): pass\n", ("tf_keras.utils.Sequence", False)),
        ("from keras.utils.data_utils import Sequence\nclass A(Sequence): pass\n", ("keras.utils.data_utils.Sequence", False)),
        (
            "from tensorflow.python.keras.utils.data_utils import Sequence\nclass A(Sequence): pass\n",
            ("tensorflow.python.keras.utils.data_utils.Sequence", False),
        ),
        (
            "from keras.src.trainers.data_adapters.py_dataset_adapter import PyDataset\nclass A(PyDataset): pass\n",
            ("keras.src.trainers.data_adapters.py_dataset_adapter.PyDataset", True),
        ),
        # Notebook code without imports: attribute chains and conventional aliases still resolve.
        ("class A(tf.keras.utils.Sequence): pass\n", ("tensorflow.keras.utils.Sequence", True)),
        ("class A(Sequence):" + GETITEM, ("Sequence", True)),
        ("class A(PyDataset):" + GETITEM, ("PyDataset", True)),
    ],
)
def test_keras_bases_are_recognised_however_imported(source, expected):
    assert _seqs(source) == {"A": expected}


@pytest.mark.parametrize(
    "source",
    [
        "from collections.abc import Sequence\nclass A(Sequence):" + GETITEM,
        "import collections.abc as cabc\nclass A(cabc.Sequence):" + GETITEM,
        "from typing import Sequence as Seq\nclass A(Seq):" + GETITEM,
        "import typing\nclass A(typing.Sequence):" + GETITEM,
        # Unresolved `Sequence` without both __getitem__ and __len__: not enough to call it Keras.
        "class A(Sequence):\n    def __getitem__(self, i):\n        return i\n",
        "class A(object):" + GETITEM,
    ],
)
def test_non_keras_sequences_are_left_alone(source):
    assert _seqs(source) == {}


def test_intermediate_classes_in_the_module_count():
    source = """
    from keras.utils import PyDataset as P
    class Base(P):
        pass
    class Middle(Base):
        pass
    class Leaf(Middle):
        pass
    class Other:
        pass
    """
    assert set(_seqs(source)) == {"Base", "Middle", "Leaf"}


def _write(tmp_path, files: dict[str, str]) -> dict[str, str]:
    sources = {}
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        sources[str(path)] = path.read_text()
    return sources


BASE = """
import numpy as np
from keras.utils import PyDataset

class BaseGen(PyDataset):
    def __getitem__(self, idx):
        rows = [self.load(r) for r in self.x[idx * 8:(idx + 1) * 8]]
        return np.stack(rows)
"""

CHILD_BODY = """
    def __init__(self, x, **kwargs):
        super().__init__(**kwargs)
        self.x = x

    def load(self, row):
        return row / 255.0

    def unused(self, row):
        return row / 255.0
"""


@pytest.mark.parametrize(
    ("import_line", "child_path"),
    [
        ("from .base import BaseGen", "pkg/train.py"),
        ("from pkg.base import BaseGen", "pkg/train.py"),
        ("from pkg import BaseGen", "app/train.py"),  # re-exported by the package's __init__
        ("from ..base import BaseGen", "pkg/sub/train.py"),
        ("from base import BaseGen", "pkg/train.py"),  # the script's own folder is on sys.path
    ],
)
def test_bases_defined_in_another_file_of_the_tree(tmp_path, import_line, child_path):
    sources = _write(
        tmp_path,
        {
            "pkg/__init__.py": "from .base import BaseGen\n",
            "pkg/base.py": BASE,
            child_path: f"{import_line}\n\nclass TrainGen(BaseGen):\n{textwrap.dedent(CHILD_BODY).replace(chr(10), chr(10) + '    ')}\n",
        },
    )
    index = ProjectIndex.build(sources)
    child = next(name for name in sources if name.endswith(child_path))
    ctx = build_context(sources[child], child, index)
    assert [s.name for s in ctx.sequences] == ["TrainGen"]
    seq = ctx.sequences[0]
    assert seq.base_qualname == "keras.utils.PyDataset"
    # `load` is called by the base's __getitem__ (in base.py), so it runs per batch here.
    phases = {f.name.value: ctx.phase_of_function(f) for f in seq.methods.values()}
    assert phases == {"__init__": Phase.ONCE, "load": Phase.BATCH, "unused": None}
    findings = lint_source(sources[child], child, project=index, rules=[get_rule("SEQ101")])
    rows = [f.location.row for f in findings]
    load_row = sources[child].splitlines().index("        return row / 255.0") + 1
    assert rows == [load_row]
    # Without the index the base is unknown and nothing is reported.
    assert lint_source(sources[child], child, rules=[get_rule("SEQ101")]) == []


def test_project_index_prefilter_and_pickling(tmp_path):
    sources = _write(
        tmp_path,
        {
            "lib/base.py": BASE,
            "lib/mid.py": "from lib.base import BaseGen\nclass Mid(BaseGen):\n    pass\n",
            "lib/leaf.py": "from lib.mid import Mid\nclass Leaf(Mid):\n    pass\n",
            "lib/util.py": "def helper():\n    return 1\n",
        },
    )
    index = ProjectIndex.build(sources)
    # Found through two hops, the second file mentioning neither Sequence nor PyDataset.
    assert {"BaseGen", "Mid", "Leaf"} <= index.sequence_names
    assert not index.may_matter("def helper():\n    return 1\n")
    assert index.may_matter("from lib.leaf import Leaf\n")
    assert index.may_matter("class A(Sequence): pass\n")
    clone = pickle.loads(pickle.dumps(index))
    assert clone.sequence_names == index.sequence_names
    leaf = next(n for n in sources if n.endswith("leaf.py"))
    assert [s.name for s in build_context(sources[leaf], leaf, clone).sequences] == ["Leaf"]


PHASES = """
import numpy as np
import keras

def scale(x):
    return x * 2

def shared(x):
    return x

class Gen(keras.utils.PyDataset):
    def __init__(self, x, **kwargs):
        super().__init__(**kwargs)
        self.x = shared(x)
        self.setup()

    def setup(self):
        self.n = len(self.x)

    def on_epoch_end(self):
        self.reshuffle()

    def reshuffle(self):
        self.order = np.arange(self.n)

    def _batch(self, idx):
        return scale(shared(self.x[idx]))

    def __getitem__(self, idx):
        return list(map(self._batch, [idx]))

    def __len__(self):
        return self.n
"""


def test_where_code_runs():
    ctx = build_context(PHASES, "m.py")
    (seq,) = ctx.sequences
    functions = {**{f.name.value: f for f in seq.methods.values()}, **ctx.module_functions}
    phases = {name: ctx.phase_of_function(f) for name, f in functions.items()}
    assert phases == {
        "__init__": Phase.ONCE,
        "setup": Phase.ONCE,
        "on_epoch_end": Phase.EPOCH,
        "reshuffle": Phase.EPOCH,
        "_batch": Phase.BATCH,  # passed by reference to map()
        "__getitem__": Phase.BATCH,
        "__len__": None,
        "scale": Phase.BATCH,
        "shared": Phase.BATCH,  # reached from __init__ and __getitem__: the most frequent wins
    }
    assert [f.name.value for f in ctx.batch_functions(seq)] == ["__getitem__", "_batch", "scale", "shared"]
    assert ctx.call_path(functions["scale"]) == ("__getitem__", "self._batch", "scale")
    node = next(n for n in walk(functions["reshuffle"]) if isinstance(n, cst.Call))
    assert ctx.phase_of(node) is Phase.EPOCH
    assert ctx.phase_of(ctx.module.body[0]) is None


def test_qualified_names():
    source = textwrap.dedent(
        """
        import numpy as np
        import os.path
        from tensorflow.keras import utils as ku
        from PIL import Image
        from .local import helper

        np.random.rand; os.path.join; ku.to_categorical; Image.open; self.load; helper; pd.read_csv; x.astype
        """
    )
    ctx = build_context(source, "m.py")
    line = ctx.module.body[-1]
    names = [ctx.qualified_name(stmt.value) for stmt in line.body]
    assert names == [
        "numpy.random.rand",
        "os.path.join",
        "tensorflow.keras.utils.to_categorical",
        "PIL.Image.open",
        "self.load",
        ".local.helper",
        "pandas.read_csv",  # conventional alias, never imported (notebook code)
        "x.astype",
    ]


def test_parse_error_names_file_line_and_column():
    with pytest.raises(ParseError) as info:
        lint_source("import keras\n\nx = = 1\n", "bad.py")
    assert info.value.line == 3
    assert info.value.column == 5
    assert str(info.value).startswith("bad.py:3:5: syntax error")
    assert "\n" not in str(info.value)


def test_modules_without_sequence_only_run_module_wide_rules():
    assert lint_source("x = 1\n", "m.py") == []
    assert lint_source("", "empty.py") == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('"""Doc."""\nx = 1\n', '"""Doc."""\nimport math\nx = 1\n'),
        ("import os\nfrom a import b\n\nx = 1\n", "import os\nfrom a import b\nimport math\n\nx = 1\n"),
        ("x = 1\n", "import math\nx = 1\n"),
        ("#!/usr/bin/env python\n# header\n\nx = 1\n", "#!/usr/bin/env python\n# header\n\nimport math\nx = 1\n"),
        ("import math\nx = 1\n", "import math\nx = 1\n"),
    ],
)
def test_ensure_import(source, expected):
    ctx = build_context(source, "m.py")
    edit = ensure_import(ctx, "math")
    assert (apply_fixes(source, [Fix(Applicability.SAFE, "add import", (edit,))])[0] if edit else source) == expected


def test_fixes_of_one_file_apply_together_once_each():
    source = textwrap.dedent(
        """
        from keras.utils import PyDataset

        class A(PyDataset):
            def __len__(self):
                return len(self.x) // self.bs

        class B(PyDataset):
            def __len__(self):
                return int(len(self.x) / self.bs)
        """
    )
    findings = lint_source(source, "m.py", rules=[get_rule("SEQ306")])
    assert len(findings) == 2
    fixed, applied = apply_fixes(source, [f.fix for f in findings])
    assert applied == 2
    assert fixed.count("import math") == 1
    assert fixed.count("math.ceil(len(self.x) / self.bs)") == 2
    assert lint_source(fixed, "m.py", rules=[get_rule("SEQ306")]) == []


def test_linting_never_imports_numpy_tensorflow_or_keras():
    code = textwrap.dedent(
        f"""
        import sys
        from seqlint.engine import lint_source, ProjectIndex
        src = {PHASES!r}
        lint_source(src, "m.py", project=ProjectIndex.build({{"m.py": src}}))
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("numpy", "tensorflow", "keras"))
        print(heavy)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
