"""Checking a profile report against schema.json, with a small JSON Schema validator of our own.

It implements the keywords schema.json uses (type, const, enum, properties, required,
additionalProperties, items, minimum, maximum, exclusiveMinimum, pattern, anyOf, local $ref) and refuses
any other, so the schema cannot silently ask for more than is checked.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache

from seqkit.profiling.report import SCHEMA_PATH

_ANNOTATIONS = {"$schema", "$id", "title", "description", "$defs"}
_KEYWORDS = {
    "type", "const", "enum", "properties", "required", "additionalProperties", "items",
    "minimum", "maximum", "exclusiveMinimum", "pattern", "anyOf", "$ref",
}
_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


@lru_cache(maxsize=1)
def load_schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def errors(instance, schema: dict | None = None) -> list[str]:
    """Every way `instance` breaks `schema` (default: the profile report's), as 'path: problem'."""
    root = load_schema() if schema is None else schema
    found: list[str] = []
    _check(instance, root, root, "$", found)
    return found


def validate(instance, schema: dict | None = None) -> None:
    """Raise ValueError listing the problems when `instance` does not match the schema."""
    problems = errors(instance, schema)
    if problems:
        raise ValueError("profile report does not match its schema:\n  " + "\n  ".join(problems[:20]))


def _resolve(ref: str, root: dict) -> dict:
    if not ref.startswith("#/"):
        raise ValueError(f"only local $ref are supported, got {ref!r}")
    node = root
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def _check(value, schema: dict, root: dict, path: str, found: list[str]) -> None:
    unknown = set(schema) - _KEYWORDS - _ANNOTATIONS
    if unknown:
        raise ValueError(f"schema keyword(s) not supported by this validator at {path}: {sorted(unknown)}")
    if "$ref" in schema:
        _check(value, _resolve(schema["$ref"], root), root, path, found)
    if "anyOf" in schema:
        if not any(not _sub(value, option, root, path) for option in schema["anyOf"]):
            details = "; ".join(" / ".join(_sub(value, option, root, path)[:1]) for option in schema["anyOf"])
            found.append(f"{path}: matches none of the allowed forms ({details})")
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_TYPES[t](value) for t in types):
            found.append(f"{path}: expected {' or '.join(types)}, got {type(value).__name__} {_short(value)}")
            return
    if "const" in schema and value != schema["const"]:
        found.append(f"{path}: must be {schema['const']!r}, got {_short(value)}")
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{path}: must be one of {schema['enum']}, got {_short(value)}")
    if _TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            found.append(f"{path}: {value} is below the minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            found.append(f"{path}: {value} is above the maximum {schema['maximum']}")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            found.append(f"{path}: {value} must be above {schema['exclusiveMinimum']}")
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        found.append(f"{path}: {_short(value)} does not match {schema['pattern']!r}")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                found.append(f"{path}: missing required {key!r}")
        properties = schema.get("properties", {})
        for key, item in value.items():
            if key in properties:
                _check(item, properties[key], root, f"{path}.{key}", found)
            elif schema.get("additionalProperties", True) is False:
                found.append(f"{path}: unexpected property {key!r}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            _check(item, schema["items"], root, f"{path}[{i}]", found)


def _sub(value, schema: dict, root: dict, path: str) -> list[str]:
    found: list[str] = []
    _check(value, schema, root, path, found)
    return found


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
