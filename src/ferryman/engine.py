"""The engine: admit → claim → steps → journal → finalize, on a bounded worker pool.

Sources offer candidates; the journal admits those whose key is new (promise
2) and the engine queues them per flow.  A dispatcher hands queued items to
at most ``workers`` threads, and at most ``concurrency`` per flow (1 keeps
arrival order).  For each item the steps run in order from the first one not
yet done; each completion is journaled, so a crash resumes there.  A failure
is retried by the step's (or the flow's) `RetryPolicy` — the attempt count
lives in the journal — or the item fails: the journal records it, then the
source's ``finalize`` runs, the notifiers hear once, and ``stop_on_error``
pauses the flow.  A success is made durable in the journal *before*
``finalize`` disposes of the original (promise 1).
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ferryman.config import FlowConfig, LoadedConfig
from ferryman.errors import JournalError, PermanentError, StepTimeout, describe
from ferryman.expect import PREFIX as EXPECT_PREFIX
from ferryman.expect import Expectation, overdue
from ferryman.flow import FlowContext, Problem
from ferryman.item import Candidate, Item, Outcome, State, StepRun
from ferryman.journal.base import Journal, LeaseLost
from ferryman.notify import NOTIFIERS, Failure
from ferryman.notify.hub import NotifyHub
from ferryman.retry import RetryPolicy
from ferryman.sources import SOURCES, Source
from ferryman.sources.schedule.config import ScheduleSourceConfig
from ferryman.steps import STEPS, Step, StepContext
from ferryman.transports import TransportPool
from ferryman.transports.local import make_durable
from ferryman.units import format_duration, format_size

log = logging.getLogger("ferryman")

PROBLEM_PREFIX = "problem:"
"""Keys of the journal items that stand for a flow's problems (`ferryman.flow.Problems`)."""
REDISPOSE_FIRST, REDISPOSE_MAX = 30.0, 3600.0
"""A failed disposal is tried again after 30 s, then twice as long each time, at most hourly."""

Listener = Callable[[Item], None]


@dataclass
class Flow:
    """A flow at run time: its source, its steps and its queue."""

    name: str
    config: FlowConfig
    context: FlowContext
    source: Source[Any]
    steps: list[Step[Any]]
    policy: RetryPolicy
    limit: int
    queue: deque[str] = field(default_factory=deque)
    running: int = 0
    paused: bool = False
    held: str | None = None
    """With concurrency 1: the item waiting for its retry, which nothing may overtake (arrival order)."""


