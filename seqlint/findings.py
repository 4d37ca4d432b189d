"""The values every stage of seqlint passes along: findings, fixes and the edits they are made of.

Field names follow ruff's JSON output (`code`, `message`, `filename`, `location{row,column}`,
`end_location`, `fix{applicability,message,edits}`, `cell`) so that tools reading ruff's output read
ours. Rows and columns are 1-based, as ruff prints them; in a notebook they count within the cell.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Applicability(str, Enum):
    """How far a fix may be trusted, with ruff's meanings.

    SAFE fixes keep the batches a generator yields and are applied by `seqlint fix`; UNSAFE ones may
    change behaviour and need `--unsafe-fixes`; DISPLAY_ONLY ones are suggestions, never applied.
    """

    SAFE = "safe"
    UNSAFE = "unsafe"
    DISPLAY_ONLY = "display-only"


@dataclass(frozen=True, order=True)
class Location:
    row: int
    column: int


@dataclass(frozen=True)
class Edit:
    """Replace the text between two locations (end exclusive) with `content`."""

    content: str
    location: Location
    end_location: Location


@dataclass(frozen=True)
class Fix:
    applicability: Applicability
    message: str
    edits: tuple[Edit, ...] = ()


@dataclass(frozen=True)
class Finding:
    code: str
    name: str
    message: str
    filename: str
    location: Location
    end_location: Location
    fix: Fix | None = None
    # First row of the statement holding the finding: a `# noqa` there also suppresses it.
    statement_row: int | None = None
    # What the reader can do about it when no automatic fix exists (shown by the full report).
    hint: str | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)
    # Notebooks: the 1-based cell the finding is in; its rows and columns then count within the cell.
    cell: int | None = None

    @property
    def sort_key(self) -> tuple:
        return (self.filename, self.cell or 0, self.location.row, self.location.column, self.code)

    @property
    def where(self) -> str:
        """`file:row:col`, or `file:cell N:row:col` in a notebook, as ruff prints locations."""
        cell = f":cell {self.cell}" if self.cell is not None else ""
        return f"{self.filename}{cell}:{self.location.row}:{self.location.column}"
