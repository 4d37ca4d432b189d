"""A JSON array with ruff's field names, so tools that read `ruff --output-format json` read ours.

Files that could not be read or parsed are entries with `"code": null`, as ruff reports syntax errors.
In a notebook, `cell` is the 1-based cell and rows count within it (ruff's convention).
"""

from __future__ import annotations

import json
from typing import TextIO

from seqlint.findings import Finding, Location
from seqlint.report import ReportContext


def _location(location: Location | None) -> dict | None:
    return None if location is None else {"row": location.row, "column": location.column}


def finding_to_dict(f: Finding) -> dict:
    fix = None
    if f.fix is not None:
        fix = {
            "applicability": f.fix.applicability.value,
            "message": f.fix.message,
            "edits": [
                {
                    "content": e.content,
                    "location": _location(e.location),
                    "end_location": _location(e.end_location),
                }
                for e in f.fix.edits
            ],
        }
    return {
        "cell": f.cell,
        "code": f.code,
        "name": f.name,
        "message": f.message,
        "filename": f.filename,
        "location": _location(f.location),
        "end_location": _location(f.end_location),
        "fix": fix,
        "noqa_row": f.location.row,
        "url": None,
    }


def error_to_dict(error) -> dict:
    location = None
    if error.line is not None:
        location = {"row": error.line, "column": error.column or 1}
    return {
        "cell": getattr(error, "cell", None),
        "code": None,
        "name": None,
        "message": error.message,
        "filename": error.filename,
        "location": location,
        "end_location": location,
        "fix": None,
        "noqa_row": None,
        "url": None,
    }


def write(result, context: ReportContext, stream: TextIO) -> None:
    entries = [finding_to_dict(f) for f in result.findings] + [error_to_dict(e) for e in result.errors]
    json.dump(entries, stream, indent=2)
    stream.write("\n")
