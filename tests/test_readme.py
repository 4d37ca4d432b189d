"""README.md runs as written (house rule 7; issue 13 §5): every fenced code block of it is run here.

The blocks are read from README.md at collection (tests/readme_project.py: how, and the
`<!-- readme-test: ... -->` markers), so a block added later is run without a change here. Each
language has its runner, and a block in any other language fails:

- `sh`: each line is a command of its own, run by `sh` in a fresh copy of its fixture project (a
  `train.py` with findings), the test's virtualenv first on PATH. What is checked depends on the
  command: seqlint's exit codes and output formats as the README states them, `seqkit profile`'s
  report, JSON and HTML; anything else must exit 0. Commands quoted in a line's comment (`seqlint fix
  .`) and the formats it lists run too. The only changes to what runs: `--seconds 1` after `seqkit
  profile` (the README's default budget is about 10 s a run), and for `pip install` a copy of this
  checkout for `/path/to/seqkit`, a fresh virtualenv, `--no-deps` (the dependencies come from the
  test's virtualenv), `--no-build-isolation` when this virtualenv has the build backend pyproject.toml
  asks for, and `--dry-run --report` for the `[tensorflow]` form (resolved, not installed). The git
  form cannot be fetched: its distribution name and commit are checked.
- `python`: one script per block, in a subprocess, in a fresh fixture project: the names the README
  leaves to the reader come from the fixture's prelude, then the block's text as it is.
- `toml`: written into a project's pyproject.toml; `seqlint check` must accept it and every setting
  must take effect, against a run without it.
- `yaml` (pre-commit): hook ids and `rev` checked here; real pre-commit runs the README's snippet in
  tests/seqlint/test_precommit.py::test_readme_snippet_runs_against_a_clone_of_this_repository.

Blocks not run are marked in the README with their reason, and the marked set is pinned below. The
figures of the headline and of the Benchmarks table must come from benchmarks/RESULTS.md.

The blocks run concurrently (a few processes at a time: most of the time is TensorFlow starting), and
the tests wait for their own block.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from readme_project import (
    FIXTURES,
    LANGUAGES,
    PYTHON_LANGUAGES,
    README,
    REIMPORT_NOTE,
    ROOT,
    SHELL_LANGUAGES,
    TRAINING_SCRIPT,
    Block,
    ReadmeError,
    Run,
    ShmCheck,
    child_env,
    fixture_of,
    has_prelude,
    make_project,
    python_script,
    read_blocks,
    run,
    run_shell,
    shell_commands,
    split_comment,
    words,
)

RESULTS = ROOT / "benchmarks" / "RESULTS.md"

# The blocks allowed not to run, by their first command, and why. Adding a skip marker to README.md
# without adding it here fails: nothing is skipped silently.
EXPECTED_SKIPS = {
    "make demo": "the two commands build .venv and run the demo and this whole suite",
}

# What the README's shell lines leave to the reader, and what the test puts there.
PLACEHOLDER_CHECKOUT = "/path/to/seqkit"
# `seqkit profile` runs about 10 s by default; the test gives each run 1 s of budget.
PROFILE_BUDGET = ["--seconds", "1"]
# Processes running at once: the blocks mostly wait for TensorFlow to start, on 2 shared cores.
CONCURRENT = 4
# A Python warning raised from seqkit's or seqlint's own code: a README example must not cause one.
OWN_WARNING = re.compile(r"/(seqkit|seqlint)/[\w/]+\.py:\d+: \w*Warning: .*")

try:
    BLOCKS = read_blocks()
    README_ERROR = None
except ReadmeError as exc:  # reported by test_readme_blocks_are_all_known, not as a collection error
    BLOCKS, README_ERROR = [], exc


def _first_command(block: Block) -> str:
    first = next((line for line in block.text.splitlines() if line.strip()), "")
    return " ".join(split_comment(first)[0].split()[:2])


# -- running the blocks, a few at a time ------------------------------------------------------------


@dataclass
class LineResult:
    """One shell line of the README as the test ran it."""

    line: str  # as written in the README (or derived from a comment there)
    project: Path
    runs: list[Run] = field(default_factory=list)  # the line first, then follow-up checks
    note: str = ""  # why it was not run (skipped), when it was not

    @property
    def main(self) -> Run:
        return self.runs[0]

    def describe(self) -> str:
        return "\n\n".join(r.describe() for r in self.runs) or self.note


@dataclass
class PythonResult:
    run: Run
    project: Path
    shm: ShmCheck


class Jobs:
    """Futures of the blocks' runs, started once per block: all the selected blocks are started when
    the first test asks, so that they overlap; each test then waits for its own."""

    def __init__(self, tmp_path_factory):
        self.pool = ThreadPoolExecutor(max_workers=CONCURRENT, thread_name_prefix="readme")
        self.tmp = tmp_path_factory
        self.planned: dict[int, list[Future]] = {}

    def plan(self, block: Block) -> list[Future]:
        """Start the block's runs (once); a block that cannot even be planned gets a failed future."""
        if block.line not in self.planned:
            try:
                self.planned[block.line] = PLANNERS[_kind(block)](self, block)
            except Exception as exc:  # raised again by the block's own test, not by every test
                failed: Future = Future()
                failed.set_exception(exc)
                self.planned[block.line] = [failed]
        return self.planned[block.line]

    def submit(self, fn: Callable, *args) -> Future:
        return self.pool.submit(fn, *args)

    def project(self, block: Block, fixture: str) -> Path:
        """A new folder for one of the block's projects (made here, in the main thread: the fixture
        files are written by the job)."""
        return self.tmp.mktemp(f"readme-L{block.line}-{fixture}", numbered=True) / "p"


