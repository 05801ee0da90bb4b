"""Components by config ``type``, each imported the first time it is looked up.

A registry is written as a dict literal of ``"module:Attribute"`` strings::

    STEPS: Registry[type[Step[Any]]] = Registry({
        "deliver": "ferryman.steps.deliver:DeliverStep",
        "csv": ("ferryman.steps.csv:CsvStep", "ferryman.steps.csv:CsvConfig"),
    })

It is a read-only mapping: ``"unzip" in STEPS``, ``sorted(STEPS)`` and ``len(STEPS)``
import nothing; ``STEPS["deliver"]`` imports `ferryman.steps.deliver` (once) and returns
`DeliverStep`; ``STEPS.items()`` and ``STEPS.values()`` import every entry (the reference does).
``STEPS.model("deliver")`` is the component's config model, ``DeliverStep.Config``: what
`ferryman.config` validates a file with.  A component in a sub-package names its model too,
as the second string of a pair, so that ``check`` and ``status`` import its ``config`` module
and not the code that runs it (``csv``'s rewrite engine, ``imap``'s client).
So ``ferryman --help``, ``check`` and ``status`` pay only for the types a config names.

An entry may also be the class itself, imported the usual way; it then costs its import at
start-up, like any top-level import.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """A mapping of type names to components, resolved from ``"module:Attribute"`` on first use.

    An entry is ``"module:Class"``, ``("module:Class", "module:ConfigModel")`` or the class.
    """

    def __init__(self, entries: Mapping[str, str | tuple[str, str] | T]) -> None:
        self._entries: dict[str, str | T] = {}
        self._models: dict[str, str | Any] = {}
        for name, entry in entries.items():
            if isinstance(entry, tuple):
                entry, self._models[name] = entry
            for path in (entry, self._models.get(name)):
                if isinstance(path, str) and not _is_path(path):
                    raise ValueError(f"registry entry {name!r}: {path!r} is not 'package.module:Attribute'")
            self._entries[name] = entry

    def __getitem__(self, name: str) -> T:
        entry = self._entries[name]
        if isinstance(entry, str):
            entry = self._entries[name] = _resolve(entry)
        return entry

    def model(self, name: str) -> Any:
        """The config model of `name` (its class's ``Config``), importing as little as the entry allows."""
        if name not in self._models:
            return self[name].Config  # type: ignore[attr-defined]
        model = self._models[name]
        if isinstance(model, str):
            model = self._models[name] = _resolve(model)
        return model

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({sorted(self._entries)})"


def _resolve(path: str) -> Any:
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


def _is_path(entry: str) -> bool:
    module, colon, attribute = entry.partition(":")
    return bool(colon and attribute.isidentifier() and all(p.isidentifier() for p in module.split(".")))


def exports(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for a component's sub-package: each public name is imported
    from its submodule (``{"FolderSource": "source"}``) when first asked for.

    So importing one bottom module of a package (``ferryman.sources.schedule.config`` for
    ``expect``, ``ferryman.sources.imap.mime`` for the download step) does not import its
    entry module and everything that one joins together.
    """

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return __getattr__
