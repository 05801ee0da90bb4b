"""Record steps (PIExporter's path): `files` at the bottom (the records file format), then
`decrypt` (``decrypt_fields``) and `append` (``append_csv``)."""

from ferryman.steps.records.append import AppendCsvConfig, AppendCsvStep
from ferryman.steps.records.decrypt import DecryptFieldsConfig, DecryptFieldsStep

__all__ = ["AppendCsvConfig", "AppendCsvStep", "DecryptFieldsConfig", "DecryptFieldsStep"]
