"""What every notifier is: told once per failed item, and when a flow recovers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

from ferryman.model import Model
from ferryman.redact import redact

if TYPE_CHECKING:
    from ferryman.connections import ConnectionConfig


class NotifierConfig(Model):
    type: str


@dataclass(frozen=True)
class Failure:
    """An item that gave up (no retry left); never carries secrets.

    Its texts are redacted when it is made (`ferryman.redact`): no notifier can
    pass on a pre-signed link's signature, whatever it does with them.
    """

    flow: str
    item_id: str
    key: str
    origin: str
    step: str
    error: str
    attempts: int
    at: float

    def __post_init__(self) -> None:
        for name in ("key", "origin", "error"):
            object.__setattr__(self, name, redact(getattr(self, name)))


C = TypeVar("C", bound=NotifierConfig)


class Notifier(ABC, Generic[C]):
    """Where alerts go.  Grouping into digests is done by the caller, not by each notifier."""

    Config: ClassVar[type[NotifierConfig]]

    def __init__(self, name: str, config: C,
                 connections: Mapping[str, ConnectionConfig] | None = None) -> None:
        self.name = name
        self.config = config
        self.connections: Mapping[str, ConnectionConfig] = connections or {}
        """The config's ``[connections]``, for notifiers that name one (email's SMTP server)."""

    @abstractmethod
    def failed(self, failures: list[Failure]) -> None:
        """Tell about one failed item, or a digest of several."""

    def recovered(self, flow: str) -> None:
        """Tell that `flow` succeeds again after failures."""
