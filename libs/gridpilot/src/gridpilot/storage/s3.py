"""The S3 back end, through the ``minio`` SDK: MinIO, SeaweedFS, Ceph RGW, Garage, AWS.

minio is synchronous, so every call runs in a worker thread (:func:`asyncio.to_thread`).
Its exceptions are translated in one place, :meth:`S3Store._errors`:

==========================================  ==============================================
minio / urllib3                              gridpilot
==========================================  ==============================================
``NoSuchKey``                                :class:`~gridpilot.errors.NotFound`
refused connection, timeout, 5xx             :class:`~gridpilot.errors.StorageUnavailable`
``NoSuchBucket`` (bucket deleted)            StorageUnavailable (the next call recreates it)
``AccessDenied``, ``SignatureDoesNotMatch``  :class:`~.base.StorageAccessDenied`
other 4xx                                    :class:`~gridpilot.errors.InvalidInput`
==========================================  ==============================================

Messages name the endpoint, bucket and key, never the credentials. The bucket is created on
first use (or by :meth:`S3Store.ensure_ready` at start-up), so building a store does no I/O.
"""

from __future__ import annotations

import asyncio
import builtins
import http.client
import logging
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any, Final, NoReturn, ParamSpec, TypeVar

import certifi
import urllib3
from minio import Minio
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError
from minio.time import from_http_header
from urllib3.response import BaseHTTPResponse

from gridpilot.errors import GridpilotError, InvalidInput, NotFound, StorageUnavailable

from .base import DEFAULT_CONTENT_TYPE, ObjectInfo, ObjectStore, StorageAccessDenied

__all__ = ["S3Store"]

logger = logging.getLogger(__name__)

_P = ParamSpec("_P")
_T = TypeVar("_T")

_META_PREFIX: Final[str] = "x-amz-meta-"
_MIB: Final[int] = 1 << 20
_RETRY_BACKOFF_S: Final[float] = 0.2
_RETRY_STATUSES: Final = frozenset({500, 502, 503, 504})
_DENIED: Final = frozenset({
    "AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidToken",
    "ExpiredToken", "AuthorizationHeaderMalformed", "AllAccessDisabled", "AccountProblem",
    "InvalidSecurity", "MissingSecurityHeader",
})
_MISSING_KEY: Final = frozenset({"NoSuchKey", "NoSuchObject", "NoSuchVersion"})
_UNAVAILABLE: Final = frozenset({"InternalError", "ServiceUnavailable", "SlowDown",
                                 "RequestTimeout", "RequestTimeTooSkewed", "OperationAborted"})


