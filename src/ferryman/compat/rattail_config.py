"""The config object rattail handed to ``.class`` actions: ``Class(config)``.

When rattail itself is installed, its own config object is built from the
file (so actions using ``config.get_app()`` and friends keep working);
otherwise `FileConfig` offers the methods actions use to read settings:
``get``, ``getbool``, ``getint``, ``getlist``, ``require``, ``get_dict``,
``set``, ``setdefault`` and ``parser``.
"""

from __future__ import annotations

import configparser
import logging
from pathlib import Path
from typing import Any

from ferryman.compat.rattail_ini import TRUE, parse_list, read_parser

log = logging.getLogger("ferryman")


class FileConfig:
    """A read-mostly view of an INI file, with rattail's ``RattailConfig`` reading methods."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).resolve()
        self.parser: configparser.ConfigParser = read_parser(self.path)  # with its includes, like rattail

    def get(self, section: str, option: str, default: Any = None, **_: Any) -> Any:
        """The value, or `default` when the section or option is missing."""
        if self.parser.has_option(section, option):
            return self.parser.get(section, option)
        return default

    def getbool(self, section: str, option: str, default: Any = None, **kw: Any) -> bool | None:
        value = self.get(section, option, default, **kw)
        if value is None or isinstance(value, bool):
            return value
        return str(value).lower() in TRUE

    def getint(self, section: str, option: str, default: Any = None, **kw: Any) -> int | None:
        value = self.get(section, option, default, **kw)
        return None if value is None else int(value)

    def getlist(self, section: str, option: str, default: Any = None, **kw: Any) -> list[str] | None:
        value = self.get(section, option, default, **kw)
        return parse_list(value) if isinstance(value, str) else value

    def require(self, section: str, option: str, msg: str | None = None, **kw: Any) -> Any:
        value = self.get(section, option, **kw)
        if value is None:
            raise LookupError(f"{msg or 'Missing or invalid config'}; please set '{option}' in the "
                              f"[{section}] section of your config file")
        return value

    def get_dict(self, section: str) -> dict[str, str]:
        if not self.parser.has_section(section):
            return {}
        return {option: self.parser.get(section, option) for option in self.parser.options(section)}

    def set(self, section: str, option: str, value: str) -> None:
        if not self.parser.has_section(section):
            self.parser.add_section(section)
        self.parser.set(section, option, value)

    def setdefault(self, section: str, option: str, value: str) -> Any:
        if self.get(section, option) is None:
            self.set(section, option, value)
        return self.get(section, option)


def make_config(path: str | Path) -> Any:
    """Rattail's own config object for `path` when rattail is installed, else a `FileConfig`."""
    try:
        from rattail.config import make_config as rattail_make_config  # type: ignore[import-not-found]
    except ImportError:
        return FileConfig(path)
    try:
        return rattail_make_config([str(path)], usedb=False)
    except Exception as exc:  # an old or new rattail with another signature: fall back, say so
        log.warning("rattail is installed but its make_config failed (%s); actions get a plain "
                    "config object", exc)
        return FileConfig(path)
