"""Every rule is documented the same way and carries enough cases to pin its behaviour down.

`seqlint rule CODE` prints these docs, so a missing section is a user-visible gap; the codes and names
are the published catalogue (DESIGN.md) that configs and `# noqa` comments refer to.
"""

from __future__ import annotations

import re
import sys

import pytest

from seqlint.engine import all_rules
from seqlint.rules.base import Invalid

# The catalogue of DESIGN.md: codes and names are fixed, users' configs depend on them.
CATALOGUE = {
    "SEQ101": "per-batch-preprocessing",
    "SEQ102": "python-loop-over-array",
    "SEQ103": "growing-array-in-loop",
    "SEQ104": "copy-per-batch",
    "SEQ201": "file-read-per-batch",
    "SEQ202": "eager-array-load",
    "SEQ301": "global-rng-in-batch",
    "SEQ302": "missing-super-init",
    "SEQ303": "legacy-fit-arguments",
    "SEQ304": "shuffle-data-not-index",
    "SEQ305": "augmentation-in-generator",
    "SEQ306": "len-drops-last-batch",
}
SECTIONS = ("## What it does", "## Why is this bad?", "## Example", "## Use instead", "## Fix safety")


def _rules():
    return [pytest.param(rule, id=rule.code) for rule in all_rules()]


def test_registered_codes_are_unique_and_sorted():
    codes = [rule.code for rule in all_rules()]
    assert codes == sorted(set(codes))


@pytest.mark.parametrize("rule", _rules())
def test_code_name_and_module_match_the_catalogue(rule):
    assert CATALOGUE.get(rule.code) == rule.name
    module = sys.modules[rule.__module__].__name__.rsplit(".", 1)[1]
    assert module == f"{rule.code.lower()}_{rule.name.replace('-', '_')}"


@pytest.mark.parametrize("rule", _rules())
def test_docs_have_every_section_in_order(rule):
    positions = [rule.docs.find(section) for section in SECTIONS]
    assert -1 not in positions, [s for s, p in zip(SECTIONS, positions) if p == -1]
    assert positions == sorted(positions)
    for section, following in zip(SECTIONS, [*SECTIONS[1:], None]):
        start = rule.docs.index(section) + len(section)
        body = rule.docs[start: rule.docs.index(following) if following else None]
        assert body.strip(), f"{section} is empty"
    assert "```" in rule.docs  # the Example and Use instead sections show code


@pytest.mark.parametrize("rule", _rules())
def test_summary_and_fix_availability(rule):
    assert rule.summary and "\n" not in rule.summary and len(rule.summary) <= 100
    assert rule.fix_availability in ("always", "sometimes", "none")
    has_fixed_case = any(case.fixed is not None for case in rule.invalid)
    if rule.fix_availability == "none":
        assert not has_fixed_case
        assert re.search(r"no (automatic )?fix|suggestion|never applied", rule.docs, re.I)


@pytest.mark.parametrize("rule", _rules())
def test_at_least_two_valid_and_two_invalid_cases(rule):
    assert len(rule.valid) >= 2
    assert len(rule.invalid) >= 2
    assert all(isinstance(case, Invalid) and case.expected for case in rule.invalid)
    assert all(isinstance(source, str) for source in rule.valid)
