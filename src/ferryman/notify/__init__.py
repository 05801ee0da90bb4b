"""Notifiers by ``type``.  Adding one: a module here and a line in `NOTIFIERS`.

An entry is ``"module:Class"``, imported the first time a config names its type
(`ferryman.registry`, which also takes ``("package:Class", "package:ConfigModel")``).
"""

from __future__ import annotations

from typing import Any

from ferryman.notify.base import Failure, Notifier, NotifierConfig
from ferryman.registry import Registry

NOTIFIERS: Registry[type[Notifier[Any]]] = Registry({
    "log": "ferryman.notify.log:LogNotifier",
    "command": "ferryman.notify.command:CommandNotifier",
    "email": "ferryman.notify.email:EmailNotifier",
    "webhook": "ferryman.notify.webhook:WebhookNotifier",
})
"""Every notifier type, by its config ``type`` key."""

__all__ = ["NOTIFIERS", "Failure", "Notifier", "NotifierConfig"]
