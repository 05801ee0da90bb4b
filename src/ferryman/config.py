"""The configuration: TOML → pydantic models, with errors that name the key path.

`Config` and `FlowConfig` are the shape of the file.  `validate` checks a file with
`config_model`, the same models whose discriminated unions of sources, steps,
connections and notifiers hold only the types that file names: the registries import
a component the first time it is looked up, so a folder-only config never loads the
IMAP, S3 or SFTP code, and a new component needs no change here.  `load` returns a
`LoadedConfig` or raises `ConfigError` listing every problem, each as
``flows.people.steps[2].to: <what is wrong>; did you mean …``.
"""

from __future__ import annotations

import functools
import os
import re
import tomllib
import types
import typing
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, ValidationError, create_model

from ferryman.connections import CONNECTIONS, ConnectionConfig
from ferryman.errors import ConfigError
from ferryman.model import Model
from ferryman.notify import NOTIFIERS, NotifierConfig
from ferryman.registry import Registry
from ferryman.retry import RetryConfig
from ferryman.secrets import Secret
from ferryman.sources import SOURCES, SourceConfig
from ferryman.sources.schedule.config import ExpectConfig
from ferryman.steps import STEPS, StepConfig
from ferryman.units import Duration

ENV_VAR = "FERRYMAN_CONFIG"
DEFAULT_FILE = "ferryman.toml"

KINDS = ("source", "step", "connection", "notifier")
"""The kinds of typed components, each with its registry (`_registry`)."""


def _registry(kind: str) -> Mapping[str, Any]:
    registries: dict[str, Mapping[str, Any]] = {
        "source": SOURCES, "step": STEPS, "connection": CONNECTIONS, "notifier": NOTIFIERS}
    return registries[kind]


def _model_of(kind: str, name: str) -> type[BaseModel]:
    """The config model of one registered type (importing as little as its registry entry allows;
    connections are models already)."""
    registry = _registry(kind)
    return registry.model(name) if isinstance(registry, Registry) else registry[name]  # type: ignore[no-any-return]


def _union(kind: str, names: Collection[str] | None = None) -> Any:
    """A discriminated union on ``type`` of the models of `names` (all types when None), in
    registry order; a single model stands alone."""
    models = [_model_of(kind, name) for name in _registry(kind) if names is None or name in names]
    if len(models) <= 1:
        return models[0] if models else BaseModel
    return Annotated[Union[tuple(models)], Field(discriminator="type")]  # noqa: UP007


if TYPE_CHECKING:
    AnySource = SourceConfig
    AnyStep = StepConfig
    AnyConnection = ConnectionConfig
    AnyNotifier = NotifierConfig
else:
    def __getattr__(name: str) -> Any:
        """``AnySource``, ``AnyStep``, ``AnyConnection``, ``AnyNotifier``: the union of every
        registered type of that kind, built (and every one imported) when first asked for."""
        kind = {"AnySource": "source", "AnyStep": "step", "AnyConnection": "connection",
                "AnyNotifier": "notifier"}.get(name)
        if kind is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = globals()[name] = _union(kind)
        return value


class LogConfig(Model):
    """``[ferryman.log]``: log files split by level, rotated at midnight.

    PIExporter's set-up is ``files = { debug = "Debug.log", info = "Daily.log",
    warning = "Error.log", critical = "Break_down.log" }`` with ``keep = 366``.
    """

    dir: str = Field("logs", description="Folder for log files, relative to root.")
    level: Literal["debug", "info", "warning", "error", "critical"] = Field(
        "info", description="Lowest level written to stderr."
    )
    files: dict[Literal["debug", "info", "warning", "error", "critical"], str] = Field(
        default_factory=dict, description="Log file per lowest level, e.g. { info = \"Daily.log\" }."
    )
    rotate: Literal["midnight", "never"] = Field("midnight", description="When log files are rotated.")
    keep: int = Field(30, ge=0, description="Rotated files kept per log file.")


