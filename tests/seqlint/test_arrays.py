"""What seqlint/analysis/arrays.py can tell about values, and where it must refuse to guess.

Each refusal here guards a fix: SEQ102 folds a per-row gather into one fancy index only when the array is
an ndarray of known rank and the index a 1-D integer array, so a wrong "known" would be a wrong rewrite.
"""

from __future__ import annotations

import textwrap

import libcst as cst
import pytest

from seqlint.analysis.arrays import Kind, ValueKinds, dtype_class, is_index_vector
from seqlint.analysis.context import ModuleContext

HEADER = """
import numpy as np
from keras.utils import PyDataset


def load_csv(path):
    data = np.loadtxt(path, delimiter=",", skiprows=1)
    return data[:, :-1], data[:, -1]


def squeezed(path):
    return np.loadtxt(path)


class Gen(PyDataset):
"""


def _kinds(body: str) -> tuple[ValueKinds, ModuleContext]:
    source = HEADER + textwrap.indent(textwrap.dedent(body), "    ")
    ctx = ModuleContext(source, "gen.py", cst.parse_module(source))
    (seq,) = ctx.sequences
    return ValueKinds(ctx, seq), ctx


def _returned(body: str) -> Kind | None:
    """The kind of what `probe` returns."""
    kinds, ctx = _kinds(body)
    probe = kinds.seq.methods["probe"]
    (ret,) = [s.body[0] for s in probe.body.body if isinstance(s, cst.SimpleStatementLine) and isinstance(s.body[0], cst.Return)]
    return kinds.of(ret.value, probe)


def test_attributes_from_constructors_module_functions_and_comprehensions():
    kinds, _ = _kinds("""
        def __init__(self, path, text, n):
            self.features, self.target = load_csv(path)
            self.vocab = {c: i for i, c in enumerate(sorted(set(text)))}
            self.ids = np.array([self.vocab[c] for c in text], dtype=np.int32)
            self.order = np.arange(len(self.features))
            self.grid = np.zeros((n, 4, 4), dtype="float32")
            self.flat = np.ones(len(text))
            self.shaped = np.ones(n)  # `n` may be an int or a shape tuple
    """)
    assert kinds.attribute("features") == Kind("ndarray", (2, 2), "float64")
    assert kinds.attribute("target") == Kind("ndarray", (1, 1), "float64")
    assert kinds.attribute("vocab") == Kind("dict", items=(Kind("int"),))
    assert kinds.attribute("ids") == Kind("ndarray", (1, 1), "int32")
    assert kinds.attribute("grid").rank == 3 and kinds.attribute("grid").dtype == "float32"
    assert kinds.attribute("flat") == Kind("ndarray", (1, 1), "float64")
    assert kinds.attribute("shaped") is None
    assert is_index_vector(kinds.attribute("order")) and not is_index_vector(kinds.attribute("features"))


def test_slices_keep_rank_integers_drop_it_none_adds_it():
    kind = _returned("""
        def __init__(self):
            self.x = np.zeros((10, 3, 2))

        def probe(self, i):
            return self.x[2:5, 0, None]
    """)
    assert kind == Kind("ndarray", (3, 3), "float64")  # 3 - 1 (the int) + 1 (None)


def test_locals_take_their_last_top_level_assignment():
    kind = _returned("""
        def probe(self, idx):
            rows = np.arange(4)
            rows = np.zeros((2, 2))
            return rows
    """)
    assert kind.rank == 2


@pytest.mark.parametrize(
    "body",
    [
        # Assigned in a branch: which assignment reaches the use depends on the run.
        """
        def probe(self, flag):
            rows = np.arange(4)
            if flag:
                rows = self.table
            return rows
        """,
        # A parameter: anything the caller passes.
        """
        def probe(self, rows):
            return rows
        """,
        # A loop variable.
        """
        def probe(self, items):
            for rows in items:
                pass
            return rows
        """,
        # Rebound by an augmented assignment (`+=` on a list extends it).
        """
        def probe(self):
            rows = np.arange(3)
            rows += [1]
            return rows
        """,
        # An index array in the subscript: the rank depends on the index.
        """
        def __init__(self):
            self.x = np.zeros((5, 3))

        def probe(self, picks):
            return self.x[picks]
        """,
        # More indices than the array can have dimensions: the code raises there.
        """
        def __init__(self):
            self.x = np.zeros(5)

        def probe(self):
            return self.x[:, 0]
        """,
        # A call seqlint knows nothing of.
        """
        def probe(self, path):
            return read_table(path)
        """,
    ],
)
def test_refuses_to_guess(body):
    assert _returned(body) is None


