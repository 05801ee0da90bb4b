"""``command``: run a program per file or once per item, in the item's work folder.

``command = ["gpg", "--decrypt", "--output", "{stem}", "{path}"]`` is an argv:
no shell, each element rendered as a template (``{path}``, ``{name}``,
``{stem}``, ``{dir}``, ``{meta.KEY}``, …; with ``per = "item"`` an element that
is exactly ``{files}`` expands to every file's path).  ``shell = true`` takes
a string run by ``/bin/sh -c``; values put into it are shell-quoted, and a
placeholder already inside double or single quotes gets the value as is only
when it cannot break out of them (else the item fails as unsafe input), so a
file named ``x; rm -rf ~`` stays a file name.

The program runs with its own process group (all of it is killed on
timeout), stdin closed, stdout and stderr spooled to temporary files (so
chatty programs cannot fill memory).  A non-zero exit fails the step with
the exit code and the last lines of stderr; codes listed in
``retry_on_exit`` make it a `TransientError` instead.
"""

from __future__ import annotations

import os
import shlex
import signal
import string
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import Field, model_validator

from ferryman import templates
from ferryman.errors import PermanentError, StepTimeout, TransientError, UnsafeInput
from ferryman.item import Item
from ferryman.secrets import Secret, mask
from ferryman.steps.base import Step, StepConfig, StepContext, StepResult

TAIL_LINES = 5
FILES = "{files}"


class CommandConfig(StepConfig):
    """Run a program on the item's files."""

    type: Literal["command"]
    command: list[str] | str = Field(
        description="argv list of templates, e.g. ['gpg', '--decrypt', '{path}']; a string only with shell = true."
    )
    shell: bool = Field(False, description="Run `command` (a string) with /bin/sh -c; values are shell-quoted.")
    per: Literal["file", "item"] = Field("file", description="Run once per file ('file') or once for the item.")
    include: list[str] | None = Field(None, description="Only files whose names match these globs (default: all).")
    env: dict[str, str | Secret] = Field(
        default_factory=dict, description="Extra environment variables; values may be secrets ({ env = … })."
    )
    inherit_env: bool = Field(True, description="Start from ferryman's own environment (else only `env` and PATH).")
    collect: bool = Field(
        False, description="The files the command leaves in the work folder become the item's files."
    )
    retry_on_exit: list[int] | Literal["any"] = Field(
        default_factory=list, description="Exit codes that mean 'try again later' (retried); others fail the item. "
        "'any': every failed run is retried (Rattail File Monitor commands)."
    )

    @model_validator(mode="after")
    def _shape(self) -> CommandConfig:
        if isinstance(self.command, str) and not self.shell:
            raise ValueError("command is a string: give an argv list, or set shell = true")
        if isinstance(self.command, list) and not self.command:
            raise ValueError("command is empty")
        if isinstance(self.command, list) and self.shell:
            raise ValueError("with shell = true, command is one string")
        for template in [self.command] if isinstance(self.command, str) else self.command:
            if template != FILES:
                templates.check(template, (*templates.FIELDS, "files", "work"))
        return self


def shell_render(template: str, values: dict[str, Any]) -> str:
    """Render a shell command line, quoting every value for the quotes it stands in."""
    out: list[str] = []
    quote: str | None = None
    for literal, field, spec, conversion in string.Formatter().parse(template):
        out.append(literal)
        for char in literal:  # track whether the next placeholder sits inside quotes
            if quote is None and char in "'\"":
                quote = char
            elif char == quote:
                quote = None
        if field is None:
            continue
        if field == "files" and not spec and not conversion:
            if quote is not None:
                raise UnsafeInput("put {files} outside quotes in the shell command (each path is quoted)")
            out.append(" ".join(shlex.quote(str(p)) for p in values["files"]))
            continue
        piece = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        value = templates.render(piece, values)
        if quote is None:
            out.append(shlex.quote(value))
        elif (quote == "'" and "'" not in value) or (quote == '"' and not set(value) & set('"$`\\!')):
            out.append(value)
        else:
            raise UnsafeInput(f"value {value!r} cannot be put inside {quote}…{quote} in the shell command safely")
    return "".join(out)