class FerrymanSettings(Model):
    """``[ferryman]``: where state lives and how much runs at once."""

    root: str = Field(".ferryman", description="Journal, work folders, logs and pid file (relative to the config).")
    journal: str = Field("sqlite", description="'sqlite' (in root) or a postgresql:// URL.")
    workers: int = Field(4, ge=1, le=256, description="Items processed at the same time, all flows together.")
    grace: Duration = Field(30.0, description="On SIGTERM, how long running steps may take to finish.")
    lease: Duration = Field(300.0, description="How long a claimed item belongs to this instance.")
    keep_history: Duration | None = Field(
        None, description="Done and skipped items older than this are pruned from the journal, hourly "
        "(a tombstone keeps their keys; docs/journal.md). None: kept forever.")
    keep_failed: Duration | None = Field(
        None, description="Failed items older than this are pruned too, and are then never retried. "
        "None: failed items are kept until `ferryman retry` or a prune with --failed-older.")
    log: LogConfig = Field(default_factory=LogConfig)  # type: ignore[arg-type]


# `FlowConfig` and `Config` say what every flow and file has; `config_model` derives the models
# that validate a file, whose `source`, `steps`, `connections` and `notify` are unions of the
# registered types.  (Their docstrings and fields are the reference's: see ferryman.reference.)
class FlowConfig(Model):
    """``[flows.NAME]``: one source, ordered steps, policies."""

    description: str | None = Field(None, description="What the flow is for.")
    enabled: bool = Field(True, description="A disabled flow is validated but not run.")
    source: SourceConfig = Field(description="Where items come from.")
    steps: list[StepConfig] = Field(default_factory=list, description="What is done to each item, in order.")
    retry: RetryConfig = Field(default_factory=RetryConfig, description="Retry policy.")  # type: ignore[arg-type]
    timeout: Duration | None = Field(None, description="Default time limit of each step.")
    stop_on_error: bool = Field(False, description="Pause the flow after a failed item, until `ferryman resume`.")
    retry_failed_on_start: bool = Field(
        False, description="Queue the flow's failed items again when the daemon (or `run --once`) starts; off by "
                           "default, so nothing is repeated unless asked (`ferryman retry` does it by hand).")
    concurrency: int | None = Field(
        None, ge=1, description="Items of this flow at once (1 keeps arrival order; default: workers)."
    )
    notify: list[str] = Field(default_factory=list, description="Notifiers told about failures.")
    notify_window: Duration = Field(
        60.0, description="Failures within this window after the first are grouped into one digest."
    )
    expect: ExpectConfig | None = Field(
        None, description="An item must succeed in every window, e.g. { cron = '0 7 * * 1-5', within = '2h' }: "
        "else one alert, `status` shows the flow overdue, and a recovery notice follows.")


class Config(Model):
    """The whole configuration file."""

    ferryman: FerrymanSettings = Field(default_factory=FerrymanSettings)  # type: ignore[arg-type]
    connections: dict[str, ConnectionConfig] = Field(default_factory=dict)
    notify: dict[str, NotifierConfig] = Field(default_factory=dict)
    flows: dict[str, FlowConfig] = Field(default_factory=dict)


def config_model(sources: Collection[str] | None = None, steps: Collection[str] | None = None,
                 connections: Collection[str] | None = None,
                 notifiers: Collection[str] | None = None) -> type[Config]:
    """`Config` with its unions narrowed to the named types of each kind (None: every type).

    ``config_model()`` is the whole schema (and imports every component);
    ``config_model({"folder"}, {"unzip", "deliver"}, (), ())`` validates a file that names
    only those.  Unknown names are ignored.  Built once per combination.
    """
    chosen = (sources, steps, connections, notifiers)
    return _config_model(*(None if names is None else tuple(sorted(set(names))) for names in chosen))


@functools.cache
def _config_model(sources: tuple[str, ...] | None, steps: tuple[str, ...] | None,
                  connections: tuple[str, ...] | None, notifiers: tuple[str, ...] | None) -> type[Config]:
    flow = _narrowed(FlowConfig, source=_union("source", sources),
                     steps=list[_union("step", steps)])  # type: ignore[misc]
    return _narrowed(Config, flows=dict[str, flow],  # type: ignore[valid-type]
                     connections=dict[str, _union("connection", connections)],  # type: ignore[misc]
                     notify=dict[str, _union("notifier", notifiers)])  # type: ignore[misc]


_M = typing.TypeVar("_M", bound=BaseModel)


