"""``decrypt_fields``: decrypt the fields of each record whose names match (``*RSA``).

Each value is base64, then RSA with PKCS#1 v1.5 (PIExporter's keys) or OAEP (SHA-1 / SHA-256),
then UTF-8, through `cryptography`.  The PEM key and its passphrase are secret references.
A field that fails follows ``on_error`` (decryption, UTF-8) or ``on_bad_base64``: ``fail`` the
item, ``keep`` the value as it came, or write it ``empty``; the log names the field and the record
id, never a value.  Plaintext goes only to the records file in the item's work folder (0600) and
from there into the CSV: never to the log, the journal, ``show`` or an error message.

``workers`` > 1 decrypts in that many processes (RSA holds the GIL: threads would not help).
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Literal

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from pydantic import Field

from ferryman.errors import PermanentError, TransientError
from ferryman.item import Item
from ferryman.secrets import Secret
from ferryman.steps.base import Step, StepConfig, StepContext, StepResult
from ferryman.steps.records.files import Record, records_of, write

OnError = Literal["fail", "keep", "empty"]
Padding = Literal["pkcs1v15", "oaep-sha1", "oaep-sha256"]
CHUNK = 64
"""Records per task sent to a worker process."""


class DecryptFieldsConfig(StepConfig):
    """Decrypt RSA-encrypted fields of records (PIExporter's ``…RSA`` fields)."""

    type: Literal["decrypt_fields"]
    fields: list[str] = Field(default_factory=lambda: ["*RSA"], min_length=1,
                              description="Globs on field names (case-sensitive): the fields to decrypt.")
    key: Secret = Field(description="The PEM private key: { file = \"/etc/ferryman/key.pem\" }, { env = … }, …")
    passphrase: Secret | None = Field(None, description="The key's passphrase, if it has one.")
    padding: Padding = Field("pkcs1v15", description="RSA padding: pkcs1v15 (PIExporter), oaep-sha1 or oaep-sha256.")
    on_error: OnError = Field("fail", description="A value that does not decrypt (another key, corrupt) or "
                              "is not UTF-8: fail the item, keep the ciphertext, or write it empty.")
    on_bad_base64: OnError | None = Field(None, description="A value that is not base64 (default: as on_error; "
                                          "PIExporter wrote it empty).")
    workers: int = Field(1, ge=1, le=64, description="Processes decrypting at once (RSA uses a core each).")


@dataclass(frozen=True)
class Problem:
    """One field that did not decrypt: which record and field, what happened, what was done."""

    record: str
    field: str
    reason: str
    action: OnError


class Decryptor:
    """A loaded key and the rules; worker processes build their own from `args` once."""

    def __init__(self, pem: str, passphrase: str | None, padding: Padding, fields: list[str],
                 on_error: OnError, on_bad_base64: OnError, where: str) -> None:
        self.args = (pem, passphrase, padding, fields, on_error, on_bad_base64, where)
        try:
            key = serialization.load_pem_private_key(pem.encode(), passphrase.encode() if passphrase else None)
        except TypeError:
            raise PermanentError(f"decrypt_fields: the private key ({where}) is encrypted: set passphrase") from None
        except ValueError:
            raise PermanentError(f"decrypt_fields: cannot load the private key ({where}): wrong passphrase, or "
                                 "not a PEM private key") from None
        if not isinstance(key, RSAPrivateKey):
            raise PermanentError(f"decrypt_fields: the private key ({where}) is not an RSA key")
        self.key = key
        self.fields = fields
        self.on_error = on_error
        self.on_bad_base64 = on_bad_base64
        if padding == "pkcs1v15":
            self.padding: rsa_padding.AsymmetricPadding = rsa_padding.PKCS1v15()
        else:
            algorithm: hashes.HashAlgorithm = hashes.SHA1() if padding == "oaep-sha1" else hashes.SHA256()
            self.padding = rsa_padding.OAEP(mgf=rsa_padding.MGF1(algorithm), algorithm=algorithm, label=None)

    def wanted(self, name: str) -> bool:
        return any(fnmatchcase(name, pattern) for pattern in self.fields)

    def record(self, value: Any, record: dict[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
        """The record with its matching fields decrypted, and the fields that failed."""
        problems: list[Problem] = []
        out = dict(record)
        for name, text in record.items():
            if not isinstance(text, str) or not text or not self.wanted(name):
                continue  # null, empty, numbers: nothing to decrypt
            try:
                data = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                problems.append(Problem(str(value), name, "is not base64", self.on_bad_base64))
                out[name] = _apply(self.on_bad_base64, text)
                continue
            try:
                out[name] = self.key.decrypt(data, self.padding).decode("utf-8")
            except ValueError:  # a wrong key, corrupt ciphertext (UnicodeDecodeError is a ValueError too:
                # with PKCS#1 v1.5, OpenSSL answers a wrong key with random bytes, not an error)
                reason = "does not decrypt to UTF-8 text with this key and padding"
                problems.append(Problem(str(value), name, reason, self.on_error))
                out[name] = _apply(self.on_error, text)
        return out, problems

    def chunk(self, records: list[Record]) -> tuple[list[Record], list[Problem]]:
        done: list[Record] = []
        problems: list[Problem] = []
        for value, record in records:
            plain, found = self.record(value, record)
            done.append((value, plain))
            problems += found
        return done, problems


def _apply(action: OnError, text: str) -> str:
    return text if action == "keep" else ""


_WORKER: Decryptor | None = None
"""The key and rules of a worker process, loaded once when it starts."""


def _start_worker(args: tuple[Any, ...]) -> None:
    global _WORKER
    _WORKER = Decryptor(*args)


def _run_chunk(records: list[Record]) -> tuple[list[Record], list[Problem]]:
    assert _WORKER is not None
    return _WORKER.chunk(records)


class DecryptFieldsStep(Step[DecryptFieldsConfig]):
    """Reads the item's records files, writes one decrypted records file in the work folder."""

    Config = DecryptFieldsConfig

    def __init__(self, config: DecryptFieldsConfig, flow: Any) -> None:
        super().__init__(config, flow)
        self._decryptor: Decryptor | None = None
        self._pool: ProcessPoolExecutor | None = None

    def decryptor(self) -> Decryptor:
        if self._decryptor is None:
            config = self.config
            self._decryptor = Decryptor(config.key.reveal(), config.passphrase.reveal() if config.passphrase else None,
                                        config.padding, config.fields, config.on_error,
                                        config.on_bad_base64 or config.on_error, config.key.describe())
        return self._decryptor

    def run(self, item: Item, ctx: StepContext) -> StepResult:
        decryptor = self.decryptor()
        problems: list[Problem] = []
        log = logging.getLogger(f"ferryman.flow.{self.flow.flow}")

        def decrypted() -> Iterator[Record]:
            for done, found in self._chunks(decryptor, records_of(item.files)):
                for problem in found:
                    level = logging.ERROR if problem.action != "fail" else logging.DEBUG
                    log.log(level, "%s: item %s: record %s field %r %s; %s", self.flow.flow, item.id,
                            problem.record, problem.field, problem.reason,
                            "kept as it came" if problem.action == "keep" else "written empty")
                    if problem.action == "fail":
                        raise PermanentError(f"decrypt_fields: record {problem.record} field {problem.field!r} "
                                             f"{problem.reason}")
                problems.extend(found)
                yield from done

        target = ctx.work_dir / "records.jsonl"
        count = write(target, decrypted())
        return StepResult(files=[target], outputs={"records": count, "fields_failed": len(problems)})

    def _chunks(self, decryptor: Decryptor, records: Iterator[Record]) -> Iterator[tuple[list[Record], list[Problem]]]:
        if self.config.workers == 1:
            for chunk in _batched(records, CHUNK):
                yield decryptor.chunk(chunk)
            return
        if self._pool is None:
            import multiprocessing

            self._pool = ProcessPoolExecutor(self.config.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_start_worker, initargs=(decryptor.args,))
        window = self.config.workers * 4
        pending: list[Future[tuple[list[Record], list[Problem]]]] = []
        try:
            for chunk in _batched(records, CHUNK):
                pending.append(self._pool.submit(_run_chunk, chunk))
                if len(pending) >= window:
                    yield pending.pop(0).result()
            for future in pending:
                yield future.result()
        except BrokenProcessPool:
            self.close()  # the next attempt starts fresh processes
            raise TransientError("decrypt_fields: a worker process died (killed, or out of memory)") from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


def _batched(records: Iterator[Record], size: int) -> Iterator[list[Record]]:
    chunk: list[Record] = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
