"""``python``: call your own function or class on each of the item's files.

``call = "mypkg.exports:clean"`` calls ``clean(path, *args, **kwargs)`` for
every selected file (``path`` is the absolute path of the item's current
file).  ``call = "mypkg.exports:Cleaner"`` builds ``Cleaner(*init_args,
**init_kwargs)`` once per flow and calls the instance the same way; with
``init = "config"`` it is built as ``Cleaner(config)`` the way Rattail's file
monitor did (``config`` is rattail's own config object for the config file
when rattail is installed, else `ferryman.compat.rattail_config.FileConfig`).

What the call returns decides the item's files: a path (``str`` or
``Path``, absolute or relative to the work folder) or a list of paths
replaces that file; ``None`` keeps it.  A returned path must exist.  With
``result = "ignore"`` the return value is ignored (Rattail's actions).

Exceptions: `TransientError` and `PermanentError` decide retrying as
everywhere; any other exception propagates unchanged, so the flow's retry
policy (and its ``same_error`` rule, which compares exception types) sees
the real type.  An import that fails is a `PermanentError` naming the module.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from ferryman.errors import PermanentError
from ferryman.item import Item
from ferryman.steps.base import Step, StepConfig, StepContext, StepResult

_IMPORT_LOCK = threading.Lock()


class PythonConfig(StepConfig):
    """Call a Python function or class on each file."""

    type: Literal["python"]
    call: str = Field(description="What to call: 'package.module:function' or 'package.module:Class'.")
    args: list[Any] = Field(default_factory=list, description="Positional arguments after the path.")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments.")
    init: Literal["args", "config"] = Field(
        "args", description="How a class is built: 'args' uses init_args/init_kwargs, 'config' passes a "
        "Rattail-style config object for the config file (Rattail File Monitor's Class(config))."
    )
    config_file: str | None = Field(
        None, description="With init = 'config': the INI file the config object reads (relative to the config "
        "file; default: the config file itself, e.g. the rattail.conf that `ferryman convert` read)."
    )
    init_args: list[Any] = Field(default_factory=list, description="Positional arguments of the class.")
    init_kwargs: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the class.")
    pythonpath: list[str] = Field(
        default_factory=list, description="Folders added to sys.path first (relative to the config file)."
    )
    include: list[str] | None = Field(None, description="Only files whose names match these globs (default: all).")
    result: Literal["files", "ignore"] = Field(
        "files", description="What the call returns: 'files' (a path or list of paths replaces the file, None "
        "keeps it) or 'ignore' (any return value is ignored, as the Rattail File Monitor did)."
    )

    @field_validator("call")
    @classmethod
    def _valid_call(cls, value: str) -> str:
        module, sep, name = value.partition(":")
        if not sep or not module.strip() or not name.strip():
            raise ValueError("call is 'module:function' or 'module:Class', e.g. 'mypkg.exports:clean'")
        return value


class PythonStep(Step[PythonConfig]):
    """Imports the target on first use (once per flow) and calls it per file."""

    Config = PythonConfig
    _target: Callable[..., Any] | None = None

    def run(self, item: Item, ctx: StepContext) -> StepResult:
        target = self._resolve()
        selected = set(ctx.files(self.config.include))
        files: list[Path] = []
        changed = False
        for path in item.files:
            if path not in selected:
                files.append(path)
                continue
            returned = target(str(path.absolute()), *self.config.args, **self.config.kwargs)
            produced = self._paths(returned, ctx.work_dir) if self.config.result == "files" else None
            if produced is None:
                files.append(path)
            else:
                files += produced
                changed = True
        return StepResult(files=files if changed else None)

    def _resolve(self) -> Callable[..., Any]:
        with _IMPORT_LOCK:
            if self._target is None:
                self._target = self._load()
            return self._target

    def _load(self) -> Callable[..., Any]:
        obj = self.locate()
        if isinstance(obj, type):
            obj = self._instantiate(obj)
        if not callable(obj):
            raise PermanentError(f"python: {self.config.call!r} is not callable")
        return obj  # type: ignore[no-any-return]

    def locate(self) -> Any:
        """The function or class that `call` names, imported (not called, not built): what
        ``ferryman check`` looks for."""
        for entry in reversed(self.config.pythonpath):
            folder = str(self.flow.resolve(entry))
            if folder not in sys.path:
                sys.path.insert(0, folder)
        module_name, _, attribute = self.config.call.partition(":")
        try:
            module = importlib.import_module(module_name.strip())
        except ModuleNotFoundError as exc:
            where = " (searched sys.path; add its folder to pythonpath)" if exc.name == module_name else ""
            raise PermanentError(f"python: cannot import {module_name!r}: {exc}{where}") from None
        except Exception as exc:
            raise PermanentError(f"python: importing {module_name!r} failed: {exc.__class__.__name__}: {exc}") from None
        obj: Any = module
        for part in attribute.strip().split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                raise PermanentError(f"python: module {module_name!r} has no {attribute!r}") from None
        if not callable(obj):
            raise PermanentError(f"python: {self.config.call!r} is not callable")
        return obj

    def _instantiate(self, cls: type) -> Any:
        if self.config.init == "config":
            from ferryman.compat.rattail_config import make_config

            config_file = self.flow.resolve(self.config.config_file) if self.config.config_file \
                else self.flow.config_file
            if config_file is None:
                raise PermanentError("python: init = 'config' needs the config file, which this flow does not know")
            return cls(make_config(config_file))
        return cls(*self.config.init_args, **self.config.init_kwargs)

    def _paths(self, returned: Any, work_dir: Path) -> list[Path] | None:
        if returned is None:
            return None
        items = returned if isinstance(returned, list | tuple) else [returned]
        paths: list[Path] = []
        for value in items:
            if not isinstance(value, str | Path):
                raise PermanentError(
                    f"python: {self.config.call!r} returned {type(value).__name__}; return a path, a list of "
                    "paths, or None"
                )
            path = Path(value)
            path = path if path.is_absolute() else work_dir / path
            if not path.is_file():
                raise PermanentError(f"python: {self.config.call!r} returned {str(value)!r}, which is not a file")
            paths.append(path)
        return paths