def _narrowed(model: type[_M], **annotations: Any) -> type[_M]:
    """A subclass of `model` (same name, fields, order and descriptions) whose fields named in
    `annotations` take those types instead."""
    fields: dict[str, Any] = {}
    for name, annotation in annotations.items():
        info = model.model_fields[name]
        # A fresh Field, not a copy of `info`: a copy would drop the union's discriminator.
        keep: dict[str, Any] = {"description": info.description}
        if info.default_factory is not None:
            keep["default_factory"] = info.default_factory
        elif not info.is_required():
            keep["default"] = info.default
        fields[name] = (annotation, Field(**keep))
    return create_model(model.__name__, __base__=model, __module__=model.__module__,
                        __doc__=model.__doc__, **fields)


def _named_types(raw: dict[str, Any]) -> dict[str, set[str]]:
    """The registered types a raw config names, by kind (``{"source": {"folder"}, …}``)."""
    found: dict[str, set[str]] = {kind: set() for kind in KINDS}
    for _, kind, value in _components(raw):
        name = value.get("type") if isinstance(value, dict) else None
        if isinstance(name, str) and name in _registry(kind):
            found[kind].add(name)
    return found


@dataclass
class LoadedConfig:
    """A validated config, the file it came from, and warnings ``check`` shows."""

    config: Config
    path: Path
    warnings: list[str] = field(default_factory=list)

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def root(self) -> Path:
        root = Path(self.config.ferryman.root).expanduser()
        return root if root.is_absolute() else (self.base_dir / root).resolve()


def find_config(path: str | Path | None) -> Path:
    """The config file: `path`, else ``$FERRYMAN_CONFIG``, else ``./ferryman.toml`` (a folder
    stands for the ``ferryman.toml`` inside it)."""
    chosen = Path(path or os.environ.get(ENV_VAR) or DEFAULT_FILE).expanduser()
    if chosen.is_dir():
        if not (chosen / DEFAULT_FILE).is_file():
            raise ConfigError(f"{chosen}: a folder, not a config file (and it holds no {DEFAULT_FILE})")
        chosen = chosen / DEFAULT_FILE
    if not chosen.is_file():
        how = "" if path or os.environ.get(ENV_VAR) else " (write one with `ferryman init`)"
        raise ConfigError(f"{chosen}: no such config file{how}")
    return chosen.resolve()


def load(path: str | Path | None = None) -> LoadedConfig:
    """Read and validate a config file; `ConfigError` lists every problem found."""
    chosen = find_config(path)
    try:
        text = chosen.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{chosen}: cannot read: {exc}") from None
    warnings: list[str] = []
    if re.search(r"^[ \t]*\[rattail\.filemon\]", text, re.MULTILINE):  # a section header, not a comment
        from ferryman.compat.rattail import ini_to_raw

        raw, warnings = ini_to_raw(chosen)
    else:
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{chosen}: not valid TOML: {exc}") from None
    config = validate(raw)
    return LoadedConfig(config, chosen, warnings + list(_warnings(config)))


def validate(raw: dict[str, Any]) -> Config:
    """Validate a raw config mapping; `ConfigError` lists every problem with its key path."""
    problems = list(_type_problems(raw))
    # A component whose type is unknown has no model to check its other keys against.
    untyped = tuple(p.split(": ", 1)[0].removesuffix(".type") for p in problems)
    named = _named_types(raw)
    model = config_model(named["source"], named["step"], named["connection"], named["notifier"])
    try:
        config = model.model_validate(raw)
    except ValidationError as exc:
        found: dict[str, list[str]] = {}
        for err in exc.errors():
            path, message = _describe(raw, err, model)
            line = f"{path}: {message}" if path else message
            if err["type"] in _TAG_ERRORS or any(line.startswith((f"{u}.", f"{u}:")) for u in untyped):
                continue
            found.setdefault(path, []).append(message)
        for path, messages in found.items():
            # A union whose branch went deeper (a typo inside { move = … }) says only that.
            if any(other.startswith((f"{path}.", f"{path}[")) for other in found if other != path):
                continue
            text = "; or ".join(dict.fromkeys(messages))
            problems.append(f"{path}: {text}" if path else text)
        raise ConfigError(problems) from None
    if problems:
        # A component of an unknown type met only the models of the types named elsewhere (or
        # none) and its errors were left out above: it must still not pass.
        raise ConfigError(problems)
    problems += _reference_problems(config)
    if problems:
        raise ConfigError(problems)
    return config


