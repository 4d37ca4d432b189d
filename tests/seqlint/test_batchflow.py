"""The batch data-flow model (seqlint/analysis/batchflow.py, values.py, regions.py), queried directly.

Each test writes a generator the way people write them and asks the model what an expression holds:
sample data that reaches the batch, bookkeeping (indices, bounds, counters, sizes, paths, ids), random
values, and which deterministic steps of which source could run once. Rules only ever ask these
questions; the answers are pinned here, apart from any rule's wording.
"""

from __future__ import annotations

import libcst as cst
import pytest

from seqlint.analysis.regions import location, regions
from seqlint.engine import build_context

HEAD = "import numpy as np\nimport random\nimport keras\nimport tensorflow as tf\n\n"


class Model:
    """The model of the module's one Sequence class, asked about expressions by their code."""

    def __init__(self, source: str):
        self.ctx = build_context(HEAD + source, "gen.py")
        (self.seq,) = self.ctx.sequences
        self.flow = self.ctx.batch_flow(self.seq)
        self.clean = self.ctx.clean_steps(self.seq)

    def nodes(self, code: str) -> list[cst.CSTNode]:
        found = [n for n in _walk(self.ctx.module) if isinstance(n, cst.BaseExpression) and self.ctx.code(n) == code]
        assert found, f"no expression `{code}`"
        return found

    def values(self, code: str):
        values = [v for node in self.nodes(code) for v in self.flow.values_at(node)]
        assert values, f"the model has no value for `{code}`"
        return values

    def data(self, code: str) -> bool:
        """Sample data that reaches the returned batch."""
        return any(self.ctx.is_sample_data(node, live=True) for node in self.nodes(code))

    def random(self, code: str) -> bool:
        return any(v.random for v in self.values(code))

    def step(self, code: str):
        """(where its source lives, unit) of a deterministic preprocessing step, else None."""
        for value in self.values(code):
            step = self.clean.of(value)
            if step is not None and step.work:
                return location(step.source) or self.ctx.code(step.source.node), step.unit
        return None

    def region_ends(self) -> set[str]:
        """The code of the last step of each region (what a fix would compute once)."""
        return {self.ctx.code(r.steps[-1].node) for r in regions(self.flow, self.clean) if r.steps}


def _walk(node):
    yield node
    for child in node.children:
        yield from _walk(child)


def test_bookkeeping_arithmetic_is_not_data():
    model = Model('''
class YoloBatches(keras.utils.Sequence):
    def __init__(self, images, config):
        self.images, self._config = images, config

    def __len__(self):
        return len(self.images) // self._config["BATCH_SIZE"]

    def __getitem__(self, idx):
        l_bound = idx * self._config["BATCH_SIZE"]
        r_bound = (idx + 1) * self._config["BATCH_SIZE"]
        x = np.zeros((r_bound - l_bound, 8, 8), dtype=np.float32)
        tmp_cnt = 0
        for k in range(l_bound, r_bound):
            x[tmp_cnt] = self.images[k] / 255.0
            tmp_cnt = tmp_cnt + 1
        return x
''')
    for code in ('idx * self._config["BATCH_SIZE"]', "r_bound - l_bound", "tmp_cnt + 1"):
        assert not model.data(code), code
        assert model.step(code) is None, code
    assert model.data("self.images[k] / 255.0")
    assert model.step("self.images[k] / 255.0") == (("images",), "sample")


def test_random_values_are_never_deterministic_steps():
    model = Model('''
class Noisy(keras.utils.PyDataset):
    def __getitem__(self, i):
        x = self.x[i * 32:(i + 1) * 32].astype(np.float32) / 255.0
        noisy = x + np.random.normal(0, 0.1, x.shape)
        clipped = np.clip(noisy, 0.0, 1.0)
        if random.random() < 0.5:
            x = x[:, ::-1]
        return clipped, x
''')
    assert model.random("x + np.random.normal(0, 0.1, x.shape)")
    assert model.data("np.clip(noisy, 0.0, 1.0)") and model.random("np.clip(noisy, 0.0, 1.0)")
    assert model.step("np.clip(noisy, 0.0, 1.0)") is None
    assert model.step("x[:, ::-1]") is None  # chosen by a random branch
    # the deterministic prefix before the noise is still a step of self.x
    assert model.step("self.x[i * 32:(i + 1) * 32].astype(np.float32) / 255.0") == (("x",), "batch")


def test_helpers_through_parameters_and_returns():
    model = Model('''
def scale(batch, factor=2.0):
    return batch * factor


class Example1(tf.keras.utils.Sequence):
    def __init__(self, data, labels, batch_size):
        self.data, self.labels, self.batch_size = data, labels, batch_size

    def __len__(self):
        return int(np.ceil(len(self.data) / float(self.batch_size)))

    def __getitem__(self, idx):
        batch_data = self.data[idx * self.batch_size:(idx + 1) * self.batch_size]
        batch_data = self.preprocess_data(batch_data)
        return scale(batch_data), self.labels[idx * self.batch_size:(idx + 1) * self.batch_size]

    def preprocess_data(self, data):
        processed_data = np.copy(data)
        for i in range(len(processed_data)):
            processed_data[i] = processed_data[i] * 2
        return processed_data
''')
    assert model.data("processed_data[i] * 2")
    assert model.step("processed_data[i] * 2") == (("data",), "sample")
    assert model.step("batch * factor")[0] == ("data",)  # through a module function's parameter
    assert "scale(batch_data)" in model.region_ends()  # the region runs through both helpers


