"""The daemon: one thread per source, the engine's workers, signals, the pid file, ``--once``.

SIGTERM/SIGINT stop the sources, let running steps finish for ``grace``
seconds and exit (what is cut off resumes at the next start); SIGHUP reloads
the config (an invalid new config is logged and the old one kept).  A pid
file under ``root``, locked with flock, refuses a second ferryman on the same
root and journal.

Under systemd (``Type=notify``, `ferryman.sdnotify`) the daemon says READY=1 once every source
has been through its first round, STATUS= with the backlog and failures, RELOADING=1 and
STOPPING=1.  With ``WatchdogSec`` it sends WATCHDOG=1 from the serve loop, and only right after
a tick of the engine returned (its lock taken, the journal read, queued items dispatched) while
every source thread lives: a hung journal, a deadlocked engine or a dead watcher stops the
pings, and systemd restarts the service (docs/operations.md, "systemd").
"""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from ferryman import config as config_module
from ferryman.config import LoadedConfig
from ferryman.engine import Engine, Flow, as_list
from ferryman.errors import ConfigError, FerrymanError, describe
from ferryman.item import Candidate, Item, State
from ferryman.journal import open_journal
from ferryman.pidfile import pid_lock
from ferryman.retention import RetentionTimer, prune_configured
from ferryman.sdnotify import FirstRound, Notifier, status_line
from ferryman.sources.schedule import ScheduleSource

log = logging.getLogger("ferryman")

READY_WAIT = 60.0
"""Seconds READY=1 waits at most for the sources' first round (below systemd's start timeout)."""


class Exit:
    """The exit codes of ``run --once`` (and ``check``): what a crontab line can trust."""

    OK = 0
    FAILED = 1
    """Some item failed (in this run, or is still waiting for `ferryman retry`), or a disposal failed."""
    CONFIG = 2
    """The config is invalid (or the command line is)."""
    UNREADABLE = 3
    """A source could not be read: a folder missing or unreadable, a file unreadable, a server unreachable."""
    PAUSED = 4
    """A flow is paused (stop_on_error): what arrives for it waits."""


@dataclass
class RunReport:
    """What a ``run --once`` did."""

    finished: list[Item] = field(default_factory=list)
    delivered: dict[str, list[str]] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)
    """The source problems still open at the end (exit 3)."""
    waiting_failed: int = 0
    """Failed items of the flows run, this run's and earlier ones' (exit 1)."""
    paused: list[str] = field(default_factory=list)
    """The flows that are paused (exit 4)."""

    @property
    def failed(self) -> list[Item]:
        return [i for i in self.finished if i.state == State.FAILED]

    @property
    def code(self) -> int:
        """The most basic trouble wins: unreadable sources, then failures, then paused flows."""
        if self.unreadable:
            return Exit.UNREADABLE
        if self.failed or self.waiting_failed:
            return Exit.FAILED
        return Exit.PAUSED if self.paused else Exit.OK