class Engine:
    """Runs items of the configured flows.  Thread-safe; `offer` may be called from any thread."""

    def __init__(self, loaded: LoadedConfig, journal: Journal, *, only: Sequence[str] = (),
                 owner: str = "local") -> None:
        config = loaded.config
        self.journal = journal
        self.owner = owner
        self.root = loaded.root
        self.workers = config.ferryman.workers
        self.lease = config.ferryman.lease
        self.transports = TransportPool(config.connections)
        self.flows: dict[str, Flow] = {}
        self.listeners: list[Listener] = []
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        self._known: set[str] = set()
        self._timers: list[tuple[float, str, str]] = []
        self._abandoned: dict[str, threading.Thread] = {}  # item id → attempt that ran past its timeout
        self._running = 0
        self._last_activity = time.monotonic()
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="ferryman-worker")
        self._leased: set[str] = set()  # items claimed and running here: the heartbeat renews them
        self._disposing: set[str] = set()  # disposals held here (running, or failed and retried)
        self._disposal_running: set[str] = set()  # disposals being tried right now
        self._closing = threading.Event()
        self._heartbeat = threading.Thread(target=self._renew_leases, name="ferryman-lease", daemon=True)
        self._heartbeat.start()
        for name, flow_config in config.flows.items():
            if (only and name not in only) or (not only and not flow_config.enabled):
                continue
            self.flows[name] = self._build(loaded, name, flow_config)
        notifiers = {name: NOTIFIERS[n.type](name, n, config.connections)
                     for name, n in config.notify.items()}
        self.hub = NotifyHub(notifiers, {n: f.config.notify for n, f in self.flows.items()},
                             {n: f.config.notify_window for n, f in self.flows.items()})
        paused = journal.paused()
        for name, flow in self.flows.items():
            flow.paused = name in paused
        self.expectations = {
            name: Expectation(name, flow.config.expect, journal,
                              flow.config.source if isinstance(flow.config.source, ScheduleSourceConfig) else None)
            for name, flow in self.flows.items() if flow.config.expect is not None}
        for name in self.expectations:
            if overdue(journal, name) is not None:
                self.hub.failing(name)  # overdue before a restart: the next success still sends the recovery
        self._redispose: dict[str, tuple[float, float, str]] = {}  # item id → (due, delay, flow)
        for flow in self.flows.values():
            self._restore_problems(flow)

    def _build(self, loaded: LoadedConfig, name: str, config: FlowConfig) -> Flow:
        context = FlowContext(flow=name, root=self.root, config_dir=loaded.base_dir,
                              connections=loaded.config.connections, transports=self.transports,
                              journal=self.journal, log=logging.getLogger(f"ferryman.flow.{name}"),
                              config_file=loaded.path)
        context.problems.listener = lambda problem, opened: self._problem(name, problem, opened)
        source = SOURCES[config.source.type](config.source, context)
        implicit = [STEPS[raw["type"]].Config.model_validate(raw)
                    for raw in getattr(source, "implicit_steps", ())]
        steps = [STEPS[s.type](s, context) for s in (*implicit, *config.steps)]
        limit = 1 if source.serial else min(config.concurrency or self.workers, self.workers)
        return Flow(name, config, context, source, steps, config.retry.policy(), limit)

    # ---- feeding -------------------------------------------------------------------------

    def offer(self, flow: str, candidates: Sequence[Candidate]) -> list[Item]:
        """Admit the candidates whose key is new; queue them in their `order`."""
        if not candidates:
            return []
        ordered = sorted(candidates, key=lambda c: (c.order, c.key))
        items = self.journal.admit(flow, ordered)
        target = self.flows[flow]
        if len(items) < len(ordered) and target.source.disposes:
            self._dispose_again(target, {c.key for c in ordered} - {i.key for i in items})
        settled = {c.key: c.settled for c in ordered if c.settled is not None}
        if settled:
            items = [i for i in items if not self._settle(target, i, settled.get(i.key))]
        with self._lock:
            for item in items:
                self._known.add(item.id)
                target.queue.append(item.id)
            if items:
                self._last_activity = time.monotonic()
        self._dispatch()
        return items

    def _settle(self, flow: Flow, item: Item, settled: tuple[State, str] | None) -> bool:
        """Journal an item that ends without running (a missed tick: skipped; a tick whose
        ``for_each`` failed: failed, and notified); False when it is to run."""
        if settled is None:
            return False
        item.state, item.error = settled
        if item.state == State.FAILED:
            item.error_type = "PermanentError"
            log.error("%s: %s failed: %s", flow.name, item.origin, item.error)
            self._failed_without_steps(flow, item)
            return True
        log.warning("%s: %s skipped: %s", flow.name, item.origin, item.error)
        self.journal.finish(item)
        self._finished(flow, item)
        return True

    def _failed_without_steps(self, flow: Flow, item: Item) -> None:
        """Journal an item that failed before any step ran (a settled tick, a problem), tell the
        notifiers once, and the listeners."""
        self.journal.finish(item)
        self.hub.failed(Failure(flow.name, item.id, item.key, item.origin, "-", item.error or "",
                                item.attempts, time.time()))
        self._finished(flow, item)

    # ---- problems: trouble that is not an item's own ------------------------------------------

    def _problem(self, flow_name: str, problem: Problem, opened: bool) -> None:
        """Journal a problem that opened (a failed item, notified once) or cleared (that item
        skipped, with a recovery notice)."""
        flow = self.flows.get(flow_name)
        if flow is None:
            return
        try:
            if opened:
                candidate = Candidate(f"{PROBLEM_PREFIX}{problem.subject}@{time.time():.6f}", (),
                                      {"problem_subject": problem.subject, "problem_kind": "source" if problem.source
                                       else "failure"}, time.time(), problem.origin,
                                      (State.FAILED, problem.message))
                for item in self.journal.admit(flow_name, [candidate]):
                    problem.item_id = item.id
                    item.state, item.error, item.error_type = State.FAILED, problem.message, "Problem"
                    log.error("%s: %s", flow_name, problem.message)
                    self._failed_without_steps(flow, item)
                return
            log.info("%s: cleared: %s", flow_name, problem.message)
            stored = self.journal.get(problem.item_id) if problem.item_id else None
            if stored is not None and stored.state in (State.FAILED, State.PENDING, State.RUNNING):
                stored.state, stored.error = State.SKIPPED, f"cleared: {problem.message}"
                self.journal.finish(stored)
                self._finished(flow, stored)
            if not flow.context.problems.open():
                self.hub.succeeded(flow_name)
        except JournalError as exc:
            log.warning("%s: could not journal the problem %r: %s", flow_name, problem.subject, exc)

    def _restore_problems(self, flow: Flow) -> None:
        """Open problems journaled before a restart: known again (not told again), their
        clearing still sends the recovery, failed disposals are tried again."""
        for item in self.journal.history(flow.name, State.FAILED, 500):
            if not item.key.startswith(PROBLEM_PREFIX) or "problem_subject" not in item.meta:
                continue
            subject = item.meta["problem_subject"]
            flow.context.problems.restore(Problem(subject, item.error or "", item.meta.get("problem_kind") == "source",
                                                  item.origin, item.id))
            self.hub.failing(flow.name)
            if subject.startswith("disposal of item "):
                self._redispose[subject.removeprefix("disposal of item ")] = (time.time(), REDISPOSE_FIRST, flow.name)

    def _retry_disposals(self) -> None:
        """Try the failed disposals that are due again (backing off while they keep failing)."""
        now = time.time()
        due = [(item_id, flow) for item_id, (at, _, flow) in list(self._redispose.items()) if at <= now]
        for item_id, flow_name in due:
            flow = self.flows.get(flow_name)
            item = self.journal.get(item_id)
            if flow is None or item is None or not self._redispose_item(flow, item):
                self._redispose.pop(item_id, None)
                with self._lock:
                    self._disposing.discard(item_id)
                if flow is not None:
                    flow.context.problems.clear(f"disposal of item {item_id}")

    def _redispose_item(self, flow: Flow, item: Item) -> bool:
        """Try a failed (or cut short) disposal again; False when there is none left to do here:
        the item is not finished, its disposal was done, or another instance holds it."""
        if item.state not in (State.DONE, State.FAILED, State.SKIPPED):
            return False
        if item.disposal is None:  # finished before disposals were journaled: as before
            if item.state == State.SKIPPED:
                return False
            self._finalize(flow, item, _outcome(item))
            return True
        if item.disposal != "pending":
            return False
        held = self.journal.claim_disposal(item.id, self.owner, self.lease)
        if held is None:
            return False
        self._dispose(flow, held, _outcome(held))
        return True

    def _dispose_again(self, flow: Flow, keys: set[str]) -> None:
        """Finish the disposal of originals whose item ended but whose disposal was cut off (a
        crash between the journal's commit and the move or delete).  Only a pending disposal
        that no live instance holds is taken (`Journal.claim_disposal`): an instance that merely
        sees a file another one processed never touches it."""
        for key in keys:
            item = self.journal.find(flow.name, key)
            if item is not None and item.disposal == "pending":
                self._take_disposal(flow, item)

    def _take_disposal(self, flow: Flow, item: Item) -> None:
        """Dispose of the original of a finished item whose disposal is pending, if this instance
        holds it or its holder's lease expired; nothing while this process still works on it."""
        with self._lock:  # a failed disposal held here is tried again on each offer, as by its timer
            if item.id in self._known or item.id in self._disposal_running:
                return
        held = self.journal.claim_disposal(item.id, self.owner, self.lease)
        if held is not None:
            if item.id not in self._redispose:
                log.info("%s: finishing the disposal of item %s (%s), cut short", flow.name, held.id,
                         held.origin)
            self._dispose(flow, held, _outcome(held))

    def resume_disposals(self) -> int:
        """Finish the pending disposals no live instance holds (an owner died after `finish`)."""
        count = 0
        for item in self.journal.undisposed([n for n, f in self.flows.items() if f.source.disposes]):
            flow = self.flows.get(item.flow)
            if flow is not None:
                self._take_disposal(flow, item)
                count += 1
        return count

    def resume_unfinished(self) -> int:
        """Queue items left pending or running (a crash, a restart, `ferryman retry`), and finish
        the disposals cut short (`resume_disposals`)."""
        items = self.journal.unfinished(list(self.flows))
        now = time.time()
        with self._lock:
            count = 0
            for item in items:
                if item.id in self._known:
                    continue
                self._known.add(item.id)
                count += 1
                if item.next_attempt_at and item.next_attempt_at > now and item.state == State.PENDING:
                    heapq.heappush(self._timers, (item.next_attempt_at, item.flow, item.id))
                    flow = self.flows[item.flow]
                    if (flow.config.concurrency == 1 or flow.source.in_order) and flow.held is None:
                        flow.held = item.id
                else:
                    self.flows[item.flow].queue.append(item.id)
        self._dispatch()
        try:
            self.resume_disposals()
        except JournalError as exc:
            log.warning("could not look for disposals cut short: %s", exc)
        return count

    def tick(self) -> None:
        """Queue retries that are due, pick up `retry`/`resume` done from the command line,
        send notification digests.  Called a few times a second by the daemon."""
        now = time.time()
        with self._lock:
            while self._timers and self._timers[0][0] <= now:
                _, flow, item_id = heapq.heappop(self._timers)
                target = self.flows[flow]
                if target.held == item_id:
                    target.held = None
                    target.queue.appendleft(item_id)
                else:
                    target.queue.append(item_id)
            paused = self.journal.paused()
            for name, runtime in self.flows.items():
                runtime.paused = name in paused
        self.hub.tick()
        self.check_expectations()
        if self._redispose:
            self._retry_disposals()
        self._dispatch()

    def check_expectations(self) -> None:
        """Journal (and so notify) the ``expect`` windows that closed without a success."""
        now = time.time()
        for name, expectation in self.expectations.items():
            try:
                alerts = expectation.due(now)
            except JournalError as exc:
                log.warning("%s: could not check its expect window: %s", name, exc)
                continue
            if alerts:
                self.offer(name, alerts)

    def refresh(self) -> None:
        """Also look for items queued by other processes (`ferryman retry`), and for disposals
        cut short by an instance that died."""
        self.resume_unfinished()
        self.tick()

    # ---- running -------------------------------------------------------------------------

    def _dispatch(self) -> None:
        with self._lock:
            for flow in self.flows.values():
                while (flow.queue and not flow.paused and flow.held is None and flow.running < flow.limit
                       and self._running < self.workers):
                    item_id = flow.queue.popleft()
                    flow.running += 1
                    self._running += 1
                    self._pool.submit(self._process, flow, item_id)

    def _process(self, flow: Flow, item_id: str) -> None:
        try:
            abandoned = self._abandoned.get(item_id)
            if abandoned is not None and abandoned.is_alive():
                # The attempt that timed out still runs: never start another one beside it.
                with self._lock:
                    heapq.heappush(self._timers, (time.time() + 1.0, flow.name, item_id))
                return
            self._abandoned.pop(item_id, None)
            item = self.journal.claim(item_id, self.owner, self.lease)
            if item is None:  # another instance holds it: look again when its lease may be over
                with self._lock:
                    self._known.discard(item_id)
                return
            with self._lock:
                self._leased.add(item_id)
            self._run(flow, item)
        except LeaseLost as exc:  # another instance took the item over: it is theirs to finish
            log.warning("%s: %s", flow.name, exc)
            with self._lock:
                self._known.discard(item_id)
        except Exception as exc:
            log.exception("internal error while processing item %s of flow %s", item_id, flow.name)
            self._internal_error(flow, item_id, exc)
        finally:
            with self._lock:
                self._leased.discard(item_id)
                flow.running -= 1
                self._running -= 1
                self._last_activity = time.monotonic()
                self._idle.notify_all()
            self._dispatch()

    def _retry_problem(self, flow: Flow, item: Item) -> None:
        """`ferryman retry` on a problem: a failed disposal is tried again now (the item ends
        skipped if it works, failed again if not); any other problem is acknowledged."""
        subject = item.meta.get("problem_subject", "")
        problems = flow.context.problems
        if subject.startswith("disposal of item "):
            problems.restore(Problem(subject, item.error or "", False, item.origin, item.id))
            original = self.journal.get(subject.removeprefix("disposal of item "))
            with self._lock:
                if original is not None:
                    self._disposing.discard(original.id)  # `retry` tries it now, not the timer
            if original is None or not self._redispose_item(flow, original):
                if original is not None:
                    self._redispose.pop(original.id, None)
                problems.clear(subject)
            if subject not in problems:
                return
            item.state = State.FAILED
            log.warning("%s: still %s", flow.name, item.error)
        else:
            problems.forget(subject)
            item.state, item.error = State.SKIPPED, f"acknowledged by `ferryman retry`: {item.error}"
            log.info("%s: %s", flow.name, item.error)
        item.next_attempt_at = None
        self.journal.finish(item)
        self._finished(flow, item)

    def _run(self, flow: Flow, item: Item) -> None:
        if item.key.startswith(PROBLEM_PREFIX):
            self._retry_problem(flow, item)
            return
        if item.key.startswith(EXPECT_PREFIX):  # `ferryman retry` on an overdue alert acknowledges it
            item.state, item.error, item.next_attempt_at = State.DONE, None, None
            log.info("%s: %s: acknowledged", flow.name, item.origin)
            self.journal.finish(item)
            self._finished(flow, item)
            return
        work = self.root / "work" / item.id
        if item.step == 0:
            missing = [p for p in item.files if not p.exists()]
            if missing:
                item.state, item.error = State.SKIPPED, f"vanished before processing: {missing[0]}"
                log.warning("%s: %s, skipped", flow.name, item.error)
                self.journal.finish(item)
                self._finished(flow, item)
                return
        used_work = item.step > 0  # a resumed item may hold files from earlier runs
        began = time.monotonic()
        size = _size(item.files)
        delivered: list[str] = []
        for index in range(item.step, len(flow.steps)):
            step = flow.steps[index]
            attempt_dir = work / f"{index:02d}-{step.config.type}-{item.attempts}"
            if item.attempts > 1 or item.step > 0:  # an earlier attempt (or a crash) may have left it
                shutil.rmtree(attempt_dir, ignore_errors=True)
            timeout = step.config.timeout or flow.config.timeout
            ctx = StepContext(flow=flow.context, item=item, index=index, work_dir=attempt_dir,
                              attempt=max(1, item.attempts),
                              deadline=time.monotonic() + timeout if timeout else None)
            started = time.time()
            try:
                result = _call(step, item, ctx, timeout)
                if ctx.work_path_made and result is not None and result.files is not None:
                    make_durable(result.files, attempt_dir, self.root / "work")
            except Exception as exc:
                if isinstance(exc, _Abandoned):
                    self._abandoned[item.id] = exc.thread
                run = StepRun(item.id, index, step.config.title, started, time.time(), "failed", describe(exc))
                self.journal.step_failed(run)
                self._failed(flow, item, step, exc)
                return
            used_work = used_work or ctx.work_path_made
            if result is not None:
                if result.files is not None:
                    item.files = list(result.files)
                item.meta.update(result.meta)
            outputs = result.outputs if result is not None else {}
            delivered += [str(place) for place in as_list(outputs.get("delivered"))]
            run = StepRun(item.id, index, step.config.title, started, time.time(), "done", None, outputs)
            self.journal.step_done(run, [str(p) for p in item.files], item.meta)
            item.step, item.attempts, item.error, item.error_type = index + 1, 1, None, None
            if result is not None and result.skip:  # nothing left to do: the item ends here
                item.state, item.error = State.SKIPPED, result.skip
                log.info("%s: item %s skipped at %s: %s", flow.name, item.id, step.config.title, result.skip)
                break
        if item.state != State.SKIPPED:
            item.state, item.error = State.DONE, None
        item.next_attempt_at = None
        # Durable before the original is disposed of (promise 1); a source that keeps its
        # originals disposes of nothing, so the commit may join the next group.
        item.disposal = "pending" if flow.source.disposes else None
        self.journal.finish(item, durable=flow.source.disposes)
        self._dispose(flow, item, Outcome(True))
        if used_work or item.attempts > 1:
            shutil.rmtree(work, ignore_errors=True)
        if item.state == State.DONE:
            name = item.meta.get("name") or item.origin
            took = format_duration(round(time.monotonic() - began, 3))
            if delivered:
                log.info("%s: delivered %s (%s) to %s in %s", flow.name, name, format_size(size),
                         ", ".join(delivered), took)
            else:
                log.info("%s: done %s (item %s) in %s", flow.name, name, item.id, took)
            if not flow.context.problems.open():  # no recovery notice while a problem is open
                self.hub.succeeded(flow.name)
        self._finished(flow, item)

    def _failed(self, flow: Flow, item: Item, step: Step[Any], exc: Exception) -> None:
        policy = step.config.retry.policy() if step.config.retry else flow.policy
        error_type = _error_type(exc)
        message = describe(exc)
        retry = not isinstance(exc, PermanentError) and policy.should_retry(
            item.attempts, error_type, item.error_type)
        item.error, item.error_type = message, error_type
        if retry:
            wait = policy.wait(item.attempts)
            item.state, item.next_attempt_at = State.PENDING, time.time() + wait
            log.warning("%s: item %s failed at %s (attempt %d): %s; retrying in %s", flow.name, item.id,
                        step.config.title, item.attempts, message, format_duration(round(wait, 3)))
            self.journal.finish(item)
            with self._lock:
                heapq.heappush(self._timers, (item.next_attempt_at, flow.name, item.id))
                if (flow.config.concurrency == 1 or flow.source.in_order):
                    flow.held = item.id  # later items wait: 1 keeps arrival order, retries included
            return
        item.state, item.next_attempt_at = State.FAILED, None
        log.error("%s: item %s failed at %s after %d attempt(s): %s [%s]", flow.name, item.id,
                  step.config.title, item.attempts, message, item.origin)
        item.disposal = "pending" if flow.source.disposes else None
        self.journal.finish(item)
        self._dispose(flow, item, Outcome(False, message))
        self.hub.failed(Failure(flow.name, item.id, item.key, item.origin, step.config.title,
                                message, item.attempts, time.time()))
        if flow.config.stop_on_error:
            self.journal.pause(flow.name, f"item {item.id} failed: {message}")
            with self._lock:
                flow.paused = True
            log.error("%s: paused after a failure (stop_on_error); `ferryman resume %s` restarts it",
                      flow.name, flow.name)
        self._finished(flow, item)

    def _internal_error(self, flow: Flow, item_id: str, exc: Exception) -> None:
        """A failure outside the steps (the journal, a bug): fail the item loudly instead of leaving
        it running; `ferryman retry` takes it up again."""
        message = f"internal error: {describe(exc)}"
        item = Item(item_id, flow.name, "", "", {}, [], State.FAILED, error=message)
        try:
            stored = self.journal.get(item_id)
            if stored is not None:
                item = stored
                item.state, item.error, item.error_type = State.FAILED, message, _error_type(exc)
                self.journal.finish(item)
        except Exception as again:
            log.error("could not journal the failure of item %s: %s", item_id, describe(again))
        self.hub.failed(Failure(flow.name, item.id, item.key, item.origin, "-", message, item.attempts,
                                time.time()))
        self._finished(flow, item)

    def _dispose(self, flow: Flow, item: Item, outcome: Outcome) -> None:
        """The disposal of a finished item this instance holds: `_finalize`, journaled done
        once it worked; while it fails, its lease is renewed and the timer tries it again."""
        if item.disposal is None:
            self._finalize(flow, item, outcome)
            return
        with self._lock:
            if item.id in self._disposal_running:
                return
            self._disposal_running.add(item.id)
            self._disposing.add(item.id)
        try:
            if not self._finalize(flow, item, outcome):
                return
        finally:
            with self._lock:
                self._disposal_running.discard(item.id)
        with self._lock:
            self._disposing.discard(item.id)
        try:
            if self.journal.disposed(item.id, self.owner):
                item.disposal = "done"
        except JournalError as exc:  # the disposal stays pending: whoever takes it finds it done
            log.warning("%s: could not journal the disposal of item %s: %s", flow.name, item.id, exc)

    def _finalize(self, flow: Flow, item: Item, outcome: Outcome) -> bool:
        """The source disposes of the original; a failure is a problem of the flow (journaled,
        notified, counted by ``run --once``), tried again on a timer until it clears.  True
        when the disposal worked."""
        subject = f"disposal of item {item.id}"
        try:
            flow.source.finalize(item, outcome)
        except Exception as exc:
            message = f"could not dispose of {item.origin} (item {item.id} is {item.state}): {describe(exc)}"
            _, delay, _ = self._redispose.get(item.id, (0.0, REDISPOSE_FIRST / 2, flow.name))
            delay = min(delay * 2, REDISPOSE_MAX)
            self._redispose[item.id] = (time.time() + delay, delay, flow.name)
            if not flow.context.problems.report(subject, message, source=False, origin=item.origin):
                log.debug("%s: %s", flow.name, message)
            log.info("%s: the disposal of item %s is tried again in %s", flow.name, item.id,
                     format_duration(delay))
            return False
        if self._redispose.pop(item.id, None) is not None or subject in flow.context.problems:
            flow.context.problems.clear(subject)
        return True

    def _finished(self, flow: Flow, item: Item) -> None:
        with self._lock:
            self._known.discard(item.id)
        for listener in self.listeners:
            listener(item)

    # ---- waiting and stopping -------------------------------------------------------------

    def busy(self) -> bool:
        """Items queued, running, or waiting for a retry."""
        with self._lock:
            return bool(self._running or self._timers or any(
                f.queue for f in self.flows.values() if not f.paused))

    def idle_for(self) -> float:
        """Seconds since the last item activity (0 while busy, or while a source waits for a file
        to settle)."""
        if any(flow.source.waiting() for flow in self.flows.values()):
            with self._lock:
                self._last_activity = time.monotonic()
            return 0.0
        with self._lock:
            return 0.0 if self.busy() else time.monotonic() - self._last_activity

    def wait_idle(self, stop: threading.Event | None = None) -> None:
        """Block until nothing is queued, running or waiting for a retry."""
        while self.busy() and not (stop and stop.is_set()):
            self.tick()
            with self._lock:
                wait = 0.2
                if self._timers:
                    wait = max(0.01, min(wait, self._timers[0][0] - time.time()))
                self._idle.wait(wait)

    def drain(self, grace: float) -> bool:
        """Stop starting items and wait up to `grace` seconds for running ones; True if all ended."""
        with self._lock:
            for flow in self.flows.values():
                flow.queue.clear()
                flow.held = None
            self._timers.clear()
            deadline = time.monotonic() + grace
            while self._running and time.monotonic() < deadline:
                self._idle.wait(min(0.2, deadline - time.monotonic()))
            return self._running == 0

    def _renew_leases(self) -> None:
        """Every third of a lease, renew the leases of the items running here (one statement), so
        a step longer than the lease keeps its item; a lost one fails its next write (LeaseLost)."""
        while not self._closing.wait(max(self.lease / 3, 0.05)):
            with self._lock:
                running = list(self._leased | self._disposing)
            try:
                if running:
                    self.journal.renew(running, self.owner, self.lease)
            except JournalError as exc:
                log.warning("could not renew the leases of %d running item(s): %s", len(running), exc)

    def close(self) -> None:
        self._closing.set()
        self._heartbeat.join()
        self._pool.shutdown(wait=False, cancel_futures=True)
        for flow in self.flows.values():
            for step in flow.steps:
                try:
                    step.close()
                except Exception as exc:
                    log.warning("%s: closing %s: %s", flow.name, step.config.title, exc)
            flow.source.close()
        self.hub.close()
        self.transports.close()


