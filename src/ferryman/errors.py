"""Ferryman's exceptions.

The engine only needs to know whether trying again may help::

    FerrymanError
    ├── ConfigError            bad configuration; `check` prints it, exit code 2
    ├── StepError              an item could not go through a step
    │   ├── TransientError     retry with the flow's policy (network drop, busy server, timeout)
    │   │   └── StepTimeout    a step ran past its `timeout`
    │   └── PermanentError     fail the item now (bad input, permission denied, wrong password)
    │       └── UnsafeInput    hostile input refused: zip slip, bomb, header injection, traversal
    └── JournalError           the journal cannot be opened or written

Other exceptions raised by a step (say a user's Python action) follow the
flow's retry policy like a `TransientError`.  Components map their library's
exceptions to these at their boundary, in one place per component.
"""

from __future__ import annotations

import socket


class FerrymanError(Exception):
    """Base of every error ferryman raises on purpose."""


class ConfigError(FerrymanError):
    """The configuration is invalid; `problems` lists every finding, one line each."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class StepError(FerrymanError):
    """An item failed in a step."""


class TransientError(StepError):
    """A failure that may go away: retried with the flow's (or the step's) retry policy."""


class StepTimeout(TransientError):
    """A step ran past its `timeout`."""


class PermanentError(StepError):
    """A failure that retrying cannot fix: the item fails at once."""


class UnsafeInput(PermanentError):
    """Hostile or malformed input that was refused before anything was written."""


class JournalError(FerrymanError):
    """The journal could not be opened, migrated or written."""


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (its type's name when it has none)."""
    return " ".join(str(exc).split()) or exc.__class__.__name__


def describe(exc: BaseException) -> str:
    """One line naming the error type and its message, for logs and the journal."""
    message = one_line(exc)
    if isinstance(exc, FerrymanError):
        return message
    if isinstance(exc, socket.gaierror):  # its str() is "[Errno -2] …": say what it means
        return f"cannot resolve a host name (DNS: {exc.strerror or message})"
    return f"{exc.__class__.__name__}: {message}"


def dns_failure(exc: BaseException) -> socket.gaierror | None:
    """The DNS failure behind `exc`, if there is one.

    Libraries wrap `socket.gaierror` (urllib3 in a ``NewConnectionError``, botocore in an
    ``EndpointConnectionError``): the search follows ``__cause__``, ``__context__`` and the
    ``reason`` / ``kwargs["error"]`` attributes those wrappers use.
    """
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, socket.gaierror):
            return current
        kwargs = getattr(current, "kwargs", None)
        inner = [current.__cause__, current.__context__, getattr(current, "reason", None),
                 kwargs.get("error") if isinstance(kwargs, dict) else None]
        todo += [e for e in inner if isinstance(e, BaseException)]
    return None


def unresolved(host: str, error: socket.gaierror) -> str:
    """A DNS failure in words, the same for every connection type:
    ``cannot resolve host "no-such-host.invalid" (DNS: Name or service not known)``."""
    return f'cannot resolve host "{host}" (DNS: {error.strerror or one_line(error)})'
