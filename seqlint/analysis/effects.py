"""What a call does besides computing its result: draw random numbers, read a file, or neither.

Rules ask these questions about fully qualified call names (as `ModuleContext.qualified_name` gives
them). The names live in `seqlint/data/effects.toml`, because the list of libraries users load images
or draw noise with keeps growing and adding one should not mean editing code. The tables are parsed
once per process, on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from seqlint.analysis.tables import load_data_table

__all__ = [
    "is_random_call",
    "is_global_rng_call",
    "is_rng_seeding_call",
    "is_generator_method",
    "generator_equivalent",
    "python_int_draw",
    "takes_shape_varargs",
    "is_io_call",
    "io_kind",
    "is_pure_numpy",
    "is_pure_array_method",
    "normalize",
    "augmentation_layers",
    "is_augmentation_method",
    "is_read_only_call",
    "io_method_kind",
    "writes_first_argument",
    "is_in_place_method",
    "is_view_method",
    "returns_view",
]


@dataclass(frozen=True)
class _NameSet:
    """Exact names plus dotted prefixes, minus exclusions (which may themselves be prefixes)."""

    names: frozenset[str]
    prefixes: tuple[str, ...]
    exclude_names: frozenset[str]
    exclude_prefixes: tuple[str, ...]

    @classmethod
    def from_table(cls, table: dict, *, names_prefix: str = "") -> _NameSet:
        excludes = table.get("exclude", [])
        return cls(
            names=frozenset(names_prefix + n for n in table.get("names", [])),
            prefixes=tuple(table.get("prefixes", [])),
            exclude_names=frozenset(e for e in excludes if not _is_prefix_pattern(e)),
            exclude_prefixes=tuple(e for e in excludes if _is_prefix_pattern(e)),
        )

    def __contains__(self, name: str) -> bool:
        if name in self.exclude_names or name.startswith(self.exclude_prefixes):
            return False
        return name in self.names or name.startswith(self.prefixes)


def _is_prefix_pattern(entry: str) -> bool:
    # "numpy.random." and "tensorflow.random.stateless_" are prefixes; "random.Random" is a name.
    return entry.endswith((".", "_"))


@dataclass(frozen=True)
class _Tables:
    aliases: dict[str, str]
    random: _NameSet
    generator_methods: frozenset[str]
    global_rng: _NameSet
    seeding: frozenset[str]
    generator_equivalent: dict[str, str]
    python_int_draws: dict[str, str]
    shape_varargs: frozenset[str]
    io_names: dict[str, str]
    io_prefixes: dict[str, str]
    io_exclude: frozenset[str]
    io_methods: dict[str, str]
    pure_numpy: _NameSet
    array_methods: frozenset[str]
    augmentation_layers: dict[str, tuple[str, ...]]
    read_only: _NameSet
    writing_functions: frozenset[str]
    in_place_methods: frozenset[str]
    view_methods: frozenset[str]
    view_functions: frozenset[str]
    augmentation_methods: frozenset[str]


@lru_cache(maxsize=1)
def _tables() -> _Tables:
    data = load_data_table("effects.toml")
    rng = data["global_rng"]
    io = data["io"]
    return _Tables(
        aliases=dict(data.get("aliases", {})),
        random=_NameSet.from_table(data["random"]),
        generator_methods=frozenset(data["random"].get("generator_methods", [])),
        global_rng=_NameSet.from_table(rng),
        seeding=frozenset(rng.get("seeding", [])),
        generator_equivalent=dict(rng.get("generator_equivalent", {})),
        python_int_draws=dict(rng.get("python_int_draws", {})),
        shape_varargs=frozenset(rng.get("shape_varargs", {}).get("names", [])),
        io_names=dict(io.get("names", {})),
        io_prefixes=dict(io.get("prefixes", {})),
        io_exclude=frozenset(io.get("exclude", {}).get("names", [])),
        io_methods=dict(io.get("methods", {})),
        pure_numpy=_NameSet.from_table(data["pure_numpy"], names_prefix="numpy."),
        array_methods=frozenset(data["pure_numpy"].get("array_methods", [])),
        augmentation_layers={k: tuple(v) for k, v in data["augmentation"]["layers"].items()},
        augmentation_methods=frozenset(data["augmentation"]["methods"]["names"]),
        read_only=_NameSet.from_table(data["read_only"]),
        writing_functions=frozenset(data["writes"]["functions"]),
        in_place_methods=frozenset(data["writes"]["in_place_methods"]),
        view_methods=frozenset(data["views"]["methods"]),
        view_functions=frozenset(f"numpy.{name}" for name in data["views"]["functions"]),
    )


def normalize(qualname: str | None) -> str | None:
    """Expand a conventional short module name (`np.`, `tf.`) left unresolved by missing imports."""
    if not qualname:
        return None
    head, dot, rest = qualname.partition(".")
    full = _tables().aliases.get(head)
    if full is None or not dot:
        return qualname
    return f"{full}.{rest}"


def is_random_call(qualname: str | None) -> bool:
    """True when the call draws random numbers or applies a random transform (a stateless one with a
    seed included): its result must not be computed once and reused."""
    name = normalize(qualname)
    return name is not None and name in _tables().random


def is_global_rng_call(qualname: str | None) -> bool:
    """True for the process-global generators (numpy's legacy `np.random.*`, `random.*`, `tf.random.*`)."""
    name = normalize(qualname)
    return name is not None and name in _tables().global_rng


def is_rng_seeding_call(qualname: str | None) -> bool:
    """True for calls that set or read global RNG state rather than draw from it."""
    name = normalize(qualname)
    return name is not None and name in _tables().seeding


def is_generator_method(method_name: str) -> bool:
    """True for a method name that draws from an explicit generator object (`rng.normal`)."""
    return method_name in _tables().generator_methods


def generator_equivalent(qualname: str | None) -> str | None:
    """The `numpy.random.Generator` method that replaces a global-RNG function, if one does."""
    name = normalize(qualname)
    if name is None:
        return None
    return _tables().generator_equivalent.get(name) or None


def python_int_draw(qualname: str | None) -> str | None:
    """"inclusive" for `random.randint`, "exclusive" for `random.randrange`: how the upper bound maps
    onto `Generator.integers`, whose upper bound is excluded."""
    name = normalize(qualname)
    return _tables().python_int_draws.get(name) if name is not None else None


def takes_shape_varargs(qualname: str | None) -> bool:
    """`np.random.rand(3, 4)`-style functions, whose Generator equivalent wants `size=(3, 4)`."""
    return normalize(qualname) in _tables().shape_varargs


def io_kind(qualname: str | None) -> str | None:
    """What a file-reading call reads ("npy", "image", "audio", "hdf5", "csv", ...), or None."""
    name = normalize(qualname)
    if name is None:
        return None
    tables = _tables()
    if name in tables.io_exclude:
        return None
    kind = tables.io_names.get(name)
    if kind is not None:
        return kind
    for prefix, kind in tables.io_prefixes.items():
        if name.startswith(prefix):
            return kind
    return None


def io_method_kind(method_name: str) -> str | None:
    """What a method that reads a file whatever its receiver (`path.read_bytes()`) reads, or None."""
    return _tables().io_methods.get(method_name)


def is_io_call(qualname: str | None) -> bool:
    """True when the call reads a file (or decodes a file's bytes) every time it runs."""
    return io_kind(qualname) is not None


def is_pure_numpy(qualname: str | None) -> bool:
    """True for deterministic numpy functions: the same arguments always give the same result."""
    name = normalize(qualname)
    return name is not None and name in _tables().pure_numpy


def is_pure_array_method(method_name: str) -> bool:
    """The method counterpart of `is_pure_numpy` (`x.astype(...)`, `x.reshape(...)`)."""
    return method_name in _tables().array_methods


def augmentation_layers(name: str) -> list[str]:
    """Keras preprocessing layers doing what a transform called `name` does (`"A.HorizontalFlip"` ->
    `["RandomFlip"]`), in table order, without repeats; empty when none is known."""
    lowered = name.lower()
    found: list[str] = []
    for key, layers in _tables().augmentation_layers.items():
        if key in lowered:
            found.extend(layer for layer in layers if layer not in found)
    return found


def is_augmentation_method(method_name: str) -> bool:
    """`random_transform`, `augment_image`: random augmentation whatever object the method is on."""
    return method_name in _tables().augmentation_methods


def is_read_only_call(qualname: str | None) -> bool:
    """True when the call never writes into the arrays passed to it (unless through `out=`)."""
    name = normalize(qualname)
    if name is None:
        return False
    return name in _tables().read_only or is_pure_numpy(name) or is_io_call(name)


def writes_first_argument(qualname: str | None) -> bool:
    """`np.copyto(dst, ...)`, `np.random.shuffle(x)`: the call changes the array passed first."""
    name = normalize(qualname)
    return name is not None and (name in _tables().writing_functions or name.endswith(".at"))  # np.add.at


def is_in_place_method(method_name: str) -> bool:
    """`x.sort()`, `x.fill(0)`: the method changes the array it is called on."""
    return method_name in _tables().in_place_methods


def is_view_method(method_name: str) -> bool:
    """`x.reshape(...)`, `x.T`: the result shares the array's memory."""
    return method_name in _tables().view_methods


def returns_view(qualname: str | None) -> bool:
    """`np.asarray(x)`, `np.flip(x)`: the result shares its first argument's memory."""
    return normalize(qualname) in _tables().view_functions
