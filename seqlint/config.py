"""Settings: `[tool.seqlint]` in the nearest pyproject.toml, overridden by command-line flags.

Semantics follow ruff so that users need not learn new ones:

* the nearest `pyproject.toml` *with a `[tool.seqlint]` table*, walking up from the first path (or
  the working directory), is the configuration; its directory is the project root, against which
  relative globs are matched. A `pyproject.toml` met on the way that is not valid TOML is an error
  (its path, line and reason; exit 2): it may hold the table, and silently dropping the user's
  `ignore` list would report what they turned off;
* `exclude` replaces the default exclusions, `extend-exclude` adds to them;
* rule selection is layered (defaults, then the file, then the command line). Within a layer the
  most specific selector wins (`SEQ101` beats `SEQ1` beats `SEQ`); on a tie `ignore` wins. A layer
  with `select` starts afresh, a layer with only `extend-select`/`ignore` adjusts the layer below.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path, PurePath

OUTPUT_FORMATS = ("full", "concise", "json", "sarif", "github")

# Directories no user wants linted: VCS data, virtualenvs, caches, build output, vendored packages.
DEFAULT_EXCLUDE = (
    ".bzr", ".direnv", ".eggs", ".git", ".hg", ".mypy_cache", ".nox", ".pants.d", ".pytype",
    ".ruff_cache", ".pytest_cache", ".svn", ".tox", ".venv", "venv", "__pypackages__", ".ipynb_checkpoints",
    "__pycache__", "_build", "buck-out", "build", "dist", "node_modules", "site-packages",
)

_KEYS = {
    "select", "extend-select", "ignore", "per-file-ignores", "extend-per-file-ignores",
    "exclude", "extend-exclude", "force-exclude", "output-format", "unsafe-fixes",
}


class ConfigError(Exception):
    """A setting that cannot be honoured; the CLI prints it and exits with status 2."""


@dataclass
class Overrides:
    """Command-line values; None means "not given", so the configuration file decides."""

    select: list[str] | None = None
    extend_select: list[str] | None = None
    ignore: list[str] | None = None
    per_file_ignores: dict[str, list[str]] | None = None
    exclude: list[str] | None = None
    extend_exclude: list[str] | None = None
    force_exclude: bool | None = None
    output_format: str | None = None
    unsafe_fixes: bool | None = None
    config: str | None = None


@dataclass
class Settings:
    root: Path
    config_file: Path | None
    enabled: frozenset[str]
    per_file_ignores: list[tuple[str, frozenset[str]]] = field(default_factory=list)
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    force_exclude: bool = False
    output_format: str = "full"
    unsafe_fixes: bool = False

    def codes_for(self, path: Path) -> frozenset[str]:
        """The rules to run on one file, after its per-file ignores."""
        codes = self.enabled
        for pattern, ignored in self.per_file_ignores:
            if path_matches(path, pattern, self.root):
                codes = codes - ignored
        return codes

    def is_excluded(self, path: Path, *, explicit: bool) -> bool:
        """Whether a file or directory is left out of the walk.

        A path named on the command line is checked even when excluded (as in ruff) unless
        `force-exclude` is set, which pre-commit hooks use so that the configuration still applies to
        the file names they pass.
        """
        if explicit:
            if not self.force_exclude:
                return False
            # Every component inside the project counts: `fixtures` excludes fixtures/a/b.py.
            absolute = _absolute(path)
            candidates = [absolute]
            parent = absolute.parent
            while parent != parent.parent and _is_relative_to(parent, self.root) and parent != self.root:
                candidates.append(parent)
                parent = parent.parent
            return any(path_matches(p, pat, self.root) for p in candidates for pat in self.exclude)
        return any(path_matches(path, pat, self.root) for pat in self.exclude)


def path_matches(path: Path, pattern: str, root: Path) -> bool:
    """Glob match of one path against a pattern, as ruff does it.

    A pattern without `/` matches the base name (`build`, `*_pb2.py`); one with `/` matches the
    path relative to the project root (`tests/*.py`, `src/**/gen_*.py`) or the absolute path.
    """
    if "/" not in pattern:
        return fnmatchcase(path.name, pattern)
    absolute = _absolute(path)
    candidates = [absolute.as_posix()]
    if _is_relative_to(absolute, root):
        candidates.append(absolute.relative_to(root).as_posix())
    patterns = [pattern.rstrip("/")]
    if pattern.startswith("**/"):
        patterns.append(pattern[3:])  # `**/x` also matches a top-level `x`
    return any(fnmatchcase(c, p) for c in candidates for p in patterns)


def _absolute(path: Path) -> Path:
    return Path(os.path.abspath(path))


def _is_relative_to(path: PurePath, root: PurePath) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------------------------------
# Finding and reading the configuration file


def find_config(start: Path) -> Path | None:
    """The nearest pyproject.toml with a [tool.seqlint] table, from `start` upwards."""
    directory = _absolute(start)
    if not directory.is_dir():
        directory = directory.parent
    for candidate in (directory, *directory.parents):
        pyproject = candidate / "pyproject.toml"
        if pyproject.is_file():
            data = _read_toml(pyproject)  # a broken one is reported, not skipped
            if isinstance(data.get("tool"), dict) and "seqlint" in data["tool"]:
                return pyproject
    return None


def _read_toml(path: Path) -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    text = ""
    try:
        text = path.read_bytes().decode("utf-8")
        return tomllib.loads(text)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: not UTF-8 (byte 0x{exc.object[exc.start]:02x})") from None
    except tomllib.TOMLDecodeError as exc:
        reason, line, column = _toml_error(exc, text)
        where = f"{path}:{line}:{column}" if line is not None else str(path)
        raise ConfigError(f"{where}: invalid TOML: {reason}") from None


def _toml_error(exc: Exception, text: str) -> tuple[str, int | None, int | None]:
    """(reason, line, column) of a TOMLDecodeError: attributes on Python 3.14+, the message before."""
    message = str(exc)
    line, column = getattr(exc, "lineno", None), getattr(exc, "colno", None)
    match = re.search(r"\s*\(at line (\d+), column (\d+)\)\s*$", message)
    if match:
        line, column = line or int(match[1]), column or int(match[2])
        message = message[: match.start()]
    end = re.search(r"\s*\(at end of document\)\s*$", message)
    if end:  # the file ended inside something: point at its last character
        message = message[: end.start()] + " (the file ends first)"
        lines = text.splitlines() or [""]
        line, column = line or len(lines), column or len(lines[-1]) + 1
    return getattr(exc, "msg", None) or message, line, column


def read_config_table(path: Path) -> dict:
    """[tool.seqlint] of a pyproject.toml, or the top level of any other TOML file (like ruff.toml)."""
    data = _read_toml(path)
    if path.name == "pyproject.toml":
        table = data.get("tool", {}).get("seqlint", {})
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [tool.seqlint] must be a table")
        return table
    return data


# ---------------------------------------------------------------------------------------------------
# Building the settings


def load_settings(paths: Sequence[str], overrides: Overrides, known_codes: Iterable[str]) -> Settings:
    known = sorted(known_codes)
    if overrides.config:
        config_file: Path | None = _absolute(Path(overrides.config))
        if not config_file.is_file():
            raise ConfigError(f"--config: {overrides.config}: no such file")
        root = config_file.parent
    else:
        config_file = find_config(Path(paths[0]) if paths else Path.cwd())
        root = config_file.parent if config_file else _absolute(Path.cwd())
    table = read_config_table(config_file) if config_file else {}
    source = str(config_file) if config_file else "configuration"

    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) in [tool.seqlint]: {', '.join(unknown)} "
            f"(known: {', '.join(sorted(_KEYS))})"
        )
    file_select = _code_list(table, "select", source, known)
    file_extend_select = _code_list(table, "extend-select", source, known)
    file_ignore = _code_list(table, "ignore", source, known)
    cli = "command line"
    cli_select = _checked_codes(overrides.select, "--select", cli, known)
    cli_extend = _checked_codes(overrides.extend_select, "--extend-select", cli, known)
    cli_ignore = _checked_codes(overrides.ignore, "--ignore", cli, known)

    enabled: set[str] = set()
    for select, extend, ignore in (
        (["SEQ"], [], []),
        (file_select, file_extend_select, file_ignore),
        (cli_select, cli_extend, cli_ignore),
    ):
        enabled = _apply_layer(enabled, known, select, extend or [], ignore or [])

    per_file: list[tuple[str, frozenset[str]]] = []
    for key in ("per-file-ignores", "extend-per-file-ignores"):
        per_file += _per_file_ignores(table.get(key, {}), f"{source}: {key}", known)
    if overrides.per_file_ignores:
        per_file += _per_file_ignores(overrides.per_file_ignores, "--per-file-ignores", known)

    exclude = tuple(_str_list(table, "exclude", source) or DEFAULT_EXCLUDE)
    if overrides.exclude is not None:
        exclude = tuple(overrides.exclude)
    exclude += tuple(_str_list(table, "extend-exclude", source) or ())
    exclude += tuple(overrides.extend_exclude or ())

    output_format = overrides.output_format or _typed(table, "output-format", str, source) or "full"
    if output_format not in OUTPUT_FORMATS:
        raise ConfigError(
            f"{source}: output-format: unknown format {output_format!r} "
            f"(choose from {', '.join(OUTPUT_FORMATS)})"
        )
    unsafe = overrides.unsafe_fixes
    if unsafe is None:
        unsafe = bool(_typed(table, "unsafe-fixes", bool, source))
    force = overrides.force_exclude
    if force is None:
        force = bool(_typed(table, "force-exclude", bool, source))

    return Settings(
        root=root,
        config_file=config_file,
        enabled=frozenset(enabled),
        per_file_ignores=per_file,
        exclude=exclude,
        force_exclude=force,
        output_format=output_format,
        unsafe_fixes=unsafe,
    )


def _apply_layer(
    below: set[str], known: list[str], select: list[str] | None, extend: list[str], ignore: list[str]
) -> set[str]:
    selectors = [(s, True) for s in (select or []) + extend] + [(s, False) for s in ignore]
    result = set() if select is not None else set(below)
    for code in known:
        # Rank matching selectors by specificity; on a tie an ignore (True) outranks a select.
        ranked = [(_specificity(sel), not enable) for sel, enable in selectors if _selects(sel, code)]
        if not ranked:
            continue
        if max(ranked)[1]:
            result.discard(code)
        else:
            result.add(code)
    return result


def _selects(selector: str, code: str) -> bool:
    return selector == "ALL" or code.startswith(selector)


def _specificity(selector: str) -> int:
    return -1 if selector == "ALL" else len(selector)


def _checked_codes(values: list[str] | None, where: str, source: str, known: list[str]) -> list[str] | None:
    if values is None:
        return None
    for value in values:
        if value != "ALL" and not any(code.startswith(value) for code in known):
            raise ConfigError(
                f"{source}: {where}: unknown rule selector {value!r} "
                f"(expected a code or prefix such as SEQ, SEQ1, SEQ101; see `seqlint rule --all`)"
            )
    return list(values)


def _code_list(table: dict, key: str, source: str, known: list[str]) -> list[str] | None:
    return _checked_codes(_str_list(table, key, source), key, source, known)


def _str_list(table: dict, key: str, source: str) -> list[str] | None:
    if key not in table:
        return None
    value = table[key]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{source}: {key} must be a list of strings, got {value!r}")
    return value


def _typed(table: dict, key: str, kind: type, source: str):
    if key not in table:
        return None
    value = table[key]
    if not isinstance(value, kind):
        raise ConfigError(f"{source}: {key} must be a {kind.__name__}, got {value!r}")
    return value


def _per_file_ignores(mapping, source: str, known: list[str]) -> list[tuple[str, frozenset[str]]]:
    if not isinstance(mapping, dict):
        raise ConfigError(f"{source} must be a table of glob = [codes], got {mapping!r}")
    entries = []
    for pattern, codes in mapping.items():
        if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
            raise ConfigError(f"{source}: {pattern!r} must map to a list of rule codes, got {codes!r}")
        _checked_codes(codes, repr(pattern), source, known)
        ignored = frozenset(code for code in known if any(_selects(c, code) for c in codes))
        entries.append((pattern, ignored))
    return entries


def parse_per_file_ignores(values: Sequence[str]) -> dict[str, list[str]]:
    """`--per-file-ignores 'tests/*.py:SEQ101,SEQ2'` (repeatable) into the TOML shape."""
    mapping: dict[str, list[str]] = {}
    for value in values:
        pattern, sep, codes = value.rpartition(":")
        if not sep or not pattern or not codes:
            raise ConfigError(f"--per-file-ignores: expected GLOB:CODE[,CODE...], got {value!r}")
        mapping.setdefault(pattern, []).extend(c.strip() for c in codes.split(",") if c.strip())
    return mapping