class Daemon:
    """Runs the flows of a config until stopped (or, with `once`, until the work found now is done)."""

    def __init__(self, loaded: LoadedConfig, *, only: Sequence[str] = (), once: bool = False,
                 exit_when_idle: float | None = None,
                 progress: Callable[[int, Item | None], None] | None = None,
                 now: bool = False, each: Sequence[str] = ()) -> None:
        self.loaded = loaded
        self.only = list(only)
        self.once = once
        self.now = now
        """``run --once --now``: run the schedule flows once now instead of their due ticks."""
        self.each = list(each)
        """``run --each``: only these ``for_each`` values of the schedule flows."""
        self.exit_when_idle = exit_when_idle
        self.progress = progress
        self.report = RunReport()
        self.stop = threading.Event()
        self.reload = threading.Event()
        self._threads: list[threading.Thread] = []
        self._source_stop = threading.Event()
        self._rounds: dict[str, FirstRound] = {}
        self.systemd = Notifier(None)
        self._pinged = 0.0
        self._dead = False  # a source thread ended: said once
        self._status = ""

    def run(self) -> int:
        """Run; returns the exit code (0 ok, 1 some item failed in `once` mode)."""
        root = self.loaded.root
        root.mkdir(parents=True, exist_ok=True)
        if not self.once:
            self._install_signals()  # before the pid file exists: a signal sent then is handled
            self.systemd = Notifier.from_environment()
        try:
            with pid_lock(root):
                journal = open_journal(self.loaded.config.ferryman.journal, root)
                try:
                    return self._run(journal)
                finally:
                    journal.close()
        finally:
            self.systemd.close()

    def _engine(self, journal: Any) -> Engine:
        missing = [f for f in self.only if f not in self.loaded.config.flows]
        if missing:
            raise ConfigError(f"no flow named {missing[0]!r}; flows are: {', '.join(self.loaded.config.flows)}")
        # Stable across restarts (a restarted daemon resumes its own items at once) and unique per
        # instance (instances sharing a PostgreSQL journal never take each other's running items).
        owner = f"{socket.gethostname()}:{self.loaded.root}"
        engine = Engine(self.loaded, journal, only=self.only, owner=owner)
        try:
            if self.now or self.each:
                self._select(engine)
        except ConfigError:
            engine.close()
            raise
        engine.listeners.append(self._finished)
        return engine

    def _select(self, engine: Engine) -> None:
        """``--now`` and ``--each`` apply to schedule flows only: refuse them for any other."""
        option = "--now" if self.now else "--each"
        others = [name for name, flow in engine.flows.items() if not isinstance(flow.source, ScheduleSource)]
        if others and (self.only or len(others) == len(engine.flows)):
            flow = engine.flows[others[0]]
            raise ConfigError(f"{option}: flow {others[0]!r} has a {flow.config.source.type} source; "
                              f"{option} works on schedule flows (pick them with --flow)")
        for name in others:
            engine.flows.pop(name).source.close()
        for flow in engine.flows.values():
            assert isinstance(flow.source, ScheduleSource)
            flow.source.selected(self.each)

    def _finished(self, item: Item) -> None:
        self.report.finished.append(item)
        if self.progress:
            self.progress(0, item)

    def _run(self, journal: Any) -> int:
        for name, flow in self.loaded.config.flows.items():
            wanted = flow.retry_failed_on_start and (not self.only or name in self.only)
            if wanted and (again := journal.retry((), name)):
                log.info("%s: %d failed item(s) queued again (retry_failed_on_start)", name, len(again))
        engine = self._engine(journal)
        retention = RetentionTimer(lambda: self.loaded, journal)  # keep_history: prunes hourly
        try:
            if self.once:
                return self._once(engine)
            log.info("ferryman %d started: %s", os.getpid(), ", ".join(engine.flows) or "no flows")
            retention.start()
            while True:
                self._start_sources(engine)
                engine.resume_unfinished()
                self._serve(engine)
                stopping = not self.reload.is_set() or self.stop.is_set()
                if stopping:
                    self.systemd.stopping()
                else:
                    self.systemd.reloading()
                self._stop_sources()
                grace = self.loaded.config.ferryman.grace
                if stopping:
                    if not self._drain(engine, grace):
                        _cut_short(journal)
                    return 0
                # A reload starts no item before the running ones ended: none may run twice.
                while not self._drain(engine, grace):
                    log.warning("reload waits for running items to finish")
                    if self.stop.is_set():
                        self.systemd.stopping()
                        _cut_short(journal)
                self.reload.clear()
                engine = self._reloaded(engine, journal)
        finally:
            retention.close()
            engine.close()

    def _reloaded(self, engine: Engine, journal: Any) -> Engine:
        """The engine of the reloaded config; on any problem, the running one (already drained)."""
        running = self.loaded
        try:
            self.loaded = config_module.load(running.path)
            fresh = self._engine(journal)
        except (ConfigError, FerrymanError) as exc:
            problems = exc.problems if isinstance(exc, ConfigError) else [describe(exc)]
            for problem in problems:
                log.error("reload refused: %s", problem)
            log.error("keeping the running configuration")
            self.loaded = running
            return engine
        except Exception as exc:
            log.exception("reload refused: %s; keeping the running configuration", describe(exc))
            self.loaded = running
            return engine
        engine.close()
        log.info("configuration reloaded from %s", self.loaded.path)
        return fresh

    def _once(self, engine: Engine) -> int:
        resumed = engine.resume_unfinished()
        found = 0
        for name, flow in engine.flows.items():
            if flow.paused:
                log.warning("%s is paused (`ferryman resume %s` to restart it)", name, name)
                continue
            try:
                if self.now:
                    assert isinstance(flow.source, ScheduleSource)
                    candidates = flow.source.by_hand()
                else:
                    candidates = list(flow.source.scan())
            except ConfigError:
                raise  # the command line asked for what the config does not have (--each): exit 2
            except FerrymanError as exc:
                flow.context.problems.report(f"source {name}", f"cannot read the source: {describe(exc)}",
                                             origin=flow.config.source.type)
                continue
            flow.context.problems.clear(f"source {name}")
            found += len(engine.offer(name, candidates))
        engine.check_expectations()
        if self.progress:
            self.progress(found + resumed, None)
        engine.wait_idle(self.stop)
        engine.journal.flush()
        for item in self.report.finished[:50]:
            if item.state == State.DONE:
                self.report.delivered[item.id] = [
                    str(place) for run in engine.journal.steps(item.id)
                    for place in as_list(run.outputs.get("delivered"))
                ]
        self._judge(engine)
        prune_configured(self.loaded.config, engine.journal)  # keep_history, for runs from cron
        return self.report.code

    def _judge(self, engine: Engine) -> None:
        """What `run --once` exits with: open source problems, failed items, paused flows."""
        counts = engine.journal.counts()
        for name, flow in engine.flows.items():
            self.report.unreadable += [p.message for p in flow.context.problems.open() if p.source]
            self.report.waiting_failed += counts.get(name, {}).get(str(State.FAILED), 0)
            if flow.paused:
                self.report.paused.append(name)

    def _serve(self, engine: Engine) -> None:
        started = last_refresh = time.monotonic()
        ready = False
        while not self.stop.is_set() and not self.reload.is_set():
            self.stop.wait(0.2)
            engine.tick()
            self._alive(sources=True)
            if not ready and self.systemd.enabled and self._watching(started):
                ready = True
                self._status = status_line(engine)
                self.systemd.ready(self._status)
            if time.monotonic() - last_refresh > 2.0:
                engine.refresh()
                last_refresh = time.monotonic()
                if ready:
                    self._tell_status(engine)
            if self.exit_when_idle is not None and engine.idle_for() >= self.exit_when_idle:
                log.info("idle for %ss, exiting (--exit-when-idle)", round(engine.idle_for()))
                self.stop.set()

    # ---- telling systemd (sdnotify) ------------------------------------------------------------

    def _watching(self, started: float) -> bool:
        """Every source has been through its first round (or READY_WAIT is over: say which not)."""
        waiting = [name for name, first in self._rounds.items() if not first.done.is_set()]
        if waiting and time.monotonic() - started >= READY_WAIT:
            log.warning("still waiting for the first scan of %s; telling systemd ready anyway",
                        ", ".join(waiting))
            return True
        return not waiting

    def _alive(self, *, sources: bool) -> None:
        """WATCHDOG=1, at most every half of WATCHDOG_USEC, called only from the loop it vouches for."""
        interval = self.systemd.watchdog_interval
        if interval is None or time.monotonic() - self._pinged < interval:
            return
        if sources and (dead := [t.name for t in self._threads if not t.is_alive()]):
            if not self._dead:
                log.error("source thread %s ended: no more watchdog pings, systemd restarts ferryman", dead[0])
            self._dead = True
            return
        self._pinged = time.monotonic()
        self.systemd.watchdog()

    def _drain(self, engine: Engine, grace: float) -> bool:
        """`engine.drain(grace)`, in pieces short enough for the watchdog between them."""
        deadline = time.monotonic() + grace
        piece = min(grace, self.systemd.watchdog_interval or grace)
        while True:
            if engine.drain(max(0.0, min(piece, deadline - time.monotonic()))):
                return True
            if time.monotonic() >= deadline:
                return False
            self._alive(sources=False)

    def _tell_status(self, engine: Engine) -> None:
        if self.systemd.enabled and (line := status_line(engine)) != self._status:
            self._status = line
            self.systemd.status(line)

    def _start_sources(self, engine: Engine) -> None:
        self._source_stop = threading.Event()
        self._rounds = {}
        for name, flow in engine.flows.items():
            self._rounds[name] = first = FirstRound(self._source_stop)
            thread = threading.Thread(target=self._watch, args=(engine, name, flow, first),
                                      name=f"ferryman-source-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _watch(self, engine: Engine, name: str, flow: Flow, first: FirstRound) -> None:
        """Keep a source watching; a crashed watcher is logged and restarted with back-off."""
        delay = 1.0
        stop = first.shared  # this loop's own looks must not count as the source's

        def emit(candidates: list[Candidate]) -> None:
            flow.context.problems.clear(f"source {name}")
            engine.offer(name, candidates)

        while not stop.is_set():
            try:
                flow.source.watch(emit, first)
                return
            except Exception as exc:
                first.done.set()  # its problem is reported: READY need not wait for it
                flow.context.problems.report(f"source {name}", f"cannot read the source: {describe(exc)}",
                                             origin=flow.config.source.type)
                log.warning("%s: source stopped: %s; restarting in %ss", name, describe(exc), int(delay))
                stop.wait(delay)
                delay = min(delay * 2, 300.0)

    def _stop_sources(self) -> None:
        self._source_stop.set()
        for thread in self._threads:
            thread.join(10)
        self._threads.clear()

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def on_stop(signum: int, frame: FrameType | None) -> None:
            log.info("%s received: finishing running steps (grace %ss)", signal.Signals(signum).name,
                     int(self.loaded.config.ferryman.grace))
            self.stop.set()

        def on_hup(signum: int, frame: FrameType | None) -> None:
            log.info("SIGHUP received: reloading the configuration")
            self.reload.set()

        faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1 PID` dumps every thread's stack
        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)


def _cut_short(journal: Any) -> None:
    """Steps still run after the grace period: end the process now, as a crash would (they resume
    at the next start), holding the pid lock to the very end so nobody runs them twice meanwhile."""
    log.warning("grace period over; unfinished items resume at the next start")
    journal.flush()
    logging.shutdown()
    os._exit(0)