class S3Store(ObjectStore):
    """Objects in one bucket of an S3 server."""

    def __init__(self, *, endpoint: str, bucket: str, access_key: str, secret_key: str,
                 secure: bool = False, region: str | None = None,
                 connect_timeout_s: float = 5.0, read_timeout_s: float = 60.0,
                 max_retries: int = 3, part_size_mib: int = 8) -> None:
        """Build the client; no request is made until the first operation.

        Args:
            endpoint: ``host:port`` of the S3 server.
            bucket: The bucket, created on first use if missing.
            access_key: The access key id.
            secret_key: The secret key; it never leaves the signing code.
            secure: Use HTTPS.
            region: The bucket's region, when the server insists on one.
            connect_timeout_s: Seconds to wait for a TCP connection.
            read_timeout_s: Seconds to wait for the next bytes of a response.
            max_retries: Retries of a failed connection or a 5xx answer.
            part_size_mib: Multipart upload part size; larger uploads go in parts.
        """
        self._endpoint = endpoint
        self._bucket = bucket
        self._secure = secure
        self._region = region
        self._part_size = part_size_mib * _MIB
        self._http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout_s, read=read_timeout_s),
            maxsize=10,
            cert_reqs="CERT_REQUIRED",
            ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
            retries=urllib3.Retry(total=max_retries, backoff_factor=_RETRY_BACKOFF_S,
                                  status_forcelist=_RETRY_STATUSES),
        )
        self._client = Minio(endpoint, access_key=access_key, secret_key=secret_key,
                             secure=secure, region=region, http_client=self._http)
        self._ready = False
        self._ready_lock = asyncio.Lock()

    def describe(self) -> str:
        return f"{'s3s' if self._secure else 's3'}://{self._endpoint}/{self._bucket}"

    @property
    def bucket(self) -> str:
        return self._bucket

    # ---- the one error boundary ------------------------------------------------------------

    @contextmanager
    def _errors(self, op: str, key: str | None = None) -> Iterator[None]:
        """Translate minio and urllib3 exceptions raised while doing ``op`` on ``key``."""
        try:
            yield
        except S3Error as exc:
            self._raise_s3_error(exc, op, key)
        except (ServerError, InvalidResponseError) as exc:
            status = getattr(exc, "status_code", None) or getattr(exc, "_code", 0)
            cls = StorageUnavailable if int(status or 0) >= 500 else GridpilotError
            raise cls(f"S3 at {self._endpoint} answered {op} of {self._what(key)} with HTTP "
                      f"{status} and no S3 error document", endpoint=self._endpoint) from exc
        except (urllib3.exceptions.HTTPError, http.client.HTTPException, ConnectionError,
                TimeoutError) as exc:
            reason = getattr(exc, "reason", None) or exc
            state = ("kept answering with server errors"
                     if isinstance(reason, urllib3.exceptions.ResponseError)
                     else f"is unreachable ({type(reason).__name__})")
            raise StorageUnavailable(
                f"S3 at {self._endpoint} {state} during {op} of {self._what(key)}",
                endpoint=self._endpoint, bucket=self._bucket,
            ) from exc
        except MinioException as exc:
            raise GridpilotError(f"S3 client error during {op} of {self._what(key)}: "
                                 f"{type(exc).__name__}") from exc

    def _what(self, key: str | None) -> str:
        return f"{key!r} in bucket {self._bucket!r}" if key else f"bucket {self._bucket!r}"

    def _raise_s3_error(self, exc: S3Error, op: str, key: str | None) -> NoReturn:
        code = exc.code or ""
        status = exc.response.status if exc.response is not None else 0
        where = f"S3 at {self._endpoint}"
        if code in _MISSING_KEY and key is not None:
            raise NotFound(f"object {key!r} not found in {self.describe()}", key=key) from exc
        if code == "NoSuchBucket":
            self._ready = False  # deleted behind our back: the next call creates it again
            raise StorageUnavailable(f"{where} has no bucket {self._bucket!r} (during {op})",
                                     endpoint=self._endpoint, bucket=self._bucket) from exc
        if code in _DENIED:
            raise StorageAccessDenied(
                f"{where} refused access ({code}) during {op} of {self._what(key)}: check "
                "GRIDPILOT_STORAGE_ACCESS_KEY, GRIDPILOT_STORAGE_SECRET_KEY, "
                "GRIDPILOT_STORAGE_REGION and the identity's permissions on the bucket",
                endpoint=self._endpoint, bucket=self._bucket, s3_code=code,
            ) from exc
        if code in _UNAVAILABLE or status >= 500:
            raise StorageUnavailable(f"{where} failed {op} of {self._what(key)} ({code})",
                                     endpoint=self._endpoint, s3_code=code) from exc
        if 400 <= status < 500:
            raise InvalidInput(f"{where} refused {op} of {self._what(key)} ({code}: "
                               f"{exc.message})", s3_code=code) from exc
        raise GridpilotError(f"{where} failed {op} of {self._what(key)} ({code or status})",
                             s3_code=code) from exc

    # ---- bucket ----------------------------------------------------------------------------

    def _ensure_bucket_sync(self) -> None:
        with self._errors("check", None):
            if self._client.bucket_exists(self._bucket):
                return
        try:
            with self._errors("creation", None):
                self._client.make_bucket(self._bucket, location=self._region)
            logger.info("created bucket %s on %s", self._bucket, self._endpoint)
        except InvalidInput as exc:
            # Another process created it between our check and our request.
            if exc.details.get("s3_code") != "BucketAlreadyOwnedByYou":
                raise

    async def ensure_ready(self) -> None:
        """Create the bucket if missing; raises StorageUnavailable or StorageAccessDenied."""
        if self._ready:
            return
        async with self._ready_lock:
            if not self._ready:
                await asyncio.to_thread(self._ensure_bucket_sync)
                self._ready = True

    async def _call(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        await self.ensure_ready()
        return await asyncio.to_thread(fn, *args, **kwargs)

    # ---- sync operations (run in worker threads) -------------------------------------------

    def _info(self, key: str, headers: Any, *, written: bool = False) -> ObjectInfo:
        metadata = {name.lower()[len(_META_PREFIX):]: value for name, value in headers.items()
                    if name.lower().startswith(_META_PREFIX)}
        modified = headers.get("last-modified")
        return ObjectInfo(
            key=key, size=int(headers.get("content-length", "0")),
            etag=headers.get("etag", "").replace('"', ""),
            content_type=headers.get("content-type") or DEFAULT_CONTENT_TYPE,
            metadata=metadata,
            modified=from_http_header(modified) if modified else datetime.now(UTC),
        )

    @staticmethod
    def _headers(metadata: dict[str, str]) -> dict[str, str]:
        # Prefixed here, so minio never mistakes a name for a standard header.
        return {f"{_META_PREFIX}{name}": value for name, value in metadata.items()}

    def _put_sync(self, key: str, source: Path | bytes, content_type: str,
                  metadata: dict[str, str]) -> ObjectInfo:
        with self._errors("put", key):
            if isinstance(source, bytes):
                size = len(source)
                result = self._client.put_object(
                    self._bucket, key, BytesIO(source), size, content_type=content_type,
                    metadata=self._headers(metadata), part_size=self._part_size)  # type: ignore[arg-type]
            else:
                size = source.stat().st_size
                result = self._client.fput_object(
                    self._bucket, key, str(source), content_type=content_type,
                    metadata=self._headers(metadata), part_size=self._part_size)  # type: ignore[arg-type]
        return ObjectInfo(key=key, size=size, etag=(result.etag or "").replace('"', ""),
                          content_type=content_type, metadata=dict(metadata),
                          modified=result.last_modified or datetime.now(UTC))

    def _open_sync(self, key: str) -> BaseHTTPResponse:
        with self._errors("get", key):
            return self._client.get_object(self._bucket, key)

    def _read_sync(self, response: BaseHTTPResponse, key: str, amount: int | None) -> bytes:
        with self._errors("get", key):
            return response.read(amount)

    @staticmethod
    def _release(response: BaseHTTPResponse) -> None:
        response.close()
        response.release_conn()

    def _get_bytes_sync(self, key: str) -> bytes:
        response = self._open_sync(key)
        try:
            return self._read_sync(response, key, None)
        finally:
            self._release(response)

    def _get_file_sync(self, key: str, dest: Path) -> ObjectInfo:
        response = self._open_sync(key)
        try:
            info = self._info(key, response.headers)
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
            try:
                with os.fdopen(fd, "wb") as out:
                    while chunk := self._read_sync(response, key, _MIB):
                        out.write(chunk)
                os.replace(tmp_name, dest)
            finally:
                with suppress(FileNotFoundError):
                    os.unlink(tmp_name)
        finally:
            self._release(response)
        return info

    def _stat_sync(self, key: str) -> ObjectInfo:
        with self._errors("stat", key):
            obj = self._client.stat_object(self._bucket, key)
        return self._info(key, obj.metadata or {})

    def _delete_sync(self, key: str) -> None:
        with self._errors("delete", key):
            self._client.remove_object(self._bucket, key)

    def _list_sync(self, prefix: str) -> builtins.list[ObjectInfo]:
        found: builtins.list[ObjectInfo] = []
        with self._errors("list", prefix or "*"):
            for obj in self._client.list_objects(self._bucket, prefix=prefix or None,
                                                 recursive=True):
                if obj.object_name is None or obj.is_dir:
                    continue
                found.append(ObjectInfo(
                    key=obj.object_name, size=obj.size or 0,
                    etag=(obj.etag or "").replace('"', ""), content_type="",
                    modified=obj.last_modified or datetime.now(UTC),
                ))
        return found

    # ---- the async API ---------------------------------------------------------------------

    async def _put_bytes(self, key: str, data: bytes, content_type: str,
                         metadata: dict[str, str]) -> ObjectInfo:
        return await self._call(self._put_sync, key, data, content_type, metadata)

    async def _get_bytes(self, key: str) -> bytes:
        return await self._call(self._get_bytes_sync, key)

    async def _put_file(self, key: str, path: Path, content_type: str,
                        metadata: dict[str, str]) -> ObjectInfo:
        return await self._call(self._put_sync, key, path, content_type, metadata)

    async def _get_file(self, key: str, path: Path) -> ObjectInfo:
        return await self._call(self._get_file_sync, key, path)

    async def _iter_chunks(self, key: str, chunk_size: int) -> AsyncIterator[bytes]:
        response = await self._call(self._open_sync, key)
        try:
            while chunk := await asyncio.to_thread(self._read_sync, response, key, chunk_size):
                yield chunk
        finally:
            self._release(response)

    async def _stat(self, key: str) -> ObjectInfo:
        return await self._call(self._stat_sync, key)

    async def _delete(self, key: str) -> None:
        await self._call(self._delete_sync, key)

    async def _list(self, prefix: str) -> builtins.list[ObjectInfo]:
        return await self._call(self._list_sync, prefix)

    async def close(self) -> None:
        """Close the connection pool."""
        self._http.clear()
