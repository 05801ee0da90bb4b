"""Secret references: passwords and tokens that never reach logs, the journal or output.

In the config a secret is a literal string (works, but ``check`` warns), or a
reference resolved when it is needed::

    password = { env = "EXPORT_IMAP_PASSWORD" }
    password = { file = "/etc/ferryman/imap.pass" }     # trailing newline stripped
    password = { command = ["pass", "show", "imap"] }   # stdout, trailing newline stripped
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from ferryman.errors import PermanentError

_KINDS = ("env", "file", "command")


class Secret:
    """A secret value or a reference to one; ``reveal()`` gives the value, ``str()`` never does."""

    __slots__ = ("_source", "kind")

    def __init__(self, kind: str, source: str | list[str]) -> None:
        self.kind = kind
        self._source = source

    @property
    def literal(self) -> bool:
        """True when the secret was written into the config file itself."""
        return self.kind == "literal"

    def reveal(self) -> str:
        """The secret's value; raises `PermanentError` with a message that does not contain it."""
        if self.kind == "literal":
            return str(self._source)
        if self.kind == "env":
            value = os.environ.get(str(self._source))
            if value is None:
                raise PermanentError(f"secret: environment variable {self._source} is not set")
            return value
        if self.kind == "file":
            try:
                return Path(str(self._source)).expanduser().read_text().rstrip("\r\n")
            except OSError as exc:
                raise PermanentError(f"secret: cannot read {self._source}: {exc.strerror}") from None
        import subprocess  # only a { command = [...] } secret runs one

        argv = list(self._source)
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PermanentError(f"secret: command {argv[0]!r} failed: {exc}") from None
        if done.returncode != 0:
            raise PermanentError(f"secret: command {argv[0]!r} exited with {done.returncode}")
        return done.stdout.rstrip("\r\n")

    def describe(self) -> str:
        """Where the secret comes from, safe to print."""
        if self.kind == "literal":
            return "a literal value in the config"
        if self.kind == "command":
            return f"the output of {self._source[0]!r}"
        return f"{self.kind} {self._source}"

    def __repr__(self) -> str:
        return f"Secret({self.describe()})" if self.kind != "literal" else "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and (self.kind, self._source) == (other.kind, other._source)

    def __hash__(self) -> int:
        return hash((self.kind, str(self._source)))

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            parse_secret, serialization=core_schema.plain_serializer_function_ser_schema(_serialize)
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "description": "a secret: a string, {env = VAR}, {file = path} or {command = [argv]}",
            "anyOf": [
                {"type": "string"},
                {"type": "object", "properties": {"env": {"type": "string"}}},
                {"type": "object", "properties": {"file": {"type": "string"}}},
                {"type": "object", "properties": {"command": {"type": "array"}}},
            ],
        }


def parse_secret(value: Any) -> Secret:
    """Build a `Secret` from the config's forms; anything else is a clear error."""
    if isinstance(value, Secret):
        return value
    if isinstance(value, str):
        return Secret("literal", value)
    if isinstance(value, dict) and len(value) == 1:
        ((kind, source),) = value.items()
        if kind in ("env", "file") and isinstance(source, str) and source:
            return Secret(kind, source)
        if kind == "command" and isinstance(source, list) and source and all(
            isinstance(part, str) for part in source
        ):
            return Secret(kind, source)
    raise ValueError(
        "a secret is a string, { env = \"VAR\" }, { file = \"path\" } or { command = [\"argv\", …] }"
    )


def _serialize(secret: Secret) -> Any:
    if secret.kind == "literal":
        return "***"
    return {secret.kind: secret._source}


def mask(text: str, secrets: list[str]) -> str:
    """Replace every revealed secret in `text` by ``***`` (last line of defence for messages)."""
    for value in secrets:
        if value and len(value) >= 3:
            text = text.replace(value, "***")
    return text