def test_tuple_bounds_index_arrays_and_id_lists():
    model = Model('''
class Shuffled(keras.utils.PyDataset):
    def __init__(self, x, labels, ids, bs, **kwargs):
        super().__init__(**kwargs)
        self.x, self.labels, self.ids, self.bs = x, labels, ids, bs
        self.indexes = np.arange(len(ids))

    def __len__(self):
        return len(self.ids) // self.bs

    def on_epoch_end(self):
        np.random.shuffle(self.indexes)

    def __getitem__(self, index):
        lo, hi = index * self.bs, (index + 1) * self.bs
        picked = [self.ids[k] for k in self.indexes[lo:hi]]
        x = self.x[self.indexes[lo:hi]]
        y = np.array([self.labels[ID] for ID in picked])
        return x / 127.5 - 1.0, keras.utils.to_categorical(y, num_classes=5)
''')
    assert not model.data("index * self.bs")
    assert not model.data("picked")  # ids pick rows; they are not in the batch
    assert model.data("x / 127.5 - 1.0")
    assert model.step("x / 127.5 - 1.0") == (("x",), "batch")
    assert model.step("keras.utils.to_categorical(y, num_classes=5)") is not None


def test_list_building_loops_stacked_and_dict_outputs():
    model = Model('''
class Faces(keras.utils.PyDataset):
    def __getitem__(self, idx):
        rows = self.images[idx * 16:(idx + 1) * 16]
        out = []
        for img in rows:
            out.append(img.astype("float32") / 255.0)
        meta = self.meta[idx * 16:(idx + 1) * 16]
        return {"image": np.stack(out), "meta": (meta - 40.0) / 12.0}, self.ages[idx * 16:(idx + 1) * 16]
''')
    assert model.step('img.astype("float32") / 255.0') == (("images",), "sample")
    assert model.step("(meta - 40.0) / 12.0") == (("meta",), "batch")
    assert model.data('np.stack(out)')


def test_padding_and_paths_are_not_preprocessing():
    model = Model('''
class Tokens(keras.utils.PyDataset):
    def __getitem__(self, idx):
        seqs = self.sequences[idx * 8:(idx + 1) * 8]
        names = [self.root + "/" + n + ".txt" for n in self.names[idx * 8:(idx + 1) * 8]]
        width = max(len(s) for s in seqs)
        padded = np.zeros((len(seqs), width), dtype=np.int32)
        for i, s in enumerate(seqs):
            padded[i, :len(s)] = s
        return padded, np.array([len(n) for n in names])
''')
    assert not model.data('self.root + "/" + n + ".txt"')
    assert not model.data("max(len(s) for s in seqs)")
    assert model.data("padded")
    assert model.step("s") is None  # copied as it is: nothing to compute once


@pytest.mark.parametrize("statistic", ["x.mean()", "np.std(x)", "x.max()"])
def test_batch_statistics_end_the_region(statistic):
    model = Model(f'''
class Standardised(keras.utils.PyDataset):
    def __getitem__(self, idx):
        x = self.x[idx * 8:(idx + 1) * 8]
        x = x.astype(np.float32) / 255.0
        x = (x - {statistic}) / 3.0
        return x
''')
    assert model.step("x.astype(np.float32) / 255.0") == (("x",), "batch")
    # a statistic of the whole batch differs per batch: what uses it is not computed once
    assert f"(x - {statistic}) / 3.0" not in model.region_ends()
    assert "x.astype(np.float32) / 255.0" in model.region_ends()


def test_attributes_changed_per_epoch_are_not_settings():
    model = Model('''
class Curriculum(keras.utils.PyDataset):
    def __init__(self, x, **kwargs):
        super().__init__(**kwargs)
        self.x, self.gain = x, 1.0

    def on_epoch_end(self):
        self.gain *= 0.9

    def __getitem__(self, idx):
        return self.x[idx * 8:(idx + 1) * 8] * self.gain, self.x[idx * 8:(idx + 1) * 8] * 0.5
''')
    assert model.step("self.x[idx * 8:(idx + 1) * 8] * self.gain") is None
    assert model.step("self.x[idx * 8:(idx + 1) * 8] * 0.5") == (("x",), "batch")


def test_file_reads_are_sources_of_their_own():
    model = Model('''
import cv2


class Folder(keras.utils.PyDataset):
    def _read(self, path):
        img = cv2.imread(path)
        return cv2.resize(img, (64, 64))

    def __getitem__(self, idx):
        paths = self.paths[idx * 8:(idx + 1) * 8]
        return np.stack([self._read(p) for p in paths]) / 255.0
''')
    where, unit = model.step("cv2.resize(img, (64, 64))")
    assert where == "cv2.imread(path)" and unit == "sample"
    assert not model.data("paths")


