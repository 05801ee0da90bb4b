"""The ``ferryman`` command: a thin layer that parses, calls and prints.

Exit codes: 0 success; 1 some item (or connection check) failed; 2 usage,
config or start-up error (a second daemon on the same root included).

Each command imports what it uses inside its function: ``ferryman --help`` loads click and
nothing of pydantic, and ``check`` and ``status`` load the config models of the types the
file names (`ferryman.config`), not the daemon.  tests/core/test_startup.py holds the line.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

import click

from ferryman import __version__
from ferryman.errors import ConfigError, FerrymanError, describe
from ferryman.item import Item, State, StepRun
from ferryman.redact import redact, redact_data


class _Later:
    """A module imported on first use: ``--help`` pays for none of what the commands need."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        import importlib

        return getattr(importlib.import_module(self._name), attribute)


if TYPE_CHECKING:
    from ferryman import config as config_module
    from ferryman import display, logs
    from ferryman.config import LoadedConfig
    from ferryman.daemon import RunReport
    from ferryman.journal import Journal
else:
    config_module, display, logs = (_Later(f"ferryman.{name}") for name in ("config", "display", "logs"))


def fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"ferryman: {message}", err=True)
    sys.exit(code)


def load(path: str | None, *, need_flows: bool = False) -> LoadedConfig:
    """The config named by ``-c`` (after the subcommand, else before it), ``$FERRYMAN_CONFIG`` or
    ``./ferryman.toml``; every problem printed, exit 2."""
    try:
        loaded = config_module.load(path or _root_config())
        if need_flows and not loaded.config.flows:
            raise ConfigError(f"{loaded.path}: no flows: declare one as [flows.NAME] with a source and steps "
                              "(`ferryman init` writes a commented example)")
        return loaded
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(f"error: {problem}", err=True)
        n = len(exc.problems)
        fail(f"{n} problem{'s' if n != 1 else ''} in the configuration", 2)


@contextmanager
def journal_of(loaded: LoadedConfig) -> Iterator[Journal]:
    from ferryman.journal import open_journal

    try:
        journal = open_journal(loaded.config.ferryman.journal, loaded.root)
    except FerrymanError as exc:
        fail(describe(exc))
    try:
        yield journal
    finally:
        journal.close()


config_option = click.option(
    "-c", "--config", "config_path", metavar="FILE",
    help="Config file (default: $FERRYMAN_CONFIG, else ./ferryman.toml).")


EXIT_CODES = """\b
Exit codes (run --once and check):
  0  everything is fine
  1  some items failed (in this run, or still waiting for retry), or a disposal failed
  2  the config (or the command line) is invalid
  3  a source could not be read: a folder missing or unreadable, a server unreachable
  4  a flow is paused (stop_on_error), so what arrives for it waits"""


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_CODES)
@click.version_option(__version__, prog_name="ferryman")
@click.option("-c", "--config", "config_path", metavar="FILE",
              help="Config file for every subcommand (default: $FERRYMAN_CONFIG, else ./ferryman.toml).")
def main(config_path: str | None) -> None:
    """Carry scheduled data exports from where they arrive to where they are needed, exactly once."""


@main.command(epilog="itrp: everything else (mailbox, archive, unzip, sub_dirs, the csv_* options, the download "
                     "step's ca_file, notifications) is written into the file, commented where it is off; "
                     "docs/migrating-from-itrp.md maps every option of the old monitor.")
@click.argument("template", default="folder")
@click.option("--output", "-o", metavar="FILE", default="ferryman.toml", show_default=True,
              help="File to write ('-' for stdout).")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.option("--export-id", "export_ids", metavar="ID", type=int, multiple=True,
              help='itrp: an export id to pick up (repeatable); becomes the imap source\'s '
                   'match.headers."X-ITRP-ExportID" list (the old export.ids).')
@click.option("--email", metavar="ADDRESS",
              help="itrp: the mailbox the exports are sent to; becomes [connections.mail] user "
                   "(the old imap_user_name; the password is read from $FERRYMAN_IMAP_PASSWORD). "
                   "cioc: where log digests and failure notices go.")
@click.option("--to", metavar="FOLDER",
              help="itrp: folder to store exports in; becomes the first deliver step's to "
                   "(the old to; default /tmp/exports). cioc: the download folder (one folder per database in "
                   "it). backup: the backup folder (default /srv/backups).")
@click.option("--ftp", metavar="HOST",
              help="itrp: FTP host to upload exports to; becomes [connections.ftp] host and a second "
                   "deliver step (the old to_ftp).")
