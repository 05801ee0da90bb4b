"""The ``ferryman`` command: a thin layer that parses, calls and prints.

Exit codes: 0 success; 1 some item (or connection check) failed; 2 usage,
config or start-up error (a second daemon on the same root included).

Each command imports what it uses inside its function: ``ferryman --help`` loads click and
nothing of pydantic, and ``check`` and ``status`` load the config models of the types the
file names (`ferryman.config`), not the daemon.  tests/core/test_startup.py holds the line.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from ferryman import __version__
from ferryman.errors import ConfigError, FerrymanError, describe
from ferryman.item import Item, State
from ferryman.redact import redact

if TYPE_CHECKING:
    from ferryman.config import LoadedConfig
    from ferryman.journal import Journal


def fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"ferryman: {message}", err=True)
    sys.exit(code)


def load(path: str | None) -> LoadedConfig:
    from ferryman import config as config_module

    try:
        return config_module.load(path)
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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ferryman")
def main() -> None:
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
                   "(the old imap_user_name; the password is read from $FERRYMAN_IMAP_PASSWORD).")
@click.option("--to", metavar="FOLDER",
              help="itrp: folder to store exports in; becomes the first deliver step's to "
                   "(the old to; default /tmp/exports).")
@click.option("--ftp", metavar="HOST",
              help="itrp: FTP host to upload exports to; becomes [connections.ftp] host and a second "
                   "deliver step (the old to_ftp).")
@click.option("--ftp-dir", metavar="DIR",
              help='itrp: folder on the FTP host; becomes that second deliver step\'s to = "ftp://ftp/DIR" '
                   "(the old to_ftp_dir).")
def init(template: str, output: str, force: bool, **options: Any) -> None:
    """Write a commented starter config (templates: folder, itrp)."""
    import inspect

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
    click.echo(f"wrote {target}; check it with: ferryman check -c {target}")


@main.command()
@config_option
@click.option("--connect", is_flag=True, help="Also log in to every connection and list its remote path.")
def check(config_path: str | None, connect: bool) -> None:
    """Validate the config; print every problem (exit 2 when there is one)."""
    loaded = load(config_path)
    for warning in loaded.warnings:
        click.echo(f"warning: {warning}", err=True)
    config = loaded.config
    problems = _schedule_problems(loaded)
    if problems:
        for problem in problems:
            click.echo(f"ferryman: {problem}", err=True)
        sys.exit(2)
    flows = ", ".join(config.flows) or "none"
    click.echo(f"{loaded.path}: ok — flows: {flows}; connections: {len(config.connections)}; "
               f"notifiers: {len(config.notify)}")
    if not connect:
        return
    from ferryman.probe import PROBES

    failed = 0
    for name, conn in config.connections.items():
        probe: Callable[[str, Any], str] | None = PROBES.get(conn.type)
        if probe is None:
            click.echo(f"  {name} ({conn.type}): not checked (no probe for this type)")
            continue
        try:
            click.echo(f"  {name} ({conn.type}): ok — {probe(name, conn)}")
        except Exception as exc:
            failed += 1
            click.echo(f"  {name} ({conn.type}): FAILED — {describe(exc)}")
    if failed:
        sys.exit(1)


def _schedule_problems(loaded: LoadedConfig) -> list[str]:
    """What the config model cannot see: a ``for_each`` file that cannot be read."""
    problems = []
    for name, flow in loaded.config.flows.items():
        if flow.source.type != "schedule":
            continue
        from ferryman.sources.schedule.each import check_file

        if problem := check_file(flow.source, loaded.base_dir):  # type: ignore[arg-type]
            problems.append(f"flows.{name}.source.{problem}")
    return problems


@main.command()
@config_option
@click.option("--once", is_flag=True, help="Handle what is there now, wait for it, exit (1 if any failed).")
@click.option("--flow", "flows", multiple=True, metavar="NAME", help="Only run this flow (repeatable).")
@click.option("--exit-when-idle", metavar="DURATION", help="Exit after this long without work (e.g. 10m).")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages to stderr.")
@click.option("-q", "--quiet", is_flag=True, help="Log only warnings and errors to stderr.")
@click.option("--now", "by_hand", is_flag=True,
              help="With --once: run the schedule flows once now, instead of the ticks that are due.")
@click.option("--each", "each", multiple=True, metavar="VALUE",
              help="Only this for_each value of the schedule flows (repeatable), e.g. --each cioc_a.")
def run(config_path: str | None, once: bool, flows: tuple[str, ...], exit_when_idle: str | None,
        verbose: bool, quiet: bool, by_hand: bool, each: tuple[str, ...]) -> None:
    """Run the flows: the daemon, or one pass with --once (schedule flows: the ticks that are due)."""
    from ferryman import logs
    from ferryman.daemon import Daemon
    from ferryman.progress import Progress
    from ferryman.units import parse_duration

    if by_hand and not once:
        fail("--now runs a schedule flow once: use it with --once")
    loaded = load(config_path)
    idle = None
    if exit_when_idle is not None:
        try:
            idle = parse_duration(exit_when_idle)
        except ValueError as exc:
            fail(f"--exit-when-idle: {exc}")
    logs.setup(loaded.config.ferryman.log, loaded.root, verbose=int(verbose), quiet=quiet)
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
    if once:
        _summary(daemon.report.finished, daemon.report.delivered)
    sys.exit(code)


def _summary(items: list[Item], delivered: dict[str, list[str]]) -> None:
    if not items:
        click.echo("nothing to do")
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
def status(config_path: str | None, as_json: bool) -> None:
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
        for item in failed:
            click.echo(f"  {item.id}  {item.flow}  {display.when(item.updated_at)}  {display.short(item.error, 80)}")


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
def history(config_path: str | None, flow: str | None, state: str | None, limit: int, as_json: bool) -> None:
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
         display.short(i.error or i.origin, 80)) for i in items])


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
@click.option("--flow", help="With --failed: every failed item of this flow.")
@click.option("--failed", is_flag=True, help="Retry every failed item of --flow.")
def retry(config_path: str | None, item_ids: tuple[str, ...], flow: str | None, failed: bool) -> None:
    """Queue failed items again (a running daemon picks them up within seconds)."""
    if not item_ids and not (flow and failed):
        fail("name items to retry, or use --flow NAME --failed")
    loaded = load(config_path)
    with journal_of(loaded) as journal:
        for wanted in item_ids:
            item = journal.get(wanted)
            gone = [p for p in item.files if not p.exists()] if item and item.step == 0 else []
            if item and gone:
                fail(f"item {item.id}: its original {gone[0]} is no longer there (moved by after_failure, "
                     "or deleted); put the file back and touch it: it is then picked up as a new item", 1)
        changed = journal.retry(item_ids, flow if failed else None)
    if not changed:
        fail("no failed item matched", 1)
    click.echo(f"queued again: {', '.join(changed)}")


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
