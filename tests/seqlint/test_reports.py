"""Every output format, from hand-made findings (the formats only format; the runner is tested elsewhere)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from seqlint.engine import all_rules
from seqlint.findings import Applicability, Edit, Finding, Fix, Location
from seqlint.report import ReportContext, statistics, summary_lines, write_report, write_statistics
from seqlint.runner import FileError, RunResult

SOURCE = (
    "class Gen(Sequence):\n"
    "    def __getitem__(self, i):\n"
    "\tx = self.x[i] / 255.0\n"
    "        return x\n"
)


def make_result(root: Path) -> RunResult:
    name = str(root / "pkg" / "gen.py")
    safe = Fix(Applicability.SAFE, "hoist it", (Edit("y", Location(3, 6), Location(3, 20)),))
    unsafe = Fix(Applicability.UNSAFE, "round up", (Edit("z", Location(4, 16), Location(4, 17)),))
    shown = Fix(Applicability.DISPLAY_ONLY, "pack the files with `seqkit pack`")
    findings = [
        Finding("SEQ101", "per-batch-preprocessing", "scaling per batch", name,
                Location(3, 6), Location(3, 20), fix=safe, statement_row=3),
        Finding("SEQ306", "len-drops-last-batch", "drops the last batch", name,
                Location(4, 16), Location(4, 17), fix=unsafe, statement_row=4),
        Finding("SEQ201", "file-read-per-batch", "reads a file per batch", name,
                Location(2, 5), Location(4, 17), fix=shown, hint="use MemmapSequence"),
    ]
    result = RunResult(findings=findings, sources={name: SOURCE})
    result.errors = [FileError(str(root / "bad.py"), "syntax error: unexpected EOF", 3, 1),
                     FileError(str(root / "gone.py"), "no such file or directory")]
    return result


def render(fmt: str, result: RunResult, **context) -> str:
    stream = io.StringIO()
    rules = {rule.code: rule for rule in all_rules()}
    write_report(fmt, result, ReportContext(root=context.pop("root"), rules=rules, **context), stream)
    return stream.getvalue()


def test_concise_is_one_line_per_finding(tmp_path):
    out = render("concise", make_result(tmp_path), root=tmp_path).splitlines()
    name = str(tmp_path / "pkg" / "gen.py")
    assert out[:3] == [
        f"{name}:3:6: SEQ101 scaling per batch",
        f"{name}:4:16: SEQ306 drops the last batch",
        f"{name}:2:5: SEQ201 reads a file per batch",
    ]
    assert "Found 3 findings." in out
    assert "[*] 1 fixable with `seqlint fix`." in out
    assert "1 hidden fix can be enabled with `--unsafe-fixes`." in out


def test_full_shows_the_code_frame_caret_rule_name_and_fix_hints(tmp_path):
    out = render("full", make_result(tmp_path), root=tmp_path)
    lines = out.splitlines()
    header = lines.index(f"{tmp_path / 'pkg' / 'gen.py'}:3:6: SEQ101 [*] scaling per batch")
    frame = lines[header + 1: header + 8]
    assert frame[0] == "  |"
    assert frame[1] == "2 |     def __getitem__(self, i):"
    assert frame[2] == "3 |     x = self.x[i] / 255.0"  # the tab is expanded to 4 columns
    assert frame[3] == "  | " + " " * 8 + "^" * 14 + " SEQ101 per-batch-preprocessing"
    assert frame[4] == "4 |         return x"
    assert frame[6] == "  = help: hoist it (fixable with `seqlint fix`)"
    assert "  = help: round up (unsafe fix available with `--unsafe-fixes`)" in lines
    assert "  = suggestion: pack the files with `seqkit pack`" in lines
    assert "  = hint: use MemmapSequence" in lines
    # A multi-line finding is underlined from its column to the end of its first line.
    assert "  |     " + "^" * 25 + " SEQ201 file-read-per-batch" in lines
    assert "\x1b[" not in out  # not a terminal: no colour codes


def test_full_with_unsafe_fixes_enabled_counts_them_as_fixable(tmp_path):
    out = render("full", make_result(tmp_path), root=tmp_path, unsafe_fixes=True)
    assert "SEQ306 [*] drops the last batch" in out
    assert "round up (fixable with `seqlint fix --unsafe-fixes`)" in out
    assert "[*] 2 fixable with `seqlint fix --unsafe-fixes`." in out
    assert "hidden fix" not in out


def test_summary_after_fixing_and_when_clean(tmp_path):
    result = make_result(tmp_path)
    result.fixes_applied = 4
    assert summary_lines(result, ReportContext(root=tmp_path, fixing=True))[0] == (
        "Found 7 findings (4 fixed, 3 remaining).")
    clean = RunResult()
    assert summary_lines(clean, ReportContext(root=tmp_path)) == ["All checks passed!"]
    assert summary_lines(clean, ReportContext(root=tmp_path, quiet=True)) == []


def test_json_uses_ruff_field_names(tmp_path):
    data = json.loads(render("json", make_result(tmp_path), root=tmp_path))
    first = data[0]
    assert {"code", "message", "filename", "location", "end_location", "fix", "noqa_row", "url"} <= set(first)
    assert first["code"] == "SEQ101"
    assert first["location"] == {"row": 3, "column": 6}
    assert first["end_location"] == {"row": 3, "column": 20}
    assert first["fix"] == {
        "applicability": "safe",
        "message": "hoist it",
        "edits": [{"content": "y", "location": {"row": 3, "column": 6}, "end_location": {"row": 3, "column": 20}}],
    }
    assert data[1]["fix"]["applicability"] == "unsafe"
    assert data[2]["fix"]["applicability"] == "display-only" and data[2]["fix"]["edits"] == []
    errors = [d for d in data if d["code"] is None]
    assert [(e["filename"], e["location"]) for e in errors] == [
        (str(tmp_path / "bad.py"), {"row": 3, "column": 1}),
        (str(tmp_path / "gone.py"), None),
    ]


def test_github_annotations(tmp_path):
    out = render("github", make_result(tmp_path), root=tmp_path).splitlines()
    name = str(tmp_path / "pkg" / "gen.py")
    assert out[0] == (f"::error title=seqlint (SEQ101),file={name},line=3,col=6,endLine=3,endColumn=20"
                      "::SEQ101 scaling per batch")
    assert out[3] == f"::error title=seqlint,file={tmp_path / 'bad.py'},line=3,col=1::syntax error: unexpected EOF"


def test_statistics_counts_per_rule(tmp_path):
    result = make_result(tmp_path)
    result.findings.append(result.findings[0])
    rows = statistics(result.findings, unsafe_fixes=False)
    assert rows[0] == {"code": "SEQ101", "name": "per-batch-preprocessing", "count": 2, "fixable": True}
    assert {r["code"]: r["fixable"] for r in rows} == {"SEQ101": True, "SEQ306": False, "SEQ201": False}
    stream = io.StringIO()
    write_statistics(result.findings, False, stream, as_json=False)
    assert stream.getvalue().splitlines()[0].split("\t") == ["2", "SEQ101", "per-batch-preprocessing", "[*]"]


# --- SARIF 2.1.0: the parts of the schema GitHub code scanning relies on, checked by hand -----------


def _check_message(message):
    assert isinstance(message, dict) and isinstance(message.get("text"), str) and message["text"]


def _check_region(region):
    for key in ("startLine", "startColumn", "endLine", "endColumn"):
        if key in region:
            assert isinstance(region[key], int) and region[key] >= 1, (key, region)
    assert "startLine" in region
    if "endLine" in region:
        assert region["endLine"] >= region["startLine"]


def _check_artifact(location, base_ids):
    artifact = location["artifactLocation"]
    assert isinstance(artifact["uri"], str) and artifact["uri"]
    if "uriBaseId" in artifact:
        assert artifact["uriBaseId"] in base_ids
        assert not artifact["uri"].startswith("/") and "://" not in artifact["uri"]
    else:
        assert artifact["uri"].startswith("file:///")


def validate_sarif(log: dict) -> None:
    assert log["version"] == "2.1.0"
    assert log["$schema"].endswith("sarif-2.1.0.json")
    assert isinstance(log["runs"], list) and log["runs"]
    for run in log["runs"]:
        driver = run["tool"]["driver"]
        assert isinstance(driver["name"], str) and driver["name"]
        rules = driver.get("rules", [])
        ids = [r["id"] for r in rules]
        assert len(ids) == len(set(ids))
        for rule in rules:
            assert isinstance(rule["id"], str)
            for key in ("shortDescription", "fullDescription"):
                _check_message(rule[key])
            assert isinstance(rule["help"]["text"], str) and isinstance(rule["help"]["markdown"], str)
            assert rule["defaultConfiguration"]["level"] in ("none", "note", "warning", "error")
        base_ids = run.get("originalUriBaseIds", {})
        for value in base_ids.values():
            assert value["uri"].startswith("file:///") and value["uri"].endswith("/")
        for result in run["results"]:
            assert result["ruleId"] in ids
            assert ids[result["ruleIndex"]] == result["ruleId"]
            assert result["level"] in ("none", "note", "warning", "error")
            _check_message(result["message"])
            assert result["locations"]
            for location in result["locations"]:
                physical = location["physicalLocation"]
                _check_artifact(physical, base_ids)
                _check_region(physical["region"])
            for fix in result.get("fixes", []):
                _check_message(fix["description"])
                for change in fix["artifactChanges"]:
                    _check_artifact(change, base_ids)
                    for replacement in change["replacements"]:
                        _check_region(replacement["deletedRegion"])
                        assert isinstance(replacement["insertedContent"]["text"], str)
        for invocation in run.get("invocations", []):
            assert isinstance(invocation["executionSuccessful"], bool)
            for note in invocation.get("toolExecutionNotifications", []):
                _check_message(note["message"])
                assert note["level"] in ("none", "note", "warning", "error")


def test_sarif_is_valid_and_relative_to_the_root(tmp_path):
    log = json.loads(render("sarif", make_result(tmp_path), root=tmp_path))
    validate_sarif(log)
    run = log["runs"][0]
    expected_ids = sorted({r.code for r in all_rules()} | {"SEQ101", "SEQ201", "SEQ306"})
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == expected_ids
    first = run["results"][0]
    assert first["ruleId"] == "SEQ101"
    assert first["locations"][0]["physicalLocation"]["artifactLocation"] == {
        "uri": "pkg/gen.py", "uriBaseId": "%SRCROOT%"}
    assert first["locations"][0]["physicalLocation"]["region"] == {
        "startLine": 3, "startColumn": 6, "endLine": 3, "endColumn": 20}
    assert "fixes" in first and "fixes" not in run["results"][1]  # unsafe fix not enabled
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == tmp_path.as_uri() + "/"
    assert run["invocations"][0]["executionSuccessful"] is False
    assert len(run["invocations"][0]["toolExecutionNotifications"]) == 2


def test_sarif_file_outside_the_root_gets_an_absolute_uri(tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    log = json.loads(render("sarif", make_result(tmp_path), root=root))
    validate_sarif(log)
    uri = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == (tmp_path / "pkg" / "gen.py").as_uri()


@pytest.mark.parametrize("fmt", ["full", "concise", "json", "sarif", "github"])
def test_no_findings_is_valid_output(tmp_path, fmt):
    out = render(fmt, RunResult(), root=tmp_path)
    if fmt == "json":
        assert json.loads(out) == []
    elif fmt == "sarif":
        validate_sarif(json.loads(out))
    elif fmt == "github":
        assert out == ""
    else:
        assert out.strip() == "All checks passed!"