def _call(step: Step[Any], item: Item, ctx: StepContext, timeout: float | None) -> Any:
    """Run a step, in a helper thread when it has a time limit (a stuck step is abandoned)."""
    if timeout is None:
        return step.run(item, ctx)
    box: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            box["result"] = step.run(item, ctx)
        except BaseException as exc:
            box["error"] = exc
        finally:
            done.set()

    thread = threading.Thread(target=target, name=f"ferryman-step-{item.id}", daemon=True)
    thread.start()
    if not done.wait(timeout):
        raise _Abandoned(f"step {step.config.title} ran past its timeout of {format_duration(timeout)}", thread)
    if "error" in box:
        raise box["error"]
    return box.get("result")


def _outcome(item: Item) -> Outcome:
    """The outcome a finished item's disposal follows (a skipped item's is a success's)."""
    return Outcome(item.state != State.FAILED, item.error)


def as_list(value: object) -> list[object]:
    return list(value) if isinstance(value, list | tuple) else []


def _size(files: Sequence[Any]) -> int:
    """Bytes in the item's files as they came (0 for those that cannot be read)."""
    total = 0
    for path in files:
        with contextlib.suppress(OSError):
            total += path.stat().st_size
    return total


def _error_type(exc: Exception) -> str:
    """The journaled error type: the first public class (an abandoned timeout is a StepTimeout)."""
    return next(c.__name__ for c in type(exc).__mro__ if not c.__name__.startswith("_"))


class _Abandoned(StepTimeout):
    """A step timed out; its thread may still run (Python cannot stop it), so the engine starts no
    other attempt of the item until that thread has ended."""

    def __init__(self, message: str, thread: threading.Thread) -> None:
        super().__init__(message)
        self.thread = thread
