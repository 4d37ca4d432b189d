"""The row-wise proof behind SEQ101's safe fixes, for helpers that loop over the rows of the batch.

A helper is hoisted into `seqkit.preprocess_once` by a *safe* fix only when the proof shows each output
row comes from its input row alone; each case below changes one thing about a tokenizer loop that the
proof accepts, and checks the applicability the rule gives its finding.
"""

from __future__ import annotations

import numpy as np
import pytest

from seqlint.engine import get_rule, lint_source

_CLASS = '''import numpy as np
import keras

PAD, OOV = 0, 1


class Reviews(keras.utils.PyDataset):
    def __init__(self, texts, vocab, maxlen=6, batch_size=4, **kwargs):
        super().__init__(**kwargs)
        self.texts = np.asarray(texts)
        self.vocab = vocab
        self.maxlen = maxlen
        self.batch_size = batch_size

    def __len__(self):
        return -(-len(self.texts) // self.batch_size)

    def encode(self, texts):
{body}
    def __getitem__(self, idx):
        tokens = self.encode(self.texts[idx * self.batch_size:(idx + 1) * self.batch_size])
{extra}        return tokens
'''

_TOKENIZE = """        out = np.full((len(texts), self.maxlen), PAD, dtype=np.int32)
        for row, text in enumerate(texts):
            ids = [self.vocab.get(w, OOV) for w in str(text).lower().split()][: self.maxlen]
            out[row, : len(ids)] = ids
        return out
"""


def _variant(old: str, new: str) -> str:
    assert old in _TOKENIZE
    return _TOKENIZE.replace(old, new)


def _fix_kinds(body: str, extra: str = "") -> list[str]:
    source = _CLASS.format(body=body, extra=extra)
    findings = lint_source(source, "reviews.py", rules=[get_rule("SEQ101")])
    return [f.fix.applicability.value if f.fix else "none" for f in findings]


def _hoisted_safely(body: str, extra: str = "") -> bool:
    return "safe" in _fix_kinds(body, extra)


@pytest.mark.parametrize(
    "body",
    [
        _TOKENIZE,
        # `range(len(texts))` and `texts[row]` instead of enumerate
        _variant("for row, text in enumerate(texts):", "for row in range(len(texts)):\n            text = texts[row]"),
        # builtins, conditional expressions and zero-filled arrays
        _variant(
            "out = np.full((len(texts), self.maxlen), PAD, dtype=np.int32)",
            "out = np.zeros((len(texts), self.maxlen), dtype=np.int32)",
        ).replace("str(text).lower()", "(str(text) if len(text) else '').strip().lower()"),
    ],
)
def test_per_row_loops_the_proof_accepts(body: str) -> None:
    assert _hoisted_safely(body)


@pytest.mark.parametrize(
    "body",
    [
        # The row's position, not its content, decides the output.
        _variant("out[row, : len(ids)] = ids", "out[row, : len(ids)] = ids\n            out[row, 0] = row"),
        # Another row of the batch is read.
        _variant("str(text)", "str(texts[row - 1])"),
        # A row other than the loop's own is written.
        _variant("out[row, : len(ids)] = ids", "out[row - 1, : len(ids)] = ids"),
        # The caller's batch is written into.
        _variant("out[row, : len(ids)] = ids", "texts[row] = str(text).lower()"),
        # State carried from one row to the next.
        _variant(
            "        for row, text in enumerate(texts):",
            "        seen = 0\n        for row, text in enumerate(texts):\n            seen = seen + 1",
        ),
        # The vocabulary grows as texts are read.
        _variant("self.vocab.get(w, OOV)", "self.vocab.setdefault(w, len(self.vocab))"),
        # Randomness (word dropout).
        _variant("for w in str(text).lower().split()]", "for w in str(text).lower().split() if np.random.rand() > 0.1]"),
        # A loop-local value leaks out of the loop.
        _variant("        return out\n", "        out[:, 0] = len(ids)\n        return out\n"),
        # A method the tables do not know, on an object of unknown type.
        _variant("str(text).lower().split()", "self.vocab.tokenize(text)"),
    ],
)
def test_per_row_loops_the_proof_rejects(body: str) -> None:
    assert not _hoisted_safely(body)


@pytest.mark.parametrize(
    "body",
    [
        # Randomness (word dropout): augmentation, never reported as deterministic preprocessing.
        _variant("for w in str(text).lower().split()]", "for w in str(text).lower().split() if np.random.rand() > 0.1]"),
        # The vocabulary grows as texts are read: the result depends on the batches seen before.
        _variant("self.vocab.get(w, OOV)", "self.vocab.setdefault(w, len(self.vocab))"),
    ],
)
def test_work_that_cannot_be_done_once_is_not_reported(body: str) -> None:
    assert _fix_kinds(body) == []


@pytest.mark.parametrize(
    "body",
    [
        # Writing into the caller's batch: rows of the dataset itself.
        _variant("out[row, : len(ids)] = ids", "texts[row] = str(text).lower()\n            out[row, : len(ids)] = ids"),
        # A loop-local value leaks out of the loop.
        _variant("        return out\n", "        out[:, 0] = len(ids)\n        return out\n"),
    ],
)
def test_reported_but_not_hoisted_safely(body: str) -> None:
    kinds = _fix_kinds(body)
    assert kinds and "safe" not in kinds


def test_a_setting_changed_through_a_method_per_batch_is_not_a_setting() -> None:
    # `encode` alone is row-wise, but __getitem__ grows the vocabulary: hoisting would freeze it.
    assert _hoisted_safely(_TOKENIZE)
    assert not _hoisted_safely(_TOKENIZE, extra="        self.vocab.update({'new': len(self.vocab)})\n")


def test_the_accepted_tokenizer_really_is_row_wise() -> None:
    # What the proof claims, checked by running it: encoding all texts at once gives every batch's rows.
    namespace: dict = {}
    exec(compile(_CLASS.format(body=_TOKENIZE, extra=""), "reviews.py", "exec"), namespace)
    texts = ["good movie", "Bad plot bad actors", "", "the film was very very very long indeed", "ok"]
    vocab = {"good": 2, "bad": 3, "movie": 4, "plot": 5, "the": 6, "very": 7}
    data = namespace["Reviews"](texts, vocab, maxlen=6, batch_size=2)
    whole = data.encode(data.texts)
    batches = np.concatenate([data[i] for i in range(len(data))])
    np.testing.assert_array_equal(whole, batches)
