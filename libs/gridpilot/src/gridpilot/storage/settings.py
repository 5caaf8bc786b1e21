"""Where objects are stored, from ``GRIDPILOT_STORAGE_*`` environment variables.

``GRIDPILOT_STORAGE_URL`` picks the back end:

- ``file://./.state/objects`` (the default) or ``file:///var/lib/gridpilot/objects``: a folder;
- ``s3://host:port/bucket`` (plain HTTP) or ``s3s://host:port/bucket`` (HTTPS): any S3
  server (MinIO, SeaweedFS, Ceph RGW, Garage), with ``GRIDPILOT_STORAGE_ACCESS_KEY`` and
  ``GRIDPILOT_STORAGE_SECRET_KEY``.

Inconsistent settings fail at start-up with a :class:`~gridpilot.errors.ConfigError` that says
which variable to fix; credentials never appear in it.

>>> StorageSettings(url="file:///tmp/objects").location.path
'/tmp/objects'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gridpilot.errors import ConfigError

__all__ = ["StorageLocation", "StorageSettings"]

_BUCKET: Final = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_ENV_KEYS: Final[str] = "GRIDPILOT_STORAGE_ACCESS_KEY and GRIDPILOT_STORAGE_SECRET_KEY"


@dataclass(frozen=True)
class StorageLocation:
    """A parsed storage URL.

    Attributes:
        kind: ``file`` or ``s3``.
        path: The folder, for ``file``.
        endpoint: ``host:port``, for ``s3``.
        bucket: The bucket, for ``s3``.
        secure: HTTPS (``s3s://``), for ``s3``.
    """

    kind: Literal["file", "s3"]
    path: str = ""
    endpoint: str = ""
    bucket: str = ""
    secure: bool = False

    def describe(self) -> str:
        """The URL without credentials, e.g. ``s3://127.0.0.1:9000/gridpilot``."""
        if self.kind == "file":
            return f"file://{self.path}"
        return f"{'s3s' if self.secure else 's3'}://{self.endpoint}/{self.bucket}"


def parse_storage_url(url: str) -> StorageLocation:
    """Parse ``GRIDPILOT_STORAGE_URL``.

    Raises:
        ConfigError: Unknown scheme, missing bucket or folder, credentials in the URL.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(
            f"GRIDPILOT_STORAGE_URL {url!r} has no scheme; use file://<folder>, "
            "s3://host:port/bucket or s3s://host:port/bucket"
        )
    scheme = scheme.lower()
    if scheme == "file":
        if not rest:
            raise ConfigError("GRIDPILOT_STORAGE_URL 'file://' names no folder")
        return StorageLocation(kind="file", path=rest)
    if scheme not in ("s3", "s3s"):
        raise ConfigError(
            f"GRIDPILOT_STORAGE_URL scheme {scheme!r} is not supported; use file, s3 or s3s"
        )
    parts = urlsplit(f"http://{rest}")
    if "@" in parts.netloc:
        raise ConfigError(
            "GRIDPILOT_STORAGE_URL must not carry credentials; set "
            f"{_ENV_KEYS} instead"
        )
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"GRIDPILOT_STORAGE_URL {url!r} has an invalid port") from exc
    if not parts.hostname:
        raise ConfigError(f"GRIDPILOT_STORAGE_URL {url!r} names no host")
    if parts.query or parts.fragment:
        raise ConfigError(f"GRIDPILOT_STORAGE_URL {url!r} must not have a query or fragment")
    bucket = parts.path.strip("/")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise ConfigError(
            f"GRIDPILOT_STORAGE_URL {url!r} must end with one bucket name: 3-63 characters "
            "of a-z, 0-9, '.' and '-', starting and ending with a letter or digit"
        )
    endpoint = parts.netloc if port is not None else parts.netloc.rstrip(":")
    return StorageLocation(kind="s3", endpoint=endpoint, bucket=bucket, secure=scheme == "s3s")


class StorageSettings(BaseSettings):
    """Object storage settings (environment variables ``GRIDPILOT_STORAGE_<FIELD>``)."""

    model_config = SettingsConfigDict(env_prefix="GRIDPILOT_STORAGE_", frozen=True)

    url: str = "file://./.state/objects"
    access_key: SecretStr | None = None
    secret_key: SecretStr | None = None
    region: str | None = None
    #: Seconds to wait for a TCP connection to the S3 server.
    connect_timeout_s: float = Field(5.0, gt=0, le=300)
    #: Seconds to wait for the next bytes of a response.
    read_timeout_s: float = Field(60.0, gt=0, le=3600)
    #: Retries (with back-off) of a failed connection or a 5xx answer before giving up.
    max_retries: int = Field(3, ge=0, le=20)
    #: Part size of S3 multipart uploads; files larger than one part are uploaded in parts.
    part_size_mib: int = Field(8, ge=5, le=5120)

    @model_validator(mode="after")
    def _check_consistent(self) -> StorageSettings:
        location = parse_storage_url(self.url)
        if location.kind == "s3":
            access = self.access_key.get_secret_value() if self.access_key else ""
            secret = self.secret_key.get_secret_value() if self.secret_key else ""
            if not access or not secret:
                missing = " and ".join(
                    name for name, value in (("GRIDPILOT_STORAGE_ACCESS_KEY", access),
                                             ("GRIDPILOT_STORAGE_SECRET_KEY", secret))
                    if not value
                )
                raise ConfigError(
                    f"GRIDPILOT_STORAGE_URL {location.describe()} is an S3 store, so "
                    f"{missing} must be set too; or use a file:// URL for the embedded "
                    "folder store"
                )
        return self

    @property
    def location(self) -> StorageLocation:
        """The parsed :attr:`url`."""
        return parse_storage_url(self.url)

    def describe(self) -> str:
        """The store's URL without credentials."""
        return self.location.describe()
