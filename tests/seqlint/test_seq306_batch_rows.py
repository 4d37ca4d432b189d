"""SEQ306's fix and batches allocated at the batch size (issue 11 §5).

The tutorial generator allocates `np.empty((self.batch_size, ...))` and fills one row per sample id.
Rounding `__len__` up alone gives the new last batch rows nobody filled: garbage that `to_categorical`
turns into a crash on a huge index, or trains on. The fix now also sizes those arrays by the batch's
real row count (fixtures/fix/stanford_empty_batch runs both versions), or is not offered when seqlint
cannot tell that count.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from seqlint.engine import get_rule, lint_source
from seqlint.findings import Applicability
from seqlint.runner import apply_fixes

PAIR = Path(__file__).resolve().parents[2] / "fixtures" / "fix" / "stanford_empty_batch"
sys.path.insert(0, str(PAIR.parent))
import _pairs  # noqa: E402

SEQ306 = get_rule("SEQ306")


def _load(text: str, tmp_path: Path, name: str):
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    return _pairs.load_module(path, name)


def test_rounding_up_alone_leaves_unfilled_rows_in_the_last_batch(tmp_path):
    """What the fix used to produce: the last batch has batch_size rows, the tail never written."""
    before = (PAIR / "before.py").read_text()
    ceil_only = before.replace("return int(np.floor(len(self.list_IDs) / self.batch_size))",
                               "return int(np.ceil(len(self.list_IDs) / self.batch_size))")
    harness = _pairs.load_module(PAIR / "harness.py", "stanford_harness")
    data = tmp_path / "data"
    data.mkdir()
    naive = harness.build(_load(ceil_only, tmp_path, "ceil_only"), data)
    fixed = harness.build(_pairs.load_module(PAIR / "after_unsafe.py", "stanford_fixed"), data)
    last = len(fixed) - 1
    assert len(naive) == len(fixed) == 5
    x, y = fixed[last]
    assert x.shape[0] == y.shape[0] == 70 - 4 * 16
    try:
        naive_x, _ = naive[last]
    except IndexError:
        pass  # an uninitialised label as a class index: the crash in to_categorical the issue reports
    else:
        assert naive_x.shape[0] == 16  # 16 rows for 6 samples: 10 rows of uninitialised memory
        np.testing.assert_array_equal(x, naive_x[:6])


def test_the_fix_resizes_every_array_filled_by_the_loop():
    findings = lint_source((PAIR / "before.py").read_text(), "gen.py", rules=[SEQ306])
    (finding,) = findings
    assert finding.fix.applicability is Applicability.UNSAFE
    assert "real row count" in finding.fix.message
    fixed, _ = apply_fixes((PAIR / "before.py").read_text(), [finding.fix])
    assert "X = np.empty((len(list_IDs_temp), *self.dim, self.n_channels))" in fixed
    assert "y = np.empty((len(list_IDs_temp)), dtype=int)" in fixed
    assert "self.batch_size" not in fixed.split("def __data_generation")[1]


HEAD = textwrap.dedent('''\
    import numpy as np
    from tensorflow import keras


    class Gen(keras.utils.Sequence):
        def __len__(self):
            return len(self.ids) // self.batch_size
    ''')


@pytest.mark.parametrize(
    ("body", "resized"),
    [
        # np.zeros with a shape keyword, rows written through range(len(...)).
        ('''
    def __getitem__(self, i):
        batch = self.ids[i * self.batch_size:(i + 1) * self.batch_size]
        out = np.zeros(shape=(self.batch_size, 4), dtype="float32")
        for j in range(len(batch)):
            out[j] = self.table[batch[j]]
        return out
''', "out = np.zeros(shape=(len(batch), 4), dtype=\"float32\")"),
        # np.full, a 1-d batch.
        ('''
    def __getitem__(self, i):
        ids = self.ids[i * self.batch_size:(i + 1) * self.batch_size]
        y = np.full(self.batch_size, -1)
        for k, sample in enumerate(ids):
            y[k] = self.labels[sample]
        return y
''', "y = np.full(len(ids), -1)"),
    ],
)
def test_other_allocations_are_resized(body, resized):
    source = HEAD + body
    (finding,) = lint_source(source, "gen.py", rules=[SEQ306])
    fixed, _ = apply_fixes(source, [finding.fix])
    assert resized in fixed and "math.ceil(len(self.ids) / self.batch_size)" in fixed


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        # Rows written by a loop over the batch size: the last batch would index past the ids.
        ('''
    def __getitem__(self, i):
        x = np.empty((self.batch_size, 4))
        for j in range(self.batch_size):
            x[j] = self.table[self.ids[i * self.batch_size + j]]
        return x
''', "np.empty(...)` allocates `self.batch_size` rows"),
        # Filled by a function, not row by row: how many rows the last batch has is not visible.
        ('''
    def __getitem__(self, i):
        x = np.zeros((self.batch_size, 4))
        self.fill(x, i)
        return x
''', "np.zeros(...)` allocates `self.batch_size` rows"),
        ('''
    def __getitem__(self, i):
        flat = self.data[i * self.batch_size * 4:(i + 1) * self.batch_size * 4]
        return flat.reshape(self.batch_size, 4)
''', "reshapes to `self.batch_size` rows"),
    ],
)
def test_no_fix_when_the_row_count_is_unknown(body, reason):
    (finding,) = lint_source(HEAD + body, "gen.py", rules=[SEQ306])
    assert finding.fix is None
    assert reason in finding.hint and finding.hint.startswith("No automatic fix:")
