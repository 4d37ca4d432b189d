"""SEQ303 moves the worker arguments to the dataset's constructor (issue 11 §5), or says where they go.

`fit(gen, workers=4)` used to lose `workers` whenever the dataset's class was not in the same file
(the Stanford tutorial imports it from my_classes.py). Now the arguments move to the constructor call
the file shows; the fix is safe when the class is known to take `**kwargs`, unsafe (and says why) when
it does not yet or cannot be seen; only with no constructor in sight are they removed, the fix's
message and a comment naming where they belong. The rewritten call keeps its alignment.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from seqlint.engine import get_rule, lint_source
from seqlint.findings import Applicability
from seqlint.runner import apply_fixes

SEQ303 = get_rule("SEQ303")

STANFORD_SCRIPT = textwrap.dedent('''\
    from my_classes import DataGenerator

    training_generator = DataGenerator(partition['train'], labels, **params)
    validation_generator = DataGenerator(partition['validation'], labels, **params)

    model.fit_generator(generator=training_generator,
                        validation_data=validation_generator,
                        use_multiprocessing=True,
                        workers=6)
    ''')

MY_CLASSES = textwrap.dedent('''\
    import numpy as np
    from tensorflow import keras


    class DataGenerator(keras.utils.Sequence):
        def __init__(self, list_IDs, labels, batch_size=32):
            self.list_IDs, self.labels, self.batch_size = list_IDs, labels, batch_size

        def __len__(self):
            return int(np.ceil(len(self.list_IDs) / self.batch_size))

        def __getitem__(self, index):
            return self.list_IDs[index * self.batch_size:(index + 1) * self.batch_size]
    ''')


def only_fix(source: str):
    (finding,) = [f for f in lint_source(source, "train.py", rules=[SEQ303])]
    return finding.fix, apply_fixes(source, [finding.fix])[0]


def test_unseen_class_gets_the_arguments_unsafely_and_the_call_stays_aligned():
    fix, fixed = only_fix(STANFORD_SCRIPT)
    assert fix.applicability is Applicability.UNSAFE
    assert "move use_multiprocessing=True, workers=6 to the dataset's constructor `DataGenerator(...)`" in fix.message
    assert "cannot see class `DataGenerator`" in fix.message
    assert fixed == STANFORD_SCRIPT.replace(
        "DataGenerator(partition['train'], labels, **params)",
        "DataGenerator(partition['train'], labels, **params, use_multiprocessing=True, workers=6)",
    ).replace(
        "model.fit_generator(generator=training_generator,\n"
        "                    validation_data=validation_generator,\n"
        "                    use_multiprocessing=True,\n"
        "                    workers=6)\n",
        "model.fit(x=training_generator,\n"
        "          validation_data=validation_generator)\n",
    )
    compile(fixed, "train.py", "exec")


def test_class_without_kwargs_is_unsafe_until_seqlint_adds_them(tmp_path):
    source = MY_CLASSES + "\n\ndef train(model, ids, labels):\n    gen = DataGenerator(ids, labels)\n" \
        "    model.fit(gen, epochs=2, workers=4)\n"
    fix, _ = only_fix(source)
    assert fix.applicability is Applicability.UNSAFE
    assert "`DataGenerator.__init__` takes no **kwargs yet; SEQ302's fix adds them" in fix.message
    # `seqlint fix` applies SEQ302 first, after which the move is safe: both land in one run.
    (tmp_path / "train.py").write_text(source)
    proc = subprocess.run([sys.executable, "-m", "seqlint", "fix", "train.py"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = (tmp_path / "train.py").read_text()
    assert "gen = DataGenerator(ids, labels, workers=4)\n    model.fit(gen, epochs=2)\n" in after
    assert "def __init__(self, list_IDs, labels, batch_size=32, **kwargs):" in after


def test_class_in_another_checked_file(tmp_path):
    """The project index knows my_classes.DataGenerator: once it takes **kwargs, the move is safe."""
    (tmp_path / "my_classes.py").write_text(MY_CLASSES)
    (tmp_path / "train.py").write_text(STANFORD_SCRIPT)

    def fix_all() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "seqlint", "fix", "."], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)

    fix_all()  # SEQ302 adds **kwargs in my_classes.py; train.py's move is still unsafe in this run
    assert "**kwargs" in (tmp_path / "my_classes.py").read_text()
    assert "fit_generator" in (tmp_path / "train.py").read_text()
    proc = fix_all()  # now the index sees a class taking **kwargs: the move is safe
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "DataGenerator(partition['train'], labels, **params, use_multiprocessing=True, workers=6)" \
        in (tmp_path / "train.py").read_text()


def test_no_constructor_in_sight_the_message_says_where_they_belong():
    source = "def run(model, seq):\n    model.fit(seq,\n              epochs=(5),  # five\n              workers=(8))\n"
    fix, fixed = only_fix(source)
    assert fix.applicability is Applicability.SAFE
    assert fix.message.startswith("Remove workers=(8): in Keras 3 they belong to the constructor of the dataset `seq`")
    assert fixed == (
        "def run(model, seq):\n"
        "    # seqlint: in Keras 3 pass workers=(8) to the constructor of the dataset `seq` "
        "(a PyDataset whose __init__ passes **kwargs to super().__init__).\n"
        "    model.fit(seq,\n              epochs=(5),  # five\n              )\n"
    )


def test_parenthesised_arguments_move_whole():
    source = textwrap.dedent('''\
        from keras.utils import PyDataset

        class Data(PyDataset):
            def __len__(self):
                return 1

            def __getitem__(self, i):
                return i

        model.fit(Data(size=(32, 32)), workers=(4), max_queue_size=(10))
        ''')
    fix, fixed = only_fix(source)
    assert fix.applicability is Applicability.SAFE
    assert fixed.endswith("model.fit(Data(size=(32, 32), workers=(4), max_queue_size=(10)))\n")


def test_hanging_indentation_is_left_as_it_is():
    source = "model.fit_generator(\n    gen,\n    steps_per_epoch=10,\n)\n"
    _, fixed = only_fix(source)
    assert fixed == "model.fit(\n    gen,\n    steps_per_epoch=10,\n)\n"
