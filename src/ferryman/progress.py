"""Progress of ``run --once``: a rich bar on a terminal, a plain line every few seconds otherwise."""

from __future__ import annotations

import sys
import threading
import time

from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress

from ferryman.item import Item


class Progress:
    """`update(total, None)` sets the number of items found; `update(0, item)` counts one finished."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = 0
        self._done = 0
        self._failed = 0
        self._last_line = 0.0
        self._bar: RichProgress | None = None
        self._task: object = None
        self._tty = sys.stderr.isatty()

    def update(self, total: int, item: Item | None) -> None:
        with self._lock:
            if item is None:
                self._total = total
                if self._tty and total > 1 and self._bar is None:
                    self._bar = RichProgress(TextColumn("[bold]ferryman"), BarColumn(),
                                             MofNCompleteColumn(), TimeRemainingColumn(),
                                             transient=True)
                    self._bar.start()
                    self._task = self._bar.add_task("items", total=total, completed=self._done)
                return
            self._done += 1
            self._failed += item.state == "failed"
            if self._bar is not None:
                self._bar.update(self._task, completed=self._done)  # type: ignore[arg-type]
            elif not self._tty and self._total > 100 and time.monotonic() - self._last_line > 5:
                self._last_line = time.monotonic()
                print(f"progress: {self._done}/{self._total} items, {self._failed} failed",
                      file=sys.stderr, flush=True)

    def close(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.stop()
                self._bar = None
