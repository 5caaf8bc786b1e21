"""What a failed HTTP request stored is removed again: :class:`RequestScopedStore`.

A route that stores an upload and then fails on it (an unreadable movie, parameters refused
after the upload was spooled) must not leave the upload behind: a probe of 32 bad uploads left
24 of them in storage, 600 MB from one. The service skeleton wraps the store in a
:class:`RequestScopedStore`; while a request runs, every object it creates is journalled, and
when the request ends with a 4xx or 5xx status, or an unhandled error, those objects are
deleted. Objects that existed before the request (overwritten by it) are left alone, and jobs
from the bus are never journalled (their outcome is a ``job.failed`` event, and what a job
stored belongs to its session).

>>> import asyncio, tempfile
>>> from gridpilot.storage import StorageSettings, open_store
>>> async def failed_request(root: str) -> bool:
...     store = RequestScopedStore(open_store(StorageSettings(url=f"file://{root}")))
...     with journal() as written:
...         await store.put_bytes("sessions/s1/upload.mrc", b"not an MRC")
...     await discard(store, written)
...     return await store.exists("sessions/s1/upload.mrc")
>>> with tempfile.TemporaryDirectory() as root:
...     asyncio.run(failed_request(root))
False
"""

from __future__ import annotations

import builtins
import contextvars
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from gridpilot.errors import GridpilotError
from gridpilot.storage import DEFAULT_CONTENT_TYPE, ObjectInfo, ObjectStore

__all__ = ["RequestScopedStore", "discard", "journal"]

logger = logging.getLogger(__name__)

_written: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "gridpilot_request_writes", default=None)


@contextmanager
def journal() -> Iterator[list[str]]:
    """Journal the objects created through a :class:`RequestScopedStore` in this context.

    A list, not a set, is shared with the context copies of threads a sync route runs in.
    """
    written: list[str] = []
    token = _written.set(written)
    try:
        yield written
    finally:
        _written.reset(token)


async def discard(store: ObjectStore, written: list[str]) -> int:
    """Delete the journalled objects (best effort); returns how many were deleted."""
    deleted = 0
    for key in dict.fromkeys(written):
        try:
            await store.delete(key)
            deleted += 1
        except (GridpilotError, OSError) as exc:
            logger.warning("could not remove %s stored by a failed request: %s", key, exc)
    if deleted:
        logger.info("removed %d object(s) stored by a failed request", deleted)
    written.clear()
    return deleted


class RequestScopedStore(ObjectStore):
    """``inner``, with the objects created during a journalled request remembered."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner

    async def _journalled(self, key: str, put: Callable[[], Awaitable[ObjectInfo]]) -> ObjectInfo:
        """Run ``put`` (a write of ``key``); journal ``key`` when the write created it."""
        written = _written.get()
        if written is not None and await self.inner.exists(key):
            written = None  # it existed before this request: never removed on its behalf
        info = await put()
        if written is not None:
            written.append(key)
        return info

    async def put_bytes(self, key: str, data: bytes, *,
                        content_type: str = DEFAULT_CONTENT_TYPE,
                        metadata: Mapping[str, str] | None = None) -> ObjectInfo:
        return await self._journalled(key, lambda: self.inner.put_bytes(
            key, data, content_type=content_type, metadata=metadata))

    async def put_file(self, key: str, path: Path, *,
                       content_type: str = DEFAULT_CONTENT_TYPE,
                       metadata: Mapping[str, str] | None = None) -> ObjectInfo:
        return await self._journalled(key, lambda: self.inner.put_file(
            key, path, content_type=content_type, metadata=metadata))

    def describe(self) -> str:
        return self.inner.describe()

    async def ensure_ready(self) -> None:
        await self.inner.ensure_ready()

    async def close(self) -> None:
        await self.inner.close()

    # The public methods above and the inner store validate; these only pass through.
    async def _put_bytes(self, key: str, data: bytes, content_type: str,
                         metadata: dict[str, str]) -> ObjectInfo:
        return await self.put_bytes(key, data, content_type=content_type, metadata=metadata)

    async def _get_bytes(self, key: str) -> bytes:
        return await self.inner.get_bytes(key)

    async def _put_file(self, key: str, path: Path, content_type: str,
                        metadata: dict[str, str]) -> ObjectInfo:
        return await self.put_file(key, path, content_type=content_type, metadata=metadata)

    async def _get_file(self, key: str, path: Path) -> ObjectInfo:
        return await self.inner.get_file(key, path)

    def _iter_chunks(self, key: str, chunk_size: int) -> AsyncIterator[bytes]:
        return self.inner.iter_chunks(key, chunk_size)

    async def _stat(self, key: str) -> ObjectInfo:
        return await self.inner.stat(key)

    async def _delete(self, key: str) -> None:
        await self.inner.delete(key)

    async def _list(self, prefix: str) -> builtins.list[ObjectInfo]:
        return await self.inner.list(prefix)