_TAG_ERRORS = {"union_tag_invalid", "union_tag_not_found"}
_SECTIONS: dict[str, tuple[str, dict[str, Any]]] = {}


def _components(raw: dict[str, Any]) -> Iterator[tuple[str, str, Any]]:
    """(key path, kind, raw value) of every typed component in a raw config."""
    for name, conn in (raw.get("connections") or {}).items():
        yield f"connections.{name}", "connection", conn
    for name, notifier in (raw.get("notify") or {}).items():
        yield f"notify.{name}", "notifier", notifier
    for name, flow in (raw.get("flows") or {}).items():
        if not isinstance(flow, dict):
            continue
        if "source" in flow:
            yield f"flows.{name}.source", "source", flow["source"]
        steps = flow.get("steps")
        if isinstance(steps, list):
            for index, step in enumerate(steps):
                yield f"flows.{name}.steps[{index}]", "step", step


def _type_problems(raw: dict[str, Any]) -> Iterator[str]:
    """Components whose ``type`` is missing or not registered (the registries' names only: nothing
    is imported)."""
    for path, kind, value in _components(raw):
        if not isinstance(value, dict):
            continue
        known = sorted(_registry(kind))
        kind_type = value.get("type")
        if kind_type is None:
            yield f"{path}: missing 'type'; {kind} types are: {', '.join(known)}"
        elif kind_type not in _registry(kind):
            yield f"{path}.type: unknown {kind} type {kind_type!r}{_did_you_mean(str(kind_type), known)}; " \
                  f"{kind} types are: {', '.join(known)}"


def _did_you_mean(word: str, choices: list[str]) -> str:
    import difflib  # only a config with a problem asks

    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _describe(raw: dict[str, Any], err: Any, root: type[BaseModel]) -> tuple[str, str]:
    """The TOML key path of one pydantic error from validating `raw` with `root`, and what is
    wrong there (with a suggestion)."""
    path, model = _walk(raw, tuple(err["loc"]), root)
    message = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if err["type"] == "extra_forbidden":
        valid = [f.alias or k for k, f in sorted(model.model_fields.items())] if model is not None else []
        key = path.rsplit(".", 1)[-1]
        hint = _did_you_mean(key, valid)
        return path, "unknown key" + (hint or (f" (valid keys: {', '.join(valid)})" if valid else ""))
    if err["type"] == "missing":
        return path, "required key is missing"
    if err["type"] in ("model_type", "dict_type", "model_attributes_type"):
        return path, "should be a table, like { key = value }"
    return path, message


def _walk(raw: Any, loc: tuple[Any, ...], root: type[BaseModel]) -> tuple[str, type[BaseModel] | None]:
    """The dotted key path for a pydantic `loc`, and the model that holds its last key."""
    path = ""
    node: Any = raw
    annotation: Any = root
    parent_model: type[BaseModel] | None = root
    for part in loc:
        # A discriminated union puts the tag in `loc`; it is not a key in the file.
        if isinstance(node, dict) and part not in node and node.get("type") == part:
            annotation = _pick_tagged(annotation, str(part))
            continue
        # A plain union puts the member it tried in `loc` ("MoveTo", "literal['keep','delete']").
        member = _union_member(annotation, part) if not (isinstance(node, dict) and part in node) else None
        if member is not None:
            annotation = member
            continue
        if isinstance(part, int):
            path += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            annotation = _inner(annotation, list)
            continue
        path += f".{part}" if path else str(part)
        model = _as_model(annotation)
        if model is not None:
            parent_model = model
            info = next((f for n, f in model.model_fields.items() if part in (n, f.alias)), None)
            annotation = info.annotation if info is not None else None
        else:
            annotation = _inner(annotation, dict)
        node = node.get(part) if isinstance(node, dict) else None
    return path, parent_model


