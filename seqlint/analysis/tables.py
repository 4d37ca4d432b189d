"""The data tables the analysis reads (seqlint/data/keras_bases.toml), loaded once per process."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

_DATA = Path(__file__).resolve().parent.parent / "data"


@lru_cache(maxsize=None)
def load_data_table(filename: str) -> dict:
    """One TOML file of seqlint/data, parsed once per process.

    Located from this file rather than through importlib.resources, so that a `tests/seqlint` folder on
    sys.path can never be mistaken for the package.
    """
    return tomllib.loads((_DATA / filename).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class KerasTables:
    keras3: frozenset[str]
    legacy: frozenset[str]
    unresolved_names: frozenset[str]

    def base_kind(self, qualname: str) -> bool | None:
        """True for a Keras 3 base, False for a legacy one, None when `qualname` is no Keras base."""
        if qualname in self.keras3:
            return True
        if qualname in self.legacy:
            return False
        return None


@lru_cache(maxsize=None)
def keras_tables() -> KerasTables:
    data = load_data_table("keras_bases.toml")
    return KerasTables(
        keras3=frozenset(data["keras3"]),
        legacy=frozenset(data["legacy"]),
        unresolved_names=frozenset(data["unresolved_names"]),
    )


@lru_cache(maxsize=None)
def elementwise_numpy() -> frozenset[str]:
    data = load_data_table("numpy_elementwise.toml")
    return frozenset(data["arithmetic"]) | frozenset(data["predicates"])


@lru_cache(maxsize=None)
def elementwise_arithmetic() -> frozenset[str]:
    return frozenset(load_data_table("numpy_elementwise.toml")["arithmetic"])


@dataclass(frozen=True)
class PreprocessingTable:
    functions: frozenset[str]
    function_prefixes: tuple[str, ...]
    function_suffixes: tuple[str, ...]
    methods: frozenset[str]
    callable_receivers: tuple[str, ...]

    def is_function(self, qualname: str | None) -> bool:
        return qualname is not None and (
            qualname in self.functions
            or qualname.startswith(self.function_prefixes) and qualname.endswith(self.function_suffixes)
        )


@lru_cache(maxsize=None)
def preprocessing_table() -> PreprocessingTable:
    data = load_data_table("preprocessing.toml")
    return PreprocessingTable(
        functions=frozenset(data["functions"]),
        function_prefixes=tuple(data["function_prefixes"]),
        function_suffixes=tuple(data["function_suffixes"]),
        methods=frozenset(data["methods"]),
        callable_receivers=tuple(data["callable_receivers"]),
    )
