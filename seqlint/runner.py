"""Running the engine over a tree: discovery, reading, prefiltering, parallelism, noqa, fixing.

Everything here is plumbing around `seqlint.engine.lint_source`; the rules never see files, settings
or suppression comments. The engine (and libcst with it) is imported only when a file has to be
parsed, so a pre-commit run on a file that cannot hold a generator stays cheap.
"""

from __future__ import annotations

import difflib
import errno
import io
import os
import re
import stat
import sys
import tempfile
import tokenize
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from seqlint.config import Settings
from seqlint.findings import Applicability, Edit, Finding, Fix
from seqlint.noqa import parse_noqa

# Below this many files to parse, starting worker processes costs more than it saves.
PARALLEL_THRESHOLD = 64
# ruff's bound: fixes that keep enabling each other stop somewhere.
MAX_FIX_PASSES = 10


@dataclass(frozen=True)
class FileError:
    """A file (or path) that could not be checked; any of these makes the exit status 2."""

    filename: str
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = self.filename
        if self.line is not None:
            where += f":{self.line}:{self.column or 1}"
        return f"{where}: error: {self.message}"


@dataclass
class RunResult:
    findings: list[Finding] = field(default_factory=list)  # unsuppressed, selected, sorted
    errors: list[FileError] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # files with findings, for code frames
    files_discovered: int = 0
    files_parsed: int = 0
    fixes_applied: int = 0
    changed: list[str] = field(default_factory=list)  # files written (or that would be, with --diff)
    diffs: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Job:
    filename: str
    source: str
    codes: frozenset[str]


@dataclass
class _Outcome:
    filename: str
    findings: list[Finding] = field(default_factory=list)
    error: FileError | None = None
    fixed_source: str | None = None  # only when fixing changed the text
    fixes_applied: int = 0
    extra_errors: list[FileError] = field(default_factory=list)


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
                if name.endswith(".py") and not settings.is_excluded(base / name, explicit=False):
                    add(base / name)
        if len(files) == before:
            warnings.append(f"no Python files found under {raw}")
    return files, errors, warnings


# ---------------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class SourceFile:
    path: Path
    name: str
    text: str
    encoding: str


def read_source(path: Path, name: str) -> SourceFile | FileError:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return FileError(name, f"cannot read file: {exc.strerror or exc}")
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
    return SourceFile(path, name, text, encoding)


# ---------------------------------------------------------------------------------------------------
# Linting one file (runs in the main process or in a worker)

_STATE: dict = {}  # what every file shares: the project index and the fix mode


# libcst visits nested expressions recursively: a long implicit string concatenation (the stdlib's
# pydoc_data/topics.py) is a chain hundreds of nodes deep. Python 3.11+ does not grow the C stack for
# Python-to-Python calls, so a higher limit is safe and turns a crash into a result (3.10 does: less).
_RECURSION_LIMIT = 20_000 if sys.version_info >= (3, 11) else 6_000


def _init_worker(project, fix_mode: FixMode | None) -> None:
    sys.setrecursionlimit(max(sys.getrecursionlimit(), _RECURSION_LIMIT))
    _STATE["project"] = project
    _STATE["fix_mode"] = fix_mode


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
    from seqlint.engine import ParseError, lint_source

    project = _STATE.get("project")
    fix_mode: FixMode | None = _STATE.get("fix_mode")
    outcome = _Outcome(job.filename)
    try:
        rules = _rules_for(job.codes)
        if fix_mode is None:
            found = lint_source(job.source, job.filename, rules=rules, project=project)
            outcome.findings = _visible(found, job.source, job.codes)
        else:
            _fix_file(job, rules, project, fix_mode, outcome)
    except ParseError as exc:
        outcome.error = FileError(job.filename, _without_location(str(exc), job.filename), exc.line, exc.column)
    except RecursionError:
        outcome.error = FileError(job.filename, "code nested too deeply to analyse")
    except Exception as exc:  # a bug in a rule must not hide the findings in the other files
        message = _without_location(str(exc), job.filename)
        if type(exc).__name__ != "RuleError":
            message = f"internal error ({type(exc).__name__}: {message})"
        outcome.error = FileError(job.filename, f"{message}; please report this seqlint bug")
    return outcome


def _without_location(message: str, filename: str) -> str:
    """The engine's messages may start with `file:line:col:`; FileError prints that itself."""
    message = message.splitlines()[0] if message else "unknown error"
    return re.sub(rf"^{re.escape(filename)}(:\d+)*:\s*", "", message)