def _strip(annotation: Any) -> Any:
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _as_model(annotation: Any) -> type[BaseModel] | None:
    annotation = _strip(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (Union, types.UnionType):
        models = [a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
        if len(models) == 1:
            return models[0]
    return None


def _inner(annotation: Any, container: type) -> Any:
    annotation = _strip(annotation)
    if typing.get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = _strip(args[0]) if len(args) == 1 else annotation
    if typing.get_origin(annotation) is container:
        return typing.get_args(annotation)[-1]
    return annotation


def _union_member(annotation: Any, part: Any) -> Any:
    """The member of a union annotation that pydantic names `part` in an error location, or None."""
    annotation = _strip(annotation)
    if not isinstance(part, str) or typing.get_origin(annotation) not in (Union, types.UnionType):
        return None
    for member in typing.get_args(annotation):
        name = getattr(member, "__name__", "")
        if part == name or (part.startswith("literal[") and typing.get_origin(member) is Literal):
            return member
    return None


def _pick_tagged(annotation: Any, tag: str) -> Any:
    annotation = _strip(annotation)
    for member in typing.get_args(annotation):
        model = _as_model(member)
        if model is not None:
            field_info = model.model_fields.get("type")
            if field_info is not None and tag in typing.get_args(field_info.annotation):
                return model
    return annotation


def _reference_problems(config: Config) -> Iterator[str]:
    """Names that must exist elsewhere in the file: notifiers, connections in URLs."""
    from ferryman.transports import parse_location

    for name, flow in config.flows.items():
        for wanted in flow.notify:
            if wanted not in config.notify:
                yield f"flows.{name}.notify: no notifier {wanted!r}" + _did_you_mean(
                    wanted, sorted(config.notify)
                ) + f" (declare it under [notify.{wanted}])"
        parts: list[tuple[str, BaseModel]] = [(f"flows.{name}.source", flow.source)]
        parts += [(f"flows.{name}.steps[{i}]", step) for i, step in enumerate(flow.steps)]
        for where, part in parts:
            for key, value in part:
                # Only values that start like a URL (a regex such as 'https?://…' is not a location).
                if isinstance(value, str) and re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", value):
                    if re.match(r"(?i)https?://", value):
                        continue  # a web address (download, webhook), not a place of the transports
                    try:
                        location = parse_location(value)
                    except ValueError as exc:
                        yield f"{where}.{key}: {exc}"
                        continue
                    if location.connection is not None:
                        yield from _connection_problem(config, f"{where}.{key}", location.connection,
                                                       location.scheme)
                elif key == "connection" and isinstance(value, str):
                    # A component that names a connection may say which type it must be.
                    kind = getattr(part, "connection_type", None)
                    yield from _connection_problem(config, f"{where}.{key}", value, kind)
    for notifier_name, notifier_config in config.notify.items():
        conn = getattr(notifier_config, "connection", None)
        if isinstance(conn, str):
            yield from _connection_problem(config, f"notify.{notifier_name}.connection", conn, None)


def _connection_problem(config: Config, where: str, name: str, kind: str | None) -> Iterator[str]:
    conn = config.connections.get(name)
    if conn is None:
        yield f"{where}: no connection {name!r}{_did_you_mean(name, sorted(config.connections))} " \
              f"(declare it under [connections.{name}])"
    elif kind is not None and conn.type != kind:
        yield f"{where}: connection {name!r} is of type {conn.type!r}, not {kind!r}"


def _warnings(config: Config) -> Iterator[str]:
    """Things that work but are unsafe: literal secrets, TLS or host-key checks turned off."""
    for path, model in _models(config, ""):
        for key, value in model:
            here = f"{path}.{key}" if path else key
            if isinstance(value, Secret) and value.literal:
                yield (f"{here}: the secret is written in the config file; "
                       "prefer { env = \"VAR\" } or { file = \"…\" }")
            if key == "verify" and value is False:
                yield f"{here}: TLS certificates are not checked; anyone on the path can read and change the traffic"
            if key == "check_host_key" and value is False:
                yield f"{here}: the SSH host key is not checked; anyone on the path can pose as the server"


def _models(model: BaseModel, path: str) -> Iterator[tuple[str, BaseModel]]:
    yield path, model
    for key, value in model:
        here = f"{path}.{key}" if path else key
        if isinstance(value, BaseModel):
            yield from _models(value, here)
        elif isinstance(value, dict):
            for k, v in value.items():
                if isinstance(v, BaseModel):
                    yield from _models(v, f"{here}.{k}")
        elif isinstance(value, list | tuple):
            for i, v in enumerate(value):
                if isinstance(v, BaseModel):
                    yield from _models(v, f"{here}[{i}]")