def test_attributes_assigned_differently_join_or_give_up():
    kinds, _ = _kinds("""
        def __init__(self, path, n):
            self.x = np.zeros((n, 3))
            self.y = np.zeros(5)
            self.z = np.zeros(5)
            self.w = np.arange(n)

        def on_epoch_end(self):
            self.x = np.zeros((5, 3), dtype=np.float32)
            self.y = np.zeros((5, 3))
            self.z = self.table
            self.w += 1
    """)
    assert kinds.attribute("x") == Kind("ndarray", (2, 2), "number")
    assert kinds.attribute("y").rank is None and kinds.attribute("y").ndim == (1, 2)
    assert kinds.attribute("z") is None  # one assignment of unknown kind spoils the others
    assert kinds.attribute("w") is None  # changed in place: seqlint does not follow `+=`


def test_loadtxt_rank_is_pinned_only_by_ndmin_or_by_slicing():
    kinds, _ = _kinds("""
        def __init__(self, path):
            self.raw = squeezed(path)
            self.table = np.loadtxt(path, ndmin=2)
            self.col = np.loadtxt(path, ndmin=2)[:, 0]
    """)
    assert kinds.attribute("raw").ndim == (0, 2) and kinds.attribute("raw").rank is None
    assert kinds.attribute("table").rank == 2
    assert kinds.attribute("col").rank == 1


def test_empty_comprehension_leaves_the_dtype_open():
    # np.array([]) is float64, so the element kind of a comprehension does not give the dtype.
    kinds, _ = _kinds("""
        def __init__(self, labels):
            self.y = np.array([int(v) for v in labels])
            self.m = np.array([True, False])
    """)
    assert kinds.attribute("y") == Kind("ndarray", (1, 1), "any")
    assert not is_index_vector(kinds.attribute("y"))
    assert not is_index_vector(kinds.attribute("m"))  # a mask, not indices


def test_dtype_classes():
    assert [dtype_class(d) for d in ("int32", "uint8", "float16", "bool", "number", "any", "object")] == [
        "int", "int", "float", "bool", "number", "any", "any",
    ]


def test_an_init_assignment_replaced_before_any_method_can_read_it_does_not_count():
    kinds, _ = _kinds("""
        def __init__(self, images, labels, masks, frames, ids):
            self.images = images
            self.labels = labels
            self.masks = masks
            self.frames = frames
            self.ids = ids
            self.order = np.arange(len(ids))
            self.on_epoch_end()  # reads self.ids, not self.images
            self.images = np.asarray(self.images, dtype=np.float32)
            self.ids = np.asarray(self.ids)
            self.peek()
            self.labels = np.asarray(self.labels)
            if len(masks):
                self.masks = np.stack(masks)
            self.frames = np.asarray(self.frames)
            self.frames, self.count = self.frames[1:], 0

        def on_epoch_end(self):
            self.order = np.arange(len(self.ids))

        def peek(self):
            return self.labels[0]
    """)
    assert kinds.attribute_container("images") == "ndarray"
    assert kinds.attribute("images") is None or kinds.attribute("images").dtype == "float32"
    assert kinds.attribute_container("ids") is None  # on_epoch_end reads the value given to the constructor
    assert kinds.attribute_container("labels") is None  # so does peek
    assert kinds.attribute_container("masks") is None  # replaced in a branch only
    assert kinds.attribute_container("frames") is None  # then rebound by a tuple target


def test_preprocess_once_of_a_lambda_computing_one_array_is_an_ndarray():
    source = HEADER.replace("import numpy as np", "import numpy as np\nimport seqkit") + textwrap.indent(textwrap.dedent("""
        def __init__(self, x, y, z, w):
            self.x = seqkit.preprocess_once(lambda rows: rows / 255.0, np.asarray(x))
            self.y = seqkit.preprocess_once(lambda rows: rows.astype(np.float32), np.asarray(y))
            self.z = seqkit.preprocess_once(lambda rows: (rows, rows), np.asarray(z))
            self.w = seqkit.preprocess_once(lambda rows: rows / 255.0, np.asarray(w), cache_dir="c", shard_mb=64)
    """), "    ")
    ctx = ModuleContext(source, "gen.py", cst.parse_module(source))
    kinds = ValueKinds(ctx, ctx.sequences[0])
    assert kinds.attribute_container("x") == "ndarray"
    assert kinds.attribute_container("y") == "ndarray"
    assert kinds.attribute_container("z") is None  # a tuple of two arrays
    assert kinds.attribute_container("w") is None  # shards: a seqkit.ShardedArray
