"""Named remote endpoints, declared under ``[connections.NAME]`` and named in URLs (``sftp://NAME/path``).

Only declarations live here; the code that speaks each protocol lives in
`ferryman.transports` and `ferryman.sources`.  Every TLS connection takes
``ca_file`` to trust a private CA, and ``verify = false`` only as a loud opt-out
(``check`` warns about it).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ferryman.model import Model
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


class HttpAuth(Model):
    basic: tuple[str, Secret] | None = Field(None, description="[user, password] for HTTP Basic.")
    bearer: Secret | None = Field(None, description="A bearer token.")


class HttpConnection(ConnectionConfig, TlsMixin):
    type: Literal["http"]
    base_url: str = Field(description="Base URL that paths are joined to.")
    auth: HttpAuth | None = Field(None, description="Authentication.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers.")


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
