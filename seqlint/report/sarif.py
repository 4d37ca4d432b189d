"""SARIF 2.1.0, the format GitHub code scanning uploads (`github/codeql-action/upload-sarif`).

Locations are relative to the project root under the `%SRCROOT%` base id, which is what code scanning
needs to place results on files of the repository. Files that could not be checked are reported as
tool execution notifications, not as results, so they do not pose as findings.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TextIO
from urllib.parse import quote

from seqlint.findings import Finding
from seqlint.report import ReportContext, is_applicable

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
# The project has no public home page yet; set it here and it appears as tool.driver.informationUri.
INFORMATION_URI: str | None = None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("seqkit")  # the distribution seqlint ships in
    except PackageNotFoundError:
        return "0+unknown"


def _artifact(filename: str, root: Path) -> dict:
    absolute = Path(os.path.abspath(filename))
    try:
        relative = absolute.relative_to(root)
    except ValueError:
        return {"uri": absolute.as_uri()}
    return {"uri": quote(relative.as_posix()), "uriBaseId": "%SRCROOT%"}


def _region(start, end) -> dict:
    return {
        "startLine": start.row,
        "startColumn": start.column,
        "endLine": end.row,
        "endColumn": end.column,
    }


def _rule_descriptor(code: str, rule) -> dict:
    summary = getattr(rule, "summary", "") or code
    docs = getattr(rule, "docs", "") or summary
    return {
        "id": code,
        "name": getattr(rule, "name", code),
        "shortDescription": {"text": summary},
        "fullDescription": {"text": summary},
        "help": {"text": docs, "markdown": docs},
        "defaultConfiguration": {"level": "warning"},
        "properties": {"fix_availability": getattr(rule, "fix_availability", "none")},
    }


def _result(f: Finding, index: int, context: ReportContext) -> dict:
    artifact = _artifact(f.filename, context.root)
    location: dict = {"artifactLocation": artifact}
    message = f.message
    if f.cell is None:
        location["region"] = _region(f.location, f.end_location)
    else:
        # A notebook cell's rows are not lines of the .ipynb file: the cell is named in the text.
        message = f"cell {f.cell}, line {f.location.row}, column {f.location.column}: {message}"
    result = {
        "ruleId": f.code,
        "ruleIndex": index,
        "level": "warning",
        "message": {"text": message},
        "locations": [{"physicalLocation": location}],
    }
    if f.cell is not None:
        result["properties"] = {"cell": f.cell, "row": f.location.row, "column": f.location.column}
    if f.cell is None and is_applicable(f.fix, context.unsafe_fixes) and f.fix.edits:
        result["fixes"] = [{
            "description": {"text": f.fix.message},
            "artifactChanges": [{
                "artifactLocation": artifact,
                "replacements": [
                    {
                        "deletedRegion": _region(e.location, e.end_location),
                        "insertedContent": {"text": e.content},
                    }
                    for e in f.fix.edits
                ],
            }],
        }]
    return result


def build(result, context: ReportContext) -> dict:
    codes = sorted(set(context.rules) | {f.code for f in result.findings})
    index = {code: i for i, code in enumerate(codes)}
    rules = [_rule_descriptor(code, context.rules.get(code)) for code in codes]
    notifications = []
    for e in result.errors:
        cell = getattr(e, "cell", None)
        text = e.message if cell is None else f"cell {cell}, line {e.line}: {e.message}"
        note = {"level": "error", "message": {"text": text}}
        location: dict = {"artifactLocation": _artifact(e.filename, context.root)}
        if e.line is not None and cell is None:
            location["region"] = {"startLine": e.line, "startColumn": e.column or 1}
        note["locations"] = [{"physicalLocation": location}]
        notifications.append(note)
    version = _version()
    driver = {"name": "seqlint", "version": version, "semanticVersion": version, "rules": rules}
    if INFORMATION_URI:
        driver["informationUri"] = INFORMATION_URI
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": driver},
            "originalUriBaseIds": {"%SRCROOT%": {"uri": context.root.as_uri().rstrip("/") + "/"}},
            "invocations": [{
                "executionSuccessful": not result.errors,
                "toolExecutionNotifications": notifications,
            }],
            "results": [_result(f, index[f.code], context) for f in result.findings],
        }],
    }


def write(result, context: ReportContext, stream: TextIO) -> None:
    json.dump(build(result, context), stream, indent=2)
    stream.write("\n")
