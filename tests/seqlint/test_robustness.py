"""Bad input gets clear errors and never a traceback; every other file is still checked."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

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
ERROR_LINE = re.compile(r"^(?P<path>.+?)(:(?P<line>\d+):(?P<col>\d+))?: error: (?P<message>.+)$")


def seqlint(*args, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seqlint", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def errors_of(stderr: str) -> dict[str, tuple[str | None, str]]:
    found = {}
    for line in stderr.splitlines():
        match = ERROR_LINE.match(line)
        if match:
            found[match["path"]] = (match["line"], match["message"])
    return found


def test_bad_files_are_reported_and_the_rest_still_checked(tmp_path):
    (tmp_path / "good.py").write_text(GENERATOR)
    (tmp_path / "latin1.py").write_bytes(b"# caf\xe9\nclass Gen(Sequence): pass\n")
    (tmp_path / "broken.py").write_text("class Gen(keras.utils.Sequence):\n    def __getitem__(self, i)\n")
    (tmp_path / "empty.py").write_text("")
    (tmp_path / "no_python").mkdir()
    (tmp_path / "no_python" / "notes.txt").write_text("nothing here")
    proc = seqlint("check", ".", "no_python", "missing.py", "--output-format", "concise", cwd=tmp_path)
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 2  # file errors win over findings
    # The good file was checked and its finding reported.
    assert proc.stdout.startswith("good.py:5:9: SEQ302 ")
    errors = errors_of(proc.stderr)
    assert set(errors) == {"latin1.py", "broken.py", "missing.py"}
    assert errors["latin1.py"] == ("1", "file is not valid UTF-8: cannot decode byte 0xe9 "
                                        "(declare the file's encoding or convert it to UTF-8)")
    assert errors["broken.py"][0] == "2" and "syntax error" in errors["broken.py"][1]
    assert errors["missing.py"] == (None, "no such file or directory")
    assert "warning: no Python files or notebooks found under no_python" in proc.stderr


def test_declared_encoding_is_honoured(tmp_path):
    source = "# -*- coding: latin-1 -*-\n# café\n" + GENERATOR
    (tmp_path / "gen.py").write_bytes(source.encode("latin-1"))
    proc = seqlint("check", "gen.py", "--output-format", "concise", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.startswith("gen.py:7:9: SEQ302 ")


def test_empty_directory_and_empty_file_are_clean(tmp_path):
    (tmp_path / "empty.py").write_text("")
    (tmp_path / "sub").mkdir()
    proc = seqlint("check", "empty.py", cwd=tmp_path)
    assert (proc.returncode, proc.stderr) == (0, "")
    proc = seqlint("check", "sub", cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stderr == "warning: no Python files or notebooks found under sub\n"


def test_missing_path_alone_exits_2(tmp_path):
    proc = seqlint("check", "nope/", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "nope/: error: no such file or directory"


def test_errors_appear_in_json_and_sarif(tmp_path):
    (tmp_path / "broken.py").write_text("class Gen(keras.utils.Sequence):\n    def __getitem__(self, i)\n")
    data = json.loads(seqlint("check", ".", "--output-format", "json", cwd=tmp_path).stdout)
    assert [(d["code"], d["filename"], d["location"]["row"]) for d in data] == [(None, "broken.py", 2)]
    log = json.loads(seqlint("check", ".", "--output-format", "sarif", cwd=tmp_path).stdout)
    invocation = log["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is False
    note = invocation["toolExecutionNotifications"][0]
    assert note["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "broken.py"


def _installed(name: str) -> Path:
    return Path(sysconfig.get_paths()["purelib"]) / name


@pytest.mark.slow
def test_installed_tensorflow_keras_numpy_and_stdlib(tmp_path):
    """Thousands of real files in one invocation: results, never a crash.

    The stdlib ships deliberately broken files as test data (bad coding cookies, Python 2 grammar);
    those must be reported as file errors, and nothing else may be.
    """
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    roots = [_installed("tensorflow"), _installed("keras"), _installed("numpy"), stdlib]
    start = time.perf_counter()
    proc = seqlint("check", *map(str, roots), "--output-format", "json", cwd=tmp_path, timeout=600)
    elapsed = time.perf_counter() - start
    print(f"seqlint over tensorflow+keras+numpy+stdlib: {elapsed:.1f} s, exit {proc.returncode}")
    assert "Traceback" not in proc.stderr
    assert proc.returncode in (0, 1, 2)
    findings = json.loads(proc.stdout)
    errors = [d for d in findings if d["code"] is None]
    for error in errors:
        assert "internal error" not in error["message"], error
        assert any(part in ("test", "tests") for part in Path(error["filename"]).parts), error
    for line in proc.stderr.splitlines():
        assert ERROR_LINE.match(line) or line.startswith("warning: "), line
    assert proc.returncode == (2 if errors else 1 if findings else 0)
