"""Notifiers by ``type``.  Adding one: a module here and a line in `NOTIFIERS`."""

from __future__ import annotations

from typing import Any

from ferryman.notify.base import Failure, Notifier, NotifierConfig

NOTIFIERS: dict[str, type[Notifier[Any]]] = {
}
"""Every notifier type, by its config ``type`` key."""

__all__ = ["NOTIFIERS", "Failure", "Notifier", "NotifierConfig"]
