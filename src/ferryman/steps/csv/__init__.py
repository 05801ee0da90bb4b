"""The ``csv`` step: `dialect` at the bottom, `config` on it; the `rewrite` engine and its `fast`
path use `dialect`; `step` joins them."""

from ferryman.steps.csv.config import CsvConfig
from ferryman.steps.csv.step import CsvStep

__all__ = ["CsvConfig", "CsvStep"]