def _fix_key(fix: Fix) -> tuple:
    return (fix.message, tuple(fix.edits))


def _fix_file(job: _Job, rules: list, project, mode: FixMode, outcome: _Outcome) -> None:
    from seqlint.engine import lint_source

    allowed = {Applicability.SAFE} | ({Applicability.UNSAFE} if mode.unsafe else set())
    current = job.source
    findings = _visible(lint_source(current, job.filename, rules=rules, project=project), current, job.codes)
    broken: set[tuple] = set()  # fixes that produced unparsable code: never offered again
    for _ in range(MAX_FIX_PASSES):
        fixes = [
            f.fix for f in findings
            if f.fix is not None and f.fix.applicability in allowed and _fix_key(f.fix) not in broken
        ]
        if not fixes:
            break
        candidate, applied, rejected = apply_fixes_checked(current, fixes)
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
        current = candidate
        outcome.fixes_applied += applied
        findings = _visible(lint_source(current, job.filename, rules=rules, project=project), current, job.codes)
    outcome.findings = findings
    if current != job.source:
        outcome.fixed_source = current


# ---------------------------------------------------------------------------------------------------
# Applying edits

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _line_starts(text: str) -> list[int]:
    return [0] + [m.end() for m in _LINE_BREAK.finditer(text)]


def _newline_of(text: str) -> str:
    match = _LINE_BREAK.search(text)
    return match.group() if match else "\n"


def _offset(starts: list[int], text: str, row: int, column: int) -> int:
    if row > len(starts):  # one past the last line: the end of the file
        return len(text)
    return min(starts[row - 1] + column - 1, len(text))


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    if a[0] == a[1] and b[0] == b[1]:
        return a[0] == b[0]  # two insertions at one point: their order would be a guess
    if a[0] == a[1]:
        return b[0] < a[0] < b[1]
    if b[0] == b[1]:
        return a[0] < b[0] < a[1]
    return a[0] < b[1] and b[0] < a[1]


def _fix_start(fix: Fix) -> tuple[int, int]:
    return min(((e.location.row, e.location.column) for e in fix.edits), default=(0, 0))


def apply_fixes(text: str, fixes: Sequence[Fix]) -> tuple[str, int]:
    """Apply every fix whose edits do not collide with an earlier one; the rest wait for a later pass.

    Fixes are taken in source order. Identical edits from different fixes (two fixes each adding
    `import seqkit` at the top) are applied once.
    """
    starts = _line_starts(text)
    newline = _newline_of(text)

    def content_of(edit: Edit) -> str:
        # Fixes are written with "\n"; a CRLF file must stay CRLF throughout.
        if newline == "\n" or "\n" not in edit.content:
            return edit.content
        return edit.content.replace("\r\n", "\n").replace("\n", newline)

    def span(edit: Edit) -> tuple[int, int]:
        return (_offset(starts, text, edit.location.row, edit.location.column),
                _offset(starts, text, edit.end_location.row, edit.end_location.column))

    ordered = sorted(fixes, key=_fix_start)
    accepted: dict[tuple[int, int, str], None] = {}
    applied = 0
    for fix in ordered:
        edits = [(span(e), content_of(e)) for e in fix.edits]
        if not edits:
            continue
        new = [(s, c) for s, c in edits if (s[0], s[1], c) not in accepted]
        if any(_overlaps(s, (a, b)) for s, _ in new for (a, b, _c) in accepted):
            continue
        if any(_overlaps(x[0], y[0]) for i, x in enumerate(new) for y in new[i + 1:]):
            continue  # a malformed fix that overlaps itself
        for s, content in new:
            accepted[(s[0], s[1], content)] = None
        applied += 1
    pieces = []
    last = len(text)
    # From the end backwards so earlier offsets stay valid; at one start, the longer edit goes first
    # so that an insertion lands in front of a replacement beginning at the same place.
    for start, end, content in sorted(accepted, key=lambda k: (k[0], k[1]), reverse=True):
        pieces.append(text[end:last])
        pieces.append(content)
        last = start
    pieces.append(text[:last])
    return "".join(reversed(pieces)), applied


def _parses(text: str) -> bool:
    import libcst

    try:
        libcst.parse_module(text)
    except (libcst.ParserSyntaxError, RecursionError):
        return False
    return True


