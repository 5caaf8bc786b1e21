"""How to reach the bus: server URL, credentials, TLS, and the sizes of its streams.

Read from ``GRIDPILOT_BUS_*`` environment variables (or nested in a service's settings as
``GRIDPILOT_BUS__*``). Inconsistent combinations fail at start-up with a sentence:

>>> BusSettings(url="nats://127.0.0.1:4222", user="alice")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
gridpilot.errors.ConfigError: GRIDPILOT_BUS_USER is set but GRIDPILOT_BUS_PASSWORD is not; ...
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gridpilot.errors import ConfigError, redact

__all__ = ["BusSettings"]

_MIB: Final[int] = 1024 * 1024
_GIB: Final[int] = 1024 * _MIB


class BusSettings(BaseSettings):
    """Connection and stream settings of the NATS JetStream bus."""

    model_config = SettingsConfigDict(env_prefix="GRIDPILOT_BUS_", extra="ignore")

    #: One server URL, or several separated by commas (a cluster).
    url: str = "nats://127.0.0.1:4222"
    token: SecretStr | None = None
    user: str | None = None
    password: SecretStr | None = None
    #: A NATS ``.creds`` file (JWT + nkey seed); needs the ``nkeys`` package.
    creds_file: Path | None = None
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: Seconds to wait for the TCP + TLS + CONNECT handshake, per attempt.
    connect_timeout_s: float = Field(5.0, gt=0)
    #: Attempts at start-up before giving up (a refused login is never retried).
    connect_attempts: int = Field(3, ge=1, le=100)
    #: Seconds ``Bus.close()`` waits for subscriptions and publishes to drain.
    drain_timeout_s: float = Field(5.0, gt=0)
    #: Seconds a JetStream publish or API call waits for the server's answer.
    request_timeout_s: float = Field(5.0, gt=0)
    events_max_bytes: int = Field(512 * _MIB, gt=0)
    #: Events older than this are dropped; 0 keeps them until ``events_max_bytes`` is reached.
    events_max_age_s: float = Field(0.0, ge=0)
    jobs_max_bytes: int = Field(1 * _GIB, gt=0)
    #: ``DEADLETTER`` keeps the max-deliveries advisories of the job consumers (about 300 bytes
    #: each); when full, the oldest (long handled) go first.
    deadletter_max_bytes: int = Field(16 * _MIB, gt=0)
    #: Seconds within which a repeated ``Nats-Msg-Id`` (a job id) is dropped as a duplicate.
    duplicate_window_s: float = Field(120.0, gt=0)
    #: File-backed streams survive a server restart; memory streams are for throwaway setups.
    storage: Literal["file", "memory"] = "file"

    @model_validator(mode="after")
    def _check_combinations(self) -> BusSettings:
        prefix = "GRIDPILOT_BUS_"
        if self.user is not None and self.password is None:
            raise ConfigError(f"{prefix}USER is set but {prefix}PASSWORD is not; "
                              "set both or neither.")
        if self.password is not None and self.user is None:
            raise ConfigError(f"{prefix}PASSWORD is set but {prefix}USER is not; "
                              "set both or neither.")
        if self.token is not None and self.user is not None:
            raise ConfigError(f"{prefix}TOKEN and {prefix}USER are both set; a server accepts "
                              "one way of logging in, so choose the token or the user/password.")
        if self.creds_file is not None and (self.token is not None or self.user is not None):
            raise ConfigError(f"{prefix}CREDS_FILE is set together with a token or a user; "
                              "choose one way of logging in.")
        if (self.tls_cert is None) != (self.tls_key is None):
            given, missing = ("TLS_CERT", "TLS_KEY") if self.tls_cert else ("TLS_KEY", "TLS_CERT")
            raise ConfigError(f"{prefix}{given} is set but {prefix}{missing} is not; a client "
                              "certificate needs its private key.")
        for name in ("creds_file", "tls_ca", "tls_cert", "tls_key"):
            path: Path | None = getattr(self, name)
            if path is not None and not path.is_file():
                raise ConfigError(f"{prefix}{name.upper()} names {path}, which is not a file.")
        if not self.servers:
            raise ConfigError(f"{prefix}URL is empty; give at least one nats:// or tls:// URL.")
        return self

    @property
    def servers(self) -> list[str]:
        """The server URLs, in order."""
        return [u.strip() for u in self.url.split(",") if u.strip()]

    @property
    def safe_url(self) -> str:
        """The URL(s) with any embedded credentials removed, for logs and error messages."""
        return redact(self.url)

    @property
    def uses_tls(self) -> bool:
        return self.tls_ca is not None or self.tls_cert is not None or any(
            u.startswith("tls://") for u in self.servers)

    def ssl_context(self) -> ssl.SSLContext | None:
        """The client TLS context, or None when TLS is not configured.

        Raises:
            ConfigError: a CA, certificate or key file cannot be loaded.
        """
        if not self.uses_tls:
            return None
        try:
            ctx = ssl.create_default_context(
                cafile=str(self.tls_ca) if self.tls_ca is not None else None)
            if self.tls_cert is not None and self.tls_key is not None:
                ctx.load_cert_chain(str(self.tls_cert), str(self.tls_key))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load the bus TLS files: {exc}") from exc
        return ctx

    def auth_options(self) -> dict[str, Any]:
        """Keyword arguments of ``nats.connect`` that log in (secrets revealed only here)."""
        if self.token is not None:
            return {"token": self.token.get_secret_value()}
        if self.user is not None and self.password is not None:
            return {"user": self.user, "password": self.password.get_secret_value()}
        if self.creds_file is not None:
            return {"user_credentials": str(self.creds_file)}
        return {}
