"""The one object-store interface, shared checks, and the array helpers built on it.

:class:`ObjectStore` is a template: its public async methods validate the key, the metadata
and the arguments before any I/O, then call the back end's ``_``-prefixed method. A back end
(:mod:`.local`, :mod:`.s3`) only moves bytes and translates its own exceptions.

>>> async def roundtrip(store: ObjectStore) -> bytes:
...     await store.put_bytes("sessions/s1/notes.txt", b"hello", content_type="text/plain")
...     return await store.get_bytes("sessions/s1/notes.txt")
"""

from __future__ import annotations

import abc
import asyncio
import builtins
import logging
import re
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import numpy.typing as npt

from gridpilot.errors import ConfigError, InvalidInput, NotFound

from . import mrc
from .keys import validate_key, validate_prefix
from .mrc import ArrayMeta

__all__ = [
    "DEFAULT_CONTENT_TYPE",
    "MAX_METADATA_BYTES",
    "ObjectInfo",
    "ObjectStore",
    "StorageAccessDenied",
    "check_metadata",
]

logger = logging.getLogger(__name__)

DEFAULT_CONTENT_TYPE: Final[str] = "application/octet-stream"
#: S3 limits user metadata to 2 KiB (names and values); the folder store keeps the same limit.
MAX_METADATA_BYTES: Final[int] = 2048
_META_NAME: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_CONTENT_TYPE: Final = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(?:;[ -~]*)?")
# The object metadata name under which put_array stores the array metadata when it fits.
_ARRAY_META_JSON: Final[str] = "array-metadata"


class StorageAccessDenied(ConfigError):
    """The store refused the configured credentials (wrong key, secret, or permissions)."""

    code = "storage_access_denied"


@dataclass(frozen=True)
class ObjectInfo:
    """What a store knows about one object.

    Attributes:
        key: The object's key.
        size: Size in bytes.
        etag: An opaque version tag; the MD5 hex digest for objects written in one part.
        content_type: The MIME type given at upload; empty in :meth:`ObjectStore.list` results.
        metadata: User metadata (lower-case names); empty in :meth:`ObjectStore.list` results.
        modified: When the object was last written (UTC).
    """

    key: str
    size: int
    etag: str
    content_type: str
    modified: datetime
    metadata: dict[str, str] = field(default_factory=dict)


def check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """Normalise user metadata so that every back end stores and returns it unchanged.

    Names are lower-cased and must match ``[a-z0-9][a-z0-9_-]{0,63}``; values must be
    non-empty printable ASCII without leading or trailing spaces (HTTP headers would strip
    them); all together at most 2 KiB.

    Raises:
        InvalidInput: A name or value that an S3 server would drop or change; the message
            names it.
    """
    out: dict[str, str] = {}
    for name, value in (metadata or {}).items():
        lowered = name.lower() if isinstance(name, str) else name
        if not isinstance(lowered, str) or not _META_NAME.fullmatch(lowered):
            raise InvalidInput(
                f"metadata name {name!r} must be 1-64 characters of a-z, 0-9, '_' and '-'",
                field="metadata",
            )
        if lowered in out:
            raise InvalidInput(f"metadata name {name!r} is given twice (names ignore case)",
                               field="metadata")
        if (not isinstance(value, str) or value == "" or value != value.strip()
                or not all(" " <= ch <= "~" for ch in value)):
            raise InvalidInput(
                f"metadata value of {name!r} must be non-empty printable ASCII without "
                "leading or trailing spaces",
                field="metadata",
            )
        out[lowered] = value
    size = sum(len(k) + len(v) for k, v in out.items())
    if size > MAX_METADATA_BYTES:
        raise InvalidInput(f"metadata is {size} bytes; the limit is {MAX_METADATA_BYTES}",
                           field="metadata")
    return out


