"""The registries: ``"module:Class"`` entries, imported on first use, each one what it says it is."""

from __future__ import annotations

import subprocess
import sys
import typing
from typing import Any

import pytest

from ferryman.notify import NOTIFIERS
from ferryman.registry import Registry
from ferryman.sources import SOURCES
from ferryman.steps import STEPS

REGISTRIES: dict[str, Registry[Any]] = {"source": SOURCES, "step": STEPS, "notifier": NOTIFIERS}


@pytest.mark.parametrize(("kind", "name"), [(k, n) for k, r in REGISTRIES.items() for n in r])
def test_every_entry_is_the_component_of_its_type(kind: str, name: str) -> None:
    registry = REGISTRIES[kind]
    component = registry[name]
    assert registry.model(name) is component.Config, f"{name}: the entry's model is not {component.__name__}.Config"
    assert name in typing.get_args(component.Config.model_fields["type"].annotation)


def test_names_and_membership_import_nothing() -> None:
    code = ("import sys\nfrom ferryman.steps import STEPS\nfrom ferryman.sources import SOURCES\n"
            "assert 'csv' in STEPS and 'nope' not in STEPS and len(SOURCES) > 3 and 'imap' in sorted(SOURCES)\n"
            "print(sorted(m for m in sys.modules if m.startswith(('ferryman.steps.', 'ferryman.sources.'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['ferryman.sources.base', 'ferryman.steps.base']"


def test_a_lookup_imports_its_module_once_and_a_model_lookup_only_the_model() -> None:
    code = ("import sys\nfrom ferryman.steps import STEPS\n"
            "model = STEPS.model('csv')\n"
            "print('ferryman.steps.csv.config' in sys.modules, 'ferryman.steps.csv.step' in sys.modules)\n"
            "assert STEPS['csv'] is STEPS['csv'] and STEPS['csv'].Config is model\n"
            "print('ferryman.steps.csv.step' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "False", "True"]


def test_an_entry_may_be_the_class_itself() -> None:
    class Thing:
        class Config:
            pass

    registry: Registry[type[Thing]] = Registry({"thing": Thing, "step": "ferryman.steps.gzip:GzipStep"})
    assert registry["thing"] is Thing and registry.model("thing") is Thing.Config
    assert list(registry) == ["thing", "step"] and len(registry) == 2
    assert registry["step"].__name__ == "GzipStep"


@pytest.mark.parametrize("entry", ["ferryman.steps.gzip.GzipStep", "ferryman/steps:GzipStep", ":GzipStep",
                                   ("ferryman.steps.gzip:GzipStep", "GzipConfig")])
def test_a_malformed_entry_is_refused_when_the_registry_is_written(entry: Any) -> None:
    with pytest.raises(ValueError, match=r"is not 'package\.module:Attribute'"):
        Registry({"gzip": entry})


def test_an_unknown_type_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        STEPS["nope"]
    assert STEPS.get("nope") is None
