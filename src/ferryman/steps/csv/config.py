"""The ``csv`` step's config: both dialects, ``replace`` rules, columns, and the `Options` they
resolve to.  Imports only the package's `dialect`; the step and the engine import it."""

from __future__ import annotations

import codecs
import csv as csvmodule
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ferryman import templates
from ferryman.model import Model
from ferryman.steps.base import StepConfig
from ferryman.steps.csv.dialect import Dialect, Options, Rule
from ferryman.units import Size


class _Null:
    def write(self, text: str) -> None:
        pass



QUOTING = {
    "minimal": csvmodule.QUOTE_MINIMAL, "all": csvmodule.QUOTE_ALL,
    "nonnumeric": csvmodule.QUOTE_NONNUMERIC, "none": csvmodule.QUOTE_NONE,
}
Errors = Literal["strict", "replace", "ignore"]


class CsvDialectConfig(Model):
    """One side of the rewrite; on ``output`` every key left out is the same as on ``input``."""

    delimiter: str | None = Field(None, description="Field separator, one character (default ',').")
    quotechar: str | None = Field(None, description="Quote character, one character (default '\"').")
    quoting: Literal["minimal", "all", "nonnumeric", "none"] | None = Field(
        None, description="csv quoting: which values are quoted (default 'minimal')."
    )
    escapechar: str | None = Field(None, description="Escape character; '' for none (default: none).")
    doublequote: bool | None = Field(None, description="A quote inside a quoted value is doubled (default true).")
    skipinitialspace: bool | None = Field(None, description="Ignore spaces right after a delimiter (default false).")
    lineterminator: str | None = Field(
        None, description="Output only: line ending written, e.g. '\\r\\n' (default: the input's first line ending)."
    )
    encoding: str | None = Field(None, description="Text encoding, e.g. 'utf-8', 'cp1252', 'utf-16' (default utf-8).")
    bom: bool | None = Field(
        None, description="Input: strip a UTF-8 byte order mark (default true). Output: write one (default: "
        "when the input had one)."
    )
    errors: Errors | None = Field(
        None, description="Bytes (input) or characters (output) the encoding cannot take: 'strict' fails the "
        "item with the line number, 'replace' or 'ignore' carry on (default 'strict')."
    )

    @field_validator("delimiter", "quotechar")
    @classmethod
    def _one_char(cls, value: str | None) -> str | None:
        if value is not None and len(value) != 1:
            raise ValueError("must be exactly one character")
        if value in ("\r", "\n"):
            raise ValueError("cannot be a line break")
        return value

    @field_validator("escapechar")
    @classmethod
    def _escape(cls, value: str | None) -> str | None:
        if value is not None and len(value) > 1:
            raise ValueError("must be one character, or '' for none")
        return value

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                codecs.lookup(value)
            except LookupError:
                raise ValueError(f"unknown encoding {value!r}") from None
        return value


class ReplaceRule(Model):
    """A regular expression replaced in every value."""

    pattern: str = Field(description="Python regular expression, e.g. '\\r?\\n'.")
    with_: str = Field(alias="with", description="Replacement (re.sub syntax: \\1, \\g<name>).")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


class CsvConfig(StepConfig):
    """Rewrite CSV files to another dialect, streaming."""

    type: Literal["csv"]
    include: list[str] = Field(default_factory=lambda: ["*.csv"], description="Which files to rewrite (globs).")
    input: CsvDialectConfig = Field(
        default_factory=CsvDialectConfig, description="How the files are written now."  # type: ignore[arg-type]
    )
    output: CsvDialectConfig = Field(
        default_factory=CsvDialectConfig, description="How to write them."  # type: ignore[arg-type]
    )
    replace: list[ReplaceRule] = Field(
        default_factory=list, description="Regexes applied to every value in order, e.g. "
        "[{ pattern = '\\r?\\n', with = ' ' }] to put multi-line values on one line."
    )
    columns: list[str] | None = Field(
        None, description="Keep only these columns, in this order, by header name (the first row is the header)."
    )
    rename: dict[str, str] = Field(default_factory=dict, description="Header names to change: { old = \"new\" }.")
    skip_blank_lines: bool = Field(False, description="Drop empty lines instead of writing them as empty rows.")
    strict: bool = Field(
        False, description="Fail on any csv irregularity (text after a closing quote, …) and on rows whose "
        "number of fields differs from the header's."
    )
    name: str = Field("{name}", description="Name template of each rewritten file, e.g. '{stem}_semicolon.csv'.")
    max_field: Size = Field(
        64 << 20, gt=0, description="Longest value, in characters, e.g. '64MiB' (the default): a longer one "
        "fails the item with its line, row and column (usually an unterminated quote)."
    )
    fast: bool = Field(True, description="Use the fast path where it gives the same bytes (false: plain csv loop).")

    @model_validator(mode="after")
    def _check(self) -> CsvConfig:
        templates.check(self.name)
        if self.input.lineterminator is not None:
            raise ValueError("input.lineterminator: the reader recognises \\r\\n, \\r and \\n by itself; set "
                             "output.lineterminator")
        options = self.options("\r\n")
        for side, dialect in (("input", options.input), ("output", options.output)):
            try:
                csvmodule.writer(_Null(), **dialect.kwargs())
            except (TypeError, csvmodule.Error) as exc:
                raise ValueError(f"{side}: {exc}") from None
        return self

    def options(self, detected_lineterminator: str) -> Options:
        """The rewrite's options; `detected_lineterminator` is used when the output sets none."""
        i, o = self.input, self.output
        d_in = Dialect(
            delimiter=i.delimiter or ",", quotechar=i.quotechar or '"', quoting=QUOTING[i.quoting or "minimal"],
            escapechar=i.escapechar or None, doublequote=True if i.doublequote is None else i.doublequote,
            skipinitialspace=bool(i.skipinitialspace), strict=self.strict,
        )
        d_out = Dialect(
            delimiter=o.delimiter or d_in.delimiter, quotechar=o.quotechar or d_in.quotechar,
            quoting=QUOTING[o.quoting] if o.quoting else d_in.quoting,
            escapechar=(o.escapechar or None) if o.escapechar is not None else d_in.escapechar,
            doublequote=d_in.doublequote if o.doublequote is None else o.doublequote,
            skipinitialspace=d_in.skipinitialspace if o.skipinitialspace is None else o.skipinitialspace,
            lineterminator=o.lineterminator or detected_lineterminator,
        )
        return Options(
            input=d_in, output=d_out, rules=[Rule(re.compile(r.pattern), r.with_) for r in self.replace],
            columns=self.columns, rename=dict(self.rename), skip_blank_lines=self.skip_blank_lines,
            check_columns=self.strict, fast=self.fast, max_field=self.max_field,
        )
