"""Keras bases are matched by qualified name only (issue 13 §4).

TensorFlow's own iterators subclass `collections_abc.Iterator`; Keras' legacy preprocessing defines a
dataset class named `Iterator`. Matched by its last component, the first was taken for the second, and
SEQ302's "safe" fix rewrote TensorFlow classes that are not Keras datasets at all.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from seqlint.analysis.project import ProjectIndex
from seqlint.engine import build_context, get_rule, lint_source

# Keras' legacy preprocessing, as in keras/src/legacy/preprocessing/image.py: a dataset named Iterator.
KERAS_ITERATOR = textwrap.dedent('''\
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDataset


    class Iterator(PyDataset):
        def __init__(self, n, batch_size):
            self.n = n
            self.batch_size = batch_size

        def __len__(self):
            return self.n // self.batch_size

        def __getitem__(self, idx):
            return idx
    ''')
# TensorFlow's shape, as in tensorflow/python/data/ops/iterator_ops.py: a plain Python iterator.
TF_ITERATOR = textwrap.dedent('''\
    from six.moves import collections_abc


    class OwnedIterator(collections_abc.Iterator):
        def __init__(self, dataset):
            self._dataset = dataset

        def __next__(self):
            return next(self._dataset)
    ''')


def _tree(tmp_path: Path, files: dict[str, str]) -> dict[str, str]:
    sources = {}
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        sources[str(path)] = text
    return sources


def _sequences(sources: dict[str, str], name: str) -> list[str]:
    index = ProjectIndex.build(sources)
    path = next(p for p in sources if p.endswith(name))
    return [s.name for s in build_context(sources[path], path, index).sequences]


def test_collections_abc_iterator_is_not_keras_legacy_iterator(tmp_path):
    sources = _tree(tmp_path, {"keras_legacy/image.py": KERAS_ITERATOR, "tf_data/iterator_ops.py": TF_ITERATOR})
    assert _sequences(sources, "keras_legacy/image.py") == ["Iterator"]
    assert _sequences(sources, "tf_data/iterator_ops.py") == []
    index = ProjectIndex.build(sources)
    tf_file = next(p for p in sources if p.endswith("iterator_ops.py"))
    findings = lint_source(sources[tf_file], tf_file, project=index, rules=[get_rule("SEQ302")])
    assert findings == []  # no finding, so no "safe" fix rewriting TensorFlow's class


def test_a_base_from_a_module_outside_the_tree_is_not_matched_by_its_bare_name(tmp_path):
    sources = _tree(tmp_path, {
        "pkg/base.py": "from keras.utils import PyDataset\n\nclass BaseGen(PyDataset):\n    pass\n",
        "app/train.py": "from elsewhere.models import BaseGen\n\nclass TrainGen(BaseGen):\n    pass\n",
    })
    assert _sequences(sources, "app/train.py") == []


def test_star_imports_resolve_through_the_starred_module_only(tmp_path):
    sources = _tree(tmp_path, {
        "pkg/base.py": "from keras.utils import PyDataset\n\nclass BaseGen(PyDataset):\n    pass\n",
        "pkg/train.py": "from pkg.base import *\n\nclass TrainGen(BaseGen):\n    pass\n",
        "other/train.py": "from other_lib import *\n\nclass TrainGen(BaseGen):\n    pass\n",
    })
    assert _sequences(sources, "pkg/train.py") == ["TrainGen"]
    assert _sequences(sources, "other/train.py") == []


GETITEM_LEN = "    def __len__(self):\n        return 1\n\n    def __getitem__(self, i):\n        return i\n"


def test_star_imported_sequence_is_qualified_by_its_module():
    keras_star = "from keras.utils import *\n\nclass Gen(Sequence):\n" + GETITEM_LEN
    abc_star = "from collections.abc import *\n\nclass Rows(Sequence):\n" + GETITEM_LEN
    assert [s.base_qualname for s in build_context(keras_star, "a.py").sequences] == ["keras.utils.Sequence"]
    # The notebook heuristic (an unimported bare `Sequence` with __getitem__ and __len__) does not
    # apply when a star import may have brought the name: here it is collections.abc.Sequence.
    assert build_context(abc_star, "b.py").sequences == []
    assert [s.name for s in build_context("class Gen(Sequence):\n" + GETITEM_LEN, "c.py").sequences] == ["Gen"]


def test_same_module_name_twice_prefers_the_importers_folder(tmp_path):
    sources = _tree(tmp_path, {
        "a/utils.py": "from keras.utils import PyDataset\n\nclass Base(PyDataset):\n    pass\n",
        "b/utils.py": "class Base:\n    pass\n",
        "a/train.py": "from utils import Base\n\nclass Gen(Base):\n    pass\n",
        "b/train.py": "from utils import Base\n\nclass Gen(Base):\n    pass\n",
    })
    assert _sequences(sources, "a/train.py") == ["Gen"]
    assert _sequences(sources, "b/train.py") == []