@click.option("--ftp-dir", metavar="DIR",
              help='itrp: folder on the FTP host; becomes that second deliver step\'s to = "ftp://ftp/DIR" '
                   "(the old to_ftp_dir).")
@click.option("--database", "databases", metavar="NAME", multiple=True,
              help="cioc: a database to export (repeatable); becomes the downloads flow's for_each "
                   "(the old -a DatabaseName).")
@click.option("--logs", metavar="FOLDER", help="cioc: the log root (CIOC_LOG_ROOT); one folder per instance.")
def init(template: str, output: str, force: bool, **options: Any) -> None:
    """Write a commented starter config (templates: folder, itrp, cioc, backup, piexporter)."""
    from ferryman.presets import PRESETS

    preset = PRESETS.get(template)
    if preset is None:
        fail(f"no template {template!r}; templates are: {', '.join(sorted(PRESETS))}")
    accepted = inspect.signature(preset).parameters
    given = {k: v for k, v in options.items() if v not in (None, ())}
    unused = [k for k in given if k not in accepted]
    if unused:
        fail(f"template {template!r} takes no --{unused[0].replace('_', '-').removesuffix('s')}")
    try:
        text = preset(**given)
    except (TypeError, ValueError) as exc:
        fail(f"template {template!r}: {exc}")
    if output == "-":
        click.echo(text, nl=False)
        return
    target = Path(output)
    if target.exists() and not force:
        fail(f"{target} exists; use --force to replace it")
    target.write_text(text, encoding="utf-8")
    made = _make_watched_folders(target)
    also = f" and made the watched folder{'s' if len(made) > 1 else ''} {', '.join(made)}" if made else ""
    click.echo(f"wrote {target}{also}; check it with: ferryman check -c {target}")


def _make_watched_folders(target: Path) -> list[str]:
    """The folders a new config watches, made when missing, so that its first `check` passes."""
    try:
        loaded = config_module.load(target)
    except ConfigError:
        return []
    made = []
    for flow in loaded.config.flows.values():
        for folder in getattr(flow.source, "folders", []) if flow.source.type == "folder" else []:
            path = Path(folder).expanduser()
            path = path if path.is_absolute() else loaded.base_dir / path
            if not path.exists():
                try:
                    path.mkdir(parents=True)
                except OSError:
                    continue
                made.append(folder)
    return made


@main.command(epilog=EXIT_CODES)
@config_option
@click.option("--connect", is_flag=True,
              help="Also log in to every connection and look at each mailbox, bucket and folder the flows name "
                   "(a delivery place gets a small .ferryman-check file, written and removed).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document, for scripts.")
def check(config_path: str | None, connect: bool, as_json: bool) -> None:
    """Validate the config and look for what would fail: one line per problem, with its key and line."""
    from ferryman import preflight

    try:
        loaded = config_module.load(config_path or _root_config())
    except ConfigError as exc:
        path = _config_file(config_path)
        findings = [preflight.Finding(*_split(problem)) for problem in exc.problems]
        _report_check(path, None, findings, {}, [], as_json)
        return
    findings = preflight.local(loaded)
    connections: dict[str, dict[str, object]] = {}
    places: list[str] = []
    if connect:
        from ferryman.probe import PROBES

        for name, conn in loaded.config.connections.items():
            probe: Callable[[str, Any], str] | None = PROBES.get(conn.type)
            if probe is None:
                connections[name] = {"type": conn.type, "ok": None, "detail": "not checked (no probe for this type)"}
                continue
            try:
                connections[name] = {"type": conn.type, "ok": True, "detail": probe(name, conn)}
            except Exception as exc:
                connections[name] = {"type": conn.type, "ok": False, "detail": describe(exc)}
                findings.append(preflight.Finding(f"connections.{name}", describe(exc), preflight.code_of(exc)))
        for seen in preflight.remote(loaded):
            if isinstance(seen, preflight.Finding):
                findings.append(seen)
            else:
                places.append(seen)
    _report_check(loaded.path, loaded, findings, connections, places, as_json)


def _root_config() -> str | None:
    context = click.get_current_context(silent=True)
    return context.find_root().params.get("config_path") if context else None


def _config_file(path: str | None) -> Path:
    try:
        return config_module.find_config(path or _root_config())
    except ConfigError:
        return Path(path or _root_config() or config_module.DEFAULT_FILE)


def _split(problem: str) -> tuple[str, str]:
    key, sep, message = problem.partition(": ")
    return (key, message) if sep and " " not in key else ("", problem)