def test_lookups_in_constant_arrays_are_steps_of_their_index():
    model = Model(
        "class Gen(keras.utils.PyDataset):\n"
        "    def __init__(self, x, y, k, **kw):\n        super().__init__(**kw)\n"
        "        self.x, self.y, self.k, self.names = x, y, k, {0: 'cat', 1: 'dog'}\n"
        "        self.onehot, self.rows = np.eye(k, dtype=np.float32), np.asarray(x)\n"
        "    def __len__(self):\n        return 4\n"
        "    def __getitem__(self, i):\n"
        "        eye = np.eye(self.k)\n"
        "        x = self.x[i * 8:(i + 1) * 8]\n"
        "        y = self.onehot[self.y[i * 8:(i + 1) * 8]]\n"
        "        picked = self.rows[self.y[i * 8:(i + 1) * 8]]\n"
        "        return x, eye[self.y[i * 8:(i + 1) * 8]], self.names[int(self.y[i])], y, picked\n"
    )
    assert model.step("eye[self.y[i * 8:(i + 1) * 8]]") == (("y",), "batch")
    # an attribute only ever set to an identity matrix is a table; one set to np.asarray(x) holds rows
    assert model.step("self.onehot[self.y[i * 8:(i + 1) * 8]]") == (("y",), "batch")
    assert model.step("self.rows[self.y[i * 8:(i + 1) * 8]]") is None
    # a dict's entry picked per sample is no preprocessing of the labels
    assert model.step("self.names[int(self.y[i])]") is None


def _seq101_fixes(source: str):
    from seqlint.engine import get_rule, lint_source

    return [f.fix for f in lint_source(HEAD + source, "gen.py", rules=[get_rule("SEQ101")]) if f.fix]


@pytest.mark.parametrize(("read", "safe"), [
    ("self.x[i * 8:(i + 1) * 8]", False),      # a view: `x /= 255.` scaled the dataset itself, every epoch
    ("self.x[i * 8:(i + 1) * 8].copy()", True),
    ("self.x[self.order[i * 8:(i + 1) * 8]]", True),  # advanced indexing copies
])
def test_in_place_steps_on_a_view_of_the_dataset_are_unsafe_to_hoist(read, safe):
    from seqlint.findings import Applicability

    (fix,) = _seq101_fixes(
        "class Gen(keras.utils.PyDataset):\n"
        "    def __init__(self, x, **kw):\n        super().__init__(**kw)\n"
        "        self.x = x\n        self.order = np.arange(len(x))\n"
        "    def __len__(self):\n        return 4\n"
        "    def __getitem__(self, i):\n"
        f"        x = {read}\n"
        "        x /= 255.0\n"
        "        return x\n"
    )
    assert (fix.applicability is Applicability.SAFE) == safe, fix.message
    if not safe:
        assert "own rows in place" in fix.message


@pytest.mark.parametrize(("reshape", "safe"), [
    ("x.reshape(-1, 4, 2)", True),     # every row regrouped alone (preprocess_once checks the row count)
    ("x.reshape((-1, 8))", True),
    ("x.reshape(4, -1)", False),       # a fixed first axis mixes rows
    ("x.reshape(-1, self.n)", False),  # `self.n` changes per epoch
])
def test_reshape_keeping_the_rows_is_row_wise(reshape, safe):
    from seqlint.findings import Applicability

    fixes = _seq101_fixes(
        "class Gen(keras.utils.PyDataset):\n"
        "    def __init__(self, x, **kw):\n        super().__init__(**kw)\n"
        "        self.x, self.n = x, 8\n"
        "    def on_epoch_end(self):\n        self.n = 8\n"
        "    def __len__(self):\n        return 4\n"
        "    def __getitem__(self, i):\n"
        "        x = self.x[i * 4:(i + 1) * 4]\n"
        f"        return {reshape}.astype(np.float32) / 255.0\n"
    )
    assert any(fix.applicability is Applicability.SAFE for fix in fixes) == safe, [f.message for f in fixes]


@pytest.mark.parametrize(("step", "safe"), [
    ("(self.x[lo:lo + 4] - 0.5) * 2.0", True),              # element-wise: the shape stays
    ("keras.utils.to_categorical(self.x[lo:lo + 4], 3)", False),  # one more axis: `.shape[-1]` would change
])
def test_shape_reads_elsewhere_allow_only_shape_keeping_steps(step, safe):
    from seqlint.findings import Applicability

    fixes = _seq101_fixes(
        "class Gen(keras.utils.PyDataset):\n"
        "    def __init__(self, x, **kw):\n        super().__init__(**kw)\n"
        "        self.x = x\n"
        "    def __len__(self):\n        return 4\n"
        "    def __getitem__(self, i):\n"
        "        lo = i * 4\n"
        "        out = np.zeros((4, self.x.shape[-1]))\n"
        f"        return {step}, out\n"
    )
    assert any(fix.applicability is Applicability.SAFE for fix in fixes) == safe, [f.message for f in fixes]