@pytest.fixture(scope="module")
def jobs(request, tmp_path_factory):
    jobs = Jobs(tmp_path_factory)
    selected = [item.callspec.params["block"] for item in request.session.items
                if item.module is request.module and "block" in getattr(item, "callspec", _NoCallspec).params]
    # The longest first (the pool runs jobs in the order given), so the last to finish starts early.
    for block in sorted(selected, key=_expected_cost, reverse=True):
        if not block.skip and _kind(block) in PLANNERS:
            jobs.plan(block)
    yield jobs
    jobs.pool.shutdown(wait=True, cancel_futures=True)


def _expected_cost(block: Block) -> int:
    """Rough order of run time: profiling and Keras start TensorFlow in several processes."""
    text = block.text
    return (8 * text.count("seqkit profile") + 4 * text.count("seqkit.profile") + 3 * ("fit(" in text)
            + 2 * ("pip install" in text) + ("engine" in text))


class _NoCallspec:
    params: dict = {}


def _kind(block: Block) -> str:
    if block.language in SHELL_LANGUAGES:
        return "sh"
    if block.language in PYTHON_LANGUAGES:
        return "python"
    if block.language in ("yaml", "yml"):
        return "yaml"
    return block.language


# -- shell blocks -----------------------------------------------------------------------------------


def comment_commands(command: str, comment: str) -> list[str]:
    """Commands a line's comment quotes (`seqlint fix .` applies them) and the variants it lists
    (`other formats: full (default), concise, sarif, github`): the README promises they work too."""
    extra = [quoted for quoted in re.findall(r"`([^`]+)`", comment) if quoted.split()[0] in ("seqlint", "seqkit")]
    formats = re.search(r"formats?:\s*([\w\s(),]+)", comment)
    argv = words(command)
    if formats and "--output-format" in argv:
        position = argv.index("--output-format") + 1
        for name in re.findall(r"\b([a-z]+)\b(?![^(]*\))", formats.group(1)):
            if name != argv[position]:
                extra.append(command.replace(f"--output-format {argv[position]}", f"--output-format {name}", 1))
    return extra


def plan_shell(jobs: Jobs, block: Block) -> list[Future]:
    commands = shell_commands(block)
    lines = [line for line, _ in commands]
    for line, comment in commands:
        lines += [c for c in comment_commands(line, comment) if c not in lines]
    fixture = fixture_of(block)
    if block.sequential:
        def in_order(folder: Path) -> list[LineResult]:
            project = make_project(folder, fixture)
            return [run_line(line, project) for line in lines]

        return [jobs.submit(in_order, jobs.project(block, fixture))]

    def alone(line: str, folder: Path) -> list[LineResult]:
        return [run_line(line, make_project(folder, fixture))]

    return [jobs.submit(alone, line, jobs.project(block, fixture)) for line in lines]


def run_line(line: str, project: Path) -> LineResult:
    argv = words(line)
    if argv[:4] == ["python", "-m", "pip", "install"]:
        return run_pip_install(line, project)
    if argv[:1] == ["make"]:
        return LineResult(line, project, note="`make` targets build .venv and run this suite: mark the block skipped")
    executed = line
    if argv[:2] == ["seqkit", "profile"]:
        executed = re.sub(r"^(\s*seqkit\s+profile)", r"\1 " + " ".join(PROFILE_BUDGET), line, count=1)
    result = LineResult(line, project, [run_shell(executed, project, child_env(project))])
    if argv[:2] == ["seqlint", "fix"] and "--diff" not in argv:
        # "0 no findings (or all fixed), 1 findings remain": what a check says afterwards.
        result.runs.append(run_shell("seqlint check .", project, child_env(project)))
    return result


