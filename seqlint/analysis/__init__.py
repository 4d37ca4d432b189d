"""Facts shared by all rules, computed once per module: imports, Sequence classes, where code runs."""

from seqlint.analysis.context import ModuleContext
from seqlint.analysis.hotpath import Phase
from seqlint.analysis.project import ProjectIndex
from seqlint.analysis.sequences import SequenceClass

__all__ = ["ModuleContext", "Phase", "ProjectIndex", "SequenceClass"]