def _report_check(path: Path, loaded: LoadedConfig | None, findings: list[Any],
                  connections: dict[str, dict[str, object]], places: list[str], as_json: bool) -> None:
    """Print what `check` found and exit: 2 when the config is wrong, 3 when a source cannot be
    read (the config is right), 0 when nothing is wrong."""
    from ferryman import preflight

    try:
        lines = preflight.lines_of(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        lines = {}
    code = max((f.code for f in findings), default=0, key=lambda c: (c == 2, c))
    warnings = loaded.warnings if loaded else []
    if as_json:
        display.print_json({
            "config": str(path), "ok": not findings, "code": code,
            "flows": list(loaded.config.flows) if loaded else [],
            "warnings": warnings,
            "problems": [{**f.as_dict(), "line": preflight.line_of(lines, f.key) if f.key else None}
                         for f in findings],
            **({"connections": connections, "places": places} if connections or places else {}),
        })
        sys.exit(code)
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    for finding in findings:
        line = preflight.line_of(lines, finding.key) if finding.key else None
        at = f" (line {line})" if line else ""
        click.echo(redact(f"error: {finding}{at}" if finding.key else f"error: {finding.message}"), err=True)
    if loaded and not findings:
        config = loaded.config
        click.echo(f"{loaded.path}: ok — flows: {', '.join(config.flows)}; connections: "
                   f"{len(config.connections)}; notifiers: {len(config.notify)}")
    for name, seen in connections.items():
        state = {True: "ok — ", False: "FAILED — ", None: ""}[seen["ok"]]  # type: ignore[index]
        click.echo(redact(f"  {name} ({seen['type']}): {state}{seen['detail']}"))
    for place in places:
        click.echo(redact(f"  {place}"))
    if findings:
        n = len(findings)
        fail(f"{n} problem{'s' if n != 1 else ''} in the configuration {path}", code)


@main.command(epilog=EXIT_CODES)
@config_option
@click.option("--once", is_flag=True, help="Handle what is there now, wait for it, exit (1 if any failed).")
@click.option("--flow", "flows", multiple=True, metavar="NAME", help="Only run this flow (repeatable).")
@click.option("--exit-when-idle", metavar="DURATION", help="Exit after this long without work (e.g. 10m).")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages to stderr.")
@click.option("-q", "--quiet", is_flag=True,
              help="Log only warnings and errors; with --once, print nothing when all is well (exit 0).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: one JSON object per log line (for journald, Loki).")
@click.option("--now", "by_hand", is_flag=True,
              help="With --once: run the schedule flows once now, instead of the ticks that are due.")
@click.option("--each", "each", multiple=True, metavar="VALUE",
              help="Only this for_each value of the schedule flows (repeatable), e.g. --each cioc_a.")
def run(config_path: str | None, once: bool, flows: tuple[str, ...], exit_when_idle: str | None,
        verbose: bool, quiet: bool, log_format: str, by_hand: bool, each: tuple[str, ...]) -> None:
    """Run the flows: the daemon, or one pass with --once (schedule flows: the ticks that are due)."""
    from ferryman import logs
    from ferryman.daemon import Daemon
    from ferryman.progress import Progress
    from ferryman.units import parse_duration

    if by_hand and not once:
        fail("--now runs a schedule flow once: use it with --once")
    loaded = load(config_path, need_flows=True)
    idle = None
    if exit_when_idle is not None:
        try:
            idle = parse_duration(exit_when_idle)
        except ValueError as exc:
            fail(f"--exit-when-idle: {exc}")
    logs.setup(loaded.config.ferryman.log, loaded.root, verbose=int(verbose), quiet=quiet, form=log_format)
    progress = Progress() if once and not quiet else None
    daemon = Daemon(loaded, only=flows, once=once, exit_when_idle=idle,
                    progress=progress.update if progress else None, now=by_hand, each=each)
    try:
        code = daemon.run()
    except FerrymanError as exc:
        fail(describe(exc))
    except OSError as exc:
        fail(f"cannot use the state folder {loaded.root}: {exc.strerror or exc}")
    finally:
        if progress:
            progress.close()
    if once and not (quiet and code == 0):
        _summary(daemon.report)
    sys.exit(code)


def _summary(report: RunReport) -> None:
    """What ``run --once`` did, and why it exits as it does."""
    items, delivered = report.finished, report.delivered
    if not items and report.code == 0:
        click.echo("nothing to do")
        return
    _items_summary(items, delivered)
    shown = {i.error for i in items}
    for message in report.unreadable:
        if message not in shown:
            click.echo(redact(f"cannot read: {message}"))
    earlier = report.waiting_failed - len(report.failed)
    if earlier > 0:
        click.echo(f"{earlier} failed item{'s' if earlier != 1 else ''} from earlier runs still wait: "
                   "`ferryman status` lists them; `ferryman retry` or `ferryman dismiss` them")
    for flow in report.paused:
        click.echo(f"{flow} is paused: what arrives for it waits (`ferryman resume {flow}`)")
    if report.code:
        click.echo(f"exit {report.code}: {EXIT_MEANING[report.code]}")


EXIT_MEANING = {1: "some items failed", 2: "the config is invalid", 3: "a source could not be read",
                4: "a flow is paused"}


def _items_summary(items: list[Item], delivered: dict[str, list[str]]) -> None:
    if not items:
        return
    for shown, item in enumerate(items):
        if shown == 20:
            click.echo(f"… and {len(items) - shown} more (see `ferryman history`)")
            break
        if item.state == State.DONE:
            where = delivered.get(item.id, [])
            target = f" → {', '.join(where)}" if where else ""
            click.echo(redact(f"done     {item.flow}: {item.origin}{target}"))
        else:
            click.echo(redact(f"{item.state!s:8} {item.flow}: {item.origin}: {item.error}"))
    counts: dict[str, int] = {}
    for item in items:
        counts[str(item.state)] = counts.get(str(item.state), 0) + 1
    click.echo(", ".join(f"{n} {state}" for state, n in sorted(counts.items())))


@main.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@click.option("--wide", is_flag=True, help="Print every error whole (not cut to the terminal).")
def status(config_path: str | None, as_json: bool, wide: bool) -> None:
    """Flows, backlog, failures and paused flows."""
    from ferryman import display
    from ferryman.pidfile import running_pid

    loaded = load(config_path)
    with journal_of(loaded) as journal:
        counts = journal.counts()
        paused = journal.paused()
        failed = journal.history(state=State.FAILED, limit=10)
        failed_steps = {i.id: journal.steps(i.id) for i in failed} if as_json else {}
        schedules = {name: _schedule_status(journal, name, flow.source)
                     for name, flow in loaded.config.flows.items() if flow.source.type == "schedule"}
        late = _overdue(journal, loaded)
    pid = running_pid(loaded.root)
    states = [str(s) for s in State]
    if as_json:
        display.print_json({
            "daemon": {"running": pid is not None, "pid": pid},
            "flows": {name: {"states": {s: counts.get(name, {}).get(s, 0) for s in states},
                             "paused": paused.get(name),
                             **({"schedule": schedules[name]} if name in schedules else {}),
                             **({"overdue": {"since": late[name].meta.get("window_end"), "item": late[name].id,
                                             "expected": late[name].origin}} if name in late else {})}
                      for name in loaded.config.flows},
            "recent_failures": [display.item_dict(i, failed_steps[i.id]) for i in failed],
        })
        return
    click.echo(f"daemon: {'running, pid ' + str(pid) if pid else 'not running'} (root {loaded.root})")
    rows = []
    for name, flow in loaded.config.flows.items():
        c = counts.get(name, {})
        note = "paused: " + display.short(paused[name], 50) if name in paused else (
            "" if flow.enabled else "disabled")
        if name in late:
            note = f"OVERDUE since {late[name].meta.get('window_end')}" + (f"; {note}" if note else "")
        rows.append((name, *(str(c.get(s, 0)) for s in states), note))
    display.table(None, ("flow", *states, ""), rows)
    if schedules:
        click.echo("\nschedules:")
        display.table(None, ("flow", "last tick", "result", "next tick"), [
            (name, s["last_tick"] or "-", s["last_state"] or "-", f"{s['next_tick']} ({s['zone']})")
            for name, s in schedules.items()])
    if failed:
        click.echo("\nrecent failures:")
        room = 100_000 if wide or not sys.stdout.isatty() else max(30, shutil.get_terminal_size().columns - 40)
        for item in failed:
            line = f"  {item.id}  {item.flow}  {display.when(item.updated_at)}  "
            click.echo(line + display.short(item.error, max(30, room - len(item.flow)) if not wide else 100_000))


def _overdue(journal: Journal, loaded: LoadedConfig) -> dict[str, Item]:
    """The alert item of each flow whose ``expect`` window passed without a success."""
    expecting = [name for name, flow in loaded.config.flows.items() if flow.expect is not None]
    if not expecting:
        return {}
    from ferryman.expect import overdue

    return {name: alert for name in expecting if (alert := overdue(journal, name)) is not None}


def _schedule_status(journal: Journal, flow: str, source: Any) -> dict[str, str | None]:
    """A schedule flow's last tick (and how it ended) and its next tick, in the flow's zone."""
    from ferryman.sources.schedule.timing import Clock, iso, zone_of

    zone, name = zone_of(source)
    last = next(iter(journal.history(flow, None, 1)), None)
    return {"last_tick": last.meta.get("tick") if last else None, "last_state": str(last.state) if last else None,
            "last_item": last.id if last else None,
            "next_tick": iso(Clock(source.cron, source.every, zone).after(datetime.now(zone))), "zone": name}


@main.command()
@config_option
@click.option("--flow", help="Only this flow.")
@click.option("--state", type=click.Choice([str(s) for s in State]), help="Only items in this state.")
@click.option("--limit", default=50, show_default=True, help="At most this many items.")
@click.option("--json", "as_json", is_flag=True, help="A JSON list.")
@click.option("--wide", is_flag=True, help="Print every origin and error whole (not cut to the terminal).")
def history(config_path: str | None, flow: str | None, state: str | None, limit: int, as_json: bool,
            wide: bool) -> None:
    """Items, newest first."""
    from ferryman import display

    loaded = load(config_path)
    with journal_of(loaded) as journal:
        items = journal.history(flow, State(state) if state else None, limit)
        steps = {i.id: journal.steps(i.id) for i in items} if as_json else {}
    if as_json:
        display.print_json([display.item_dict(i, steps[i.id]) for i in items])
        return
    display.table(None, ("id", "flow", "state", "tries", "updated", "origin / error"), [
        (i.id, i.flow, str(i.state), str(i.attempts), display.when(i.updated_at),
         display.short(i.error or i.origin, 100_000 if wide else 160)) for i in items], shrink=5, wide=wide)


@main.command()
@config_option
@click.argument("item_id")
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@click.option("--reveal", is_flag=True,
              help="Print URLs whole: query strings (a pre-signed link's signature) and user-info included.")
def show(config_path: str | None, item_id: str, as_json: bool, reveal: bool) -> None:
    """One item: every step, timings, errors, outputs (URLs redacted, unless --reveal)."""
    from ferryman import display

    loaded = load(config_path)
    with journal_of(loaded) as journal:
        item = journal.get(item_id)
        if item is None:
            fail(f"no item {item_id!r} (ids are shown by `ferryman history`)", 1)
        steps = journal.steps(item.id)
    if as_json:
        display.print_json(display.item_dict(item, steps), reveal=reveal)
    else:
        display.show_item(item, steps, reveal=reveal)


@main.command()
@config_option
@click.argument("item_ids", nargs=-1)
@click.option("--flow", "flows", multiple=True, metavar="NAME", help="With --failed: only this flow (repeatable).")
@click.option("--failed", is_flag=True, help="Retry every failed item (of every flow, or of --flow).")
def retry(config_path: str | None, item_ids: tuple[str, ...], flows: tuple[str, ...], failed: bool) -> None:
    """Queue failed items again (a running daemon picks them up within seconds)."""
    if not item_ids and not failed:
        fail("name items to retry, or use --failed (with --flow NAME for one flow)")
    loaded = load(config_path)
    with journal_of(loaded) as journal:
        for wanted in item_ids:
            item = journal.get(wanted)
            gone = [p for p in item.files if not p.exists()] if item and item.step == 0 else []
            if item and gone:
                fail(f"item {item.id}: its original {gone[0]} is no longer there (moved by after_failure, "
                     "or deleted); put the file back and touch it: it is then picked up as a new item, "
                     f"or `ferryman dismiss {item.id}`", 1)
        changed = journal.retry(item_ids)
        for flow in _flows_named(loaded, flows) if failed else []:
            changed += journal.retry((), flow)
    if not changed:
        fail("no failed item matched", 1)
    click.echo(f"queued again: {', '.join(changed)}")


@main.command()
@config_option
@click.argument("item_ids", nargs=-1)
@click.option("--flow", "flows", multiple=True, metavar="NAME", help="With --failed: only this flow (repeatable).")
@click.option("--failed", is_flag=True, help="Dismiss every failed item (of every flow, or of --flow).")
def dismiss(config_path: str | None, item_ids: tuple[str, ...], flows: tuple[str, ...], failed: bool) -> None:
    """Give up on failed items: they end skipped (their key stays known, nothing runs again),
    and no longer count in `status` or the exit code of run --once."""
    if not item_ids and not failed:
        fail("name items to dismiss, or use --failed (with --flow NAME for one flow)")
    loaded = load(config_path)
    dismissed = []
    with journal_of(loaded) as journal:
        items = [journal.get(wanted) for wanted in item_ids]
        for wanted, item in zip(item_ids, items, strict=True):
            if item is None or item.state != State.FAILED:
                why = f"it is {item.state}" if item else "ids are shown by `ferryman history`"
                fail(f"no failed item {wanted!r} ({why})", 1)
        for flow in _flows_named(loaded, flows) if failed else []:
            items += journal.history(flow, State.FAILED, 100_000)
        for item in items:
            assert item is not None
            item.state, item.error = State.SKIPPED, f"dismissed by hand: {item.error}"
            item.next_attempt_at = None
            journal.finish(item)
            dismissed.append(item.id)
    if not dismissed:
        fail("no failed item matched", 1)
    click.echo(f"dismissed: {', '.join(dismissed)}")


def _flows_named(loaded: LoadedConfig, flows: tuple[str, ...]) -> list[str]:
    unknown = [f for f in flows if f not in loaded.config.flows]
    if unknown:
        fail(f"no flow named {unknown[0]!r}; flows are: {', '.join(loaded.config.flows)}")
    return list(flows or loaded.config.flows)


@main.command()
@config_option
@click.argument("flow")
def resume(config_path: str | None, flow: str) -> None:
    """Lift the pause of a flow stopped by stop_on_error."""
    loaded = load(config_path)
    if flow not in loaded.config.flows:
        fail(f"no flow named {flow!r}; flows are: {', '.join(loaded.config.flows)}")
    with journal_of(loaded) as journal:
        was = journal.resume(flow)
    click.echo(f"{flow} resumed" if was else f"{flow} was not paused")


@main.command()
@config_option
@click.argument("path")
def why(config_path: str | None, path: str) -> None:
    """Why a file (a local path, or sftp://CONN/path …) has or has not been picked up."""
    from ferryman.engine import Engine

    loaded = load(config_path)
    target = path if "://" in path else str(Path(path).expanduser().resolve())
    answered = False
    with journal_of(loaded) as journal:
        engine = Engine(loaded, journal, only=list(loaded.config.flows))
        try:
            for name, flow in engine.flows.items():
                reason = flow.source.explain(target)
                if reason is None:
                    continue
                answered = True
                click.echo(redact(f"{name}: {reason}"))
                key_of = getattr(flow.source, "key_of", None)
                key = key_of(target) if key_of else None
                item = journal.find(name, key) if key else None
                if item is not None:
                    detail = f": {item.error}" if item.error else ""
                    click.echo(redact(f"{name}: journal: item {item.id} is {item.state}{detail} "
                                      f"(`ferryman show {item.id}`)"))
                elif key:
                    click.echo(f"{name}: journal: not seen yet in its current form")
        finally:
            engine.close()
    if not answered:
        fail(f"{target} is not watched by any flow", 1)


@main.command(epilog="The rebuilt files are byte for byte what the live flow wrote for those days; "
              "recovery_report.txt in FOLDER says what was read and written.")
@config_option
@click.argument("flow")
@click.option("--into", "into", required=True, metavar="FOLDER",
              help="A new or empty folder for the rebuilt CSVs (never the live one).")
@click.option("--from", "start", metavar="YYYY-MM-DD", help="First day of backups to rebuild (default: all).")
@click.option("--to", "end", metavar="YYYY-MM-DD", help="Last day of backups to rebuild (default: all).")
def recover(config_path: str | None, flow: str, into: str, start: str | None, end: str | None) -> None:
    """Rebuild an http flow's CSVs from its raw backups (decrypt_fields and append_csv again)."""
    from datetime import date

    from ferryman.recover import recover as rebuild

    loaded = load(config_path)
    try:
        days = [date.fromisoformat(d) if d else None for d in (start, end)]
    except ValueError as exc:
        fail(f"--from/--to: {exc} (write days as YYYY-MM-DD)")
    try:
        report = rebuild(loaded, flow, Path(into), days[0], days[1])
    except ConfigError as exc:
        fail("; ".join(exc.problems))
    except FerrymanError as exc:
        fail(describe(exc), 1)
    for path, rows in sorted(report.rows.items()):
        click.echo(f"{path}: {rows} row(s)")
    click.echo(f"{report.records} record(s) rebuilt into {Path(into)}; see recovery_report.txt there")


@main.command("import-benchmark")
@config_option
@click.argument("flow")
@click.argument("file", type=click.Path(dir_okay=False))
def import_benchmark(config_path: str | None, flow: str, file: str) -> None:
    """Take PIExporter's benchMark.json as the high-water marks of an http flow."""
    from ferryman.pidfile import running_pid
    from ferryman.sources.http.benchmark import import_benchmark as take
    from ferryman.sources.http.config import HttpSourceConfig

    loaded = load(config_path)
    target = loaded.config.flows.get(flow)
    if target is None:
        fail(f"no flow named {flow!r}; flows are: {', '.join(loaded.config.flows)}")
    if not isinstance(target.source, HttpSourceConfig):
        fail(f"flow {flow!r} has a {target.source.type} source; benchmarks are for http flows")
    pid = running_pid(loaded.root)
    if pid is not None:
        fail(f"ferryman (pid {pid}) is running on {loaded.root}; stop it first")
    with journal_of(loaded) as journal:
        try:
            lines = take(journal, flow, Path(file))
        except ConfigError as exc:
            fail("; ".join(exc.problems))
    for line in lines:
        click.echo(line)


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def convert(file: str) -> None:
    """Print the ferryman TOML equivalent of a Rattail File Monitor INI file."""
    try:
        from ferryman.compat.rattail import to_toml
    except ImportError:
        fail("the rattail converter is not available in this build")
    try:
        click.echo(to_toml(Path(file)), nl=False)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(f"error: {problem}", err=True)
        sys.exit(2)


# -- journal: retention (prune, vacuum, export) -------------------------------------------------


@main.group("journal")
def journal_group() -> None:
    """Keep the journal small: prune old items, give the space back, export an archive first.

    A pruned item leaves a tombstone of its key, so an original still in its source is never
    carried twice (docs/journal.md, "Retention").
    """


def _duration_option(name: str, value: str | None) -> float | None:
    from ferryman.units import parse_duration

    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        fail(f"{name}: {exc}")


@journal_group.command("prune")
@config_option
@click.option("--older", metavar="DURATION",
              help="Prune done and skipped items last updated longer ago than this (default: "
                   "[ferryman] keep_history).")
@click.option("--failed-older", metavar="DURATION",
              help="Prune failed items too, when older than this (default: [ferryman] keep_failed; "
                   "else failed items stay). A pruned failed item is never retried.")
@click.option("--dry-run", is_flag=True, help="Only count what would be pruned.")
def journal_prune(config_path: str | None, older: str | None, failed_older: str | None, dry_run: bool) -> None:
    """Remove old finished items and their step runs; their keys stay as tombstones."""
    from ferryman.retention import describe_report, retention_of
    from ferryman.units import format_size

    done_age, failed_age = _duration_option("--older", older), _duration_option("--failed-older", failed_older)
    loaded = load(config_path)
    settings = loaded.config.ferryman
    if done_age is None and failed_age is None and settings.keep_history is None and settings.keep_failed is None:
        fail("nothing says what to prune: give --older 30d (or --failed-older), "
             "or set keep_history in [ferryman]")
    with journal_of(loaded) as journal:
        try:
            retention = retention_of(loaded.config, journal, older=done_age, failed_older=failed_age)
            report = journal.prune(retention, dry_run=dry_run)
            size = journal.size()
        except FerrymanError as exc:
            fail(describe(exc), 1)
    line = describe_report(report, dry_run=dry_run)
    if not dry_run and report.total:
        line += f"; the journal takes {format_size(size)} (`ferryman journal vacuum` gives the space back)"
    click.echo(line)


@journal_group.command("vacuum")
@config_option
@click.option("--full", is_flag=True,
              help="PostgreSQL: VACUUM FULL, which returns the space to the file system but locks each "
                   "table while it is rewritten (SQLite always rewrites the file).")
def journal_vacuum(config_path: str | None, full: bool) -> None:
    """Give the space of pruned items back (SQLite: rewrite the file; PostgreSQL: VACUUM)."""
    from ferryman.units import format_size

    loaded = load(config_path)
    with journal_of(loaded) as journal:
        try:
            before = journal.size()
            journal.vacuum(full=full)
            after = journal.size()
        except FerrymanError as exc:
            fail(describe(exc), 1)
    click.echo(f"vacuumed {redact(getattr(journal, 'where', 'the journal'))}: "
               f"{format_size(before)} → {format_size(after)}")


@journal_group.command("export")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Write JSON (the one format): a list of items, "
              "each with its steps, as `history --json` shows them (URLs redacted).")
