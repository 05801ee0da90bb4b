"""Reading Rattail File Monitor INI files the way rattail's own code read them.

The parsing follows rattail's code (rattail 0.21, the ``rattail.filemon``
package), not its older documentation:

- lists (``monitor``, ``dirs``, ``actions``, ``args``) are split like
  rattail's ``parse_list``: non-POSIX shlex, whitespace and commas, outer
  quotes stripped, backslashes kept (Windows paths), ``#`` starts a comment;
- booleans are true for ``true/yes/on/1`` and false for anything else
  (other spellings are warned about);
- retries are per action (``<key>.action.<name>.retry_attempts``/``retry_delay``),
  clamped to 1 and 0 with a warning;
- option names are case-insensitive (configparser), so ``.kwarg.<name>``
  keywords arrive lower-cased, as they did in rattail;
- ``%(here)s`` and ``%%`` interpolate as in rattail's ConfigParser, and
  ``[rattail.config] include`` files are read first;
- the legacy ``monitored`` syntax is read with `ast.literal_eval`, never `eval`.

Relative ``dirs`` are taken relative to the config file's folder (rattail used
its working directory, which was ``/`` once daemonized).
"""

from __future__ import annotations

import ast
import configparser
import os
import re
import shlex
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ferryman.errors import ConfigError

SECTION = "rattail.filemon"
TRUE = ("true", "yes", "on", "1")
FALSE = ("false", "no", "off", "0", "")
WINDOWS_OPTIONS = ("fallback_watcher_enable", "fallback_watcher_delay",
                   "fallback_watcher_maxage", "fallback_watcher_minage")
_WINDOWS_PATH = re.compile(r"^(?:[A-Za-z]:[\\/]|\\\\)")


@dataclass(frozen=True)
class Action:
    """One ``<key>.action.<name>.*`` definition."""

    name: str
    kind: Literal["func", "class", "cmd"]
    spec: str
    args: tuple[str, ...] = ()
    kwargs: dict[str, str] = field(default_factory=dict)
    retry_attempts: int = 1
    retry_delay: int = 0


@dataclass(frozen=True)
class Profile:
    """One monitored profile, after rattail's checks (existing dirs, at least one action)."""

    key: str
    dirs: tuple[Path, ...]
    watch_locks: bool
    process_existing: bool
    stop_on_error: bool
    actions: tuple[Action, ...]


@dataclass
class Monitor:
    """A whole rattail config: the profiles kept, ferryman settings, and warnings."""

    path: Path
    profiles: list[Profile]
    settings: dict[str, Any]
    warnings: list[str]


