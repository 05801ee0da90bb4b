"""``meta``: set meta from file names, and fail items that lack (or carry) given meta keys.

``from_name`` is a regex whose named groups become meta, per file: for a
file ``20240131-people.csv`` and ``'-(?P<export_type>[^-]+)\\.csv$'`` the file
gets ``export_type = "people"``, so ``deliver.to = "out/{meta.export_type}"``
sends each CSV of a zip to its own folder (ITRP's ``sub_dirs``).  Per-file
values are stored as ``KEY@NAME``; when every matching file agrees, the item
also gets plain ``KEY`` (for subjects and other item-level templates).

``require`` lists keys an item must have; ``refuse`` names a key whose
presence fails the item with its value as the message (the `imap` source
marks a mail it could not take with ``problem``).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from ferryman.errors import PermanentError
from ferryman.item import Item
from ferryman.model import NamedGroupsRegex
from ferryman.steps.base import Step, StepConfig, StepContext, StepResult


class MetaConfig(StepConfig):
    """Meta from file names; required and refused meta keys."""

    type: Literal["meta"]
    from_name: NamedGroupsRegex | None = Field(
        None, description="Regex with named groups, searched in each file's name; the groups become "
        "meta of that file (e.g. '-(?P<export_type>[^-]+)\\.csv$').")
    include: list[str] | None = Field(None, description="Only look at files whose names match these globs.")
    if_no_match: Literal["fail", "ignore"] = Field(
        "fail", description="A file (among include) whose name does not match from_name: fail the item, or ignore it.")
    require: list[str] = Field(default_factory=list, description="Meta keys the item must have.")
    refuse: str | None = Field(None, description="A meta key whose presence fails the item, its value "
                               "being the message.")


class MetaStep(Step[MetaConfig]):
    """Reads names and meta only; the item keeps its files."""

    Config = MetaConfig

    def run(self, item: Item, ctx: StepContext) -> StepResult:
        if self.config.refuse and item.meta.get(self.config.refuse):
            raise PermanentError(item.meta[self.config.refuse])
        missing = [k for k in self.config.require if not item.meta.get(k)]
        if missing:
            raise PermanentError(f"the item has no meta {', '.join(missing)} "
                                 f"(has: {', '.join(sorted(item.meta)) or 'none'})")
        if self.config.from_name is None:
            return StepResult()
        pattern = re.compile(self.config.from_name)
        meta: dict[str, str] = {}
        seen: dict[str, set[str]] = {}
        for path in ctx.files(self.config.include):
            match = pattern.search(path.name)
            if match is None:
                if self.config.if_no_match == "fail":
                    raise PermanentError(f"{path.name!r} does not match from_name {self.config.from_name!r}")
                continue
            for key, value in match.groupdict().items():
                if value is not None:
                    meta[f"{key}@{path.name}"] = value
                    seen.setdefault(key, set()).add(value)
        for key, values in seen.items():
            if len(values) == 1:
                meta[key] = next(iter(values))
        return StepResult(meta=meta)
