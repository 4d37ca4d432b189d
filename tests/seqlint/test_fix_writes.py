"""`seqlint fix` never loses what the user has (issue 13 §4): links, owners, and edits made meanwhile.

* through a symlink, the target is rewritten and the link stays a link;
* the owner, group and mode of the file stay (run as root, it must not make a user's file root-owned;
  run as a user who may write the file but cannot give a new one its owner, it refuses);
* an edit saved while `fix` runs is never overwritten: the file is read again just before the atomic
  replace, and if it changed the fixes are computed again on the new text (or, if it keeps changing,
  nothing is written and the error says so).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from seqlint import runner as runner_module
from seqlint.config import Overrides, load_settings
from seqlint.engine import all_rules
from seqlint.runner import MAX_WRITE_ATTEMPTS, FixMode, run
from seqlint.writing import write_atomically

BEFORE = textwrap.dedent('''\
    from tensorflow import keras


    class Gen(keras.utils.PyDataset):
        def __init__(self, x):
            self.x = x

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return self.x[i]
    ''')
FIXED = BEFORE.replace("def __init__(self, x):\n", "def __init__(self, x, **kwargs):\n        super().__init__(**kwargs)\n")
USER_EDIT = "\n\n# saved by the user while seqlint was running\nEPOCHS = 3\n"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root")


def seqlint(*args: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seqlint", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, **kwargs)


def test_fix_through_a_symlink_rewrites_the_target_and_keeps_the_link(tmp_path):
    real = tmp_path / "src" / "gen.py"
    real.parent.mkdir()
    real.write_text(BEFORE)
    link = tmp_path / "gen_link.py"
    link.symlink_to(real)
    proc = seqlint("fix", "gen_link.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_text() == FIXED
    assert sorted(p.name for p in real.parent.iterdir()) == ["gen.py"]  # no temp file left beside it


def test_fix_refuses_hard_linked_files(tmp_path):
    (tmp_path / "gen.py").write_text(BEFORE)
    os.link(tmp_path / "gen.py", tmp_path / "other_name.py")
    proc = seqlint("fix", "gen.py", cwd=tmp_path)
    assert proc.returncode == 2
    assert "gen.py: error: cannot write fixes: file has 2 hard links" in proc.stderr
    assert (tmp_path / "gen.py").read_text() == BEFORE == (tmp_path / "other_name.py").read_text()


@needs_root
def test_fix_as_root_keeps_the_users_owner_group_and_mode(tmp_path):
    path = tmp_path / "gen.py"
    path.write_text(BEFORE)
    os.chown(path, 4321, 4322)
    path.chmod(0o640)
    proc = seqlint("fix", "gen.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    info = path.stat()
    assert (info.st_uid, info.st_gid, info.st_mode & 0o7777) == (4321, 4322, 0o640)
    assert path.read_text() == FIXED


@needs_root
def test_fix_refuses_when_it_cannot_keep_the_owner():
    """A user allowed to write someone else's file cannot give a replacement its owner: refused,
    the file untouched and no temporary file left. (Run under another effective uid in-process: the
    checkout's interpreter need not be executable by that user; the folder is one that user reaches.)"""
    folder = Path(tempfile.mkdtemp(prefix="seqlint-owner-", dir="/tmp"))
    folder.chmod(0o777)
    path = folder / "gen.py"
    path.write_text(BEFORE)
    os.chown(path, 4321, 4321)
    path.chmod(0o666)
    os.setegid(1234)
    os.seteuid(1234)
    try:
        with pytest.raises(PermissionError, match=r"cannot keep the file's owner \(uid 4321\)"):
            write_atomically(path, FIXED, expected=BEFORE.encode())
    finally:
        os.seteuid(0)
        os.setegid(0)
    assert path.read_text() == BEFORE and path.stat().st_uid == 4321
    assert sorted(p.name for p in folder.iterdir()) == ["gen.py"]
    shutil.rmtree(folder)


def _fix_run(tmp_path: Path, monkeypatch, edit_when) -> tuple:
    """Run `seqlint fix .` in-process; `edit_when(n)` is called each time a file's fixes have just
    been computed (the moment a user's save would race with the write) and may edit the file."""
    calls = {"n": 0}
    real_process = runner_module.process_job

    def process_then_maybe_edit(job):
        outcome = real_process(job)
        calls["n"] += 1
        edit_when(calls["n"])
        return outcome

    monkeypatch.setattr(runner_module, "process_job", process_then_maybe_edit)
    monkeypatch.chdir(tmp_path)
    settings = load_settings(["."], Overrides(), [r.code for r in all_rules()])
    return run(["."], settings, fix=FixMode()), calls["n"]


def test_an_edit_saved_during_fix_is_kept_and_fixed_too(tmp_path, monkeypatch):
    path = tmp_path / "gen.py"
    path.write_text(BEFORE)

    def user_saves_once(n):
        if n == 1:
            path.write_text(BEFORE + USER_EDIT)

    result, computed = _fix_run(tmp_path, monkeypatch, user_saves_once)
    assert computed == 2  # the fixes were computed again, on the user's new text
    assert path.read_text() == FIXED + USER_EDIT  # the user's edit and the fix, both
    assert result.errors == [] and result.changed == ["gen.py"]
    assert any("changed while seqlint was fixing it" in w for w in result.warnings)


def test_a_file_that_keeps_changing_is_left_as_the_user_last_saved_it(tmp_path, monkeypatch):
    path = tmp_path / "gen.py"
    path.write_text(BEFORE)

    def user_keeps_saving(n):
        path.write_text(BEFORE + f"\nVERSION = {n}\n")

    result, computed = _fix_run(tmp_path, monkeypatch, user_keeps_saving)
    assert path.read_text() == BEFORE + f"\nVERSION = {computed}\n"  # nothing of the user's is lost
    assert [str(e) for e in result.errors] == [
        f"gen.py: error: changed {MAX_WRITE_ATTEMPTS} times while seqlint was fixing it; fixes not written "
        "(run `seqlint fix` again once it is saved)"]
    assert result.changed == [] and result.fixes_applied == 0
    assert [f.code for f in result.findings] == ["SEQ302"]  # the findings of the text on disk


def test_an_edit_that_makes_the_fix_unneeded_writes_nothing(tmp_path, monkeypatch):
    path = tmp_path / "gen.py"
    path.write_text(BEFORE)

    def user_fixes_it_first(n):
        if n == 1:
            path.write_text(FIXED)

    result, _ = _fix_run(tmp_path, monkeypatch, user_fixes_it_first)
    assert path.read_text() == FIXED
    assert result.errors == [] and result.findings == [] and result.changed == []
