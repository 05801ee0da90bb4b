"""Notifiers by ``type``.  Adding one: a module here and a line in `NOTIFIERS`."""

from __future__ import annotations

from typing import Any

from ferryman.notify.base import Failure, Notifier, NotifierConfig
from ferryman.notify.command import CommandNotifier
from ferryman.notify.email import EmailNotifier
from ferryman.notify.log import LogNotifier
from ferryman.notify.webhook import WebhookNotifier

NOTIFIERS: dict[str, type[Notifier[Any]]] = {
    "log": LogNotifier,
    "command": CommandNotifier,
    "email": EmailNotifier,
    "webhook": WebhookNotifier,
}
"""Every notifier type, by its config ``type`` key."""

__all__ = ["NOTIFIERS", "Failure", "Notifier", "NotifierConfig"]
