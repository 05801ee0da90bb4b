"""Steps by ``type``.  Adding one: a module here and a line in `STEPS`.

An entry is ``"module:Class"``, imported the first time a config names its type; a step
in a sub-package adds its config model, ``("package:Class", "package:ConfigModel")``, so that
``check`` and ``status`` import only its ``config`` module (`ferryman.registry`).
"""

from __future__ import annotations

from typing import Any

from ferryman.registry import Registry
from ferryman.steps.base import Step, StepConfig, StepContext, StepResult

STEPS: Registry[type[Step[Any]]] = Registry({
    "deliver": "ferryman.steps.deliver:DeliverStep",
    "email": "ferryman.steps.email:EmailStep",
    "download": "ferryman.steps.download:DownloadStep",
    "meta": "ferryman.steps.meta:MetaStep",
    "fetch": "ferryman.steps.fetch:FetchStep",
    "rename": "ferryman.steps.rename:RenameStep",
    "unzip": "ferryman.steps.unzip:UnzipStep",
    "gunzip": "ferryman.steps.gunzip:GunzipStep",
    "zip": "ferryman.steps.zip:ZipStep",
    "gzip": "ferryman.steps.gzip:GzipStep",
    "checksum": "ferryman.steps.checksum:ChecksumStep",
    "command": "ferryman.steps.command:CommandStep",
    "python": "ferryman.steps.python:PythonStep",
    "csv": ("ferryman.steps.csv:CsvStep", "ferryman.steps.csv:CsvConfig"),
    "sql": "ferryman.steps.sql:SqlStep",
    "log_scan": "ferryman.steps.logscan:LogScanStep",
    "sql_export": "ferryman.steps.tables:SqlExportStep",
    "pg_dump": "ferryman.steps.backup:PgDumpStep",
    "prune": "ferryman.steps.backup:PruneStep",
    "compress_old": "ferryman.steps.backup:CompressOldStep",
    "decrypt_fields": "ferryman.steps.records:DecryptFieldsStep",
    "append_csv": "ferryman.steps.records:AppendCsvStep",
})
"""Every step type, by its config ``type`` key."""

__all__ = ["STEPS", "Step", "StepConfig", "StepContext", "StepResult"]
