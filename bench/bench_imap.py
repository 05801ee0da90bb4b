"""IMAP source: a poll of a big mailbox with nothing new, and the latency of a new mail with IDLE.

1. Mailboxes of 5,000 and 50,000 mails (1 % of them ITRP export mails already
   handled), nothing new: the time of one `scan()` (cursor set), against the
   old monitor's way — the same server-side SEARCH over the whole mailbox on
   every poll — measured in the same run.
2. A mail arrives: time from APPEND to the candidate being offered, with IDLE,
   against polling (measured with a 2 s interval; a 60 s poll, the old
   monitor's, waits 30 s on average — half the interval).

Run: ``.venv/bin/python bench/bench_imap.py`` (``BENCH_SMALL=1``: 500 / 5,000 mails).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from ferryman.flow import FlowContext
from ferryman.item import Candidate
from ferryman.journal.sqlite import SqliteJournal
from ferryman.sources.imap import ImapSource, ImapSourceConfig
from ferryman.transports import TransportPool
from servers.dovecot import Dovecot, mail

SMALL = bool(os.environ.get("BENCH_SMALL"))
SIZES = (500, 5_000) if SMALL else (5_000, 50_000)
SCANS = 20
ARRIVALS = 10
MATCH = {"from": "itrp", "headers": {"X-ITRP-ExportID": ["777", "779"]}}


def mails(count: int) -> list[bytes]:
    out = []
    for n in range(count):
        export = n % 100 == 0
        out.append((f"From: {'ITRP <noreply@itrp.com>' if export else 'Colleague <c@example.com>'}\r\n"
                    f"To: exports@example.com\r\nSubject: mail {n}\r\nMessage-ID: <m{n}@bench>\r\n"
                    + (f"X-ITRP-ExportID: {777 if n % 200 == 0 else 779}\r\n" if export else "")
                    + f"\r\nBody of mail {n}: https://exports.test/{n}.zip\r\n").encode())
    return out


def source_for(server: Dovecot, user: str, root: Path, journal: SqliteJournal, **extra: object) -> ImapSource:
    flow = FlowContext(flow=user, root=root, config_dir=root, connections={"mail": server.connection(user)},
                       transports=TransportPool({}), journal=journal)
    config = ImapSourceConfig.model_validate({"type": "imap", "connection": "mail", "match": MATCH,
                                              "take": "link", **extra})
    return ImapSource(config, flow)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def poll_benchmark(server: Dovecot, root: Path, journal: SqliteJournal) -> list[tuple[int, float, float]]:
    rows = []
    for size in SIZES:
        user = server.new_user()
        server.write_maildir(user, mails(size))
        with server.client(user) as client:     # let Dovecot index the Maildir (first access)
            info = client.select_folder("INBOX", readonly=True)
            validity, uidnext = int(info[b"UIDVALIDITY"]), int(info[b"UIDNEXT"])
        # Every old mail was handled before: the cursor stands at the newest one.
        journal.set_cursor(user, "imap:INBOX", f"{validity}:{uidnext - 1}")
        source = source_for(server, user, root, journal)
        source.scan()                            # connect and log in once, as the daemon does
        ours = []
        for _ in range(SCANS):
            start = time.perf_counter()
            found = source.scan()
            ours.append(time.perf_counter() - start)
            assert found == []
        source.close()
        # Baseline: the old monitor's poll — the same search over the whole mailbox, every time.
        baseline = []
        with server.client(user) as client:
            client.select_folder("INBOX", readonly=True)
            for _ in range(SCANS):
                start = time.perf_counter()
                client.search(["FROM", "itrp", "HEADER", "X-ITRP-ExportID", ""])
                baseline.append(time.perf_counter() - start)
        rows.append((size, statistics.median(ours), statistics.median(baseline)))
    return rows


def latency(server: Dovecot, root: Path, journal: SqliteJournal, **extra: object) -> float:
    user = server.new_user()
    source = source_for(server, user, root, journal, **extra)
    offered: list[float] = []
    ready = threading.Event()

    def emit(candidates: list[Candidate]) -> None:
        journal.admit(user, candidates)
        offered.extend(time.perf_counter() for _ in candidates)

    stop = threading.Event()
    thread = threading.Thread(target=source.watch, args=(emit, stop), daemon=True)
    thread.start()
    time.sleep(0.5)
    ready.set()
    waits = []
    for n in range(ARRIVALS):
        before = len(offered)
        start = time.perf_counter()
        server.append(user, mail(f"arrival {n}", export_id=777, body=f"https://exports.test/a{n}.zip"))
        deadline = time.monotonic() + 30
        while len(offered) == before and time.monotonic() < deadline:
            time.sleep(0.002)
        waits.append(offered[-1] - start)
        time.sleep(0.3)
    stop.set()
    thread.join(10)
    source.close()
    return statistics.median(waits)


def delivered(server: Dovecot, root: Path) -> float:
    """Median time from APPEND to the attachment delivered by the real `ferryman run` daemon (IDLE)."""
    from support import start_ferryman

    user = server.new_user()
    folder = Path(tempfile.mkdtemp(prefix="ferryman-bench-daemon-", dir=root))
    out = folder / "out"
    config = folder / "ferryman.toml"
    config.write_text(f"""
