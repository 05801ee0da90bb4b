"""Client TLS for every protocol: the system's CAs or a private ``ca_file``; ``verify = false`` is a
loud opt-out (``check`` warns about it)."""

from __future__ import annotations

import ssl

from ferryman.errors import PermanentError


def client_context(ca_file: str | None = None, verify: bool = True) -> ssl.SSLContext:
    """A client context trusting `ca_file` (or the system CAs), checking host names unless `verify` is off."""
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise PermanentError(f"cannot load ca_file {ca_file}: {exc}") from None
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