def apply_fixes_checked(text: str, fixes: Sequence[Fix]) -> tuple[str, int, list[Fix]]:
    """apply_fixes, but only output that parses: a fix that breaks the code is dropped and returned."""
    candidate, applied = apply_fixes(text, fixes)
    if applied == 0 or _parses(candidate):
        return candidate, applied, []
    # Find the culprit: take the first fix that parses on its own and leave the rest to the next pass
    # (their positions refer to the text before this one).
    rejected = []
    for fix in sorted(fixes, key=_fix_start):
        attempt, n = apply_fixes(text, [fix])
        if not n:
            continue
        if _parses(attempt):
            return attempt, n, rejected
        rejected.append(fix)
    return text, 0, rejected


# ---------------------------------------------------------------------------------------------------
# Writing


def write_atomically(path: Path, text: str, encoding: str) -> None:
    """Replace a file's content all at once: a crash leaves either the old file or the new one.

    A read-only file is refused even though replacing it through its directory would work: the
    user marked it as not to be changed.
    """
    mode = stat.S_IMODE(os.stat(path).st_mode)
    # Mode bits as well as access(): root may write anything, but a file with no write bit is still
    # one its owner asked to keep.
    if not os.access(path, os.W_OK) or not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        raise PermissionError(errno.EACCES, "file is read-only")
    data = (("\ufeff" + text) if encoding == "utf-8-sig" else text).encode(
        "utf-8" if encoding == "utf-8-sig" else encoding
    )
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".seqlint-tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# ---------------------------------------------------------------------------------------------------
# The run


def run(paths: Sequence[str], settings: Settings, *, fix: FixMode | None = None) -> RunResult:
    result = RunResult()
    files, errors, warnings = discover(paths, settings)
    result.errors += errors
    result.warnings += warnings
    result.files_discovered = len(files)

    sources: dict[str, SourceFile] = {}
    for path in files:
        read = read_source(path, display_name(path))
        if isinstance(read, FileError):
            result.errors.append(read)
        else:
            sources[read.name] = read

    jobs = []
    for name, src in sources.items():
        codes = settings.codes_for(src.path)
        if codes:
            jobs.append(_Job(name, src.text, codes))
    if not jobs:
        return _finish(result)

    from seqlint.engine import ProjectIndex

    # Every readable file informs the index: a base class may live in a file whose own rules are ignored.
    project = ProjectIndex.build({name: src.text for name, src in sources.items()})
    jobs = [job for job in jobs if project.may_matter(job.source)]
    result.files_parsed = len(jobs)

    for outcome in _execute(jobs, project, fix):
        if outcome.error is not None:
            result.errors.append(outcome.error)
        result.errors += outcome.extra_errors
        result.fixes_applied += outcome.fixes_applied
        src = sources[outcome.filename]
        text = src.text
        if outcome.fixed_source is not None:
            if fix is not None and fix.diff:
                result.diffs.append(unified_diff(src.text, outcome.fixed_source, outcome.filename))
                result.changed.append(outcome.filename)
            else:
                try:
                    write_atomically(src.path, outcome.fixed_source, src.encoding)
                except OSError as exc:
                    message = exc.strerror or str(exc)
                    result.errors.append(FileError(outcome.filename, f"cannot write fixes: {message}"))
                    # The file keeps its old text, so the findings reported must be the old ones.
                    outcome.findings = _relint_original(src, settings, project)
                    result.fixes_applied -= outcome.fixes_applied
                else:
                    result.changed.append(outcome.filename)
                    text = outcome.fixed_source
        if outcome.findings:
            result.findings += outcome.findings
            result.sources[outcome.filename] = text
    return _finish(result)


def _relint_original(src: SourceFile, settings: Settings, project) -> list[Finding]:
    codes = settings.codes_for(src.path)
    _init_worker(project, None)
    return process_job(_Job(src.name, src.text, codes)).findings


def _finish(result: RunResult) -> RunResult:
    result.findings.sort(key=lambda f: f.sort_key)
    result.errors.sort(key=lambda e: (e.filename, e.line or 0, e.column or 0))
    return result


def _execute(jobs: list[_Job], project, fix: FixMode | None) -> Iterable[_Outcome]:
    workers = min(os.cpu_count() or 1, 8)
    if len(jobs) <= PARALLEL_THRESHOLD or workers < 2:
        _init_worker(project, fix)
        return [process_job(job) for job in jobs]
    from concurrent.futures import ProcessPoolExecutor

    # Big files first so that one slow file does not finish last on an otherwise idle pool.
    jobs = sorted(jobs, key=lambda job: len(job.source), reverse=True)
    chunk = max(1, min(16, len(jobs) // (workers * 8)))
    from concurrent.futures.process import BrokenProcessPool

    outcomes: list[_Outcome] = []
    try:
        with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(project, fix)) as pool:
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