[connections.mail]
type = "imap"
host = "127.0.0.1"
port = {server.tls_port}
user = "{user}"
password = {{ env = "BENCH_IMAP_PASSWORD" }}
ca_file = "{server.cert}"

[flows.mail.source]
type = "imap"
connection = "mail"
match = {{ headers = {{ "X-ITRP-ExportID" = "777" }} }}
after = {{ move = "Archive" }}

[[flows.mail.steps]]
type = "deliver"
to = "out"
""")
    daemon = start_ferryman("run", "-c", str(config), env={"BENCH_IMAP_PASSWORD": "secret"})
    waits = []
    try:
        for n in range(ARRIVALS + 1):
            name = f"export-{n}.csv"
            start = time.perf_counter()
            server.append(user, mail(f"export {n}", export_id=777, body="attached",
                                     attachments=[(name, b"id,name\n1,Ann\n")]))
            deadline = time.monotonic() + 60
            while not (out / name).exists() and time.monotonic() < deadline:
                time.sleep(0.002)
            if n:  # the first one also waits for the daemon to start
                waits.append(time.perf_counter() - start)
            time.sleep(0.3)
    finally:
        daemon.terminate()
        daemon.communicate(timeout=30)
    return statistics.median(waits)


def main() -> None:
    server = Dovecot()
    server.start()
    root = Path(tempfile.mkdtemp(prefix="ferryman-bench-imap-"))
    journal = SqliteJournal(root / "journal.db")
    try:
        rows = poll_benchmark(server, root, journal)
        print(f"## IMAP poll with nothing new (median of {SCANS} scans)\n")
        print("| mailbox | ferryman scan() (UID cursor) | old way: SEARCH whole mailbox | old / ferryman |")
        print("| ---: | ---: | ---: | ---: |")
        for size, ours, base in rows:
            print(f"| {size:,} mails | {ms(ours)} | {ms(base)} | {base / ours:.1f}x |")
        (small, s_ours, s_base), (big, b_ours, b_base) = rows
        print(f"\n{big // small}x more mail: ferryman's scan takes {b_ours / s_ours:.2f}x the time "
              f"(O(1)); the whole-mailbox search {b_base / s_base:.1f}x.\n")
        idle = latency(server, root, journal, poll_interval="1h")
        polled = latency(server, root, journal, idle=False, poll_interval="2s")
        print(f"## New mail → candidate offered (median of {ARRIVALS} arrivals)\n")
        print("| mode | latency |")
        print("| --- | ---: |")
        print(f"| IDLE (push) | {ms(idle)} |")
        print(f"| polling every 2 s (measured) | {ms(polled)} |")
        print("| polling every 60 s (the old monitor without IDLE; half the interval on average) | 30000.0 ms |")
        print(f"\nIDLE is {polled / idle:.0f}x faster than a 2 s poll and ~{30 / idle:.0f}x faster than a 60 s poll.")
        end_to_end = delivered(server, root)
        print(f"\n## New mail → attachment delivered by `ferryman run` (IDLE), median of {ARRIVALS}\n")
        print("| path | latency |")
        print("| --- | ---: |")
        print(f"| APPEND → file in the destination folder | {ms(end_to_end)} |")
    finally:
        journal.close()
        server.close()


if __name__ == "__main__":
    main()
