"""`seqlint fix` / `check --fix` plumbing: applicability, passes, diff, atomic writes, bad files.

The rewrites themselves are the rules' business (tests/fix, test_rule_cases); here SEQ302 (safe) and
SEQ306 (unsafe) serve as real fixes. Two tests register a fake rule in-process to produce what no
real rule should: a fix that breaks the code, and fixes that collide.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from seqlint.config import Overrides, load_settings
from seqlint.findings import Applicability, Edit, Fix, Location
from seqlint.runner import FixMode, apply_fixes, run, write_atomically

BEFORE = textwrap.dedent('''\
    from tensorflow import keras


    class Gen(keras.utils.Sequence):
        def __init__(self, x, batch_size=32):
            self.x = x  # the data
            self.batch_size = batch_size

        def __len__(self):
            return len(self.x) // self.batch_size

        def __getitem__(self, i):
            return self.x[i * self.batch_size:(i + 1) * self.batch_size]
    ''')


def seqlint(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seqlint", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def gen(tmp_path: Path) -> Path:
    path = tmp_path / "gen.py"
    path.write_text(BEFORE)
    return path


def test_fix_applies_safe_fixes_only_and_reports_the_rest(gen):
    proc = seqlint("fix", "gen.py", "--output-format", "concise", cwd=gen.parent)
    assert proc.returncode == 1, proc.stderr  # SEQ306 remains: its fix is unsafe
    after = gen.read_text()
    assert "def __init__(self, x, batch_size=32, **kwargs):" in after
    assert "super().__init__(**kwargs)" in after
    assert "self.x = x  # the data" in after  # comments and formatting kept
    assert "len(self.x) // self.batch_size" in after
    assert proc.stdout.splitlines() == [
        f"gen.py:11:16: SEQ306 {proc.stdout.split('SEQ306 ', 1)[1].splitlines()[0]}",
        "Found 2 findings (1 fixed, 1 remaining).",
        "1 hidden fix can be enabled with `--unsafe-fixes`.",
    ]
    # Idempotent: a second run changes nothing.
    again = seqlint("fix", "gen.py", cwd=gen.parent)
    assert again.returncode == 1 and gen.read_text() == after


def test_unsafe_fixes_and_check_fix(gen):
    proc = seqlint("check", "--fix", "--unsafe-fixes", "gen.py", cwd=gen.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = gen.read_text()
    assert "math.ceil(len(self.x) / self.batch_size)" in after and "import math" in after
    assert "Found 2 findings (2 fixed, 0 remaining)." in proc.stdout
    compile(after, "gen.py", "exec")
    proc = seqlint("fix", "--unsafe-fixes", "gen.py", cwd=gen.parent)
    assert proc.returncode == 0 and gen.read_text() == after
    assert "All checks passed!" in proc.stdout


def test_diff_writes_nothing(gen):
    proc = seqlint("fix", "--diff", "gen.py", cwd=gen.parent)
    assert proc.returncode == 1
    assert gen.read_text() == BEFORE
    assert proc.stdout.startswith("--- a/gen.py\n+++ b/gen.py\n@@ ")
    assert "-    def __init__(self, x, batch_size=32):\n+    def __init__(self, x, batch_size=32, **kwargs):" in proc.stdout
    assert "Would apply 1 fix(es) in 1 file(s); 1 finding(s) would remain." in proc.stderr
    # Nothing to change: exit 0 even though an unsafe-only finding remains.
    proc = seqlint("fix", "--diff", "--select", "SEQ306", "gen.py", cwd=gen.parent)
    assert (proc.returncode, proc.stdout) == (0, "")


def test_read_only_file_is_reported_not_crashed_on(gen, tmp_path):
    other = tmp_path / "other.py"
    other.write_text(BEFORE)
    gen.chmod(0o444)
    try:
        proc = seqlint("fix", ".", "--output-format", "concise", cwd=tmp_path)
    finally:
        gen.chmod(0o644)
    assert proc.returncode == 2
    assert "gen.py: error: cannot write fixes: file is read-only" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert gen.read_text() == BEFORE
    assert "super().__init__(**kwargs)" in other.read_text()  # the writable file was fixed
    # The read-only file's findings are still those of its (unchanged) text.
    assert "gen.py:5:9: SEQ302" in proc.stdout


def test_unparsable_file_is_left_byte_for_byte(tmp_path, gen):
    broken = tmp_path / "broken.py"
    data = b"class Gen(keras.utils.Sequence):\r\n    def __init__(self x):\r\n"
    broken.write_bytes(data)
    proc = seqlint("fix", ".", cwd=tmp_path)
    assert proc.returncode == 2
    assert "broken.py:2:" in proc.stderr
    assert broken.read_bytes() == data
    assert "**kwargs" in gen.read_text()


def test_mode_bits_line_endings_and_bom_survive(tmp_path):
    path = tmp_path / "gen.py"
    path.write_bytes(b"\xef\xbb\xbf" + BEFORE.replace("\n", "\r\n").encode())
    path.chmod(0o750)
    proc = seqlint("fix", "gen.py", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    assert b"\n" not in data.replace(b"\r\n", b"")  # every line break still CRLF
    assert b"super().__init__(**kwargs)\r\n" in data
    assert stat.S_IMODE(path.stat().st_mode) == 0o750
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gen.py"]  # no temp file left


def test_interrupted_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "gen.py"
    path.write_text(BEFORE)

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomically(path, "new text\n", "utf-8")
    assert path.read_text() == BEFORE
    assert [p.name for p in tmp_path.iterdir()] == ["gen.py"]


def fix(applicability, *edits) -> Fix:
    return Fix(applicability, "test fix", tuple(Edit(c, Location(*a), Location(*b)) for c, a, b in edits))


def test_apply_fixes_defers_overlaps_and_merges_identical_inserts():
    text = "a = 1\nb = 2\nc = 3\n"
    first = fix(Applicability.SAFE, ("import x\n", (1, 1), (1, 1)), ("B", (2, 1), (2, 2)))
    second = fix(Applicability.SAFE, ("import x\n", (1, 1), (1, 1)), ("C", (3, 1), (3, 2)))
    overlapping = fix(Applicability.SAFE, ("bb = 22", (2, 1), (2, 6)))
    new, applied = apply_fixes(text, [second, overlapping, first])
    assert applied == 2
    assert new == "import x\na = 1\nB = 2\nC = 3\n"


def test_apply_fixes_keeps_crlf():
    new, _ = apply_fixes("a = 1\r\nb = 2\r\n", [fix(Applicability.SAFE, ("import x\nimport y\n", (2, 1), (2, 1)))])
    assert new == "a = 1\r\nimport x\r\nimport y\r\nb = 2\r\n"


def test_apply_fixes_line_breaks_are_pythons():
    # A form feed or U+2028 inside a line is no line break for Python (str.splitlines says it is).
    text = "x = 1\x0c + 2\r\ny = '\u2028'\rz = 3\n"
    new, applied = apply_fixes(text, [fix(Applicability.SAFE, ("Z", (3, 1), (3, 2))),
                                      fix(Applicability.SAFE, ("Y", (2, 1), (2, 2)))])
    assert applied == 2
    assert new == "x = 1\x0c + 2\r\nY = '\u2028'\rZ = 3\n"


class _FakeRule:
    """A rule that does not exist: its fixes are whatever the test needs."""

    code = "SEQ101"
    name = "fake-rule"
    summary = docs = "fake"
    fix_availability = "always"
    module_wide = True
    module_wide_tokens = ("fake",)
    make_fixes = staticmethod(lambda ctx: [])

    def check(self, ctx):
        from seqlint.findings import Finding

        for row, fix_ in self.make_fixes(ctx):
            yield Finding(self.code, self.name, "fake finding", ctx.filename, Location(row, 1),
                          Location(row, 2), fix=fix_, statement_row=row)


def _run_with_fake(monkeypatch, tmp_path, make_fixes, mode):
    import seqlint.engine

    rule = type("Fake", (_FakeRule,), {"make_fixes": staticmethod(make_fixes)})
    real_get_rule = seqlint.engine.get_rule
    monkeypatch.setattr(seqlint.engine, "get_rule", lambda code: rule if code == "SEQ101" else real_get_rule(code))
    monkeypatch.chdir(tmp_path)
    settings = load_settings(["."], Overrides(select=["SEQ101"]), ["SEQ101"])
    return run(["."], settings, fix=mode)


def test_a_fix_that_breaks_the_code_is_not_written(tmp_path, monkeypatch):
    path = tmp_path / "m.py"
    path.write_text("fake = (1,\n      2)\nok = 1  # Sequence\n")

    def make_fixes(ctx):
        if "ok = 1" not in ctx.source:
            return []
        return [(1, fix(Applicability.SAFE, ("", (2, 8), (2, 9)))),  # deletes ")": invalid
                (3, fix(Applicability.SAFE, ("ok = 2", (3, 1), (3, 7))))]

    result = _run_with_fake(monkeypatch, tmp_path, make_fixes, FixMode())
    assert path.read_text() == "fake = (1,\n      2)\nok = 2  # Sequence\n"  # the good fix only
    assert result.fixes_applied == 1
    assert [e.message for e in result.errors] == [
        'the fix "test fix" produced code that does not parse; not applied']


def test_fixes_repeat_until_nothing_is_left(tmp_path, monkeypatch):
    """Fix A enables fix B (ruff's loop): both land in one run, within the pass limit."""
    path = tmp_path / "m.py"
    path.write_text("fake = 0  # Sequence\n")

    def make_fixes(ctx):
        value = int(ctx.source.split("=")[1].split("#")[0])
        if value >= 3:
            return []
        return [(1, fix(Applicability.SAFE, (str(value + 1), (1, 8), (1, 9))))]

    result = _run_with_fake(monkeypatch, tmp_path, make_fixes, FixMode())
    assert path.read_text() == "fake = 3  # Sequence\n"
    assert result.fixes_applied == 3 and result.findings == []
    # Display-only and (without --unsafe-fixes) unsafe fixes are never applied.
    path.write_text("fake = 0  # Sequence\n")
    for applicability in (Applicability.DISPLAY_ONLY, Applicability.UNSAFE):
        result = _run_with_fake(
            monkeypatch, tmp_path,
            lambda ctx, a=applicability: [(1, fix(a, ("9", (1, 8), (1, 9))))], FixMode())
        assert path.read_text() == "fake = 0  # Sequence\n" and len(result.findings) == 1
