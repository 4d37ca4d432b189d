"""SEQ102 on a batch filled row by row: which fill loops are proven the same as one index.

The rule's own cases (seqlint/rules/seq102_python_loop_over_array.py) prove the rewrites run both ways;
these pin down the safety each one is offered with, and the cases where a fix would be wrong.
"""

from __future__ import annotations

import textwrap

from seqlint.engine import lint_source
from seqlint.findings import Applicability
from seqlint.rules.seq102_python_loop_over_array import PythonLoopOverArray
from seqlint.runner import apply_fixes

RULE = PythonLoopOverArray


def _case(class_name: str) -> str:
    (source,) = [c.source for c in RULE.invalid if f"class {class_name}(" in c.source]
    return source


def _fills(source: str):
    return [f for f in lint_source(textwrap.dedent(source), "gen.py", rules=[RULE]) if "fills" in f.message]


def test_integer_ids_and_the_batch_row_shape_make_the_fill_safe():
    (finding,) = _fills(_case("Letters"))
    assert finding.fix.applicability is Applicability.SAFE
    assert "`self.pixels`" in finding.message


def test_unknown_keys_or_a_reshape_with_minus_one_make_it_unsafe():
    (finding,) = _fills(_case("Frames"))
    assert finding.fix.applicability is Applicability.UNSAFE


def test_safe_only_when_the_row_has_the_batch_row_shape():
    # A row of rank 1 into a batch row of rank 2 broadcasts along the row; the rows at once broadcast
    # against the batch axis instead (and for three rows, silently). The pixels' rank is not known here.
    source = _case("Letters").replace(
        "X[i,] = self.pixels[ID].reshape(*self.dim, 1)", "X[i,] = self.pixels[ID]"
    ).replace("X = np.empty((len(ids), *self.dim, 1))", "X = np.empty((len(ids), 3, 16))")
    (finding,) = _fills(source)
    assert finding.fix.applicability is Applicability.UNSAFE


def test_the_rest_of_the_body_calling_code_makes_it_unsafe():
    source = _case("Letters").replace("y[i] = self.labels[ID]", "y[i] = self.lookup(ID)")
    (finding,) = _fills(source)
    assert finding.fix.applicability is Applicability.UNSAFE


def test_no_fill_finding_when_the_loop_reads_or_changes_what_the_fill_uses():
    reads_batch = _case("Letters").replace("y[i] = self.labels[ID]", "y[i] = X[i].sum()")
    rebinds_ids = _case("Letters").replace("y[i] = self.labels[ID]", "y[i] = self.labels[ID]\n            ids = ids[::-1]")
    breaks = _case("Letters").replace("y[i] = self.labels[ID]", "y[i] = self.labels[ID]\n            if ID < 0:\n                break")
    for source in (reads_batch, rebinds_ids, breaks):
        assert _fills(source) == []


def test_an_attribute_made_an_array_later_in_init_counts_as_one():
    # What SEQ101's hoist leaves: the constructor argument stored, then replaced by its preprocessed rows.
    source = _case("Letters").replace(
        "self.pixels = np.asarray(pixels, dtype=np.uint8)",
        "self.pixels = pixels\n        self.pixels = seqkit.preprocess_once(lambda rows: rows / 255.0, np.asarray(self.pixels))",
    ).replace("import numpy as np", "import numpy as np\nimport seqkit")
    (finding,) = _fills(source)
    assert finding.fix is not None
    stored_only = _case("Letters").replace("self.pixels = np.asarray(pixels, dtype=np.uint8)", "self.pixels = pixels")
    assert _fills(stored_only) == []  # a list of rows would take no id list


def test_no_fix_for_a_reshape_in_fortran_order():
    # Reshaping all rows at once in Fortran order would interleave them: reported, not rewritten.
    source = _case("Letters").replace(".reshape(*self.dim, 1)", '.reshape(*self.dim, 1, order="F")')
    (finding,) = _fills(source)
    assert finding.fix is None


def test_proven_fills_leave_the_loop_first_and_the_others_wait_for_unsafe_fixes():
    # Labels of unknown rank (a column of shape (n, 1) would broadcast differently): the pixels' fill,
    # proven, goes by itself in a safe fix; the labels' fill stays in the loop for a later unsafe one.
    source = _case("Letters").replace("self.labels = labels", "self.labels = np.asarray(labels)")
    (finding,) = _fills(source)
    assert finding.fix.applicability is Applicability.SAFE
    written = "".join(edit.content for edit in finding.fix.edits)
    assert "X[:len(ids)] = self.pixels[ids]" in written and "y[:" not in written
    fixed, _ = apply_fixes(textwrap.dedent(source), [finding.fix])
    (rest,) = _fills(fixed)
    assert rest.fix.applicability is Applicability.UNSAFE
    assert "y[:len(ids)] = self.labels[ids]" in "".join(edit.content for edit in rest.fix.edits)