def _check_content_type(content_type: str) -> str:
    if not isinstance(content_type, str) or not _CONTENT_TYPE.fullmatch(content_type):
        raise InvalidInput(f"content type {content_type!r} is not a MIME type like 'image/png'",
                           field="content_type")
    return content_type


class ObjectStore(abc.ABC):
    """Object storage with one async API; see :func:`gridpilot.storage.open_store`.

    Every method validates the key with :func:`.keys.validate_key` before any I/O. Missing
    objects raise :class:`~gridpilot.errors.NotFound`; an unreachable store raises
    :class:`~gridpilot.errors.StorageUnavailable`; refused credentials raise
    :class:`StorageAccessDenied`.
    """

    # ---- bytes -----------------------------------------------------------------------------

    async def put_bytes(self, key: str, data: bytes, *,
                        content_type: str = DEFAULT_CONTENT_TYPE,
                        metadata: Mapping[str, str] | None = None) -> ObjectInfo:
        """Store ``data`` at ``key``, replacing any object there, atomically."""
        validate_key(key)
        meta = check_metadata(metadata)
        _check_content_type(content_type)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InvalidInput(f"data for {key!r} must be bytes, got {type(data).__name__}")
        info = await self._put_bytes(key, bytes(data), content_type, meta)
        logger.debug("stored %s (%d bytes) in %s", key, info.size, self.describe())
        return info

    async def get_bytes(self, key: str) -> bytes:
        """The whole object at ``key``; raises NotFound naming the key when there is none."""
        return await self._get_bytes(validate_key(key))

    async def put_file(self, key: str, path: Path, *,
                       content_type: str = DEFAULT_CONTENT_TYPE,
                       metadata: Mapping[str, str] | None = None) -> ObjectInfo:
        """Stream the file at ``path`` to ``key`` (multipart on S3 for large files)."""
        validate_key(key)
        meta = check_metadata(metadata)
        _check_content_type(content_type)
        path = Path(path)
        if not await asyncio.to_thread(path.is_file):
            raise NotFound(f"no file at {path} to store as {key!r}", path=str(path))
        info = await self._put_file(key, path, content_type, meta)
        logger.debug("stored %s (%d bytes) from a file in %s", key, info.size, self.describe())
        return info

    async def get_file(self, key: str, path: Path) -> ObjectInfo:
        """Stream the object at ``key`` into ``path`` (written atomically; folders created)."""
        return await self._get_file(validate_key(key), Path(path))

    def iter_chunks(self, key: str, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        """Read the object at ``key`` in chunks of ``chunk_size`` bytes (the last may be shorter).

        Use as ``async for chunk in store.iter_chunks(key)``; the key is checked at once.
        """
        validate_key(key)
        if not isinstance(chunk_size, int) or chunk_size <= 0:
            raise InvalidInput(f"chunk_size must be a positive integer, got {chunk_size!r}")
        return self._iter_chunks(key, chunk_size)

    async def stat(self, key: str) -> ObjectInfo:
        """Size, etag, content type, metadata and modification time of the object at ``key``."""
        return await self._stat(validate_key(key))

    async def exists(self, key: str) -> bool:
        """Whether an object is stored at ``key``."""
        try:
            await self.stat(key)
        except NotFound:
            return False
        return True

    async def delete(self, key: str) -> None:
        """Remove the object at ``key``; removing a missing object is not an error (as on S3)."""
        await self._delete(validate_key(key))
        logger.debug("deleted %s from %s", key, self.describe())

    async def list(self, prefix: str = "") -> builtins.list[ObjectInfo]:
        """Every object whose key starts with ``prefix``, sorted by key.

        Only key, size, etag and modified are filled in; call :meth:`stat` for the content
        type and metadata. ``prefix`` is a plain string prefix: end it with ``/`` to list a
        folder (``session_prefix`` and friends do).
        """
        found = await self._list(validate_prefix(prefix))
        return sorted(found, key=lambda info: info.key)

    # ---- arrays ----------------------------------------------------------------------------

    async def put_array(self, key: str, array: npt.NDArray[Any], *, pixel_size_a: float,
                        metadata: Mapping[str, Any] | None = None,
                        volume: bool = False) -> ObjectInfo:
        """Store an image ``(H, W)``, a stack of frames ``(N, H, W)`` or a volume as MRC.

        The pixel size, shape and dtype go into the object metadata too, and the metadata
        JSON when it fits there (the MRC's extended header always holds it).

        Args:
            key: Where to store it, usually from :mod:`.keys`.
            array: float32, int16, uint16, int8 or float16 pixels.
            pixel_size_a: Pixel size in Å.
            metadata: JSON-serialisable facts about the image (defocus, dose, ...).
            volume: Mark a 3-D array as a volume (tomogram) instead of a stack of frames.
        """
        validate_key(key)
        mrc.check_array(array, pixel_size_a, volume)
        meta_json = mrc.metadata_json(metadata)
        object_meta = {
            "pixel-size-a": repr(float(pixel_size_a)),
            "shape": "x".join(str(n) for n in array.shape),
            "dtype": array.dtype.name,
            "volume": "true" if volume else "false",
        }
        if sum(map(len, object_meta.values())) + len(meta_json) < MAX_METADATA_BYTES - 128:
            object_meta[_ARRAY_META_JSON] = meta_json
        with tempfile.TemporaryDirectory(prefix="gridpilot-mrc-") as tmp:
            path = Path(tmp) / "array.mrc"
            await asyncio.to_thread(mrc.write_mrc, path, array, pixel_size_a, metadata,
                                    volume=volume)
            return await self.put_file(key, path, content_type=mrc.MRC_CONTENT_TYPE,
                                       metadata=object_meta)

    async def get_array(self, key: str) -> tuple[npt.NDArray[Any], ArrayMeta]:
        """The array stored at ``key`` by :meth:`put_array` (or any MRC object) and its meta.

        Raises:
            NotFound: No object at ``key``.
            InvalidInput: The object is not a complete MRC file.
        """
        validate_key(key)
        with tempfile.TemporaryDirectory(prefix="gridpilot-mrc-") as tmp:
            path = Path(tmp) / "array.mrc"
            await self.get_file(key, path)
            return await asyncio.to_thread(mrc.read_mrc, path, name=key)

    # ---- life cycle ------------------------------------------------------------------------

    @abc.abstractmethod
    def describe(self) -> str:
        """Where the objects are, as a URL without credentials."""

    async def ensure_ready(self) -> None:
        """Create the folder or bucket if missing and check that the store answers.

        The folder store is ready once built; the S3 store overrides this.
        """
        return None

    async def close(self) -> None:
        """Release connections; the store is unusable afterwards (a no-op for folders)."""
        return None

    async def __aenter__(self) -> ObjectStore:
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"

    # ---- what a back end implements (keys are already validated) ----------------------------

    @abc.abstractmethod
    async def _put_bytes(self, key: str, data: bytes, content_type: str,
                         metadata: dict[str, str]) -> ObjectInfo: ...

    @abc.abstractmethod
    async def _get_bytes(self, key: str) -> bytes: ...

    @abc.abstractmethod
    async def _put_file(self, key: str, path: Path, content_type: str,
                        metadata: dict[str, str]) -> ObjectInfo: ...

    @abc.abstractmethod
    async def _get_file(self, key: str, path: Path) -> ObjectInfo: ...

    @abc.abstractmethod
    def _iter_chunks(self, key: str, chunk_size: int) -> AsyncIterator[bytes]: ...

    @abc.abstractmethod
    async def _stat(self, key: str) -> ObjectInfo: ...

    @abc.abstractmethod
    async def _delete(self, key: str) -> None: ...

    @abc.abstractmethod
    async def _list(self, prefix: str) -> builtins.list[ObjectInfo]: ...