# pip: the README's three ways to install. Each runs in a fresh virtualenv without pip of its own: its
# `python -m pip` is the test virtualenv's pip, found (like the dependencies: libcst, rich, numpy)
# through a .pth file naming the test virtualenv's site-packages, so nothing is downloaded but
# setuptools when the test virtualenv lacks the version pyproject.toml's build-system asks for.


def _checkout_copy(folder: Path) -> Path:
    """What a checkout of this repository holds for pip: the packaging files and both packages."""
    copy = folder / "seqkit"
    copy.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("pyproject.toml", "README.md", "seqkit", "seqlint"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, copy / name, ignore=ignore)
        else:
            shutil.copy2(source, copy / name)
    return copy


def _build_isolation_flags() -> list[str]:
    """`--no-build-isolation` when this virtualenv has the build backend pyproject.toml asks for."""
    from importlib import metadata

    from packaging.requirements import Requirement

    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    for text in requires:
        requirement = Requirement(text)
        try:
            if not requirement.specifier.contains(metadata.version(requirement.name), prereleases=True):
                return []
        except metadata.PackageNotFoundError:
            return []
    return ["--no-build-isolation"]


def _fresh_venv(folder: Path) -> Path:
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
    purelib = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  check=True, capture_output=True, text=True).stdout.strip())
    (purelib / "readme_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def run_pip_install(line: str, project: Path) -> LineResult:
    target = words(line)[4]
    if " @ " in target:  # "name @ git+URL@COMMIT": cannot be fetched; checked by check_pip_install
        return LineResult(line, project, note="a git URL: its name and commit are checked instead")
    if PLACEHOLDER_CHECKOUT not in target:
        return LineResult(line, project, note=f"unknown install form {target!r}")
    checkout = _checkout_copy(project / "checkout")
    venv = _fresh_venv(project)
    env = child_env(project, path_first=venv / "bin")
    flags = ["--no-deps", *_build_isolation_flags()]
    if "[" in target:  # an extra: resolved, not installed (TensorFlow is 1.9 GB)
        flags += ["--dry-run", "--report", str(project / "pip-report.json")]
    command, comment = split_comment(line)
    executed = f"{command.replace(PLACEHOLDER_CHECKOUT, str(checkout))} {' '.join(flags)}  # {comment}"
    result = LineResult(line, project, [run_shell(executed, project, env, timeout=600)])
    if "[" not in target:
        bin_ = venv / "bin"
        outside = project / "elsewhere"  # not the checkout: imports must come from the install
        outside.mkdir()
        for check in (
            [str(bin_ / "seqlint"), "rule", "SEQ101"],
            [str(bin_ / "seqkit"), "--version"],
            [str(bin_ / "python"), "-m", "seqlint", "rule", "SEQ101"],
            [str(bin_ / "python"), "-c", "import seqkit, seqlint; print(seqkit.__file__); print(seqlint.__file__)"],
            [str(bin_ / "python"), "-m", "pip", "show", "-f", "seqkit"],
        ):
            result.runs.append(run(check, outside, env))
    return result


# -- Python blocks -----------------------------------------------------------------------------------


def plan_python(jobs: Jobs, block: Block) -> list[Future]:
    def execute(folder: Path) -> PythonResult:
        project = make_project(folder, fixture_of(block))
        script = project / "readme_block.py"
        script.write_text(python_script(block, has_prelude(project)), encoding="utf-8")
        result = run([sys.executable, script.name], project, child_env(project), timeout=600)
        return PythonResult(result, project, ShmCheck.after(result.pid))

    return [jobs.submit(execute, jobs.project(block, fixture_of(block)))]


# -- TOML: the configuration block ------------------------------------------------------------------


def _trigger(code: str) -> str:
    """Source that gives a finding of `code`: the first invalid case the rule carries."""
    from seqlint.engine import all_rules

    rule = next(rule for rule in all_rules() if rule.code == code)
    return rule.invalid[0].source


def _concrete(pattern: str) -> str:
    """A path a glob matches: `notebooks/*.py` -> notebooks/example.py, `legacy/` -> legacy/example.py."""
    path = pattern.replace("**/", "").replace("*", "example").replace("?", "x").rstrip("/")
    return path if path.endswith(".py") else f"{path}/example.py"


def _findings(result: Run) -> set[tuple[str, str]]:
    return {(Path(item["filename"]).as_posix(), item["code"]) for item in json.loads(result.stdout)}


def plan_toml(jobs: Jobs, block: Block) -> list[Future]:
    def execute(folder: Path) -> dict:
        settings = tomllib.loads(block.text)["tool"]["seqlint"]
        project = make_project(folder, "training-script")
        files: dict[str, str] = {}
        for code in settings.get("ignore", []):
            files[f"ignored_{code.lower()}.py"] = _trigger(code)
        for pattern, codes in settings.get("per-file-ignores", {}).items():
            for code in codes:
                files[_concrete(pattern).replace("example", f"example_{code.lower()}")] = _trigger(code)
                files[f"control_{code.lower()}.py"] = _trigger(code)  # outside the glob: still reported
        for key in ("exclude", "extend-exclude"):
            for pattern in settings.get(key, []):
                files[_concrete(pattern)] = TRAINING_SCRIPT
        files["unsafe_fix.py"] = next(case.source for case in _rule("SEQ306").invalid if case.fixed)
        for name, text in files.items():
            (project / name).parent.mkdir(parents=True, exist_ok=True)
            (project / name).write_text(text)
        env = child_env(project)
        out = {"files": files, "settings": settings, "project": project}
        # Without the configuration: every trigger is reported.
        out["control"] = run_shell("seqlint check --output-format json .", project, env)
        out["control_unsafe"] = run_shell("seqlint fix --diff --unsafe-fixes --select SEQ306 unsafe_fix.py", project, env)
        (project / "pyproject.toml").write_text(block.text)
        out["as_configured"] = run_shell("seqlint check", project, env)
        out["json"] = run_shell("seqlint check --output-format json", project, env)
        out["unsafe"] = run_shell("seqlint fix --diff --select SEQ306 unsafe_fix.py", project, env)
        return out

    return [jobs.submit(execute, jobs.project(block, "config"))]


def _rule(code: str):
    from seqlint.engine import all_rules

    return next(rule for rule in all_rules() if rule.code == code)


def plan_nothing(jobs: Jobs, block: Block) -> list[Future]:
    return []


PLANNERS = {"sh": plan_shell, "python": plan_python, "toml": plan_toml, "yaml": plan_nothing}


# -- the tests ----------------------------------------------------------------------------------------


def test_readme_blocks_are_all_known():
    """Every block has a language the test runs, a marker only where it means something, and the
    blocks not run are exactly the ones pinned in EXPECTED_SKIPS."""
    if README_ERROR:
        raise README_ERROR
    assert BLOCKS, "README.md has no code blocks"
    unknown = [f"README.md:{b.line}: ```{b.language}" for b in BLOCKS if b.language not in LANGUAGES]
    assert not unknown, f"blocks in a language this test cannot run (add a runner to tests/test_readme.py): {unknown}"
    skipped = {_first_command(b): b.skip for b in BLOCKS if b.skip}
    assert set(skipped) == set(EXPECTED_SKIPS), (
        f"blocks marked `readme-test: skip` in README.md: {sorted(skipped)}; allowed: {sorted(EXPECTED_SKIPS)}"
    )
    misplaced = [f"README.md:{b.line}" for b in BLOCKS if b.guard and b.language not in PYTHON_LANGUAGES]
    misplaced += [f"README.md:{b.line}" for b in BLOCKS if b.sequential and b.language not in SHELL_LANGUAGES]
    assert not misplaced, f"`guard` is for Python blocks, `sequential` for shell blocks: {misplaced}"
    assert {fixture_of(b) for b in BLOCKS} <= set(FIXTURES)


def test_marker_parsing_rejects_what_it_cannot_place():
    """A marker must sit right before a block and name known options; otherwise the README is refused
    rather than a block run in the wrong way."""
    good = read_blocks("<!-- readme-test: fixture=runtime guard -->\n```python\npass\n```\n")
    assert good[0].fixture == "runtime" and good[0].guard and good[0].text == "pass\n"
    assert read_blocks("<!-- readme-test: skip: why -->\n\n```sh\nmake x\n```\n")[0].skip == "why"
    for bad, says in (
        ("<!-- readme-test: fixture=nope -->\n```python\npass\n```\n", "unknown readme-test option"),
        ("<!-- readme-test: guard -->\nprose\n```python\npass\n```\n", "not right before a code block"),
        ("<!-- readme-test: skip: -->\n```sh\nls\n```\n", "needs a reason"),
        ("```sh\nls\n", "never closed"),
        ("text\n<!-- readme-test: guard -->\n", "before no code block"),
    ):
        with pytest.raises(ReadmeError, match=says):
            read_blocks(bad)


@pytest.mark.slow
@pytest.mark.parametrize("block", [pytest.param(b, id=b.id) for b in BLOCKS])
def test_block_runs_as_written(block, jobs):
    """The block runs in its fixture project and does what the README says (see the module docstring);
    its runs were started with the others' by the `jobs` fixture."""
    if block.skip:
        pytest.skip(f"README.md:{block.line}: {block.skip}")
    if _kind(block) not in CHECKERS:
        pytest.fail(f"README.md:{block.line}: no runner for ```{block.language} blocks")
    CHECKERS[_kind(block)](block, [future.result() for future in jobs.plan(block)])


# -- checks per language ------------------------------------------------------------------------------


def check_shell(block: Block, results: list) -> None:
    flat = [line for result in results for line in (result if isinstance(result, list) else [result])]
    assert flat, f"README.md:{block.line}: a shell block without commands"
    skipped = []  # a line that cannot be checked here skips the block, once the others are checked
    for line in flat:
        argv = words(line.line)
        try:
            if argv[:4] == ["python", "-m", "pip", "install"]:
                check_pip_install(line)
            elif not line.runs:
                pytest.fail(f"README.md:{block.line}: `{line.line}` was not run: {line.note}")
            elif argv[:1] == ["seqlint"]:
                check_seqlint(line)
            elif argv[:2] == ["seqkit", "profile"]:
                check_profile(line)
            else:
                assert line.main.returncode == 0, line.describe()
        except pytest.skip.Exception as exc:
            skipped.append(str(exc))
    if skipped:
        pytest.skip("; ".join(skipped))


def check_seqlint(line: LineResult) -> None:
    argv = words(line.line)
    result, out = line.main, line.main.stdout
    if argv[1] == "rule":
        assert result.returncode == 0, line.describe()
        from seqlint.engine import all_rules

        codes = [r.code for r in all_rules()] if "--all" in argv else [a for a in argv[2:] if a.startswith("SEQ")]
        assert codes and all(code in out for code in codes), line.describe()
        return
    assert argv[1] in ("check", "fix"), f"no check for `{line.line}`: add one to tests/test_readme.py"
    script = (line.project / "train.py").read_text()
    if argv[1] == "fix" and "--diff" not in argv:
        # Applied: the file changed and still compiles; the exit code says whether findings remain.
        assert result.returncode in (0, 1) and script != TRAINING_SCRIPT, line.describe()
        compile(script, "train.py", "exec")
        after = line.runs[1]
        assert after.returncode == result.returncode, line.describe()
        return
    # The training script has findings: "1 findings remain", and nothing is written.
    assert result.returncode == 1, line.describe()
    assert script == TRAINING_SCRIPT, f"`{line.line}` changed train.py"
    if "--diff" in argv:
        assert "--- a/train.py" in out and "+++ b/train.py" in out, line.describe()
    elif "--statistics" in argv:
        assert re.search(r"^\s*1\s+SEQ101\b", out, re.M), line.describe()
    else:
        fmt = argv[argv.index("--output-format") + 1] if "--output-format" in argv else "full"
        FORMAT_CHECKS[fmt](out, line)


def _check_json(out: str, line: LineResult) -> None:
    findings = json.loads(out)
    assert {"SEQ101", "SEQ102"} <= {f["code"] for f in findings}, line.describe()
    for finding in findings:  # ruff's field names
        assert {"code", "message", "filename", "location", "end_location", "fix"} <= set(finding), finding
        assert {"row", "column"} <= set(finding["location"]), finding


def _check_sarif(out: str, line: LineResult) -> None:
    sarif = json.loads(out)
    assert sarif["version"] == "2.1.0", line.describe()
    assert {r["ruleId"] for r in sarif["runs"][0]["results"]} >= {"SEQ101", "SEQ102"}, line.describe()


def _check_github(out: str, line: LineResult) -> None:
    annotations = [row for row in out.splitlines() if row.startswith("::")]
    assert annotations and all(re.match(r"::(error|warning|notice) .*file=train\.py,line=\d+", a) for a in annotations), line.describe()


def _check_concise(out: str, line: LineResult) -> None:
    rows = re.findall(r"^train\.py:\d+:\d+: (SEQ\d{3}) ", out, re.M)
    assert {"SEQ101", "SEQ102"} <= set(rows), line.describe()


def _check_full(out: str, line: LineResult) -> None:
    assert re.search(r"^train\.py:\d+:\d+: SEQ101 ", out, re.M) and " | " in out, line.describe()


FORMAT_CHECKS = {"json": _check_json, "sarif": _check_sarif, "github": _check_github,
                 "concise": _check_concise, "full": _check_full}


def check_profile(line: LineResult) -> None:
    argv = words(line.line)
    result = line.main
    assert result.returncode == 0, line.describe()
    if ">" in argv:  # the JSON went to a file
        report = json.loads((line.project / argv[argv.index(">") + 1]).read_text())
    elif "--json" in argv:
        report = json.loads(result.stdout)
    else:
        report = None
        assert "Batch latency" in result.stdout, line.describe()
    if report is not None:
        from seqkit.profiling.schema import errors

        assert errors(report) == [], line.describe()
    if "--report" in argv:
        page = (line.project / argv[argv.index("--report") + 1]).read_text()
        assert "<svg" in page and not re.search(r"""(src|href)=["']https?:""", page), "the report is not self-contained"
    if "--model" in argv:
        assert re.search(r"(input|compute)-bound", result.stdout, re.I), line.describe()
    if "--workers" in argv:
        for count in argv[argv.index("--workers") + 1].split(","):
            assert f"MultiprocessSequence(workers={count})" in result.stdout, line.describe()


def check_pip_install(line: LineResult) -> None:
    target = words(line.line)[4]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    if " @ " in target:
        name, _, url = target.partition(" @ ")
        assert name == project["name"], f"`{line.line}`: the distribution is {project['name']!r}"
        commit = url.rsplit("@", 1)[1]
        assert_commit_of_this_repository(commit, f"`{line.line}`")
        return
    assert line.runs, f"`{line.line}` was not run: {line.note}"
    assert line.main.returncode == 0, line.describe()
    if "[" in target:
        extras = re.search(r"\[([^\]]+)\]", target).group(1).split(",")
        installed = json.loads((line.project / "pip-report.json").read_text())["install"]
        item = next(i for i in installed if i["metadata"]["name"] == project["name"])
        assert set(extras) <= set(item["metadata"].get("provides_extra", [])), line.describe()
        for extra in extras:
            assert any(f'extra == "{extra}"' in r for r in item["metadata"]["requires_dist"]), item["metadata"]["requires_dist"]
        assert "does not provide the extra" not in line.main.stderr, line.describe()
        return
    rule, version, module_rule, where, show = line.runs[1:]
    venv = line.project / "venv"
    for script in ("seqlint", "seqkit"):  # the console scripts land next to the venv's python
        assert (venv / "bin" / script).is_file(), f"no {script} in {venv / 'bin'}"
    assert rule.returncode == 0 and "SEQ101" in rule.stdout, rule.describe()
    assert module_rule.returncode == 0 and "SEQ101" in module_rule.stdout, module_rule.describe()
    assert version.returncode == 0 and project["version"] in version.stdout, version.describe()
    assert where.returncode == 0, where.describe()
    for path in where.stdout.split():
        assert Path(path).is_relative_to(venv), f"imported from {path}, not from the fresh install"
    listed = show.stdout
    assert show.returncode == 0 and "seqlint/__init__.py" in listed and "seqkit/__init__.py" in listed, show.describe()
    assert re.search(r"bin/seqlint$", listed, re.M), show.describe()


def assert_commit_of_this_repository(rev: str, where: str) -> None:
    """`rev` must name a commit of this repository (skips when there is no history to look in)."""
    git = shutil.which("git")
    inside = git and subprocess.run([git, "rev-parse", "--is-inside-work-tree"], cwd=ROOT, capture_output=True,
                                    text=True).stdout.strip() == "true"
    if not inside:
        pytest.skip(f"{where}: not a git checkout, commit {rev} cannot be looked up")
    shallow = subprocess.run([git, "rev-parse", "--is-shallow-repository"], cwd=ROOT, capture_output=True, text=True)
    found = subprocess.run([git, "cat-file", "-e", f"{rev}^{{commit}}"], cwd=ROOT, capture_output=True)
    if found.returncode != 0 and shallow.stdout.strip() == "true":
        pytest.skip(f"{where}: commit {rev} not in this shallow clone")
    assert found.returncode == 0, f"{where}: {rev} is not a commit of this repository"


def check_python(block: Block, results: list) -> None:
    (result,) = results
    out = result.run
    assert out.returncode == 0, out.describe()
    # Worker processes (spawn, forkserver) import the script again: a block that starts them must keep
    # its work under the main guard, in its own text or, marked `guard`, where the README's prose puts it.
    guarded = block.guard or re.search(r"""^\s*if __name__ == ["']__main__["']\s*:""", block.text, re.M)
    assert guarded or REIMPORT_NOTE not in out.stderr, (
        f"README.md:{block.line}: worker processes imported the block's script again and ran it again; "
        'the block needs `if __name__ == "__main__":`\n' + out.describe()
    )
    warned = OWN_WARNING.findall(out.stderr)
    assert not warned, f"README.md:{block.line}: the example makes seqkit/seqlint warn:\n{out.describe()}"
    assert not result.shm.left, f"shared memory left behind: {result.shm.left}"
    PYTHON_CHECKS.get(fixture_of(block), lambda r: None)(result)


def _check_runtime(result: PythonResult) -> None:
    """What the runtime block says it writes."""
    project = result.project
    assert not (project / "~").exists(), "a literal ~ folder: cache_dir's ~ was not expanded"
    assert list((project / ".cache" / "myproject").rglob("manifest.json")), "no cache under ~/.cache/myproject"
    assert list((project / "cache").rglob("manifest.json")), "preprocess_once wrote no cache under cache/"
    packed = project / "packed"
    assert {"x.npy", "y.npy", "classes.json", "manifest.json"} <= {p.name for p in packed.iterdir()}
    import numpy as np

    assert np.load(packed / "x.npy", mmap_mode="r").shape == (6, 128, 128, 3)
    assert json.loads((packed / "classes.json").read_text()) in (["circles", "squares"], {"circles": 0, "squares": 1})


def _check_sample_files(result: PythonResult) -> None:
    """pack_samples' cache goes to the default folder the README names: ~/.cache/seqkit."""
    assert list((result.project / ".cache" / "seqkit").rglob("manifest.json")), result.run.describe()


def _check_profile(result: PythonResult) -> None:
    out = result.run.stdout
    assert out.count("Batch latency") == 1, result.run.describe()  # one report, printed once
    assert re.search(r"(input|compute)-bound", out, re.I), result.run.describe()


PYTHON_CHECKS = {"runtime": _check_runtime, "sample-files": _check_sample_files, "profile": _check_profile}


def check_toml(block: Block, results: list) -> None:
    (out,) = results
    settings, files = out["settings"], out["files"]
    control, configured, as_json = out["control"], out["as_configured"], out["json"]
    assert configured.returncode in (0, 1) and as_json.returncode in (0, 1), configured.describe() + as_json.describe()
    assert "error" not in (configured.stderr + as_json.stderr).lower(), configured.describe()
    before, after = _findings(control), _findings(as_json)
    for name in files:  # every trigger triggers without the configuration
        assert any(path == name for path, _ in before), f"{name} gives no finding:\n{control.describe()}"
    ignored = set(settings.get("ignore", []))
    assert not {code for _, code in after} & ignored, f"ignored codes reported:\n{as_json.describe()}"
    for pattern, codes in settings.get("per-file-ignores", {}).items():
        for code in codes:
            inside = _concrete(pattern).replace("example", f"example_{code.lower()}")
            assert (inside, code) not in after, f"{code} reported in {inside} despite per-file-ignores"
            if code not in ignored:
                assert (f"control_{code.lower()}.py", code) in after, "per-file-ignores applied outside its glob"
    for key in ("exclude", "extend-exclude"):
        for pattern in settings.get(key, []):
            excluded = _concrete(pattern)
            assert not any(path == excluded for path, _ in after), f"{excluded} checked despite {key}"
    if "select" in settings:
        assert all(any(code.startswith(prefix) for prefix in settings["select"]) for _, code in after)
    assert ("train.py", "SEQ101") in after, "the configuration turned off what it did not name"
    fmt = settings.get("output-format")
    if fmt == "concise":
        rows = re.findall(r"^(\S+\.py):\d+:\d+: (SEQ\d{3}) ", configured.stdout, re.M)
        assert set(rows) == after, f"output-format = concise not applied:\n{configured.describe()}"
    elif fmt:
        pytest.fail(f"no check for output-format = {fmt!r}: add one")
    if "unsafe-fixes" in settings:
        assert out["control_unsafe"].stdout.strip(), "SEQ306's unsafe fix shows no diff even when enabled"
        assert bool(out["unsafe"].stdout.strip()) == settings["unsafe-fixes"], out["unsafe"].describe()


def check_yaml(block: Block, results: list) -> None:
    """The pre-commit snippet names hooks this repository has, at a commit it has. Real pre-commit runs
    it in tests/seqlint/test_precommit.py::test_readme_snippet_runs_against_a_clone_of_this_repository."""
    import yaml

    config = yaml.safe_load(block.text)
    hooks = {hook["id"] for hook in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    for repo in config["repos"]:
        named = [hook["id"] for hook in repo["hooks"]]
        assert set(named) <= hooks, f"hooks {sorted(set(named) - hooks)} are not in .pre-commit-hooks.yaml"
        assert_commit_of_this_repository(str(repo["rev"]), f"README.md:{block.line}: rev")


CHECKERS = {"sh": check_shell, "python": check_python, "toml": check_toml, "yaml": check_yaml}


# -- figures ------------------------------------------------------------------------------------------

_FIGURE = re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)\s?(x|×|ms|µs|us|s|%)(?![\w])")
_UNITS = {"×": "x", "us": "µs"}


def figures(text: str) -> list[tuple[str, str]]:
    """(number as written, unit) of every measured figure in `text`: ratios, times and shares."""
    return [(number, _UNITS.get(unit, unit)) for number, unit in _FIGURE.findall(text)]


def rounds_to(written: str, value: float) -> bool:
    """Is `written` the figure `value` as a person rounds it: to its decimals (3.39 -> 3.4, 74.1 -> 74),
    or to its significant digits when it ends in zeros (2421 -> 2,400)?"""
    plain = written.replace(",", "")
    decimals = len(plain.split(".")[1]) if "." in plain else 0
    if round(value, decimals) == float(plain):
        return True
    zeros = len(plain) - len(plain.rstrip("0")) if "." not in plain else 0
    return zeros > 0 and round(value, -zeros) == float(plain)


def readme_figures() -> dict[str, list[tuple[str, str]]]:
    """The headline's figures and the Benchmarks table's "measured" column, by where they are."""
    text = README.read_text(encoding="utf-8")
    found = {"headline": figures(text[: text.index("\n## ")])}
    section = text[text.index("\n## Benchmarks"):]
    rows = [row for row in section.splitlines() if row.startswith("|")]
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    column = header.index("measured")
    for row in rows[2:]:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        found[f"Benchmarks: {cells[0]}"] = figures(cells[column])
    return found


def test_readme_figures_come_from_benchmark_results():
    """Every figure of the headline and of the Benchmarks table's "measured" column is in
    benchmarks/RESULTS.md (rounded as written), where `make bench` records them."""
    measured = figures(RESULTS.read_text(encoding="utf-8"))
    missing = []
    for where, found in readme_figures().items():
        assert found or where == "headline", f"{where}: no figure in the measured column"
        for number, unit in found:
            if not any(u == unit and rounds_to(number, float(n.replace(",", ""))) for n, u in measured):
                missing.append(f"{where}: {number}{unit}")
    assert not missing, "README figures not found in benchmarks/RESULTS.md:\n  " + "\n  ".join(missing)


def test_figure_matching():
    assert figures("2.8 ms to 1.2 µs, 4.2x, about 2,400x faster; 81% of 5 epochs on 2 cores") == [
        ("2.8", "ms"), ("1.2", "µs"), ("4.2", "x"), ("2,400", "x"), ("81", "%")]
    assert rounds_to("3.4", 3.39) and rounds_to("74", 74.1) and rounds_to("2,400", 2421) and rounds_to("0.24", 0.241)
    assert not rounds_to("4.9", 3.39) and not rounds_to("2,400", 2349) and not rounds_to("190", 19.5)


def test_comment_commands_and_scripts():
    """The derived commands and the generated scripts are what the module docstring says."""
    extra = comment_commands("seqlint check --output-format json .", "other formats: full (default), concise, sarif")
    assert extra == ["seqlint check --output-format full .", "seqlint check --output-format concise .",
                     "seqlint check --output-format sarif ."]
    assert comment_commands("seqlint fix --diff .", "preview; `seqlint fix .` applies them; `ls -l` not") == ["seqlint fix ."]
    block = Block(line=1, language="python", text="import os\n\nprint(os.sep)\n", guard=True)
    for guard in (True, False):
        script = python_script(Block(block.line, "python", block.text, guard=guard), prelude=True)
        compile(script, "readme_block.py", "exec")
        assert ('if __name__ == "__main__":\n    from readme_prelude import *' in script) == guard


def test_checks_fail_on_wrong_exit_codes_and_formats(tmp_path):
    """The shell checks are not satisfied by anything: a clean exit where findings remain, an old SARIF
    version or a file seqlint changed without being asked each fail."""
    (tmp_path / "train.py").write_text(TRAINING_SCRIPT)

    def result(command, returncode, stdout=""):
        return LineResult(command, tmp_path, [Run(command, returncode, stdout, "", 0.0)])

    with pytest.raises(AssertionError):
        check_seqlint(result("seqlint check .", 0, "All checks passed!"))
    with pytest.raises(AssertionError):
        check_seqlint(result("seqlint check --output-format sarif .", 1, '{"version": "2.0.0", "runs": [{"results": []}]}'))
    with pytest.raises(AssertionError):
        check_seqlint(result("seqlint rule SEQ101", 0, "# some other rule (SEQ102)"))
    (tmp_path / "train.py").write_text(TRAINING_SCRIPT.replace("import math\n", ""))
    with pytest.raises(AssertionError, match="changed train.py"):
        check_seqlint(result("seqlint check --output-format concise .", 1, "train.py:25:9: SEQ102 x\ntrain.py:26:20: SEQ101 y"))
