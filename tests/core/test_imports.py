"""The shape of the code: no import cycle anywhere in ``src/``, and every import points down the layers.

Every ``import`` counts, wherever it is written: at the top, under ``TYPE_CHECKING`` or
inside a function (a lazy import is still a dependency a reader has to follow), and so does
a registry entry such as ``"ferryman.steps.unzip:UnzipStep"`` (`ferryman.registry` imports it).  The
layers, top to bottom, are `LAYERS`; a module may import its own layer or a lower one.
docs/architecture.md draws the same picture.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

LAYERS: list[tuple[str, ...]] = [
    ("ferryman.__main__", "ferryman.cli", "ferryman.reference", "ferryman.display", "ferryman.progress",
     "ferryman.logs", "ferryman.service"),
    ("ferryman.daemon", "ferryman.retention", "ferryman.sdnotify"),
    ("ferryman.engine", "ferryman.expect", "ferryman.recover"),
    ("ferryman.config", "ferryman.probe", "ferryman.preflight"),
    ("ferryman.sources", "ferryman.steps", "ferryman.notify"),
    ("ferryman.flow",),
    ("ferryman.transports",),
    ("ferryman.journal",),
    ("ferryman", "ferryman.model", "ferryman.item", "ferryman.errors", "ferryman.units", "ferryman.secrets",
     "ferryman.connections", "ferryman.templates", "ferryman.redact", "ferryman.tls", "ferryman.retry",
     "ferryman.compat", "ferryman.presets", "ferryman.registry", "ferryman.pidfile"),
]
"""Top to bottom: cli → daemon → engine → config → sources/steps/notify → flow → transports →
journal → the shared model (items, errors, units, secrets, connection settings)."""


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted((SRC / "ferryman").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


REGISTRY_ENTRY = re.compile(r"(ferryman(?:\.\w+)+):\w+")
"""A registry's ``"module:Attribute"`` string: an import that happens on first use."""


def imports(name: str, path: Path, known: dict[str, Path]) -> dict[str, int]:
    """The ferryman modules `name` imports (a ``from package import submodule`` names the
    submodule; a registry entry names its module), each with the line of its first import."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            entry = REGISTRY_ENTRY.fullmatch(node.value)
            targets = [entry.group(1)] if entry and entry.group(1) in known else []
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for target in targets:
            if target.split(".")[0] == "ferryman" and target != name:
                found.setdefault(target, node.lineno)
    return found


def graph() -> dict[str, dict[str, int]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, {}):
            if nxt not in edges:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def layer(module: str) -> int:
    best, depth = -1, -1
    for number, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and prefix.count(".") > depth:
                best, depth = number, prefix.count(".")
    return best


def test_no_import_cycle() -> None:
    found = cycles(graph())
    assert not found, "import cycles: " + "; ".join(" ↔ ".join(c) for c in found)


def test_every_module_has_a_layer() -> None:
    assert [m for m in modules() if layer(m) < 0] == []


def test_imports_point_down_the_layers() -> None:
    upward = [
        f"{modules()[source].relative_to(SRC)}:{line}: {source} (layer {layer(source)}) imports "
        f"{target} (layer {layer(target)})"
        for source, targets in graph().items() for target, line in targets.items()
        if layer(target) < layer(source)
    ]
    assert upward == [], "\n".join(upward)


@pytest.mark.parametrize("case, expected", [
    ({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}}, [["a", "b", "c"]]),
    ({"a": {"b": 1}, "b": {}, "c": {"a": 1}}, []),
    ({"a": {"b": 1}, "b": {"a": 1}, "c": {"d": 1}, "d": {"c": 1}}, [["a", "b"], ["c", "d"]]),
])
def test_the_cycle_finder_finds_cycles(case: dict[str, dict[str, int]], expected: list[list[str]]) -> None:
    assert sorted(cycles(case)) == expected


def test_the_check_sees_a_lazy_type_checking_import(tmp_path: Path) -> None:
    """The three cycles this check was written for were TYPE_CHECKING and function-level imports."""
    package = tmp_path / "ferryman"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ferryman.b import B\n")
    (package / "b.py").write_text("def f():\n    from ferryman import a\n")
    known = {"ferryman": package / "__init__.py", "ferryman.a": package / "a.py", "ferryman.b": package / "b.py"}
    edges = {name: imports(name, path, known) for name, path in known.items()}
    assert cycles(edges) == [["ferryman.a", "ferryman.b"]]


def test_the_check_sees_a_registry_entry(tmp_path: Path) -> None:
    """A ``"module:Class"`` registry entry is an import too (made on first use), so a part that
    imports its registry back is a cycle."""
    package = tmp_path / "ferryman"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "parts.py").write_text('PARTS = {"a": "ferryman.a:A"}\n')
    (package / "a.py").write_text("from ferryman.parts import PARTS\nclass A: ...\n")
    known = {"ferryman": package / "__init__.py", "ferryman.parts": package / "parts.py",
             "ferryman.a": package / "a.py"}
    edges = {name: imports(name, path, known) for name, path in known.items()}
    assert edges["ferryman.parts"] == {"ferryman.a": 1}
    assert cycles(edges) == [["ferryman.a", "ferryman.parts"]]
    assert {"ferryman.sources.folder", "ferryman.sources.imap"} <= set(graph()["ferryman.sources"])
