"""Named remote endpoints, declared under ``[connections.NAME]`` and named in URLs (``sftp://NAME/path``).

Only declarations live here; the code that speaks each protocol lives in
`ferryman.transports` and `ferryman.sources`.  Every TLS connection takes
``ca_file`` to trust a private CA, and ``verify = false`` only as a loud opt-out
(``check`` warns about it).
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from ferryman.model import Model
from ferryman.redact import redact_url
from ferryman.secrets import Secret
from ferryman.units import Duration


class ConnectionConfig(Model):
    """Keys every connection has."""

    type: str
    timeout: Duration = Field(30.0, description="Network timeout for connecting and for each operation.")


class TlsMixin(Model):
    ca_file: str | None = Field(None, description="PEM file of the CA that signed the server's certificate.")
    verify: bool = Field(True, description="Check the server's certificate (turning this off is unsafe).")


class SftpConnection(ConnectionConfig):
    type: Literal["sftp"]
    host: str = Field(description="Server host name or address.")
    port: int = Field(22, description="SSH port.")
    user: str = Field(description="Login name.")
    password: Secret | None = Field(None, description="Password (or use key_file).")
    key_file: str | None = Field(None, description="Private key file for public-key login.")
    key_passphrase: Secret | None = Field(None, description="Passphrase of key_file.")
    known_hosts: str | None = Field(
        None, description="known_hosts file to check the server's host key against (default ~/.ssh/known_hosts)."
    )
    host_key: str | None = Field(
        None, description="Pinned host key, as in known_hosts: 'ssh-ed25519 AAAA…'."
    )
    check_host_key: bool = Field(True, description="Refuse unknown host keys (turning this off is unsafe).")


class FtpConnection(ConnectionConfig, TlsMixin):
    type: Literal["ftp"]
    host: str = Field(description="Server host name or address.")
    port: int | None = Field(None, description="Port (21, or 990 with implicit TLS).")
    user: str = Field("anonymous", description="Login name.")
    password: Secret | None = Field(None, description="Password.")
    tls: Literal["explicit", "implicit", False] = Field(
        "explicit", description="FTPS mode: explicit (AUTH TLS), implicit, or false for plain FTP."
    )
    passive: bool = Field(True, description="Use passive mode.")


class S3Connection(ConnectionConfig, TlsMixin):
    type: Literal["s3"]
    endpoint: str | None = Field(None, description="Endpoint URL for S3-compatible stores (default AWS).")
    region: str = Field("us-east-1", description="Region name.")
    access_key: Secret | None = Field(None, description="Access key id (default: boto3's own lookup).")
    secret_key: Secret | None = Field(None, description="Secret access key.")
    path_style: bool = Field(False, description="Path-style addressing (most S3-compatible stores).")


class OAuth2(Model):
    token: Secret | None = Field(None, description="An access token.")
    token_command: list[str] | None = Field(
        None, description="A command printing a fresh access token (run again when the token expires)."
    )


class ImapConnection(ConnectionConfig, TlsMixin):
    type: Literal["imap"]
    host: str = Field(description="Server host name or address.")
    port: int | None = Field(None, description="Port (993 with implicit TLS, else 143).")
    user: str = Field(description="Login name.")
    password: Secret | None = Field(None, description="Password (or use oauth2).")
    oauth2: OAuth2 | None = Field(None, description="XOAUTH2 login: { token = … } or { token_command = […] }.")
    tls: Literal["implicit", "starttls", False] = Field("implicit", description="TLS mode.")


class SmtpConnection(ConnectionConfig, TlsMixin):
    type: Literal["smtp"]
    host: str = Field(description="Server host name or address.")
    port: int | None = Field(None, description="Port (587 with STARTTLS, 465 implicit, 25 plain).")
    user: str | None = Field(None, description="Login name (no login when unset).")
    password: Secret | None = Field(None, description="Password.")
    tls: Literal["starttls", "implicit", False] = Field("starttls", description="TLS mode.")
    from_: str | None = Field(None, alias="from", description="Sender address.")


class BasicAuth(Model):
    user: str = Field(description="Login name.")
    password: Secret = Field(description="Password (a secret reference).")


class HttpAuth(Model):
    """``auth = { basic = { user = "…", password = { env = "…" } } }`` or ``auth = { bearer = { env = "…" } }``."""

    basic: BasicAuth | None = Field(None, description="HTTP Basic: { user = \"…\", password = <secret> }.")
    bearer: Secret | None = Field(None, description="A bearer token (a secret), sent as 'Authorization: Bearer …'.")

    @model_validator(mode="after")
    def _one(self) -> HttpAuth:
        if (self.basic is None) == (self.bearer is None):
            raise ValueError("auth takes one of basic = { user = \"…\", password = … } or bearer = …")
        return self


class HttpConnection(ConnectionConfig, TlsMixin):
    """A web server or API: where relative URLs point, how to log in, what every request carries.

    The credentials and headers go only to `base_url`'s scheme, host and port (to the first URL's
    when there is no base_url): a redirect elsewhere is followed without them.
    """

    type: Literal["http"]
    base_url: str | None = Field(
        None, description="http(s):// URL that relative URLs and paths are resolved below, e.g. "
        "'https://api.example.com/v1/'; the auth and headers are sent to its host only.")
    auth: HttpAuth | None = Field(
        None, description="{ basic = { user = \"…\", password = <secret> } } or { bearer = <secret> }.")
    headers: dict[str, Secret] = Field(
        default_factory=dict, description="Headers sent with every request, e.g. { X-Api-Key = { env = "
        "\"API_KEY\" } }; values may be secrets.")

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is not None:
            check_web_url(value, "base_url")
        return value

    @field_validator("headers")
    @classmethod
    def _header_names(cls, value: dict[str, Secret]) -> dict[str, Secret]:
        for name in value:
            if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
                raise ValueError(f"{name!r} is not a valid header name")
        return value

    @model_validator(mode="after")
    def _one_authorization(self) -> HttpConnection:
        if self.auth is not None and any(name.lower() == "authorization" for name in self.headers):
            raise ValueError("headers.Authorization and auth both set the Authorization header: keep one")
        return self


def check_web_url(url: str, what: str = "URL") -> None:
    """Raise `ValueError` unless `url` is an http(s):// URL with a host and without credentials in it."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} {redact_url(url)!r} is not an http:// or https:// URL with a host")
    refuse_userinfo(url, "put them in this connection's auth = { basic = { user = …, password = … } }")


def refuse_userinfo(url: str, hint: str = "declare them as the auth of an http connection and set "
                    "connection = \"NAME\" on the step") -> None:
    """Raise `ValueError` when `url` carries a user name or password (``https://user:pw@host/``):
    ferryman would not send it, and it would sit in the config, the journal and the logs."""
    authority = url.partition("://")[2].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if "@" in authority:
        raise ValueError(f"{redact_url(url)}: a URL may not carry a user name or password (user:pw@); {hint}")


class PostgresConnection(ConnectionConfig):
    type: Literal["postgres"]
    dsn: Secret = Field(description="libpq connection string or URL (may hold a password: use a reference).")
    password: Secret | None = Field(None, description="Password, when the dsn holds none (it wins over one in "
                                    "the dsn).")


CONNECTIONS: dict[str, type[ConnectionConfig]] = {
    "sftp": SftpConnection,
    "ftp": FtpConnection,
    "s3": S3Connection,
    "imap": ImapConnection,
    "smtp": SmtpConnection,
    "http": HttpConnection,
    "postgres": PostgresConnection,
}
"""Connection types by ``type`` key."""