@click.option("--older", metavar="DURATION", help="Only items last updated longer ago than this "
              "(what `journal prune --older` with the same value would look at).")
@click.option("--flow", help="Only this flow.")
@click.option("--output", "-o", metavar="FILE", help="Write to FILE (made complete, then renamed into "
              "place; an existing file is not replaced) instead of stdout.")
def journal_export(config_path: str | None, as_json: bool, older: str | None, flow: str | None,
                   output: str | None) -> None:
    """Write every item of the journal, oldest first, streamed: an archive before pruning."""
    import time

    if not as_json:
        fail("journal export writes JSON only: add --json")
    age = _duration_option("--older", older)
    before = None if age is None else time.time() - age
    target = Path(output) if output else None
    if target is not None and target.exists():
        fail(f"{target} exists; remove it or name another file")
    loaded = load(config_path)
    with journal_of(loaded) as journal:
        if target is None:
            try:
                count = _write_export(journal.export(before, flow), sys.stdout)
                sys.stdout.flush()
            except OSError as exc:
                _drop_stdout()
                fail(f"cannot write the export to stdout: {exc.strerror or describe(exc)}", 1)
            except FerrymanError as exc:
                fail(describe(exc), 1)
            return
        partial = target.with_name(target.name + ".in_progress")
        try:
            with partial.open("x", encoding="utf-8") as out:
                count = _write_export(journal.export(before, flow), out)
                out.flush()
                os.fsync(out.fileno())
            partial.rename(target)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            fail(f"cannot write {target}: {exc.strerror or describe(exc)}", 1)
        except FerrymanError as exc:
            partial.unlink(missing_ok=True)
            fail(describe(exc), 1)
    click.echo(f"exported {count:,} item{'' if count == 1 else 's'} to {target}")


