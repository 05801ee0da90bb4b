"""Links fit to be shown: a URL's user-info, query string and fragment are replaced by ``…``.

An ITRP export link is a pre-signed URL: whoever holds it can download the
export until it expires, because its query string carries the signature
(``X-Amz-Signature=…``).  A password in ``https://user:password@host/`` and a
token after ``#`` grant access just the same.  So every place that shows an
item to a person — the log, ``status``, ``history``, ``show``, notifications,
error messages — passes its text through `redact`::

    https://user:pw@files.example.com:8443/export.zip?X-Amz-Signature=ab12#part
    → https://…@files.example.com:8443/export.zip?…#…

Scheme, host, port and path stay: they say which server and which file.
Whatever can grant access is gone, and the ``…`` says that something was
there.  The journal keeps the whole URL, since a retry after a restart needs
it; ``ferryman show --reveal ITEM`` prints it whole, for the operator who asks.
"""

from __future__ import annotations

import re

HIDDEN = "…"
"""What stands in for a hidden part of a URL."""

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s<>\"'`]+")
"""A URL inside free text: it ends at white space, a quote or an angle bracket."""

_TRAILING = ".,;:!)]}>"
"""Punctuation that ends a sentence around a link rather than belonging to it."""


def redact_url(url: str) -> str:
    """`url` with its user-info, query string and fragment each replaced by ``…``.

    Plain string work, no parsing that could refuse a malformed URL: whatever
    follows the first ``?`` or ``#`` is hidden, and whatever precedes the last
    ``@`` of the host part.  A URL without any of them comes back unchanged, and
    redacting twice changes nothing.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    ends = [i for i in (rest.find(c) for c in "/?#") if i >= 0]
    cut = min(ends) if ends else len(rest)
    authority, tail = rest[:cut], rest[cut:]
    if "@" in authority:
        authority = f"{HIDDEN}@{authority.rpartition('@')[2]}"
    before_fragment, hash_, fragment = tail.partition("#")
    path, question, query = before_fragment.partition("?")
    shown = f"{scheme}://{authority}{path}"
    if question:
        shown += f"?{HIDDEN}" if query else "?"
    if hash_:
        shown += f"#{HIDDEN}" if fragment else "#"
    return shown


def redact(text: str) -> str:
    """`text` with every URL in it redacted (`redact_url`); punctuation right after a URL is kept."""
    if "://" not in text:
        return text  # the common case costs one search
    return _URL.sub(_replace, text)


def _replace(match: re.Match[str]) -> str:
    found = match.group(0)
    url = found.rstrip(_TRAILING)
    return redact_url(url) + found[len(url):]


def redact_data(value: object) -> object:
    """A JSON-like value (dicts, lists, strings, numbers) with every string in it redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_data(inner) for key, inner in value.items()}
    if isinstance(value, list | tuple):
        return [redact_data(inner) for inner in value]
    return value
