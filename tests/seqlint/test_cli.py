"""`seqlint check` and `seqlint rule` as users run them: a real process on real files."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

GENERATOR = textwrap.dedent('''\
    import numpy as np
    from tensorflow import keras


    class Gen(keras.utils.Sequence):
        def __init__(self, x, y, batch_size=32):
            self.x, self.y = x, y
            self.batch_size = batch_size

        def __len__(self):
            return len(self.x) // self.batch_size

        def __getitem__(self, i):
            s = slice(i * self.batch_size, (i + 1) * self.batch_size)
            return self.x[s], self.y[s]
    ''')
# Rows of the findings in GENERATOR: SEQ302 (no super().__init__) and SEQ306 (floor division).
EXPECTED = [(6, "SEQ302"), (11, "SEQ306")]

CLEAN = textwrap.dedent('''\
    import math

    from tensorflow import keras


    class Gen(keras.utils.PyDataset):
        def __init__(self, x, batch_size=32, **kwargs):
            super().__init__(**kwargs)
            self.x, self.batch_size = x, batch_size

        def __len__(self):
            return math.ceil(len(self.x) / self.batch_size)

        def __getitem__(self, i):
            return self.x[i * self.batch_size:(i + 1) * self.batch_size]
    ''')


def seqlint(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seqlint", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def concise_rows(stdout: str) -> list[tuple[str, int, str]]:
    rows = []
    for line in stdout.splitlines():
        parts = line.split(":", 3)
        if len(parts) == 4 and parts[1].isdigit():
            rows.append((parts[0], int(parts[1]), parts[3].split()[0]))
    return rows


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text("[tool.seqlint]\n")
    (tmp_path / "gen.py").write_text(GENERATOR)
    (tmp_path / "clean.py").write_text(CLEAN)
    return tmp_path


def test_findings_exit_1_with_path_row_and_code(project):
    proc = seqlint("check", "gen.py", "--output-format", "concise", cwd=project)
    assert proc.returncode == 1, proc.stderr
    assert concise_rows(proc.stdout) == [("gen.py", row, code) for row, code in EXPECTED]
    assert proc.stderr == ""


def test_clean_file_exit_0(project):
    proc = seqlint("check", "clean.py", cwd=project)
    assert (proc.returncode, proc.stdout.strip(), proc.stderr) == (0, "All checks passed!", "")


def test_full_output_has_code_frame_and_hints(project):
    proc = seqlint("check", "gen.py", cwd=project)
    assert proc.returncode == 1
    assert "gen.py:6:9: SEQ302 [*]" in proc.stdout
    assert "\n6 |     def __init__(self, x, y, batch_size=32):\n" in proc.stdout
    assert "^^^^^^^^ SEQ302 missing-super-init" in proc.stdout
    assert "(fixable with `seqlint fix`)" in proc.stdout
    assert "unsafe fix available with `--unsafe-fixes`" in proc.stdout  # SEQ306
    assert "1 hidden fix can be enabled with `--unsafe-fixes`." in proc.stdout


def test_default_path_is_the_working_directory_and_skips_venvs(project):
    venv = project / ".venv" / "lib" / "site-packages"
    venv.mkdir(parents=True)
    (venv / "vendored.py").write_text(GENERATOR)
    (project / "build").mkdir()
    (project / "build" / "copy.py").write_text(GENERATOR)
    proc = seqlint("check", "--output-format", "concise", cwd=project)
    assert {r[0] for r in concise_rows(proc.stdout)} == {"gen.py"}


def test_exclusions_and_explicit_paths(project):
    (project / "gen_copy.py").write_text(GENERATOR)
    proc = seqlint("check", ".", "--extend-exclude", "gen_*.py", "--output-format", "concise", cwd=project)
    assert {r[0] for r in concise_rows(proc.stdout)} == {"gen.py"}
    # Named explicitly: checked anyway (ruff's rule), unless --force-exclude (what pre-commit uses).
    proc = seqlint("check", "gen_copy.py", "--extend-exclude", "gen_*.py", "--output-format", "concise",
                   cwd=project)
    assert {r[0] for r in concise_rows(proc.stdout)} == {"gen_copy.py"}
    proc = seqlint("check", "gen_copy.py", "--extend-exclude", "gen_*.py", "--force-exclude", cwd=project)
    assert proc.returncode == 0, proc.stdout


def test_select_and_ignore_by_code_and_prefix(project):
    proc = seqlint("check", "gen.py", "--select", "SEQ3", "--ignore", "SEQ306", "--output-format", "concise",
                   cwd=project)
    assert [r[2] for r in concise_rows(proc.stdout)] == ["SEQ302"]
    proc = seqlint("check", "gen.py", "--select", "SEQ1,SEQ2", cwd=project)
    assert proc.returncode == 0


def test_pyproject_configuration_and_cli_override(project):
    (project / "pyproject.toml").write_text(textwrap.dedent('''\
        [tool.seqlint]
        ignore = ["SEQ302"]
        output-format = "concise"
        per-file-ignores = {"legacy_*.py" = ["SEQ3"]}
        '''))
    (project / "legacy_gen.py").write_text(GENERATOR)
    sub = project / "src"
    sub.mkdir()
    proc = seqlint("check", "..", cwd=sub)  # the nearest pyproject.toml is found walking up
    assert {(Path(r[0]).name, r[2]) for r in concise_rows(proc.stdout)} == {("gen.py", "SEQ306")}
    proc = seqlint("check", "gen.py", "--select", "SEQ", "--output-format", "json", cwd=project)
    assert sorted(d["code"] for d in json.loads(proc.stdout)) == ["SEQ302", "SEQ306"]


def test_noqa_comments(project):
    lines = GENERATOR.splitlines()
    lines[5] += "  # noqa: SEQ302"
    lines[10] += "  # noqa: SEQ101"  # another rule: SEQ306 is still reported
    (project / "gen.py").write_text("\n".join(lines) + "\n")
    proc = seqlint("check", "gen.py", "--output-format", "concise", cwd=project)
    assert [r[2] for r in concise_rows(proc.stdout)] == ["SEQ306"]
    (project / "gen.py").write_text("# Legacy code, kept as it is.\n# seqlint: noqa\n" + GENERATOR)
    assert seqlint("check", "gen.py", cwd=project).returncode == 0


def test_statistics(project):
    proc = seqlint("check", ".", "--statistics", cwd=project)
    assert proc.returncode == 1
    rows = [line.split("\t") for line in proc.stdout.splitlines() if "\t" in line]
    assert sorted(rows) == [["1", "SEQ302", "missing-super-init", "[*]"],
                            ["1", "SEQ306", "len-drops-last-batch", "[ ]"]]
    proc = seqlint("check", ".", "--statistics", "--output-format", "json", cwd=project)
    assert {d["code"]: d["count"] for d in json.loads(proc.stdout)} == {"SEQ302": 1, "SEQ306": 1}


@pytest.mark.parametrize("args, needle", [
    (["check", "--select", "SEQ9"], "unknown rule selector 'SEQ9'"),
    (["check", "--output-format", "xml"], "invalid choice: 'xml'"),
    (["check", "--diff"], "--diff shows what fixing would change"),
    (["rule", "SEQ999"], "unknown rule code 'SEQ999'"),
    (["rule"], "give a rule code"),
    ([], "usage:"),
])
def test_usage_errors_exit_2(project, args, needle):
    proc = seqlint(*args, cwd=project)
    assert proc.returncode == 2
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_pyproject_exits_2_naming_the_file_and_key(project):
    (project / "pyproject.toml").write_text('[tool.seqlint]\nselec = ["SEQ1"]\n')
    proc = seqlint("check", "gen.py", cwd=project)
    assert proc.returncode == 2
    assert "pyproject.toml: unknown key(s) in [tool.seqlint]: selec" in proc.stderr


def test_rule_docs_and_list(project):
    proc = seqlint("rule", "SEQ306", cwd=project)
    assert proc.returncode == 0
    assert proc.stdout.startswith("# len-drops-last-batch (SEQ306)")
    assert "## What it does" in proc.stdout
    proc = seqlint("rule", "--all", cwd=project)
    from seqlint.engine import all_rules

    codes = [line.split()[0] for line in proc.stdout.splitlines()]
    assert codes == [rule.code for rule in all_rules()]
    data = json.loads(seqlint("rule", "--all", "--output-format", "json", cwd=project).stdout)
    assert {"code", "name", "summary", "fix_availability", "docs"} <= set(data[0])


def test_console_script_is_installed(project):
    script = Path(sys.executable).parent / "seqlint"
    proc = subprocess.run([str(script), "--version"], capture_output=True, text=True, cwd=project)
    assert proc.returncode == 0 and proc.stdout.startswith("seqlint ")


def test_never_imports_tensorflow_keras_or_numpy(project):
    code = textwrap.dedent('''\
        import sys
        from seqlint.cli import main
        rc = main(["check", "gen.py", "clean.py", "--output-format", "full"])
        heavy = sorted({m.split(".")[0] for m in sys.modules} & {"tensorflow", "keras", "numpy", "jax", "torch"})
        print(rc, heavy)
        ''')
    proc = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True)
    assert proc.stdout.splitlines()[-1] == "1 []", proc.stdout + proc.stderr


@pytest.mark.slow
def test_large_tree_in_parallel_gives_every_finding(project):
    """Past the parallel threshold the files go to worker processes; nothing may be lost or doubled."""
    from seqlint.runner import PARALLEL_THRESHOLD

    tree = project / "many"
    tree.mkdir()
    count = PARALLEL_THRESHOLD + 6
    for i in range(count):
        (tree / f"gen_{i:03d}.py").write_text(GENERATOR)
    proc = seqlint("check", "many", "--output-format", "json", cwd=project)
    assert proc.returncode == 1, proc.stderr
    found = sorted((d["filename"], d["location"]["row"], d["code"]) for d in json.loads(proc.stdout))
    expected = sorted((f"many/gen_{i:03d}.py", row, code) for i in range(count) for row, code in EXPECTED)
    assert found == expected
