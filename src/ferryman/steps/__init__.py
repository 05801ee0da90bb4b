"""Steps by ``type``.  Adding one: a module here and a line in `STEPS`."""

from __future__ import annotations

from typing import Any

from ferryman.steps.backup import CompressOldStep, PgDumpStep, PruneStep
from ferryman.steps.base import Step, StepConfig, StepContext, StepResult
from ferryman.steps.checksum import ChecksumStep
from ferryman.steps.command import CommandStep
from ferryman.steps.csv import CsvStep
from ferryman.steps.deliver import DeliverStep
from ferryman.steps.download import DownloadStep
from ferryman.steps.email import EmailStep
from ferryman.steps.fetch import FetchStep
from ferryman.steps.gunzip import GunzipStep
from ferryman.steps.gzip import GzipStep
from ferryman.steps.logscan import LogScanStep
from ferryman.steps.meta import MetaStep
from ferryman.steps.python import PythonStep
from ferryman.steps.records import AppendCsvStep, DecryptFieldsStep
from ferryman.steps.rename import RenameStep
from ferryman.steps.sql import SqlStep
from ferryman.steps.tables import SqlExportStep
from ferryman.steps.unzip import UnzipStep
from ferryman.steps.zip import ZipStep

STEPS: dict[str, type[Step[Any]]] = {
    "deliver": DeliverStep,
    "email": EmailStep,
    "download": DownloadStep,
    "meta": MetaStep,
    "fetch": FetchStep,
    "rename": RenameStep,
    "unzip": UnzipStep,
    "gunzip": GunzipStep,
    "zip": ZipStep,
    "gzip": GzipStep,
    "checksum": ChecksumStep,
    "command": CommandStep,
    "python": PythonStep,
    "csv": CsvStep,
    "sql": SqlStep,
    "log_scan": LogScanStep,
    "sql_export": SqlExportStep,
    "pg_dump": PgDumpStep,
    "prune": PruneStep,
    "compress_old": CompressOldStep,
    "decrypt_fields": DecryptFieldsStep,
    "append_csv": AppendCsvStep,
}
"""Every step type, by its config ``type`` key."""

__all__ = ["STEPS", "Step", "StepConfig", "StepContext", "StepResult"]
