"""The ``for_each`` values of a tick: a list, the lines of a file, or the output lines of a command.

They are read again at every tick (a database added to the file joins the next night's run).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path

from ferryman.errors import PermanentError
from ferryman.sources.schedule.config import EachCommand, EachFile, ScheduleSourceConfig


def each_values(config: ScheduleSourceConfig, base: Path) -> list[str] | None:
    """The values now (None without ``for_each``); PermanentError with the reason when they cannot be read."""
    spec = config.for_each
    if spec is None:
        return None
    if isinstance(spec, list):
        return list(spec)
    if isinstance(spec, EachFile):
        return _from_file(base / Path(spec.file).expanduser())
    return _from_command(spec, base)


def _from_file(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise PermanentError(f"for_each: cannot read {path}: {reason}") from None
    return _unique(line.split("#", 1)[0].strip() for line in text.splitlines())


def _from_command(spec: EachCommand, base: Path) -> list[str]:
    try:
        done = subprocess.run(spec.command, cwd=base, capture_output=True, timeout=spec.timeout, check=False)
    except FileNotFoundError:
        raise PermanentError(f"for_each: command not found: {spec.command[0]}") from None
    except subprocess.TimeoutExpired:
        raise PermanentError(f"for_each: {spec.command[0]} ran longer than {spec.timeout:g}s") from None
    except OSError as exc:
        raise PermanentError(f"for_each: cannot run {spec.command[0]}: {exc.strerror or exc}") from None
    if done.returncode != 0:
        stderr = done.stderr.decode("utf-8", "replace").strip().splitlines()
        last = stderr[-1] if stderr else "no output on stderr"
        raise PermanentError(f"for_each: {spec.command[0]} exited with status {done.returncode}: {last}")
    return _unique(line.strip() for line in done.stdout.decode("utf-8", "replace").splitlines())


def _unique(lines: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for line in lines:
        if line:
            seen.setdefault(line, None)
    return list(seen)


def check_file(config: ScheduleSourceConfig, base: Path) -> str | None:
    """For ``ferryman check``: why a ``for_each`` file cannot be read (None when it can, or is not a file)."""
    if not isinstance(config.for_each, EachFile):
        return None
    try:
        values = _from_file(base / Path(config.for_each.file).expanduser())
    except PermanentError as exc:
        return str(exc)
    return None if values else f"for_each: {config.for_each.file} holds no value"
