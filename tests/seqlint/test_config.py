"""[tool.seqlint] discovery, rule selection precedence, excludes and validation."""

from pathlib import Path

import pytest

from seqlint.config import (
    DEFAULT_EXCLUDE,
    ConfigError,
    Overrides,
    find_config,
    load_settings,
    parse_per_file_ignores,
    path_matches,
)

# The catalogue of DESIGN.md: selection is computed over whatever codes the registry holds.
CODES = ["SEQ101", "SEQ102", "SEQ103", "SEQ104", "SEQ201", "SEQ202",
         "SEQ301", "SEQ302", "SEQ303", "SEQ304", "SEQ305", "SEQ306"]


def write_pyproject(directory: Path, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "pyproject.toml"
    path.write_text(body)
    return path


def settings(tmp_path, body=None, **overrides):
    if body is not None:
        write_pyproject(tmp_path, body)
    return load_settings([str(tmp_path)], Overrides(**overrides), CODES)


def test_defaults_enable_every_rule(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load_settings([str(tmp_path)], Overrides(), CODES)
    assert s.enabled == set(CODES)
    assert s.config_file is None and s.root == tmp_path
    assert s.exclude == DEFAULT_EXCLUDE and s.output_format == "full" and not s.unsafe_fixes


def test_nearest_pyproject_with_a_seqlint_table_wins(tmp_path):
    write_pyproject(tmp_path, '[tool.seqlint]\nselect = ["SEQ1"]\n')
    write_pyproject(tmp_path / "pkg", '[project]\nname = "x"\n')  # no [tool.seqlint]: skipped
    (tmp_path / "pkg" / "src").mkdir()
    assert find_config(tmp_path / "pkg" / "src") == tmp_path / "pyproject.toml"
    s = load_settings([str(tmp_path / "pkg" / "src")], Overrides(), CODES)
    assert s.root == tmp_path
    assert s.enabled == {"SEQ101", "SEQ102", "SEQ103", "SEQ104"}


def test_more_specific_selector_wins_and_ignore_wins_ties(tmp_path):
    s = settings(tmp_path, '[tool.seqlint]\nselect = ["SEQ"]\nignore = ["SEQ1"]\nextend-select = ["SEQ101"]\n')
    assert s.enabled == set(CODES) - {"SEQ102", "SEQ103", "SEQ104"}
    s = settings(tmp_path, '[tool.seqlint]\nselect = ["SEQ1"]\nignore = ["SEQ1"]\n')
    assert s.enabled == set()
    s = settings(tmp_path, '[tool.seqlint]\nselect = ["SEQ101"]\nignore = ["SEQ"]\n')
    assert s.enabled == {"SEQ101"}


def test_cli_select_replaces_the_file_selection_and_ignore_adjusts(tmp_path):
    body = '[tool.seqlint]\nselect = ["SEQ1"]\nignore = ["SEQ101"]\n'
    assert settings(tmp_path, body, select=["SEQ3"]).enabled == {c for c in CODES if c.startswith("SEQ3")}
    assert settings(tmp_path, body, ignore=["SEQ102"]).enabled == {"SEQ103", "SEQ104"}
    assert settings(tmp_path, body, extend_select=["SEQ101", "SEQ201"]).enabled == {
        "SEQ101", "SEQ102", "SEQ103", "SEQ104", "SEQ201"}
    assert settings(tmp_path, body, select=["ALL"]).enabled == set(CODES)


@pytest.mark.parametrize("body, needle", [
    ('[tool.seqlint]\nselect = ["SEQ9"]\n', "unknown rule selector 'SEQ9'"),
    ('[tool.seqlint]\nignore = ["E501"]\n', "unknown rule selector 'E501'"),
    ('[tool.seqlint]\nselct = ["SEQ1"]\n', "unknown key(s) in [tool.seqlint]: selct"),
    ('[tool.seqlint]\nselect = "SEQ1"\n', "select must be a list of strings"),
    ('[tool.seqlint]\noutput-format = "xml"\n', "unknown format 'xml'"),
    ('[tool.seqlint]\nunsafe-fixes = "yes"\n', "unsafe-fixes must be a bool"),
    ('[tool.seqlint]\nper-file-ignores = {"t.py" = "SEQ101"}\n', "must map to a list of rule codes"),
    ('[tool.seqlint]\nper-file-ignores = {"t.py" = ["SEQ7"]}\n', "unknown rule selector 'SEQ7'"),
    ('[tool.seqlint\nselect = 1\n', "invalid TOML"),
])
def test_bad_configuration_is_a_clear_error(tmp_path, body, needle):
    with pytest.raises(ConfigError) as info:
        load_settings([str(tmp_path)], Overrides(config=str(write_pyproject(tmp_path, body))), CODES)
    assert needle in str(info.value)
    assert "pyproject.toml" in str(info.value)


def test_unknown_cli_selector_names_the_flag(tmp_path):
    with pytest.raises(ConfigError, match=r"--select: unknown rule selector 'SEQX'"):
        settings(tmp_path, select=["SEQX"])
    with pytest.raises(ConfigError, match=r"--config: .*nope.toml: no such file"):
        settings(tmp_path, config=str(tmp_path / "nope.toml"))


def test_explicit_config_file_other_than_pyproject_uses_the_top_level(tmp_path):
    path = tmp_path / "seqlint.toml"
    path.write_text('select = ["SEQ2"]\noutput-format = "concise"\nunsafe-fixes = true\n')
    s = load_settings(["."], Overrides(config=str(path)), CODES)
    assert s.enabled == {"SEQ201", "SEQ202"} and s.output_format == "concise" and s.unsafe_fixes
    assert s.root == tmp_path


def test_cli_scalars_override_the_file(tmp_path):
    body = '[tool.seqlint]\noutput-format = "json"\nunsafe-fixes = true\n'
    s = settings(tmp_path, body, output_format="sarif", unsafe_fixes=False)
    assert s.output_format == "sarif" and s.unsafe_fixes is False


def test_exclude_replaces_and_extend_exclude_adds(tmp_path):
    s = settings(tmp_path, '[tool.seqlint]\nextend-exclude = ["fixtures", "gen_*.py"]\n')
    assert s.exclude == DEFAULT_EXCLUDE + ("fixtures", "gen_*.py")
    s = settings(tmp_path, '[tool.seqlint]\nexclude = ["only"]\nextend-exclude = ["more"]\n',
                 extend_exclude=["cli"])
    assert s.exclude == ("only", "more", "cli")
    s = settings(tmp_path, '[tool.seqlint]\nexclude = ["only"]\n', exclude=["x"])
    assert s.exclude == ("x",)


def test_glob_matching_by_base_name_or_root_relative_path(tmp_path):
    assert path_matches(tmp_path / "a" / "build", "build", tmp_path)
    assert path_matches(tmp_path / "x_pb2.py", "*_pb2.py", tmp_path)
    assert path_matches(tmp_path / "tests" / "t.py", "tests/*.py", tmp_path)
    assert not path_matches(tmp_path / "src" / "tests" / "t.py", "tests/*.py", tmp_path)
    assert path_matches(tmp_path / "src" / "tests" / "t.py", "**/tests/*.py", tmp_path)
    assert path_matches(tmp_path / "tests" / "t.py", "**/tests/*.py", tmp_path)


def test_explicit_paths_ignore_excludes_unless_forced(tmp_path):
    s = settings(tmp_path, '[tool.seqlint]\nextend-exclude = ["fixtures"]\n')
    target = tmp_path / "fixtures" / "deep" / "a.py"
    assert s.is_excluded(target.parent, explicit=False) is False  # only `fixtures` itself matches
    assert s.is_excluded(tmp_path / "fixtures", explicit=False)
    assert not s.is_excluded(target, explicit=True)
    s.force_exclude = True
    assert s.is_excluded(target, explicit=True)
    assert not s.is_excluded(tmp_path / "src" / "a.py", explicit=True)


def test_per_file_ignores_from_file_and_cli(tmp_path):
    s = settings(tmp_path, '[tool.seqlint]\nper-file-ignores = {"tests/*.py" = ["SEQ1"]}\n',
                 per_file_ignores=parse_per_file_ignores(["legacy_*.py:SEQ303,SEQ302"]))
    assert s.codes_for(tmp_path / "tests" / "t.py") == set(CODES) - {"SEQ101", "SEQ102", "SEQ103", "SEQ104"}
    assert s.codes_for(tmp_path / "legacy_train.py") == set(CODES) - {"SEQ302", "SEQ303"}
    assert s.codes_for(tmp_path / "train.py") == set(CODES)
    with pytest.raises(ConfigError, match="expected GLOB:CODE"):
        parse_per_file_ignores(["no-colon"])


@pytest.mark.parametrize("where", ["here", "above"])
def test_broken_pyproject_is_reported_with_path_line_and_reason(tmp_path, where):
    """Issue 13 §4: a broken pyproject.toml used to be skipped, and its `ignore` list silently dropped."""
    broken = write_pyproject(tmp_path, '[tool.seqlint]\nignore = ["SEQ302"\nselect = ["SEQ3"]\n')
    start = tmp_path if where == "here" else tmp_path / "pkg" / "src"
    start.mkdir(parents=True, exist_ok=True)
    with pytest.raises(ConfigError) as info:
        load_settings([str(start)], Overrides(), CODES)
    message = str(info.value)
    assert message.startswith(f"{broken}:3:1: invalid TOML: ")
    assert "Unclosed array" in message


def test_broken_pyproject_ending_early_points_at_its_end(tmp_path):
    broken = write_pyproject(tmp_path, '[tool.seqlint]\nignore = [\n  "SEQ302",\n')
    with pytest.raises(ConfigError, match=rf"^{broken}:3:12: invalid TOML: .*\(the file ends first\)"):
        load_settings([str(tmp_path)], Overrides(), CODES)


def test_broken_pyproject_exits_2_from_the_command_line(tmp_path):
    import subprocess
    import sys

    write_pyproject(tmp_path, '[tool.seqlint]\nignore = ["SEQ302"\n')
    (tmp_path / "gen.py").write_text("x = 1\n")
    proc = subprocess.run([sys.executable, "-m", "seqlint", "check", "gen.py"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"seqlint: error: {tmp_path / 'pyproject.toml'}:2:19: invalid TOML: ")
    assert proc.stdout == ""  # no "All checks passed!" when the configuration could not be read
