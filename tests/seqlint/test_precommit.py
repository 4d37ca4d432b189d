"""The hooks of .pre-commit-hooks.yaml, run by real pre-commit from a copy of this checkout.

pre-commit installs hook repositories from git, so the working tree (with uncommitted changes) is
copied to a temporary repository and committed there; pre-commit then builds its own virtualenv from
it (pip settings, such as a mirror, are inherited from the environment).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRE_COMMIT = Path(sys.executable).parent / "pre-commit"

BAD = textwrap.dedent('''\
    from tensorflow import keras


    class Gen(keras.utils.PyDataset):
        def __init__(self, x):
            self.x = x

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return self.x[i]
    ''')
GOOD = BAD.replace("def __init__(self, x):\n", "def __init__(self, x, **kwargs):\n        super().__init__(**kwargs)\n")


def git(*args: str, cwd: Path) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory) -> tuple[Path, str]:
    repo = tmp_path_factory.mktemp("hook-repo")
    ignore = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", ".pytest_cache", "build",
                                    "dist", "demo_data", ".bench_cache", "tests", "fixtures", "benchmarks")
    for name in ("pyproject.toml", "README.md", ".pre-commit-hooks.yaml", "seqlint", "seqkit"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, repo / name, ignore=ignore)
        else:
            shutil.copy2(source, repo / name)
    git("init", "-q", cwd=repo)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "snapshot", cwd=repo)
    return repo, git("rev-parse", "HEAD", cwd=repo)


def pre_commit(*args: str, cwd: Path, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PRE_COMMIT_HOME": str(home), "PRE_COMMIT_COLOR": "never"}
    return subprocess.run([str(PRE_COMMIT), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=900)


@pytest.mark.slow
def test_hooks_run_by_pre_commit(hook_repo, tmp_path):
    repo, rev = hook_repo
    project = tmp_path / "project"
    project.mkdir()
    git("init", "-q", cwd=project)
    (project / ".pre-commit-config.yaml").write_text(textwrap.dedent(f'''\
        repos:
          - repo: {repo}
            rev: {rev}
            hooks:
              - id: seqlint
              - id: seqlint-fix
        '''))
    (project / "pyproject.toml").write_text('[tool.seqlint]\nextend-exclude = ["vendored"]\n')
    (project / "bad.py").write_text(BAD)
    (project / "good.py").write_text(GOOD)
    (project / "vendored").mkdir()
    (project / "vendored" / "lib.py").write_text(BAD)
    git("add", "-A", cwd=project)
    home = tmp_path / "pre-commit-home"

    proc = pre_commit("run", "seqlint", "--files", "bad.py", cwd=project, home=home)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "bad.py:5:9: SEQ302" in proc.stdout

    proc = pre_commit("run", "seqlint", "--files", "good.py", "vendored/lib.py", cwd=project, home=home)
    assert proc.returncode == 0, proc.stdout + proc.stderr  # the excluded file stays excluded

    proc = pre_commit("run", "seqlint-fix", "--files", "bad.py", cwd=project, home=home)
    assert proc.returncode == 1  # pre-commit fails a hook that modified files
    assert "files were modified by this hook" in proc.stdout
    assert (project / "bad.py").read_text() == GOOD
    proc = pre_commit("run", "seqlint-fix", "--files", "bad.py", cwd=project, home=home)
    assert proc.returncode == 0, proc.stdout


def readme_hook_config() -> str:
    """The pre-commit configuration block of README.md, as a user copies it."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("```yaml\nrepos:\n")
    return readme[start + len("```yaml\n"): readme.index("```", start + 3)]


@pytest.mark.slow
def test_readme_snippet_runs_against_a_clone_of_this_repository(tmp_path):
    """Issue 13 §5: the README's `rev:` must exist and its hooks must work. The snippet is used as
    written, but for the repository URL (this repository has no public one): a clone of it."""
    config = readme_hook_config()
    rev = re.search(r"^\s*rev:\s*(\S+)\s*$", config, re.MULTILINE).group(1)
    clone = tmp_path / "seqkit-clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, capture_output=True, timeout=300)
    resolved = subprocess.run(["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=clone,
                              capture_output=True, text=True)
    assert resolved.returncode == 0, f"README's rev {rev!r} is not a commit or tag of this repository"
    url = re.search(r"^\s*- repo:\s*(\S+)", config, re.MULTILINE).group(1)
    project = tmp_path / "project"
    project.mkdir()
    git("init", "-q", cwd=project)
    (project / ".pre-commit-config.yaml").write_text(config.replace(url, str(clone)))
    (project / "bad.py").write_text(BAD)
    git("add", "-A", cwd=project)
    home = tmp_path / "pre-commit-home"
    proc = pre_commit("run", "seqlint", "--files", "bad.py", cwd=project, home=home)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "bad.py:5:9: SEQ302" in proc.stdout
    assert "mutable reference" not in proc.stdout + proc.stderr  # a pinned commit, as pre-commit wants
    proc = pre_commit("run", "seqlint-fix", "--files", "bad.py", cwd=project, home=home)
    assert (project / "bad.py").read_text() == GOOD
