"""The data tables the analysis reads (seqlint/data/keras_bases.toml), loaded once per process."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources


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
    text = resources.files("seqlint.data").joinpath("keras_bases.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    return KerasTables(
        keras3=frozenset(data["keras3"]),
        legacy=frozenset(data["legacy"]),
        unresolved_names=frozenset(data["unresolved_names"]),
    )


@lru_cache(maxsize=None)
def elementwise_numpy() -> frozenset[str]:
    text = resources.files("seqlint.data").joinpath("numpy_elementwise.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    return frozenset(data["arithmetic"]) | frozenset(data["predicates"])


@lru_cache(maxsize=None)
def elementwise_arithmetic() -> frozenset[str]:
    text = resources.files("seqlint.data").joinpath("numpy_elementwise.toml").read_text(encoding="utf-8")
    return frozenset(tomllib.loads(text)["arithmetic"])


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
    text = resources.files("seqlint.data").joinpath("preprocessing.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    return PreprocessingTable(
        functions=frozenset(data["functions"]),
        function_prefixes=tuple(data["function_prefixes"]),
        function_suffixes=tuple(data["function_suffixes"]),
        methods=frozenset(data["methods"]),
        callable_receivers=tuple(data["callable_receivers"]),
    )
