"""docs/reference.md is generated from the models: it must say what the code says."""

from __future__ import annotations

from pathlib import Path

from ferryman import reference

DOC = Path(__file__).resolve().parents[2] / "docs" / "reference.md"


def test_reference_doc_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == reference.render(), "run `make docs` and commit docs/reference.md"


def test_every_component_field_is_described() -> None:
    from ferryman.connections import CONNECTIONS
    from ferryman.notify import NOTIFIERS
    from ferryman.sources import SOURCES
    from ferryman.steps import STEPS

    models = [c.Config for c in (*SOURCES.values(), *STEPS.values(), *NOTIFIERS.values())]
    models += list(CONNECTIONS.values())
    undocumented = [f"{m.__name__}.{name}" for m in models for name, info in m.model_fields.items()
                    if name != "type" and not info.description]
    assert not undocumented, f"fields without a description: {undocumented}"