class CommandStep(Step[CommandConfig]):
    """Runs the command with the work folder as its current directory."""

    Config = CommandConfig

    def run(self, item: Item, ctx: StepContext) -> StepResult:
        selected = list(ctx.files(self.config.include))
        env, secrets = self._environment()
        runs: list[tuple[Path | None, list[str] | str]] = []
        if self.config.per == "file":
            for path in selected:
                runs.append((path, self._argv(ctx.values(path, work=str(ctx.work_dir)), selected)))
        else:
            runs.append((None, self._argv(ctx.values(None, work=str(ctx.work_dir)), selected)))
        for target, argv in runs:
            self._execute(argv, ctx, env, secrets, target)
        outputs: dict[str, Any] = {"runs": len(runs)}
        if not self.config.collect:
            return StepResult(outputs=outputs)
        produced = sorted(p for p in ctx.work_dir.rglob("*") if p.is_file() and not p.is_symlink())
        if not produced:
            raise PermanentError("command: collect = true but the command left no files in the work folder")
        return StepResult(files=produced, outputs=outputs)

    def _argv(self, values: dict[str, Any], files: list[Path]) -> list[str] | str:
        command = self.config.command
        if isinstance(command, str):
            return shell_render(command, {**values, "files": files})
        argv: list[str] = []
        for template in command:
            if template == FILES:
                argv += [str(p) for p in files]
            else:
                argv.append(templates.render(template, {**values, "files": " ".join(map(str, files))}))
        return argv

    def _environment(self) -> tuple[dict[str, str], list[str]]:
        base = dict(os.environ) if self.config.inherit_env else {"PATH": os.environ.get("PATH", os.defpath)}
        secrets: list[str] = []
        for key, value in self.config.env.items():
            if isinstance(value, Secret):
                base[key] = value.reveal()
                secrets.append(base[key])
            else:
                base[key] = value
        return base, secrets

    def _execute(self, argv: list[str] | str, ctx: StepContext, env: dict[str, str], secrets: list[str],
                 path: Path | None) -> None:
        program = argv if isinstance(argv, str) else argv[0]
        what = f"command {program!r}" + (f" on {path.name}" if path else "")
        timeout = self._timeout(ctx)
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                process = subprocess.Popen(
                    argv, shell=isinstance(argv, str), cwd=ctx.work_dir, env=env, stdin=subprocess.DEVNULL,
                    stdout=out, stderr=err, start_new_session=True,
                )
            except FileNotFoundError:
                raise PermanentError(f"{what}: program not found (is it installed and on PATH?)") from None
            except PermissionError:
                raise PermanentError(f"{what}: permission denied (not executable?)") from None
            except OSError as exc:
                raise PermanentError(f"{what}: cannot start: {exc.strerror}") from None
            try:
                code = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(process)
                raise StepTimeout(f"{what}: still running after {timeout:g}s; killed") from None
            except BaseException:
                _kill_group(process)
                raise
            if code != 0:
                tail = mask(_tail(err), secrets)
                reason = f"killed by signal {-code}" if code < 0 else f"exited with {code}"
                message = f"{what} {reason}" + (f": {tail}" if tail else "")
                if self.config.retry_on_exit == "any" or code in self.config.retry_on_exit:
                    raise TransientError(message)
                raise PermanentError(message)

    def _timeout(self, ctx: StepContext) -> float | None:
        limits = [t for t in (self.config.timeout,) if t is not None]
        if ctx.deadline is not None:
            limits.append(max(ctx.deadline - time.monotonic(), 0.001))
        return min(limits) if limits else None


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the command's whole process group, SIGKILL it after 2 s."""
    for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _tail(stream: IO[bytes]) -> str:
    """The last lines of a spooled output stream, as one line."""
    stream.seek(0, os.SEEK_END)
    size = stream.tell()
    stream.seek(max(size - 4096, 0))
    text = stream.read().decode("utf-8", "replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()][-TAIL_LINES:]
    return " | ".join(lines)[-800:]
