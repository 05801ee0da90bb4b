"""The configuration reference, generated from the component models (never written by hand).

``python -m ferryman.reference > docs/reference.md`` (``make docs``); a test
fails when the committed page differs from what the models say.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Iterator
from enum import Enum
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from ferryman.config import Config, FerrymanSettings, FlowConfig, LogConfig, config_model
from ferryman.connections import CONNECTIONS
from ferryman.notify import NOTIFIERS
from ferryman.retry import RetryConfig
from ferryman.sources import SOURCES
from ferryman.sources.base import SourceConfig
from ferryman.steps import STEPS
from ferryman.steps.base import StepConfig
from ferryman.units import format_duration


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        inner = args[0]
        meta = " ".join(repr(m) for m in args[1:])
        if "parse_duration" in meta:
            return "duration"
        if "parse_size" in meta:
            return "size"
        return _type_name(inner)
    if origin is typing.Literal:
        return " \\| ".join(f'`"{a}"`' if isinstance(a, str) else f"`{str(a).lower()}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(dict.fromkeys(names))
    if origin in (list, tuple):
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"table of {_type_name(args[1])}" if args else "table"
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return "table"
        if issubclass(annotation, Enum):
            return " \\| ".join(f'`"{m.value}"`' for m in annotation)
        return {"str": "string", "int": "integer", "float": "number", "bool": "boolean",
                "Secret": "secret"}.get(annotation.__name__, annotation.__name__)
    return str(annotation)


def _field_type(info: FieldInfo) -> str:
    """The type of a field; durations and sizes keep their validators in `info.metadata`."""
    meta = " ".join(repr(m) for m in info.metadata)
    if "parse_duration" in meta:
        return "duration"
    if "parse_size" in meta:
        return "size"
    return _type_name(info.annotation)


def _default(info: FieldInfo, annotation: Any) -> str:
    if info.is_required():
        return "required"
    value = info.default
    if value is PydanticUndefined:
        return "—"
    if value is None:
        return "—"
    if _field_type(info) == "duration" and isinstance(value, int | float):
        return f'`"{format_duration(value)}"`'
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    return f"`{value}`"


def fields_table(model: type[BaseModel], skip: tuple[str, ...] = ()) -> Iterator[str]:
    yield "| key | type | default | description |"
    yield "| --- | --- | --- | --- |"
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        key = info.alias or name
        description = (info.description or "").replace("|", "\\|").replace("\n", " ")
        yield f"| `{key}` | {_field_type(info)} | {_default(info, info.annotation)} | {description} |"


def _section(title: str, model: type[BaseModel], level: str = "###", skip: tuple[str, ...] = ()) -> Iterator[str]:
    yield f"{level} {title}"
    yield ""
    doc = inspect.cleandoc(model.__doc__ or "")
    if doc:
        yield doc
        yield ""
    yield from fields_table(model, skip)
    yield ""


def _common(base: type[BaseModel]) -> str:
    """The keys every source (or step) has, from their base model: ``label``, ``retry`` and ``timeout``."""
    names = [f"`{field.alias or name}`" for name, field in base.model_fields.items() if name != "type"]
    return ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else "".join(names)


def render() -> str:
    """The whole reference page."""
    lines = [
        "# Configuration reference",
        "",
        "Generated from ferryman's config models by `python -m ferryman.reference` (`make docs`);",
        "do not edit by hand. Durations are strings like `\"500ms\"`, `\"30s\"`, `\"5m\"`, `\"1h\"`,",
        "`\"7d\"`; sizes like `\"10MB\"` or `\"2GiB\"`; secrets are a string (`check` warns),",
        "`{ env = \"VAR\" }`, `{ file = \"path\" }` or `{ command = [\"argv\", …] }`.",
        "",
        "## The file",
        "",
    ]
    lines += _section("Top level", Config, skip=())
    lines += _section("[ferryman]", FerrymanSettings)
    lines += _section("[ferryman.log]", LogConfig)
    lines += _section("[flows.NAME]", FlowConfig)
    lines += _section("retry", RetryConfig)
    lines += ["## Sources", "", f"Every source also takes {_common(SourceConfig)}.", ""]
    for name, source in SOURCES.items():
        lines += _section(f'source `type = "{name}"`', source.Config, skip=("type",))
    lines += ["## Steps", "", f"Every step also takes {_common(StepConfig)}.", ""]
    for name, step in STEPS.items():
        lines += _section(f'step `type = "{name}"`', step.Config, skip=("type",))
    lines += ["## Connections", "", "Declared as `[connections.NAME]`, named in URLs (`sftp://NAME/path`).", ""]
    for name, connection in CONNECTIONS.items():
        lines += _section(f'connection `type = "{name}"`', connection, skip=("type",))
    lines += ["## Notifiers", "", "Declared as `[notify.NAME]`, listed in a flow's `notify`.", ""]
    for name, notifier in NOTIFIERS.items():
        lines += _section(f'notifier `type = "{name}"`', notifier.Config, skip=("type",))
    return "\n".join(lines).rstrip() + "\n"


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the config file (for editors): every registered type."""
    return config_model().model_json_schema(by_alias=True)


if __name__ == "__main__":
    print(render(), end="")
