"""seqlint's imports flow one way: cli -> runner -> engine -> rules -> analysis (issue 11 §6).

`analysis/project.py` used to import `seqlint.rules`, closing a circle through `rules/base.py` and
`analysis/context.py`. Every module of the package is classified into a layer, and every import it
makes (at the top, inside functions, or under TYPE_CHECKING: all found with `ast`) must point to a
layer it may use. A new module must be given a layer here before it can be imported by anyone.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "seqlint"

# Layer of each module (the longest matching prefix wins) and the layers it may import.
LAYERS = {
    "seqlint.findings": "values",
    "seqlint.fixes": "values",  # edit-building helpers the rules and the analysis share
    "seqlint.analysis": "analysis",
    "seqlint.rules": "rules",
    "seqlint.engine": "engine",
    # noqa only reads comments (it imports findings alone); SEQ103 asks it whether a line is suppressed.
    "seqlint.noqa": "values",
    "seqlint.config": "support",
    "seqlint.nesting": "support",
    "seqlint.notebook": "support",
    "seqlint.edits": "support",
    "seqlint.writing": "support",
    "seqlint.runner": "runner",
    "seqlint.report": "report",
    "seqlint.cli": "cli",
    "seqlint.__main__": "cli",
    "seqlint": "package",  # seqlint/__init__.py: the version, nothing else
}
MAY_IMPORT = {
    "package": set(),
    "values": {"values"},
    "analysis": {"analysis", "values"},
    "rules": {"rules", "analysis", "values"},
    "engine": {"engine", "rules", "analysis", "values"},
    "support": {"support", "values"},
    "runner": {"runner", "engine", "support", "values"},
    "report": {"report", "values"},
    "cli": {"cli", "runner", "engine", "report", "support", "values", "package"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str | None:
    for prefix in sorted(LAYERS, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return LAYERS[prefix]
    return None


def _is_module(dotted: str) -> bool:
    path = PACKAGE.parent / dotted.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imports_of(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, imported seqlint module) for every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from seqlint.rules import module_wide_tokens` imports seqlint.rules; `from seqlint import
            # edits` imports the submodule seqlint.edits (the package's __init__ holds only the version).
            submodules = [f"{base}.{alias.name}" for alias in node.names if _is_module(f"{base}.{alias.name}")]
            found += [(node.lineno, name) for name in submodules]
            if len(submodules) < len(node.names):
                found.append((node.lineno, base))
    return [(line, name) for line, name in found if name == "seqlint" or name.startswith("seqlint.")]


def test_every_module_has_a_layer():
    missing = [module_name(p) for p in PACKAGE.rglob("*.py") if layer_of(module_name(p)) is None]
    assert missing == [], f"give these modules a layer in {__name__}.LAYERS: {missing}"


def test_imports_flow_one_way():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        layer = layer_of(module)
        for line, imported in imports_of(path, module):
            target = layer_of(imported)
            if target is not None and target not in MAY_IMPORT[layer]:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {module} ({layer}) imports {imported} ({target})")
    assert wrong == [], "imports against the flow cli -> runner -> engine -> rules -> analysis:\n" + "\n".join(wrong)


def test_the_checker_sees_a_wrong_import(tmp_path, monkeypatch):
    """The check itself can fail: an analysis module importing a rule is reported."""
    fake = PACKAGE / "analysis" / "project.py"
    text = fake.read_text(encoding="utf-8") + "\n\ndef _late():\n    from seqlint.rules import registered_rules\n"
    probe = tmp_path / "project.py"
    probe.write_text(text)
    imports = imports_of(probe, "seqlint.analysis.project")
    assert any(name == "seqlint.rules" for _, name in imports)
    assert layer_of("seqlint.rules") not in MAY_IMPORT[layer_of("seqlint.analysis.project")]
