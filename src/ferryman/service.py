"""``ferryman service install``: a systemd unit that fits the config.

The unit runs ``ferryman run`` as ``Type=notify`` (the daemon speaks the protocol, see
`ferryman.sdnotify`), with a watchdog, SIGHUP for ``systemctl reload`` and a restart on
failure (not on exit 2: an invalid config is not mended by starting again).  It is hardened
with ``ProtectSystem=strict``: the whole file system is read-only for ferryman but for the
folders this config writes, listed in ``ReadWritePaths`` by `writable_paths`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ferryman import __version__, templates
from ferryman.config import LoadedConfig
from ferryman.transports import parse_location

WATCHDOG = 60
"""WatchdogSec: the serve loop pings every half of it (it turns five times a second)."""


WRITES = {"deliver": "to", "append_csv": "to", "prune": "path", "compress_old": "path"}
"""The steps that write (or delete) outside the work folders, and the key naming the place:
a local folder (relative to the config file) or a URL of a server."""


@dataclass
class Writable:
    """The folders the daemon writes, and notes on the ones that do not exist yet."""

    paths: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    shared_tmp: bool = False
    """A folder under /tmp or /var/tmp: PrivateTmp would give the service an empty one instead."""


def writable_paths(loaded: LoadedConfig) -> Writable:
    """The folders ``ReadWritePaths`` must name: the state root (journal, work folders, logs,
    pid file), a SQLite journal or log folder outside it, watched folders whose files are moved
    or deleted (and the folders they are moved to), and the local folders of the steps in `WRITES`
    (their fixed part, before the first ``{placeholder}``).  A folder that does not exist yet
    stands as its nearest existing parent (ferryman creates the rest; systemd refuses to start
    with a missing one), with a note."""
    config = loaded.config
    base = loaded.base_dir.resolve()
    wanted: list[tuple[str, Path]] = [("root", loaded.root)]
    journal = config.ferryman.journal.strip()
    if journal.startswith("sqlite:///"):
        path = Path(journal.removeprefix("sqlite:///")).expanduser()
        wanted.append(("ferryman.journal", (path if path.is_absolute() else loaded.root / path).parent))
    logs = loaded.root / Path(config.ferryman.log.dir).expanduser()
    if not logs.is_relative_to(loaded.root):
        wanted.append(("ferryman.log.dir", logs))
    for name, flow in config.flows.items():
        source = flow.source
        if source.type == "folder":
            disposes = getattr(source, "after", "keep") != "keep" or getattr(source, "after_failure", "keep") != "keep"
            folders = [_resolve(base, folder) for folder in getattr(source, "folders", [])]
            if disposes:
                wanted += [(f"flows.{name}.source", folder) for folder in folders]
            for move in getattr(source, "move_folders", list)():
                fixed = Path(templates.static_prefix(os.path.expanduser(move)) or ".")
                # a relative move folder is relative to the watched folder (it may lie beside it)
                wanted += [(f"flows.{name}.source.after", fixed if fixed.is_absolute() else folder / fixed)
                           for folder in folders]
        for index, step in enumerate(flow.steps):
            key = WRITES.get(step.type)
            place = getattr(step, key, None) if key else None
            if isinstance(place, str):
                location = parse_location(place)
                if location.scheme == "file":
                    prefix = templates.static_prefix(location.path) or "."
                    wanted.append((f"flows.{name}.steps[{index}].{key}", _resolve(base, prefix)))
    found = Writable()
    for key, path in wanted:
        path = Path(os.path.normpath(path))
        if path.is_relative_to("/tmp") or path.is_relative_to("/var/tmp"):
            found.shared_tmp = True
        existing = path
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if existing != path:
            found.notes.append(f"{key}: {path} does not exist yet, so ReadWritePaths names {existing}; "
                               f"create it and install again for a narrower unit")
        found.paths.append(existing)
    found.paths = _outermost(found.paths)
    if found.shared_tmp:
        found.notes.append("a folder of this config is under /tmp or /var/tmp: the unit says PrivateTmp=no")
    return found


def _resolve(base: Path, path: str) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else base / p


def _outermost(paths: list[Path]) -> list[Path]:
    """Each folder once, leaving out those inside another one listed."""
    unique = sorted(set(paths), key=lambda p: (len(p.parts), str(p)))
    kept: list[Path] = []
    for path in unique:
        if not any(path == k or path.is_relative_to(k) for k in kept):
            kept.append(path)
    return sorted(kept)


def command() -> list[str]:
    """How this ferryman is started: the ``ferryman`` script beside this interpreter, else
    ``python -m ferryman`` (the interpreter's own path, not resolved: a venv's python is a link)."""
    script = Path(sys.executable).parent / "ferryman"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "ferryman"]


def unit_text(loaded: LoadedConfig, writable: Writable, *, user: str | None, group: str | None) -> str:
    """The unit file for running `loaded` under systemd."""
    config_file = loaded.path.resolve()
    start = [*command(), "run", "-c", str(config_file)]
    grace = int(loaded.config.ferryman.grace)
    lines = [
        f"# Written by `ferryman service install` (ferryman {__version__}) for {config_file}.",
        "# Local changes: `systemctl edit` (a drop-in survives installing again).",
        "[Unit]",
        f"Description=ferryman file transfers ({_escape(str(config_file))})",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        "ExecStart=" + " ".join(_quote(arg, exec_line=True) for arg in start),
        "ExecReload=/bin/kill -HUP $MAINPID",
        f"WorkingDirectory={_quote(str(config_file.parent))}",
    ]
    if user is not None:
        lines.append(f"User={user}")
    if group is not None:
        lines.append(f"Group={group}")
    lines += [
        "Restart=on-failure",
        "RestartSec=5s",
        "# exit 2: the config is invalid; starting again would not mend it",
        "RestartPreventExitStatus=2",
        f"WatchdogSec={WATCHDOG}s",
        f"TimeoutStopSec={grace + 30}s",
        "Environment=PYTHONUNBUFFERED=1",
        "# Secrets given as { env = \"…\" }: EnvironmentFile=/etc/ferryman/ferryman.env",
        "",
        "# Hardening: everything read-only but what this config writes.",
        "NoNewPrivileges=yes",
        *(["# a folder of the config is under /tmp: a private /tmp would not hold it", "PrivateTmp=no"]
          if writable.shared_tmp else ["PrivateTmp=yes"]),
        "ProtectSystem=strict",
        "ReadWritePaths=" + " ".join(_quote(str(p)) for p in writable.paths),
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectControlGroups=yes",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    """`%` starts a specifier in every unit setting: written as ``%%``."""
    return text.replace("%", "%%")


def _quote(arg: str, *, exec_line: bool = False) -> str:
    """One word of a unit setting: specifiers escaped, ``$`` too on an Exec line, quoted when it
    holds blanks or quotes."""
    arg = _escape(arg)
    if exec_line:
        arg = arg.replace("$", "$$")
    if any(c.isspace() or c in "\"'\\;" for c in arg):
        return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return arg
