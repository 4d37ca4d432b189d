"""The rule registry: every `seqlint/rules/seqNNN_<name>.py` module holds exactly one rule.

Rules are discovered from the file names, so adding a rule means adding a file.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from functools import lru_cache

from seqlint.rules.base import Invalid, Rule

__all__ = ["Invalid", "Rule", "registered_rules", "module_wide_tokens"]

_MODULE_RE = re.compile(r"^seq\d{3}_\w+$")


@lru_cache(maxsize=None)
def registered_rules() -> tuple[type[Rule], ...]:
    rules = []
    for info in pkgutil.iter_modules(__path__):
        if not _MODULE_RE.match(info.name):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found = [
            obj for obj in vars(module).values()
            if isinstance(obj, type) and issubclass(obj, Rule) and obj is not Rule
            and obj.__module__ == module.__name__
        ]
        if len(found) != 1:
            raise RuntimeError(f"{module.__name__} must define exactly one Rule subclass, found {len(found)}")
        rules.append(found[0])
    return tuple(sorted(rules, key=lambda r: r.code))


def module_wide_tokens() -> frozenset[str]:
    return frozenset(t for rule in registered_rules() if rule.module_wide for t in rule.module_wide_tokens)
