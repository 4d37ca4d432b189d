"""Running the engine over a tree: discovery, reading, guarding, parallelism, noqa, fixing, writing.

Everything here is plumbing around `seqlint.engine.lint_source`; the rules never see files, settings
or suppression comments. The engine (and libcst with it) is imported only when a file has to be
parsed, so a pre-commit run on a file that cannot hold a generator stays cheap.

A file is never lost to another's trouble: one nested too deeply for the parser is reported as not
checked before the parser sees it (seqlint.nesting), every file is analysed on a thread with a large
stack so that what the guard does not foresee becomes an error rather than a crash, and a rule's bug
becomes a file error. Notebooks (`.ipynb`) are checked as the module their code cells make
(seqlint.notebook), and their findings are reported per cell.
"""

from __future__ import annotations

import dataclasses
import difflib
import io
import os
import re
import sys
import threading
import tokenize
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from seqlint.config import Settings
from seqlint import edits
from seqlint.edits import apply_fixes_checked, edit_spans, line_starts
from seqlint.findings import Applicability, Edit, Finding, Fix, Location
from seqlint.nesting import nesting_problem
from seqlint.noqa import parse_noqa, unknown_codes
from seqlint.notebook import Layout, Notebook, NotebookError
from seqlint.writing import FileChanged, encode, write_atomically

__all__ = [
    "FileError", "RunResult", "FixMode", "SourceFile", "run", "discover", "display_name", "read_source",
    "process_job", "apply_fixes", "write_atomically", "unified_diff", "PARALLEL_THRESHOLD",
]

# Below this many files to parse, starting worker processes costs more than it saves.
PARALLEL_THRESHOLD = 64
# ruff's bound: fixes that keep enabling each other stop somewhere.
MAX_FIX_PASSES = 10
# How often a file that changes under `seqlint fix` is fixed again before seqlint gives up on it.
MAX_WRITE_ATTEMPTS = 3
NOTEBOOK_SUFFIX = ".ipynb"


@dataclass(frozen=True)
class FileError:
    """A file (or path) that could not be checked or written; any of these makes the exit status 2."""

    filename: str
    message: str
    line: int | None = None
    column: int | None = None
    cell: int | None = None  # notebooks: the line is counted in this cell

    def __str__(self) -> str:
        where = self.filename
        if self.cell is not None:
            where += f":cell {self.cell}"
        if self.line is not None:
            where += f":{self.line}:{self.column or 1}"
        return f"{where}: error: {self.message}"


@dataclass
class RunResult:
    findings: list[Finding] = field(default_factory=list)  # unsuppressed, selected, sorted
    errors: list[FileError] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # files with findings, for code frames
    cell_sources: dict[tuple[str, int], str] = field(default_factory=dict)  # notebook cells, likewise
    files_discovered: int = 0
    files_parsed: int = 0
    fixes_applied: int = 0
    changed: list[str] = field(default_factory=list)  # files written (or that would be, with --diff)
    diffs: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Job:
    filename: str
    source: str  # for a notebook: the module its code cells make
    codes: frozenset[str]
    notebook: Layout | None = None


