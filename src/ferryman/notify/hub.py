"""Notification policy for every notifier: once per failed item, digests, recovery notices.

The first failure of a flow is told at once; further failures within the
flow's ``notify_window`` are gathered and told as one digest when the window
closes.  When an item of a flow succeeds after failures were told, each
notifier hears ``recovered``.  Notifiers run on the hub's own thread, so a
slow mail server never holds up a worker.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial

from ferryman.notify.base import Failure, Notifier

log = logging.getLogger("ferryman.notify")


@dataclass
class _FlowState:
    window_until: float = 0.0
    pending: list[Failure] = field(default_factory=list)
    failing: bool = False


class NotifyHub:
    """Routes failures of flows to their notifiers (by name), grouped per `windows[flow]`."""

    def __init__(self, notifiers: Mapping[str, Notifier[object]], routes: Mapping[str, list[str]],  # type: ignore[type-var]
                 windows: Mapping[str, float]) -> None:
        self._notifiers = notifiers
        self._routes = routes
        self._windows = windows
        self._state: dict[str, _FlowState] = {}
        self._lock = threading.Lock()
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="ferryman-notify", daemon=True)
        self._thread.start()

    def failed(self, failure: Failure) -> None:
        if not self._routes.get(failure.flow):
            return
        now = time.time()
        with self._lock:
            state = self._state.setdefault(failure.flow, _FlowState())
            state.failing = True
            if now >= state.window_until:
                state.window_until = now + self._windows.get(failure.flow, 60.0)
                self._send(failure.flow, [failure])
            else:
                state.pending.append(failure)

    def failing(self, flow: str) -> None:
        """Mark a flow as failing without telling anyone (it was told before a restart): its
        next success sends the recovery notice."""
        with self._lock:
            self._state.setdefault(flow, _FlowState()).failing = True

    def succeeded(self, flow: str) -> None:
        with self._lock:
            state = self._state.get(flow)
            if state is None or not state.failing:
                return
            state.failing = False
            self._flush(flow, state)
            for notifier in self._targets(flow):
                self._jobs.put(partial(notifier.recovered, flow))

    def tick(self) -> None:
        """Send digests whose window has closed (called regularly by the engine)."""
        now = time.time()
        with self._lock:
            for flow, state in self._state.items():
                if state.pending and now >= state.window_until:
                    self._flush(flow, state)

    def close(self, timeout: float = 10.0) -> None:
        with self._lock:
            for flow, state in self._state.items():
                self._flush(flow, state)
        self._jobs.put(None)
        self._thread.join(timeout)

    def _flush(self, flow: str, state: _FlowState) -> None:
        if state.pending:
            batch, state.pending = state.pending, []
            self._send(flow, batch)

    def _targets(self, flow: str) -> list[Notifier[object]]:  # type: ignore[type-var]
        return [self._notifiers[name] for name in self._routes.get(flow, []) if name in self._notifiers]

    def _send(self, flow: str, failures: list[Failure]) -> None:
        for notifier in self._targets(flow):
            self._jobs.put(partial(notifier.failed, failures))

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except Exception as exc:  # a broken notifier must not stop the others
                log.error("notifier failed: %s", exc)
