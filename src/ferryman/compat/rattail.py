"""Rattail File Monitor INI files, run unchanged: ``[rattail.filemon]`` → ferryman flows.

One flow per profile listed in ``monitor`` (the flow is named after the
profile key): a ``folder`` source on the profile's ``dirs`` and one step per
action, in order — ``python`` for ``.func``/``.class``, ``command`` for
``.cmd``.  `rattail_ini` reads the file the way rattail did; this module maps
it to ferryman's raw config (`ini_to_raw`, used by `ferryman.config.load`)
and to commented TOML (`to_toml`, ``ferryman convert``).

`ferryman.root` is ``[ferryman] root`` when the file has such a section, else
``<[rattail] workdir>/ferryman``, else ``.ferryman`` next to the config file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ferryman.compat import toml_writer as tw
from ferryman.compat.rattail_ini import Action, Monitor, Profile, command_line, parse_list, read

__all__ = ["ini_to_raw", "parse_list", "read", "to_toml"]


def ini_to_raw(path: Path) -> tuple[dict[str, Any], list[str]]:
    """The ferryman raw config mapping (what a TOML file would give) and the warnings."""
    monitor = read(path)
    return _raw(monitor), list(monitor.warnings)


# ---- ferryman config ---------------------------------------------------------------------


def _raw(monitor: Monitor) -> dict[str, Any]:
    return {"ferryman": dict(monitor.settings),
            "flows": {p.key: _flow(p, monitor.path) for p in monitor.profiles}}


def _flow(profile: Profile, config_file: Path) -> dict[str, Any]:
    source: dict[str, Any] = {
        "type": "folder",
        "paths": [str(d) for d in profile.dirs],
        "ready": "lock" if profile.watch_locks else "auto",
        "existing": "process" if profile.process_existing else "ignore",
        "after": "keep",
    }
    if profile.watch_locks:
        source["lock_suffix"] = ".lock"
    return {
        "description": f"Rattail File Monitor profile {profile.key!r}",
        "concurrency": 1,
        "stop_on_error": profile.stop_on_error,
        "retry": {"attempts": 1},
        "source": source,
        "steps": [_step(action, config_file) for action in profile.actions],
    }


def _step(action: Action, config_file: Path) -> dict[str, Any]:
    step: dict[str, Any]
    if action.kind == "cmd":
        shell, command = command_line(action.spec, action.kwargs.get("shell"))
        step = {"type": "command", "label": action.name, "command": command}
        if shell:
            step["shell"] = True
        if action.retry_attempts > 1:
            step["retry_on_exit"] = "any"  # rattail retried a failed command like any exception
    else:
        step = {"type": "python", "label": action.name, "call": action.spec, "result": "ignore"}
        if action.kind == "class":
            step["init"] = "config"
            step["config_file"] = str(config_file)  # the rattail file, also for the converted TOML
        if action.args:
            step["args"] = list(action.args)
        if action.kwargs:
            step["kwargs"] = dict(action.kwargs)
    if action.retry_attempts > 1:
        step["retry"] = {"attempts": action.retry_attempts, "delay": f"{action.retry_delay}s",
                         "backoff": 1.0, "same_error": True}
    return step


# ---- ferryman convert -------------------------------------------------------------------


def to_toml(path: Path) -> str:
    """The equivalent ferryman TOML, commented: where each flow and step came from, and warnings."""
    monitor = read(path)
    raw = _raw(monitor)
    lines = tw.comment(f"ferryman configuration converted from {monitor.path} by `ferryman convert`.\n"
                       "Each flow is one Rattail File Monitor profile; each step one of its actions.\n"
                       "Check it with `ferryman check -c FILE`, run it with `ferryman run -c FILE`.")
    if monitor.warnings:
        lines += ["", *tw.comment("Warnings while converting:")]
        lines += tw.comment("\n".join(f"- {w}" for w in monitor.warnings))
    lines += ["", "[ferryman]", *tw.assignments(raw["ferryman"])]
    for profile in monitor.profiles:
        flow = dict(raw["flows"][profile.key])
        source, steps = flow.pop("source"), flow.pop("steps")
        lines += ["", *tw.comment(_profile_note(profile)), f"[{tw.dotted('flows', profile.key)}]"]
        lines += tw.assignments(flow)
        lines += ["", f"[{tw.dotted('flows', profile.key, 'source')}]", *tw.assignments(source)]
        for action, step in zip(profile.actions, steps, strict=True):
            lines += ["", *tw.comment(_action_note(profile.key, action))]
            lines += [f"[[{tw.dotted('flows', profile.key, 'steps')}]]", *tw.assignments(step)]
    return "\n".join(lines) + "\n"


def _profile_note(profile: Profile) -> str:
    key = profile.key
    notes = [f"Rattail profile {key!r}: {key}.dirs = {' '.join(_quoted(str(d)) for d in profile.dirs)}"]
    if profile.watch_locks:
        notes.append(f"{key}.watch_locks = true: a file is taken once its <file>.lock disappears")
    if not profile.process_existing:
        notes.append(f"{key}.process_existing = false: files already there when the flow first started "
                     "are left alone")
    if profile.stop_on_error:
        notes.append(f"{key}.stop_on_error = true: after a failure the flow pauses until "
                     f"`ferryman resume {key}`")
    return "\n".join(notes)


def _action_note(key: str, action: Action) -> str:
    note = f"action {action.name!r}: {key}.action.{action.name}.{action.kind} = {action.spec}"
    if action.kind == "class":
        note += "\nthe class is built with a config object read from config_file: keep that file"
    if action.retry_attempts > 1:
        note += (f"\nretry_attempts = {action.retry_attempts}, retry_delay = {action.retry_delay}: "
                 "a retry failing with another exception type gives up at once")
    return note


def _quoted(text: str) -> str:
    return f'"{text}"' if any(c in text for c in " ,\t") else text