@dataclass
class _Outcome:
    filename: str
    findings: list[Finding] = field(default_factory=list)
    error: FileError | None = None
    fixed_source: str | None = None  # only when fixing changed the text
    fixed_layout: Layout | None = None  # notebooks: the cells after fixing
    fixes_applied: int = 0
    extra_errors: list[FileError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FixMode:
    unsafe: bool = False
    diff: bool = False  # print a diff, write nothing


# ---------------------------------------------------------------------------------------------------
# Discovery


def display_name(path: Path) -> str:
    """Paths as the user will want to click them: relative to the working directory when inside it."""
    absolute = os.path.abspath(path)
    cwd = os.getcwd()
    if absolute == cwd or absolute.startswith(cwd.rstrip(os.sep) + os.sep):
        return os.path.relpath(absolute, cwd)
    return absolute


def is_checked_file(name: str) -> bool:
    """Files a directory walk picks up: Python modules and, as ruff does, Jupyter notebooks."""
    return name.endswith((".py", NOTEBOOK_SUFFIX))


def discover(paths: Sequence[str], settings: Settings) -> tuple[list[Path], list[FileError], list[str]]:
    """Files to check, errors for paths that do not exist, warnings for paths with nothing in them."""
    files: list[Path] = []
    errors: list[FileError] = []
    warnings: list[str] = []
    seen: set[str] = set()

    def add(path: Path) -> None:
        key = os.path.abspath(path)
        if key not in seen:
            seen.add(key)
            files.append(path)

    for raw in paths:
        path = Path(raw)
        if not path.exists():
            errors.append(FileError(raw, "no such file or directory"))
            continue
        if settings.is_excluded(path, explicit=True):
            continue
        if not path.is_dir():
            add(path)  # named explicitly: checked whatever its extension (as ruff does)
            continue
        before = len(files)
        for directory, subdirs, names in os.walk(path, onerror=lambda exc: errors.append(
            FileError(exc.filename or raw, f"cannot list directory: {exc.strerror or exc}"))):
            base = Path(directory)
            subdirs[:] = sorted(d for d in subdirs if not settings.is_excluded(base / d, explicit=False))
            for name in sorted(names):
                if is_checked_file(name) and not settings.is_excluded(base / name, explicit=False):
                    add(base / name)
        if len(files) == before:
            warnings.append(f"no Python files or notebooks found under {raw}")
    return files, errors, warnings


# ---------------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class SourceFile:
    path: Path
    name: str
    text: str  # what is linted: the file's text, or the module a notebook's code cells make
    encoding: str
    data: bytes = b""  # the file's bytes as read: a write first checks that they are still there
    notebook: Notebook | None = None


def read_source(path: Path, name: str) -> SourceFile | FileError:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return FileError(name, f"cannot read file: {exc.strerror or exc}")
    return decode_source(path, name, data)


def decode_source(path: Path, name: str, data: bytes) -> SourceFile | FileError:
    if path.suffix == NOTEBOOK_SUFFIX:
        return _decode_notebook(path, name, data)
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:
        if "unknown encoding" in exc.msg or "encoding problem" in exc.msg:  # a bad coding cookie
            return FileError(name, f"invalid encoding declaration ({exc.msg})", exc.lineno or 1, 1)
        encoding = "utf-8"  # undecodable bytes in the first lines: reported with their position below
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        return FileError(
            name,
            f"file is not valid {encoding.upper()}: cannot decode byte 0x{data[exc.start]:02x} "
            "(declare the file's encoding or convert it to UTF-8)",
            line,
            column,
        )
    if encoding == "utf-8-sig":
        text = text.removeprefix("\ufeff")
    return SourceFile(path, name, text, encoding, data)


@dataclass(frozen=True)
class _NotebookError(FileError):
    foreign: bool = False  # an R or Julia notebook: skipped with a warning when a directory walk met it


def _decode_notebook(path: Path, name: str, data: bytes) -> SourceFile | FileError:
    encoding = "utf-8-sig" if data.startswith(b"\xef\xbb\xbf") else "utf-8"
    try:
        raw = data.decode(encoding).removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        return FileError(name, f"notebook is not valid UTF-8: cannot decode byte 0x{data[exc.start]:02x}")
    try:
        notebook = Notebook.parse(raw)
    except NotebookError as exc:
        return _NotebookError(name, str(exc), exc.line, exc.column, foreign=exc.foreign)
    return SourceFile(path, name, notebook.layout.text, encoding, data, notebook)


# ---------------------------------------------------------------------------------------------------
# Linting one file (runs in the main process or in a worker)

_STATE: dict = {}  # what every file shares: the project index, the fix mode, the known rule codes


# libcst visits nested expressions recursively: a long implicit string concatenation (the stdlib's
# pydoc_data/topics.py) is a chain hundreds of nodes deep. Python 3.11+ does not grow the C stack for
# Python-to-Python calls, so a higher limit is safe and turns a crash into a result (3.10 does: less).
_RECURSION_LIMIT = 20_000 if sys.version_info >= (3, 11) else 6_000
# libcst's parser is native code recursing on the C stack. Each file is analysed on a thread with
# this much stack (address space only: pages are used as they are touched), so that nesting the guard
# lets through is never near the 8 MB of a main thread.
_FILE_STACK_BYTES = 512 * 1024 * 1024


def _init_worker(project, fix_mode: FixMode | None, known_codes: frozenset[str] = frozenset()) -> None:
    sys.setrecursionlimit(max(sys.getrecursionlimit(), _RECURSION_LIMIT))
    _STATE["project"] = project
    _STATE["fix_mode"] = fix_mode
    _STATE["known_codes"] = known_codes


def _rules_for(codes: Iterable[str]) -> list:
    from seqlint.engine import get_rule

    return [get_rule(code) for code in sorted(codes)]


def _visible(findings: Iterable[Finding], source: str, codes: frozenset[str]) -> list[Finding]:
    """Findings left after selection and `# noqa` comments."""
    findings = [f for f in findings if f.code in codes]
    if not findings:
        return findings
    directives = parse_noqa(source)
    return [f for f in findings if not directives.suppresses(f)]


def process_job(job: _Job) -> _Outcome:
    """Lint (and fix) one file; every failure becomes a FileError, never an exception."""
    problem = nesting_problem(job.source)
    if problem is not None:
        outcome = _Outcome(job.filename)
        outcome.error = _error_at(job, problem.message, problem.line, problem.column)
        return outcome
    return _on_deep_stack(_process, job)


class _DeepStack:
    """One thread per process with a large stack, running the files' analyses one after another.

    Started on first use in each process (a forked worker has no threads), and reused: creating a
    thread with such a stack for every file would cost most of a millisecond each time.
    """

    def __init__(self) -> None:
        self.pid: int | None = None
        self.requests = None
        self.usable = True

    def _start(self) -> None:
        import queue

        self.pid = os.getpid()
        self.requests = queue.SimpleQueue()
        try:
            previous = threading.stack_size(_FILE_STACK_BYTES)
        except (ValueError, RuntimeError):
            self.usable = False
            return
        try:
            threading.Thread(target=self._serve, name="seqlint-deep-stack", daemon=True).start()
        except RuntimeError:  # no address space for such a stack (ulimit -v): the caller's will do
            self.usable = False
        finally:
            threading.stack_size(previous)

    def _serve(self) -> None:
        while True:
            function, args, box, done = self.requests.get()
            try:
                box["value"] = function(*args)
            except BaseException as exc:  # handed to the caller's thread as it is
                box["error"] = exc
            done.set()

    def call(self, function, *args):
        if self.pid != os.getpid():
            self._start()
        if not self.usable:
            return function(*args)
        box: dict = {}
        done = threading.Event()
        self.requests.put((function, args, box, done))
        done.wait()
        if "error" in box:
            raise box["error"]
        return box["value"]


_DEEP_STACK = _DeepStack()


def _on_deep_stack(function, *args):
    """`function(*args)` on the process's large-stack thread (or here, when it cannot start)."""
    return _DEEP_STACK.call(function, *args)


def _process(job: _Job) -> _Outcome:
    from seqlint.engine import ParseError, lint_source

    project = _STATE.get("project")
    fix_mode: FixMode | None = _STATE.get("fix_mode")
    outcome = _Outcome(job.filename)
    outcome.warnings = _noqa_warnings(job)
    try:
        rules = _rules_for(job.codes)
        if fix_mode is None:
            found = lint_source(job.source, job.filename, rules=rules, project=project)
            outcome.findings = _visible(found, job.source, job.codes)
        else:
            _fix_file(job, rules, project, fix_mode, outcome)
    except ParseError as exc:
        outcome.error = _error_at(job, _without_location(str(exc), job.filename), exc.line, exc.column)
    except RecursionError:
        outcome.error = _error_at(job, "not checked: code nested too deeply to analyse", None, None)
    except Exception as exc:  # a bug in a rule must not hide the findings in the other files
        message = _without_location(str(exc), job.filename)
        if type(exc).__name__ != "RuleError":
            message = f"internal error ({type(exc).__name__}: {message})"
        outcome.error = _error_at(job, f"{message}; please report this seqlint bug", None, None)
    if job.notebook is not None:
        layout = outcome.fixed_layout or job.notebook
        outcome.findings = [_in_cell(f, layout) for f in outcome.findings]
    return outcome


def _error_at(job: _Job, message: str, line: int | None, column: int | None) -> FileError:
    if job.notebook is not None and line is not None:
        cell, row, column = job.notebook.locate(line, column or 1)
        return FileError(job.filename, message, row, column, cell)
    return FileError(job.filename, message, line, column)


def _noqa_warnings(job: _Job) -> list[str]:
    """`# noqa: SEQ999`: a code no rule has, most likely a typo that suppresses nothing."""
    known = _STATE.get("known_codes") or frozenset()
    lowered = job.source.lower()
    if not known or "noqa" not in lowered or "seq" not in lowered:
        return []
    warnings = []
    for row, code in unknown_codes(job.source, known):
        where = f"{job.filename}:{row}"
        if job.notebook is not None:
            cell, cell_row, _ = job.notebook.locate(row, 1)
            where = f"{job.filename}:cell {cell}:{cell_row}"
        warnings.append(f"{where}: `# noqa` names {code}, which is not a seqlint rule "
                        "(`seqlint rule --all` lists them); it suppresses nothing")
    return warnings


def _in_cell(finding: Finding, layout: Layout) -> Finding:
    """A finding on the module a notebook's cells make, placed in its cell."""
    cell, row, column = layout.locate(finding.location.row, finding.location.column)
    _, end_row, end_column = layout.locate(finding.end_location.row, finding.end_location.column)
    if finding.end_location.row - finding.location.row != end_row - row:
        end_row, end_column = row, column + 1  # ends in another cell: mark its start only
    statement_row = None
    if finding.statement_row is not None:
        statement_row = max(1, finding.statement_row - (finding.location.row - row))
    fix = finding.fix
    if fix is not None:
        edits = []
        for edit in fix.edits:
            _, a_row, a_col = layout.locate(edit.location.row, edit.location.column)
            _, b_row, b_col = layout.locate(edit.end_location.row, edit.end_location.column)
            edits.append(Edit(edit.content, Location(a_row, a_col), Location(b_row, b_col)))
        fix = Fix(fix.applicability, fix.message, tuple(edits))
    return dataclasses.replace(finding, cell=cell, location=Location(row, column),
                               end_location=Location(end_row, end_column), statement_row=statement_row, fix=fix)


def _without_location(message: str, filename: str) -> str:
    """The engine's messages may start with `file:line:col:`; FileError prints that itself."""
    message = message.splitlines()[0] if message else "unknown error"
    return re.sub(rf"^{re.escape(filename)}(:\d+)*:\s*", "", message)


def _fix_key(fix: Fix) -> tuple:
    return (fix.message, tuple(fix.edits))


def _fix_file(job: _Job, rules: list, project, mode: FixMode, outcome: _Outcome) -> None:
    from seqlint.engine import lint_source

    allowed = {Applicability.SAFE} | ({Applicability.UNSAFE} if mode.unsafe else set())
    layout = job.notebook
    current = job.source
    findings = _visible(lint_source(current, job.filename, rules=rules, project=project), current, job.codes)
    broken: set[tuple] = set()  # fixes that produced unparsable code: never offered again
    for _ in range(MAX_FIX_PASSES):
        fixes = [
            f.fix for f in findings
            if f.fix is not None and f.fix.applicability in allowed and _fix_key(f.fix) not in broken
        ]
        if layout is not None:  # a notebook: a fix must stay inside one cell and off IPython lines
            starts = line_starts(current)
            fixes = [fix for fix in fixes
                     if all(layout.cell_index_of(a, b) is not None for a, b, _ in edit_spans(current, fix, starts))]
        if not fixes:
            break
        candidate, applied, rejected, spans = apply_fixes_checked(current, fixes)
        for fix in rejected:
            broken.add(_fix_key(fix))
            error = FileError(
                job.filename, f"the fix \"{fix.message}\" produced code that does not parse; not applied"
            )
            if error not in outcome.extra_errors:
                outcome.extra_errors.append(error)
        if applied == 0 or candidate == current:
            if rejected:
                continue  # the other fixes may still apply
            break
        if layout is not None:
            layout = layout.apply(spans)
        current = candidate
        outcome.fixes_applied += applied
        findings = _visible(lint_source(current, job.filename, rules=rules, project=project), current, job.codes)
    outcome.findings = findings
    if current != job.source:
        outcome.fixed_source = current
        outcome.fixed_layout = layout


# ---------------------------------------------------------------------------------------------------
# The run


def run(paths: Sequence[str], settings: Settings, *, fix: FixMode | None = None) -> RunResult:
    result = RunResult()
    files, errors, warnings = discover(paths, settings)
    result.errors += errors
    result.warnings += warnings
    result.files_discovered = len(files)

    sources: dict[str, SourceFile] = {}
    named = {os.path.abspath(p) for p in paths}
    for path in files:
        read = read_source(path, display_name(path))
        if isinstance(read, _NotebookError) and read.foreign and os.path.abspath(path) not in named:
            result.warnings.append(f"{read.filename}: {read.message}")
        elif isinstance(read, FileError):
            result.errors.append(read)
        else:
            sources[read.name] = read
            if read.notebook is not None and read.notebook.skipped_cells:
                numbers = ", ".join(str(n) for n in read.notebook.skipped_cells)
                result.warnings.append(f"{read.name}: cell(s) {numbers} run a non-Python cell magic; not checked")

    jobs = []
    for name, src in sources.items():
        codes = settings.codes_for(src.path)
        if codes:
            jobs.append(_job_of(src, codes))
    if not jobs:
        return _finish(result)

    from seqlint.engine import ProjectIndex, all_rules, module_wide_tokens

    # Every readable file informs the index: a base class may live in a file whose own rules are ignored.
    project = ProjectIndex.build({name: src.text for name, src in sources.items()})
    tokens = module_wide_tokens()
    known = frozenset(rule.code for rule in all_rules())
    parsed = []
    _init_worker(project, None, known)
    for job in jobs:
        if project.may_matter(job.source, tokens):
            parsed.append(job)
        else:  # nothing to check, but a `# noqa: SEQ...` typo is still worth a warning (no parse needed)
            result.warnings += _noqa_warnings(job)
    jobs = parsed
    result.files_parsed = len(jobs)

    for outcome in _execute(jobs, project, fix, known):
        src = sources[outcome.filename]
        if outcome.fixed_source is not None and fix is not None and not fix.diff:
            src, outcome = _write_fixes(src, outcome, settings, project, fix, known, result)
        if outcome.error is not None:
            result.errors.append(outcome.error)
        result.errors += outcome.extra_errors
        result.warnings += outcome.warnings
        result.fixes_applied += outcome.fixes_applied
        text, layout = src.text, src.notebook.layout if src.notebook is not None else None
        if outcome.fixed_source is not None:
            result.changed.append(outcome.filename)
            if fix is not None and fix.diff:
                result.diffs.append(_diff(src, outcome))
            text, layout = outcome.fixed_source, outcome.fixed_layout
        if outcome.findings:
            result.findings += outcome.findings
            result.sources[outcome.filename] = text
            if layout is not None:
                for cell in layout.cells:
                    result.cell_sources[(outcome.filename, cell.number)] = cell.source
    return _finish(result)


def _job_of(src: SourceFile, codes: frozenset[str]) -> _Job:
    return _Job(src.name, src.text, codes, src.notebook.layout if src.notebook is not None else None)


def _write_fixes(src: SourceFile, outcome: _Outcome, settings: Settings, project, mode: FixMode,
                 known: frozenset[str], result: RunResult) -> tuple[SourceFile, _Outcome]:
    """Write a fixed file, unless it changed meanwhile: then fix what it holds now, and try again.

    Returns the file as it now is on disk and the outcome that describes it: with `fixed_source` when
    the fixes were written; otherwise the findings of the text on disk, and an error saying why.
    """
    for _attempt in range(MAX_WRITE_ATTEMPTS):
        if src.notebook is not None:
            data = encode(src.notebook.render(outcome.fixed_layout), src.encoding)
        else:
            data = encode(outcome.fixed_source, src.encoding)
        try:
            write_atomically(src.path, data, expected=src.data)
        except FileChanged as changed:
            current = decode_source(src.path, src.name, changed.current)
            if isinstance(current, FileError):
                error = FileError(src.name, "changed while seqlint was fixing it, and can no longer be "
                                            f"read ({current.message}); fixes not written")
                return src, _Outcome(src.name, error=error, warnings=outcome.warnings)
            result.warnings.append(f"{src.name}: changed while seqlint was fixing it; the fixes were "
                                   "computed again on its new text")
            src = current
            _init_worker(project, mode, known)
            outcome = process_job(_job_of(src, settings.codes_for(src.path)))
            if outcome.fixed_source is None:
                return src, outcome  # the new text needs no fix: nothing to write
            continue
        except OSError as exc:
            return src, _unwritten(src, outcome, f"cannot write fixes: {exc.strerror or exc}", settings, project, known)
        return src, outcome
    return src, _unwritten(src, outcome, f"changed {MAX_WRITE_ATTEMPTS} times while seqlint was fixing it; "
                           "fixes not written (run `seqlint fix` again once it is saved)", settings, project, known)


def _unwritten(src: SourceFile, outcome: _Outcome, message: str, settings: Settings, project,
               known: frozenset[str]) -> _Outcome:
    """A file whose fixes were not written keeps its text: report that text's findings, and why."""
    _init_worker(project, None, known)
    checked = process_job(_job_of(src, settings.codes_for(src.path)))
    return _Outcome(src.name, findings=checked.findings, error=FileError(src.name, message),
                    warnings=outcome.warnings)


def _diff(src: SourceFile, outcome: _Outcome) -> str:
    if src.notebook is None or outcome.fixed_layout is None:
        return unified_diff(src.text, outcome.fixed_source, outcome.filename)
    diffs = []
    for before, after in zip(src.notebook.layout.cells, outcome.fixed_layout.cells):
        if before.source != after.source:
            diffs.append(unified_diff(before.source, after.source, f"{outcome.filename}:cell {before.number}"))
    return "".join(diffs)


def apply_fixes(text: str, fixes: Sequence[Fix]) -> tuple[str, int]:
    """The fix applier `seqlint fix` uses (seqlint.edits): every fix whose edits fit with the earlier
    ones, the rest left for the next pass. Exported here for the tests and tools that apply fixes."""
    return edits.apply_fixes(text, fixes)


def _finish(result: RunResult) -> RunResult:
    result.findings.sort(key=lambda f: f.sort_key)
    result.errors.sort(key=lambda e: (e.filename, e.cell or 0, e.line or 0, e.column or 0))
    return result


def _execute(jobs: list[_Job], project, fix: FixMode | None, known: frozenset[str] = frozenset()) -> Iterable[_Outcome]:
    workers = min(os.cpu_count() or 1, 8)
    if len(jobs) <= PARALLEL_THRESHOLD or workers < 2:
        _init_worker(project, fix, known)
        return [process_job(job) for job in jobs]
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    # Big files first so that one slow file does not finish last on an otherwise idle pool.
    jobs = sorted(jobs, key=lambda job: len(job.source), reverse=True)
    chunk = max(1, min(16, len(jobs) // (workers * 8)))
    outcomes: list[_Outcome] = []
    try:
        with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(project, fix, known)) as pool:
            for outcome in pool.map(process_job, jobs, chunksize=chunk):
                outcomes.append(outcome)
    except BrokenProcessPool:
        # A worker died (killed, out of memory, a crash in an extension): name the files left unchecked.
        for job in jobs[len(outcomes):]:
            outcomes.append(_Outcome(job.filename, error=FileError(
                job.filename, "not checked: a seqlint worker process died")))
    return outcomes


def unified_diff(before: str, after: str, filename: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=f"a/{filename}",
        tofile=f"b/{filename}",
    )
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)
