"""``pg_dump``: a producer step that dumps one PostgreSQL database into the work folder.

- The connection's ``dsn`` (and ``password``) are secrets.  The child gets the address, user and
  database as a connection string *without* the password on its command line; the password goes
  only into a 0600 passfile made for this run (``PGPASSFILE``), deleted afterwards.  An inherited
  ``PGPASSWORD`` is removed from the child's environment.  Nothing secret reaches argv, the log,
  the journal or an error message: pg_dump's stderr is scrubbed of the password before it is
  shown anywhere.
- ``format``: ``custom`` (``-Fc``, default), ``tar`` (``-Ft``), ``plain`` (SQL) or
  ``directory-tar`` (``-Fd``, parallel with ``jobs``, then packed into one ``.tar``).
- The dump is verified before the step succeeds: ``pg_restore --list`` must read the archive
  formats; a plain dump must end with pg_dump's "dump complete" line.
- pg_dump's exit status and (scrubbed) stderr go into the journal, and into the error message
  when it fails.  A server that cannot be reached and a full disk are retried; a wrong password,
  an unknown database or a missing pg_dump fail the item.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from ferryman import templates
from ferryman.connections import PostgresConnection
from ferryman.errors import PermanentError, StepTimeout, TransientError
from ferryman.item import Item
from ferryman.secrets import mask
from ferryman.steps.backup.config import PgDumpConfig
from ferryman.steps.base import Step, StepContext, StepResult
from ferryman.transports.local import os_errors

SUFFIXES = {"custom": ".dump", "tar": ".tar", "plain": ".sql", "directory-tar": ".tar"}
FLAGS = {"custom": "--format=custom", "tar": "--format=tar", "plain": "--format=plain",
         "directory-tar": "--format=directory"}
PLAIN_END = b"-- PostgreSQL database dump complete"

# stderr phrases of libpq/pg_dump that a later attempt may not see again
_TRANSIENT = ("could not connect", "Connection refused", "timeout expired", "server closed the connection",
              "the database system is starting up", "the database system is shutting down",
              "No space left on device", "too many clients", "could not translate host name")


def passfile_line(password: str) -> str:
    """A ``.pgpass`` line matching any server for `password` (``:`` and ``\\`` escaped, as libpq reads them)."""
    return "*:*:*:*:" + password.replace("\\", "\\\\").replace(":", "\\:") + "\n"


class PgDumpStep(Step[PgDumpConfig]):
    """Runs pg_dump once per item; the item then carries the dump (one file)."""

    Config = PgDumpConfig

    def run(self, item: Item, ctx: StepContext) -> StepResult:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        conn = self.flow.connection(self.config.connection, "postgres")
        assert isinstance(conn, PostgresConnection)
        try:
            params: dict[str, Any] = conninfo_to_dict(conn.dsn.reveal())
        except Exception:  # psycopg's message may quote the DSN itself
            raise PermanentError(f"postgres {self.config.connection}: the dsn is not a valid libpq connection "
                                 "string or URL") from None
        password = str(params.pop("password", "") or "")
        if conn.password is not None:
            password = conn.password.reveal()
        if self.config.database:
            params["dbname"] = templates.render(self.config.database, ctx.values())
        database = str(params.get("dbname") or params.get("user") or "postgres")
        suffix = SUFFIXES[self.config.format]
        values = templates.fields_for(flow=self.flow.flow, item=item.id, now=ctx.now,
                                      meta={**item.meta, "database": database, "dump_suffix": suffix})
        target = ctx.work_dir / templates.render_name(self.config.name, values)
        out = target.with_name(target.name + ".d") if self.config.format == "directory-tar" else target
        argv = [self.config.pg_dump, FLAGS[self.config.format], f"--file={out}", "--no-password",
                *([f"--jobs={self.config.jobs}"] if self.config.format == "directory-tar" else []),
                *self.config.extra_args, f"--dbname={make_conninfo(**params)}"]
        secrets = [s for s in (password, conn.dsn.reveal()) if s]
        started = time.monotonic()
        stderr = self._dump(argv, password, secrets, database, ctx)
        outputs: dict[str, Any] = {"database": database, "format": self.config.format, "exit": 0}
        if stderr:
            outputs["stderr"] = stderr
        if self.config.verify:
            outputs["verified"] = self._verify(out, database)
        if self.config.format == "directory-tar":
            with os_errors("pg_dump: cannot write"), tarfile.open(target, "w") as tar:
                tar.add(out, arcname=target.stem)
            shutil.rmtree(out, ignore_errors=True)
        outputs.update(file=target.name, bytes=target.stat().st_size,
                       seconds=round(time.monotonic() - started, 3))
        return StepResult(files=[target], meta={"database": database}, outputs=outputs)

    def _dump(self, argv: list[str], password: str, secrets: list[str], database: str,
              ctx: StepContext) -> str:
        """Run pg_dump with the password in a passfile; its scrubbed stderr (warnings) on success."""
        env = {k: v for k, v in os.environ.items() if k not in ("PGPASSWORD", "PGPASSFILE")}
        passfile = None
        if password:
            self.flow.root.mkdir(parents=True, exist_ok=True)
            fd, passfile = tempfile.mkstemp(prefix=".pgpass-", dir=self.flow.root)  # 0600, ours alone
            with os.fdopen(fd, "w") as f:
                f.write(passfile_line(password))
            env["PGPASSFILE"] = passfile
        timeout = max(ctx.deadline - time.monotonic(), 0.1) if ctx.deadline is not None else None
        try:
            done = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, timeout=timeout, check=False)
        except FileNotFoundError:
            raise PermanentError(f"pg_dump: program {self.config.pg_dump!r} not found (install postgresql-client, "
                                 "or set pg_dump = \"/usr/lib/postgresql/VERSION/bin/pg_dump\")") from None
        except PermissionError:
            raise PermanentError(f"pg_dump: program {self.config.pg_dump!r} cannot be run (permission denied)") \
                from None
        except subprocess.TimeoutExpired:
            raise StepTimeout(f"pg_dump {database}: stopped after the step's timeout") from None
        finally:
            if passfile:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(passfile)
        text = mask(done.stderr.decode("utf-8", "replace"), secrets)
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if done.returncode != 0:
            why = "; ".join(lines[-3:]) or "no message"
            message = f"pg_dump {database} exited with {done.returncode}: {why}"
            if any(phrase in text for phrase in _TRANSIENT):
                raise TransientError(message)
            raise PermanentError(message)
        return "\n".join(lines[-20:])

    def _verify(self, out: Path, database: str) -> str:
        """Read the dump back: pg_restore --list for archives, the closing line for plain SQL."""
        if self.config.format == "plain":
            with open(out, "rb") as f:
                f.seek(max(out.stat().st_size - 4096, 0))
                if PLAIN_END not in f.read():
                    raise TransientError(f"pg_dump {database}: the SQL dump does not end with pg_dump's "
                                         "'dump complete' line (cut short?)")
            return "plain dump complete"
        restore = str(Path(self.config.pg_dump).with_name("pg_restore")) if os.sep in self.config.pg_dump \
            else "pg_restore"
        try:
            done = subprocess.run([restore, "--list", str(out)], stdin=subprocess.DEVNULL, capture_output=True,
                                  check=False)
        except FileNotFoundError:
            raise PermanentError(f"pg_dump: cannot verify the dump: {restore!r} not found (install "
                                 "postgresql-client, or set verify = false)") from None
        if done.returncode != 0:
            why = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise TransientError(f"pg_dump {database}: pg_restore --list cannot read the dump: "
                                 f"{why[-1] if why else 'exit ' + str(done.returncode)}")
        entries = sum(1 for line in done.stdout.splitlines() if line and not line.startswith(b";"))
        return f"pg_restore --list: {entries} entries"


__all__ = ["PgDumpStep", "passfile_line"]