def parse_list(value: str | None) -> list[str]:
    """Split a value like rattail's ``parse_list``: whitespace and/or commas, quotes allowed."""
    if value is None:
        return []
    lexer = shlex.shlex(value)
    lexer.whitespace += ","
    lexer.whitespace_split = True
    items = list(lexer)
    return [v[1:-1] if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'" else v for v in items]

def read(path: Path) -> Monitor:
    """Read and check a rattail config file; `ConfigError` lists every problem found."""
    path = Path(path).resolve()
    parser = read_parser(path)
    if not parser.has_section(SECTION):
        raise ConfigError(f"{path}: no [{SECTION}] section")
    reader = _Reader(path, parser)
    monitor = Monitor(path, reader.profiles(), reader.settings(), reader.warnings)
    if reader.problems:
        raise ConfigError(reader.problems)
    return monitor


def read_parser(path: Path) -> configparser.ConfigParser:
    """The INI file and the files it includes (``[rattail.config] include``), included first."""
    parser = configparser.ConfigParser(defaults={"here": str(path.parent)})
    try:
        for file in _chain(path, []):
            with file.open(encoding="utf-8") as handle:
                parser.read_file(handle, source=str(file))
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        raise ConfigError(f"{path}: cannot read: {' '.join(str(exc).split())}") from None
    return parser


def _chain(path: Path, seen: list[Path]) -> list[Path]:
    if path in seen:
        return []
    seen.append(path)
    probe = configparser.ConfigParser(defaults={"here": str(path.parent)})
    with path.open(encoding="utf-8") as handle:
        probe.read_file(handle, source=str(path))
    files: list[Path] = []
    if probe.has_option("rattail.config", "include"):
        for name in parse_list(probe.get("rattail.config", "include")):
            included = Path(name).expanduser()
            included = included if included.is_absolute() else path.parent / included
            if included.is_file():
                files += _chain(included.resolve(), seen)
    return [*files, path]


class _Reader:
    """Reads the profiles out of a parsed file, collecting problems and warnings."""

    def __init__(self, path: Path, parser: configparser.ConfigParser) -> None:
        self.path = path
        self.parser = parser
        self.problems: list[str] = []
        self.warnings: list[str] = []
        defaults = set(parser.defaults())
        self.options = [o for o in parser.options(SECTION) if o not in defaults]
        self.used: set[str] = set()

    def get(self, option: str) -> str | None:
        option = option.lower()
        if option not in self.options:
            return None
        self.used.add(option)
        try:
            return self.parser.get(SECTION, option)
        except configparser.Error as exc:
            self.problems.append(f"[{SECTION}] {option}: {' '.join(str(exc).split())}")
            return None

    def boolean(self, option: str, default: bool) -> bool:
        value = self.get(option)
        if value is None:
            return default
        if value.strip().lower() not in TRUE + FALSE:
            self.warnings.append(f"[{SECTION}] {option} = {value!r} is not true/false; read as false, "
                                 "as rattail did")
        return value.strip().lower() in TRUE

    def integer(self, option: str, minimum: int) -> int:
        value = self.get(option)
        if value is None:
            return minimum
        try:
            number = int(value)
        except ValueError:
            self.problems.append(f"[{SECTION}] {option} = {value!r}: not a whole number")
            return minimum
        if number < minimum:
            self.warnings.append(f"[{SECTION}] {option} = {number} is below the minimum; {minimum} is used")
            return minimum
        return number

    def listed(self, option: str) -> list[str]:
        try:
            return parse_list(self.get(option))
        except ValueError as exc:
            self.problems.append(f"[{SECTION}] {option}: {exc}")
            return []

    # ---- profiles ---------------------------------------------------------------------

    def profiles(self) -> list[Profile]:
        if not self.get("monitor"):
            if self.get("monitored"):
                return self.legacy()
            self.problems.append(f"[{SECTION}] has no 'monitor' option listing the profiles to run")
            return []
        keys: list[str] = []
        for key in self.listed("monitor"):
            if key.lower() in (k.lower() for k in keys):
                self.warnings.append(f"[{SECTION}] monitor lists {key!r} twice")
            else:
                keys.append(key)
        profiles = [p for p in (self.profile(key) for key in keys) if p is not None]
        self.unknown(keys)
        if not profiles and not self.problems:
            self.warnings.append(f"[{SECTION}] no profile is left to run")
        return profiles

    def profile(self, key: str) -> Profile | None:
        dirs = self.dirs(key)
        watch_locks = self.boolean(f"{key}.watch_locks", False)
        process_existing = self.boolean(f"{key}.process_existing", True)
        stop_on_error = self.boolean(f"{key}.stop_on_error", False)
        if self.boolean(f"{key}.fallback_watcher_enable", False):
            self.warnings.append(f"[{SECTION}] {key}.fallback_watcher_*: Windows-only polling; ferryman's "
                                 "folder source rescans every folder every minute anyway")
        for option in WINDOWS_OPTIONS:
            self.get(f"{key}.{option}")
        actions = [a for a in (self.action(key, name) for name in self.listed(f"{key}.actions")) if a]
        if not dirs:
            self.warnings.append(f"profile {key!r} has no folder to watch and is not run")
            return None
        if not actions:
            self.warnings.append(f"profile {key!r} has no action to invoke and is not run")
            return None
        return Profile(key, tuple(dirs), watch_locks, process_existing, stop_on_error, tuple(actions))

    def dirs(self, key: str, names: list[str] | None = None) -> list[Path]:
        found: list[Path] = []
        for name in self.listed(f"{key}.dirs") if names is None else names:
            if os.name != "nt" and _WINDOWS_PATH.match(name):
                self.warnings.append(f"profile {key!r}: '{name}' is a Windows path; dropped on this system")
                continue
            folder = Path(os.path.abspath(self.path.parent / Path(name).expanduser()))
            if not folder.exists():
                self.warnings.append(f"profile {key!r}: folder '{folder}' does not exist (or cannot "
                                     "be seen by this user); dropped")
            elif not folder.is_dir():
                self.warnings.append(f"profile {key!r}: '{folder}' is not a folder; dropped")
            elif folder not in found:
                found.append(folder)
        return found

    def legacy(self) -> list[Profile]:
        """Rattail's first syntax: ``monitored = a, b``, dirs and actions as Python literals
        (read with `ast.literal_eval`, never `eval`), function actions with positional args only."""
        self.warnings.append(f"[{SECTION}] uses the legacy 'monitored' syntax; `ferryman convert` "
                             "writes it in today's form")
        profiles = []
        for key in [k.strip() for k in (self.get("monitored") or "").split(",") if k.strip()]:
            dirs = self.dirs(key, [str(d) for d in self.literal(f"{key}.dirs")])
            actions = []
            for n, entry in enumerate(self.literal(f"{key}.actions"), 1):
                spec, *args = entry if isinstance(entry, tuple | list) else (entry,)
                if not isinstance(spec, str) or not re.fullmatch(r"[\w.]+:[\w.]+", spec) \
                        or not all(isinstance(a, str) for a in args):
                    self.problems.append(f"[{SECTION}] {key}.actions: {entry!r} is not 'module:function' "
                                         "or a tuple of it and string arguments")
                    continue
                actions.append(Action(f"{n}-{spec.rsplit(':', 1)[1]}", "func", spec, tuple(args)))
            for option in ("locks", "process_existing", "stop_on_error"):
                self.get(f"{key}.{option}")
            if not dirs or not actions:
                what = "folder to watch" if not dirs else "action to invoke"
                self.warnings.append(f"profile {key!r} has no {what} and is not run")
                continue
            profiles.append(Profile(key, tuple(dirs), self.boolean(f"{key}.locks", False),
                                    self.boolean(f"{key}.process_existing", True),
                                    self.boolean(f"{key}.stop_on_error", False), tuple(actions)))
        return profiles

    def literal(self, option: str) -> list[Any]:
        value = self.get(option)
        if not value:
            return []
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            self.problems.append(f"[{SECTION}] {option}: not a Python list literal (ferryman does not "
                                 "run code from config files)")
            return []
        return list(parsed) if isinstance(parsed, list | tuple) else [parsed]

    def action(self, key: str, name: str) -> Action | None:
        prefix = f"{key}.action.{name}"
        specs = {kind: self.get(f"{prefix}.{kind}") for kind in ("func", "class", "cmd")}
        given = [kind for kind, spec in specs.items() if spec]
        args = tuple(self.listed(f"{prefix}.args"))
        pattern = re.compile(rf"^{re.escape(prefix)}\.kwarg\.(?P<keyword>\w+)$", re.IGNORECASE)
        kwargs = {}
        for option in self.options:
            match = pattern.match(option)
            if match:
                kwargs[match.group("keyword")] = self.get(option) or ""
        attempts = self.integer(f"{prefix}.retry_attempts", 1)
        delay = self.integer(f"{prefix}.retry_delay", 0)
        where = f"[{SECTION}] profile {key!r}, action {name!r}"
        if len(given) != 1:
            has = ", ".join(f"{prefix}.{kind}" for kind in given) or "none of them"
            self.problems.append(f"{where}: needs exactly one of {prefix}.func, {prefix}.class or "
                                 f"{prefix}.cmd (has {has})")
            return None
        kind = given[0]
        spec = (specs[kind] or "").strip()
        if kind in ("func", "class") and not re.fullmatch(r"[\w.]+:[\w.]+", spec):
            self.problems.append(f"{where}: {prefix}.{kind} = {spec!r} is not 'module:name'")
            return None
        if kind == "cmd":
            if args:
                self.problems.append(f"{where}: a command action takes no {prefix}.args (rattail failed "
                                     "every file with a TypeError); put the arguments in the command line")
                return None
            ignored = sorted(k for k in kwargs if k != "shell")
            if ignored:
                self.warnings.append(f"{where}: a command action only reads kwarg.shell; "
                                     f"kwarg.{', kwarg.'.join(ignored)} ignored, as rattail did")
            try:
                command_line(spec, kwargs.get("shell"))
            except ValueError as exc:
                self.problems.append(f"{where}: {prefix}.cmd: {exc}")
                return None
        return Action(name, kind, spec, args, kwargs, attempts, delay)  # type: ignore[arg-type]

    def unknown(self, keys: list[str]) -> None:
        """Warn about options of listed profiles that rattail never read, and unlisted profiles."""
        listed = sorted((k.lower() for k in keys), key=len, reverse=True)
        unlisted: set[str] = set()
        for option in self.options:
            if option in self.used or option in ("monitor", "monitored"):
                continue
            owner = next((k for k in listed if option.startswith(k + ".")), None)
            if owner is None:
                unlisted.add(option.split(".", 1)[0])
                continue
            rest = option[len(owner) + 1:]
            hint = ""
            if rest in ("action.retry_attempts", "action.retry_delay"):
                hint = f"; retries are per action: {owner}.action.<name>.{rest.split('.')[-1]}"
            elif rest.startswith("action."):
                hint = "; is that action listed in " + f"{owner}.actions?"
            self.warnings.append(f"[{SECTION}] unknown option {option!r} ignored{hint}")
        for prefix in sorted(unlisted):
            self.warnings.append(f"[{SECTION}] options of {prefix!r} ignored: it is not listed in monitor")

    # ---- other sections ----------------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        """``[ferryman]`` settings: the file's own section, else a root next to the state rattail kept."""
        parser = self.parser
        settings: dict[str, Any] = {}
        if parser.has_section("ferryman"):
            defaults = set(parser.defaults())
            for option in parser.options("ferryman"):
                if option not in defaults:
                    value = parser.get("ferryman", option)
                    settings[option] = int(value) if value.isdigit() else value
        if "root" not in settings:
            workdir = parser.get("rattail", "workdir", fallback=None) if parser.has_section("rattail") else None
            settings["root"] = str(Path(workdir) / "ferryman") if workdir else ".ferryman"
        root = Path(str(settings["root"])).expanduser()
        settings["root"] = str(root if root.is_absolute() else Path(os.path.abspath(self.path.parent / root)))
        if parser.has_section("rattail.mail") and parser.get("rattail.mail", "send_emails",
                                                              fallback="false").lower() in TRUE:
            self.warnings.append("[rattail.mail]: ferryman does not send rattail's filemon_action_error "
                                 "email; declare a [notify.NAME] and list it in each flow's notify")
        return settings


def command_line(spec: str, shell: str | None) -> tuple[bool, str | list[str]]:
    """A ``.cmd`` as the ``command`` step takes it: (shell, template or argv of templates).

    With ``kwarg.shell`` unset or true rattail ran ``cmd.format(path=…, filename=…)``
    in a shell; with it false, it split the line like `parse_list` and replaced
    ``{path}``/``{filename}`` in each word.  ``{filename}`` becomes ``{name}``.
    """
    if shell is None or shell.strip().lower() in TRUE:
        out = []
        for literal, name, spec_, conversion in string.Formatter().parse(spec):
            out.append(literal.replace("{", "{{").replace("}", "}}"))
            if name is None:
                continue
            if name not in ("path", "filename"):
                raise ValueError(f"{{{name}}} is not a field rattail filled in (only {{path}} and {{filename}})")
            field_ = "name" if name == "filename" else "path"
            out.append("{" + field_ + (f"!{conversion}" if conversion else "") + (f":{spec_}" if spec_ else "") + "}")
        return True, "".join(out)
    argv = []
    for word in parse_list(spec):
        word = word.replace("{", "\x00").replace("}", "\x01")
        word = word.replace("\x00path\x01", "\x02path\x03").replace("\x00filename\x01", "\x02name\x03")
        word = word.replace("\x00", "{{").replace("\x01", "}}").replace("\x02", "{").replace("\x03", "}")
        argv.append(word)
    if not argv:
        raise ValueError("the command line is empty")
    return False, argv
