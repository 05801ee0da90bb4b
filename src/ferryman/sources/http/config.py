"""The ``http`` source's config: which collections, where their records are, the mark, backups, acks.

At the bottom of the package: `client`, `parse`, `state` and `source` import it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ferryman import templates
from ferryman.model import Model
from ferryman.sources.base import SourceConfig
from ferryman.units import Duration

COLLECTION_FIELDS = ("collection", "now", "flow", "id")
"""What the path templates of an http source may use."""


def _path_template(value: str) -> str:
    templates.check(value, COLLECTION_FIELDS)
    return value


class CollectionList(Model):
    """``collections = { list = "", name = "name", deleteable = "deleteable" }``: the collections are
    read from a list endpoint answering ``[{name, size, deleteable}, …]``."""

    list: str = Field(description="Path of the list endpoint below the connection's base_url ('' is the "
                      "base_url itself).")
    name: str = Field("name", description="The field holding a collection's name.")
    deleteable: str | None = Field("deleteable", description="The field saying whether its records may be "
                                   "deleted on the server (true/false); none: the source's `deleteable`.")
    size: str | None = Field("size", description="The field holding how many records it has: 0 skips the "
                             "records request (as PIExporter did); none: always ask.")


class RecordsConfig(Model):
    """``records = { path = "{collection}", list = "$", id = "id", since_param = "greaterThan" }``."""

    path: str = Field("{collection}", description="Path of a collection's records below base_url "
                      "({collection}).")
    list: str = Field("$", description="Where the records are in the response: '$' is the top-level "
                      "array, 'data.items' an array under those keys.")
    id: str = Field("id", description="The field of a record holding its id (integer, or a string "
                    "that orders like the records: zero-padded, ISO time).")
    since_param: str | None = Field(None, description="Query parameter that makes the server send only "
                                    "records with an id above the high-water mark (PIExporter's server: "
                                    "'greaterThan'). The source filters below the mark itself anyway.")
    pages: int = Field(100, ge=1, description="With since_param: requests per collection and poll at most, "
                       "while the server keeps sending new records (an API that pages by id).")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return _path_template(value)

    @field_validator("list")
    @classmethod
    def _list(cls, value: str) -> str:
        if value != "$" and (not value or any(not part for part in value.removeprefix("$.").split("."))):
            raise ValueError(f"records.list {value!r}: '$' or dotted keys such as 'data.items'")
        return value


class AckConfig(Model):
    """``ack = { method = "DELETE", path = "{collection}/{id}" }``: the request that deletes a record."""

    method: Literal["DELETE", "POST", "PUT", "PATCH"] = Field("DELETE", description="HTTP method.")
    path: str = Field("{collection}/{id}", description="Path below base_url ({collection}, {id}).")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return _path_template(value)


class HttpSourceConfig(SourceConfig):
    """Records from a JSON API, per collection; kept raw, then acknowledged (deleted) once safe."""

    type: Literal["http"] = Field(description="Records of a JSON API, per collection.")
    connection: str = Field(description="Name of an http connection (base_url, auth, headers, ca_file).")
    every: Duration = Field(300.0, gt=0, description="How often to poll ('5m'): at whole multiples of it "
                            "since 1970 (UTC), like a schedule's every.")
    collections: list[str] | CollectionList = Field(
        description="A fixed list of collections, or { list = …, name = …, deleteable = … } to read them "
        "from a list endpoint.")
    deleteable: bool | list[str] = Field(
        False, description="Collections whose records may be deleted on the server when the list "
        "endpoint does not say: true, false, or a list of names. A list endpoint's field wins.")
    records: RecordsConfig = Field(default_factory=RecordsConfig,  # type: ignore[arg-type]
                                   description="Where a collection's records are and how they are named.")
    batch: int = Field(200, ge=1, le=100_000, description="Records per item (the promise stays per record: "
                       "each is written once).")
    raw_dir: str = Field(description="Folder of the raw backups: each poll's response body, fsynced "
                         "before any record is handled (relative to the config file).")
    raw_name: str = Field("{collection}_{now:%b_%d_%Y_%H_%M_%S}.json",
                          description="Name template of a raw backup ({collection}, {now:…}). It must "
                          "hold the date and time: `ferryman recover` reads them back from it.")
    ack: AckConfig = Field(default_factory=AckConfig,  # type: ignore[arg-type]
                           description="The request that deletes a record on the server.")
    delete: bool = Field(False, description="Send the ack (DELETE) for records that are safe: the item "
                         "succeeded (CSV rows fsynced) and its raw backup is on disk, on deleteable "
                         "collections only. Off by default, as PIExporter's DELETE_MODE.")
    max_size: int = Field(2 * 1024**3, gt=0, description="Refuse responses larger than this many bytes.")
    io_timeout: Duration | None = Field(None, description="Time limit of each network read (default: the "
                                        "connection's timeout).")

    @field_validator("raw_name")
    @classmethod
    def _raw_name(cls, value: str) -> str:
        templates.check(value, ("collection", "now", "flow"))
        if "{now:" not in value:
            raise ValueError(f"raw_name {value!r} needs the poll time, e.g. "
                             "'{collection}_{now:%b_%d_%Y_%H_%M_%S}.json'")
        if "/" in value:
            raise ValueError(f"raw_name {value!r} is a file name: no '/'")
        return value

    @model_validator(mode="after")
    def _shape(self) -> HttpSourceConfig:
        if isinstance(self.collections, list):
            if not self.collections:
                raise ValueError("collections is empty: give names, or { list = \"\" } to read them from the API")
            if len(set(self.collections)) != len(self.collections):
                raise ValueError("collections holds the same name twice")
        return self

    def deleteable_by_config(self, collection: str) -> bool:
        """Whether `collection` is deleteable when the list endpoint does not say."""
        if isinstance(self.deleteable, bool):
            return self.deleteable
        return collection in self.deleteable
