"""Path and name templates: ``{name}``, ``{stem}``, ``{suffix}``, ``{flow}``, ``{item}``,
``{now:%Y%m%d}``, ``{meta.KEY}``.

A rendered path never escapes its base folder, the part of the template
before the first placeholder: values coming from file names or mail headers
(``../../etc``) are refused, not followed.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

from pydantic import AfterValidator

from ferryman.errors import PermanentError, UnsafeInput

FIELDS = ("name", "stem", "suffix", "flow", "item", "now", "meta", "path", "dir")


class _Meta:
    """``meta.KEY`` lookups with a clear error naming the keys the item does have."""

    def __init__(self, meta: Mapping[str, str]) -> None:
        self._meta = meta

    def __getattr__(self, key: str) -> str:
        try:
            return self._meta[key]
        except KeyError:
            have = ", ".join(sorted(self._meta)) or "none"
            raise PermanentError(f"template needs meta.{key}, but the item has no {key!r} (has: {have})") from None


class _Formatter(string.Formatter):
    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        root = field_name.split(".", 1)[0].split("[", 1)[0]
        if root not in kwargs:
            raise PermanentError(f"unknown template field {{{root}}}; use one of {{{'}, {'.join(FIELDS)}}}")
        return super().get_field(field_name, args, kwargs)


_FORMATTER = _Formatter()


def fields_for(
    *, flow: str = "", item: str = "", meta: Mapping[str, str] | None = None,
    path: Path | str | None = None, now: datetime | None = None, **extra: Any,
) -> dict[str, Any]:
    """The template variables for one file of an item (``name``/``stem``/``suffix`` from `path`)."""
    values: dict[str, Any] = {
        "flow": flow, "item": item, "meta": _Meta(meta or {}), "now": now or datetime.now(),
    }
    if path is not None:
        p = PurePosixPath(str(path).replace("\\", "/"))
        values.update(name=p.name, stem=p.stem, suffix=p.suffix, path=str(path), dir=str(p.parent))
    values.update(extra)
    return values


def render(template: str, values: Mapping[str, Any]) -> str:
    """Render `template`; unknown fields or missing meta keys raise `PermanentError`."""
    try:
        return _FORMATTER.vformat(template, (), dict(values))
    except PermanentError:
        raise
    except (ValueError, IndexError, AttributeError, KeyError) as exc:
        raise PermanentError(f"template {template!r}: {exc}") from None


def check(template: str, allowed: tuple[str, ...] = FIELDS) -> None:
    """Raise `ValueError` naming a placeholder that can never render (for config validation)."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"template {template!r}: {exc}") from None
    for _, field_name, _, _ in parsed:
        if field_name is None:
            continue
        root = field_name.split(".", 1)[0].split("[", 1)[0]
        if root not in allowed:
            raise ValueError(
                f"unknown template field {{{root}}} in {template!r}; use one of {{{'}, {'.join(allowed)}}}"
            )
        if (root == "meta" and not field_name.startswith("meta.")) or field_name == "meta.":
            raise ValueError(f"write meta fields as {{meta.KEY}} in {template!r}")


def static_prefix(template: str) -> str:
    """The part of a path template before its first placeholder, cut back to a whole folder."""
    head = template.split("{", 1)[0]
    if "{" not in template:
        return template
    return head.rsplit("/", 1)[0] if "/" in head else ""


def render_path(template: str, values: Mapping[str, Any], *, base: str | None = None) -> str:
    """Render a path template (``/`` separated) that may not leave `base`.

    `base` defaults to the template's static prefix.  Raises `UnsafeInput`
    when the rendered path holds ``..`` segments, NUL bytes, or leaves its base.
    """
    rendered = render(template, values)
    if "\x00" in rendered:
        raise UnsafeInput(f"rendered path {rendered!r} holds a NUL byte")
    base = static_prefix(template) if base is None else base
    parts = PurePosixPath(rendered).parts
    if ".." in parts:
        raise UnsafeInput(f"rendered path {rendered!r} climbs out with '..' (template {template!r})")
    base_parts = PurePosixPath(base).parts if base else ()
    if parts[: len(base_parts)] != base_parts:
        raise UnsafeInput(f"rendered path {rendered!r} leaves its base folder {base!r}")
    return str(PurePosixPath(*parts)) if parts else rendered


def render_name(template: str, values: Mapping[str, Any]) -> str:
    """Render a file name template: the result must be one plain path segment."""
    rendered = render(template, values)
    if not rendered or rendered in (".", "..") or "/" in rendered or "\\" in rendered or "\x00" in rendered:
        raise UnsafeInput(f"rendered name {rendered!r} is not a plain file name (template {template!r})")
    return rendered


def numbered(name: str, n: int) -> str:
    """`name` when `n` is 0, else ``stem-n.ext`` split at the first dot (``a.tar.gz`` → ``a-1.tar.gz``):
    how every component names a copy that must not overwrite another."""
    if n == 0:
        return name
    hidden = "." if name.startswith(".") else ""
    stem, dot, ext = name[len(hidden):].partition(".")
    return f"{hidden}{stem}-{n}{dot}{ext}"


def _checked(template: str) -> str:
    check(template)
    return template


Template = Annotated[str, AfterValidator(_checked)]
"""A config field holding a template: unknown placeholders are config errors."""
