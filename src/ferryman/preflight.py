"""``ferryman check``: what the config model cannot see, found before the first item fails.

`local` looks without a network: ``python`` step modules that do not import, secret references
that do not resolve, ``for_each`` files that cannot be read, watched folders that are missing or
unreadable, local destinations whose folder cannot be written.  `remote` (``--connect``) looks
at each place a flow names on its servers: the IMAP mailbox and archive mailbox, the S3 bucket
and prefix, the SFTP and FTP folders of sources (listed) and of deliveries (a small
``.ferryman-check-<pid>`` file written and removed).

Each `Finding` is one line with its key path and the exit code it stands for: 2 (the config is
wrong) or 3 (a source cannot be read).  Secret values never appear in a finding.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ferryman import templates
from ferryman.config import LoadedConfig
from ferryman.errors import FerrymanError, TransientError, describe
from ferryman.flow import FlowContext
from ferryman.secrets import Secret
from ferryman.transports import Location, TransportPool, parse_location

CONFIG, UNREADABLE = 2, 3


@dataclass(frozen=True)
class Finding:
    """One problem: where in the config, what is wrong, and the exit code it stands for."""

    key: str
    message: str
    code: int = CONFIG

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"

    def as_dict(self) -> dict[str, object]:
        return {"key": self.key, "message": self.message, "code": self.code}


def code_of(exc: BaseException) -> int:
    """A server that cannot be reached (or is down) is a 3; a refusal — a wrong password, no
    permission — means the config is wrong: 2."""
    return UNREADABLE if isinstance(exc, TransientError) or not isinstance(exc, FerrymanError) else CONFIG


def local(loaded: LoadedConfig) -> list[Finding]:
    """Every problem that can be seen on this machine, without connecting anywhere."""
    config = loaded.config
    found: list[Finding] = []
    if not config.flows:
        found.append(Finding("flows", "no flows: declare one as [flows.NAME] with a source and steps "
                                      "(`ferryman init` writes a commented example)"))
    found += _secrets(config, "")
    pool = TransportPool(config.connections)
    for name, flow in config.flows.items():
        context = _context(loaded, name, pool)
        source = flow.source
        key = f"flows.{name}.source"
        if source.type == "folder":
            found += _folders(key, source, context)
        if source.type == "schedule":
            from ferryman.sources.schedule.each import check_file

            if problem := check_file(source, loaded.base_dir):  # type: ignore[arg-type]
                field, _, message = problem.partition(": ")
                found.append(Finding(f"{key}.{field}", message))
        for index, step in enumerate(flow.steps):
            where = f"flows.{name}.steps[{index}]"
            if step.type == "python":
                found += _python(where, step, context)
            to = getattr(step, "to", None)
            if step.type == "deliver" and isinstance(to, str):
                found += _destination(where, to, context)
    return found


def remote(loaded: LoadedConfig) -> Iterator[Finding | str]:
    """With ``--connect``: each place a flow names on a server, looked at (a line each: a
    `Finding` when something is wrong, else what was seen)."""
    config = loaded.config
    pool = TransportPool(config.connections)
    try:
        for name, flow in config.flows.items():
            source = flow.source
            key = f"flows.{name}.source"
            if source.type == "imap":
                yield from _imap(key, source, config.connections)
            location = getattr(source, "location", None)
            if source.type in ("sftp", "ftp", "s3") and isinstance(location, Location):
                yield _listed(f"{key}.url", location, pool)
            for index, step in enumerate(flow.steps):
                to = getattr(step, "to", None)
                if step.type == "deliver" and isinstance(to, str) and "://" in to:
                    yield _writable(f"flows.{name}.steps[{index}].to", to, pool)
    finally:
        pool.close()


# ---- on this machine ---------------------------------------------------------------------------

def _context(loaded: LoadedConfig, flow: str, pool: TransportPool) -> FlowContext:
    return FlowContext(flow=flow, root=loaded.root, config_dir=loaded.base_dir,
                       connections=loaded.config.connections, transports=pool,
                       journal=None, config_file=loaded.path)  # type: ignore[arg-type]


def _secrets(model: Any, key: str) -> Iterator[Finding]:
    """Every secret reference in the config, resolved (its value is dropped at once)."""
    if isinstance(model, Secret):
        try:
            model.reveal()
        except FerrymanError as exc:
            yield Finding(key, describe(exc))
    elif isinstance(model, BaseModel):
        for field in type(model).model_fields:
            yield from _secrets(getattr(model, field), f"{key}.{field}" if key else field)
    elif isinstance(model, dict):
        for name, value in model.items():
            yield from _secrets(value, f"{key}.{name}" if key else str(name))
    elif isinstance(model, list | tuple):
        for index, value in enumerate(model):
            yield from _secrets(value, f"{key}[{index}]")


def _folders(key: str, source: Any, context: FlowContext) -> Iterator[Finding]:
    """A watched folder must exist and be listable; one whose originals are moved or deleted
    must also be writable."""
    disposes = source.after != "keep" or source.after_failure != "keep"
    field = "path" if source.path is not None else "paths"
    for folder in source.folders:
        path = context.resolve(folder)
        if not path.is_dir():
            yield Finding(f"{key}.{field}", f"folder {path} does not exist (or is not a folder)", UNREADABLE)
        elif not os.access(path, os.R_OK | os.X_OK):
            yield Finding(f"{key}.{field}", f"folder {path} cannot be listed by this user", UNREADABLE)
        elif disposes and not os.access(path, os.W_OK):
            yield Finding(f"{key}.after", f"folder {path} is not writable by this user, so its files "
                                          "cannot be moved or deleted after they are processed")


def _python(key: str, step: Any, context: FlowContext) -> Iterator[Finding]:
    from ferryman.steps.python import PythonStep

    try:
        PythonStep(step, context).locate()
    except FerrymanError as exc:
        yield Finding(f"{key}.call", describe(exc))


def _destination(key: str, to: str, context: FlowContext) -> Iterator[Finding]:
    """A local destination: the nearest folder that exists on the way must be writable (ferryman
    creates the rest)."""
    location = parse_location(to)
    if location.scheme != "file":
        return
    path = context.resolve(templates.static_prefix(location.path) or ".")
    while not path.exists() and path != path.parent:
        path = path.parent
    if not path.is_dir():
        yield Finding(f"{key}.to", f"{path} is a file, not a folder")
    elif not os.access(path, os.W_OK | os.X_OK):
        yield Finding(f"{key}.to", f"folder {path} is not writable by this user")


# ---- on the servers ----------------------------------------------------------------------------

def _imap(key: str, source: Any, connections: Any) -> Iterator[Finding | str]:
    from ferryman.sources.imap.client import ImapLogin, close_quietly, imap_errors

    conn = connections.get(source.connection)
    if conn is None or conn.type != "imap":
        return
    login = ImapLogin(source.connection, conn)
    try:
        client = login.open()
    except FerrymanError as exc:
        yield Finding(f"{key}.connection", describe(exc), code_of(exc))
        return
    try:
        with imap_errors(login.where, login.secrets):
            if not client.folder_exists(source.mailbox):
                yield Finding(f"{key}.mailbox", f"no mailbox {source.mailbox!r} on {login.where}", UNREADABLE)
            else:
                yield f"{key}.mailbox: {source.mailbox!r} exists on {login.where}"
            archive = getattr(source.after, "move", None)
            if isinstance(archive, str) and "{" not in archive:
                if client.folder_exists(archive):
                    yield f"{key}.after: archive mailbox {archive!r} exists"
                else:
                    yield Finding(f"{key}.after", f"no archive mailbox {archive!r} on {login.where}: mails "
                                                  "could not be moved there after they are delivered")
    except FerrymanError as exc:
        yield Finding(f"{key}.connection", describe(exc), code_of(exc))
    finally:
        close_quietly(client)


def _listed(key: str, location: Location, pool: TransportPool) -> Finding | str:
    try:
        with pool.open(location) as transport:
            first = next(iter(transport.list(location.path)), None)
    except FerrymanError as exc:
        return Finding(key, f"cannot list {location}: {describe(exc)}", UNREADABLE)
    return f"{key}: {location} can be listed ({'not empty' if first else 'empty'})"


def _writable(key: str, to: str, pool: TransportPool) -> Finding | str:
    """Write and remove a small file where the deliveries go (the static part of `to`)."""
    location = parse_location(to)
    folder = templates.static_prefix(location.path).rstrip("/") or "/"
    probe = f"{folder}/.ferryman-check-{os.getpid()}"
    where = Location(location.scheme, location.connection, folder)
    with tempfile.NamedTemporaryFile() as local:
        local.write(b"ferryman check --connect\n")
        local.flush()
        try:
            with pool.open(where) as transport:
                transport.makedirs(folder)
                transport.put(Path(local.name), probe)
                transport.remove(probe)
        except FerrymanError as exc:
            return Finding(key, f"cannot write to {where}: {describe(exc)}", code_of(exc))
    return f"{key}: {where} is writable"


# ---- where in the file ---------------------------------------------------------------------------

def lines_of(text: str) -> dict[str, int]:
    """The line of each key path in a TOML text (``flows.a.steps[1].to`` → 12): table headers,
    arrays of tables (counted), dotted and quoted keys; a key inside an inline table is found at
    the line of the key that holds the table."""
    found: dict[str, int] = {}
    table = ""
    counts: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[["):
            name = _dotted(line[2:line.find("]]")])
            counts[name] = counts.get(name, -1) + 1
            table = f"{name}[{counts[name]}]"
            found.setdefault(table, number)
            continue
        if line.startswith("["):
            table = _indexed(_dotted(line[1:line.find("]")]), counts)
            found.setdefault(table, number)
            continue
        key, sep, _ = line.partition("=")
        if sep and key.strip():
            path = _dotted(key)
            found.setdefault(f"{table}.{path}" if table else path, number)
    return found


def line_of(lines: dict[str, int], key: str) -> int | None:
    """The line of `key`, or of the nearest enclosing key that has one."""
    while key:
        if key in lines:
            return lines[key]
        cut = max(key.rfind("."), key.rfind("["))
        key = key[:cut] if cut > 0 else ""
    return None


def _dotted(key: str) -> str:
    return ".".join(part.strip().strip("\"'") for part in key.split("."))


def _indexed(name: str, counts: dict[str, int]) -> str:
    """``flows.a.steps.retry`` below the second ``[[flows.a.steps]]`` is ``flows.a.steps[1].retry``."""
    for array, index in sorted(counts.items(), key=lambda kv: -len(kv[0])):
        if name.startswith(array + "."):
            return f"{array}[{index}]{name[len(array):]}"
    return name
