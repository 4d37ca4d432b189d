"""Deeply nested files are reported as not checked, never crash the run (issue 13 §4).

libcst's parser recurses on the C stack: brackets nested ~1,300 deep, ~3,500 chained lambdas or
~10,000 `not`s kill the process with SIGSEGV, and with it the report of every file. seqlint measures the
nesting on the tokens first (seqlint.nesting) and reports such a file with the reason; the other files
are checked, and the exit code is 2.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from seqlint.nesting import MAX_BRACKETS, MAX_INDENTATION, MAX_NESTING, nesting_problem

GENERATOR = '''\
from tensorflow import keras


class Gen(keras.utils.PyDataset):
    def __init__(self, x):
        self.x = x

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i]
'''
HEAD = "from keras.utils import Sequence  # a file the prefilter lets through\n"

# name -> (source, reason the guard gives); each one crashes libcst on an 8 MB stack without the guard.
DEEP = {
    "brackets_2000": ("x = " + "(" * 2000 + "1" + ")" * 2000 + "\n", "brackets nested more than 200 deep"),
    "lists_1500": ("x = " + "[" * 1500 + "1" + "]" * 1500 + "\n", "brackets nested more than 200 deep"),
    "lambdas_5000": ("f = " + "lambda: " * 5000 + "1\n", "chained `lambda`"),
    "nots_10000": ("x = " + "not " * 10000 + "1\n", "chained `not`"),
    "powers_10000": ("x = 2" + " ** 2" * 10000 + "\n", "chained `**`"),
    "conditionals_10000": ("x = " + "1 if c else " * 10000 + "1\n", "chained `if`"),
    "indentation_150": ("".join("    " * i + "if a:\n" for i in range(150)) + "    " * 150 + "pass\n",
                        "indentation more than 100 levels deep"),
}


def seqlint(*args, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seqlint", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("name", sorted(DEEP))
def test_guard_reports_each_deep_shape(name):
    source, reason = DEEP[name]
    problem = nesting_problem(HEAD + source)
    assert problem is not None and reason in problem.reason, problem
    assert problem.line >= 2 and problem.column >= 1
    assert problem.message.startswith("not checked: ")


def test_guard_accepts_what_python_itself_accepts():
    limits = [
        "x = " + "(" * MAX_BRACKETS + "1" + ")" * MAX_BRACKETS + "\n",
        "".join("    " * i + "if a:\n" for i in range(MAX_INDENTATION - 1)) + "    " * (MAX_INDENTATION - 1) + "pass\n",
        "x = " + "not " * (MAX_NESTING - 1) + "1\n",
        # Long but flat: left-associative chains, separated unary operators, unpacking, many elements.
        "x = 1" + " + 1" * 5000 + "\n",
        "y = -1" + " - -1" * 3000 + "\n",
        "z = [" + ", ".join(["-1"] * 5000) + "]\n",
        "f(**kw, **{**d})\nw = a if b else c\nv = not a and not b\n",
        "s = '''" + "(" * 5000 + "'''  # brackets in strings and comments do not count " + "(" * 300 + "\n",
    ]
    for source in limits:
        assert nesting_problem(source) is None, source[:60]


def test_deep_files_are_not_checked_and_the_others_are(tmp_path):
    (tmp_path / "good.py").write_text(GENERATOR)
    for name, (source, _reason) in DEEP.items():
        (tmp_path / f"{name}.py").write_text(HEAD + source)
    proc = seqlint("check", ".", "--output-format", "json", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr  # files not checked: the exit code says so
    assert "Traceback" not in proc.stderr and "Segmentation" not in proc.stderr
    entries = json.loads(proc.stdout)
    findings = [e for e in entries if e["code"]]
    errors = {e["filename"]: e for e in entries if e["code"] is None}
    assert [(f["filename"], f["code"]) for f in findings] == [("good.py", "SEQ302")]
    assert set(errors) == {f"{name}.py" for name in DEEP}
    for name, (_source, reason) in DEEP.items():
        message = errors[f"{name}.py"]["message"]
        assert message.startswith("not checked: ") and reason in message, message
        assert errors[f"{name}.py"]["location"]["row"] >= 2
    # The human formats say it too, instead of "All checks passed!".
    proc = seqlint("check", *(f"{name}.py" for name in DEEP), cwd=tmp_path)
    assert proc.returncode == 2
    assert "All checks passed" not in proc.stdout
    assert f"{len(DEEP)} files could not be checked" in proc.stdout


def test_deep_files_in_a_parallel_run(tmp_path):
    """Over the parallel threshold the files go to worker processes: a crash there would mark every
    file in flight as unchecked. With the guard, only the deep ones are."""
    from seqlint.runner import PARALLEL_THRESHOLD

    for i in range(PARALLEL_THRESHOLD + 1):
        (tmp_path / f"gen_{i:03}.py").write_text(GENERATOR)
    for name in ("brackets_2000", "lambdas_5000"):
        (tmp_path / f"{name}.py").write_text(HEAD + DEEP[name][0])
    proc = seqlint("check", ".", "--output-format", "json", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    entries = json.loads(proc.stdout)
    assert sum(e["code"] == "SEQ302" for e in entries) == PARALLEL_THRESHOLD + 1
    assert {e["filename"] for e in entries if e["code"] is None} == {"brackets_2000.py", "lambdas_5000.py"}


def test_nesting_the_guard_lets_through_still_parses(tmp_path):
    """Just under the limits, the file is checked (on the analysis thread's large stack)."""
    source = GENERATOR + "\nx = " + "lambda: " * (MAX_NESTING - 10) + "1\n"
    assert nesting_problem(source) is None
    (tmp_path / "gen.py").write_text(source)
    proc = seqlint("check", "gen.py", "--output-format", "concise", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.startswith("gen.py:5:9: SEQ302")