def _write_export(items: Iterator[tuple[Item, list[StepRun]]], out: TextIO) -> int:
    """A JSON list, one item per line, written as the journal yields them; the number written."""
    count = 0
    out.write("[")
    for item, steps in items:
        out.write(",\n" if count else "\n")
        json.dump(redact_data(display.item_dict(item, steps)), out, ensure_ascii=False, default=str)
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush does not fail a second time."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


@main.group("service")
def service_group() -> None:
    """Run ferryman as a systemd service."""


@service_group.command("install")
@config_option
@click.option("--user", metavar="NAME", help="Run as this user (and its primary group); default: root.")
@click.option("--print", "to_stdout", is_flag=True, help="Print the unit instead of writing it.")
@click.option("--output", "-o", metavar="FILE", default="/etc/systemd/system/ferryman.service", show_default=True,
              help="Where the unit is written.")
@click.option("--force", is_flag=True, help="Replace an existing unit file.")
def service_install(config_path: str | None, user: str | None, to_stdout: bool, output: str, force: bool) -> None:
    """Write a systemd unit for this config: Type=notify, watchdog, reload on SIGHUP, restart on
    failure, and a file system read-only but for the folders the config writes."""
    import grp
    import pwd

    from ferryman import service

    group = None
    if user is not None:
        try:
            account = pwd.getpwnam(user)
        except KeyError:
            fail(f"--user {user}: no such user on this machine")
        try:
            group = grp.getgrgid(account.pw_gid).gr_name
        except KeyError:
            group = str(account.pw_gid)
    target = Path(output)
    if not to_stdout and target.exists() and not force:
        fail(f"{target} exists; give --force to replace it (or --print to see the new unit)")
    loaded = load(config_path, need_flows=True)
    writable = service.writable_paths(loaded)
    text = service.unit_text(loaded, writable, user=user, group=group)
    for note in writable.notes:
        click.echo(f"note: {note}", err=True)
    if to_stdout:
        click.echo(text, nl=False)
        return
    partial = target.with_name(f".{target.name}.in_progress")
    try:
        partial.write_text(text, encoding="utf-8")
        partial.chmod(0o644)
        partial.rename(target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        fail(f"cannot write {target}: {exc.strerror or describe(exc)} (run as root, or --print > FILE)", 1)
    if user is None:
        click.echo("note: the service runs as root; give --user NAME to run it as another user", err=True)
    click.echo(f"wrote {target}\nnext: systemctl daemon-reload && systemctl enable --now {target.stem}")
