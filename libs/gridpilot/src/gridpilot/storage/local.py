"""The embedded back end: objects as files in a folder, metadata in JSON sidecars.

Layout under the root::

    <key>                             the object's bytes, so the folder can be browsed
    .gridpilot/meta/<key>.json        content type, metadata, etag, and the size and mtime
                                      of the bytes it describes (a stale sidecar is ignored)
    .gridpilot/tmp/                   temporary files, renamed into place with os.replace

Writes are atomic: readers see the old object or the new one, never a partial file. A key
may not resolve outside the root, also not through a symbolic link; the top-level name
``.gridpilot`` is reserved. Blocking file I/O runs in worker threads.

Use it through :func:`gridpilot.storage.open_store` with ``GRIDPILOT_STORAGE_URL=file://<folder>``,
or directly as ``LocalStore(Path("/var/lib/gridpilot/objects"))``.
"""

from __future__ import annotations

import asyncio
import builtins
import errno
import hashlib
import json
import logging
import mimetypes
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final

from gridpilot.errors import Conflict, InvalidInput, NotFound, StorageUnavailable

from .base import DEFAULT_CONTENT_TYPE, ObjectInfo, ObjectStore, StorageAccessDenied
from .keys import validate_key

__all__ = ["LocalStore"]

logger = logging.getLogger(__name__)

_RESERVED: Final[str] = ".gridpilot"
_COPY_CHUNK: Final[int] = 1 << 20


def _md5() -> Any:
    return hashlib.md5(usedforsecurity=False)


class LocalStore(ObjectStore):
    """Objects in a local folder (the embedded default, ``file://`` URLs)."""

    def __init__(self, root: Path) -> None:
        """Use ``root`` as the store, creating it if missing.

        Raises:
            StorageUnavailable: The folder cannot be created.
        """
        try:
            Path(root).mkdir(parents=True, exist_ok=True)
            self._root = Path(os.path.realpath(root))
            self._meta_root = self._root / _RESERVED / "meta"
            self._tmp = self._root / _RESERVED / "tmp"
            self._meta_root.mkdir(parents=True, exist_ok=True)
            self._tmp.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageUnavailable(f"cannot create the object folder {root}: {exc.strerror}",
                                     path=str(root)) from exc

    @property
    def root(self) -> Path:
        """The folder holding the objects (symbolic links resolved)."""
        return self._root

    def describe(self) -> str:
        return f"file://{self._root}"

    # ---- paths and errors ------------------------------------------------------------------

    def _inside(self, path: Path, key: str) -> Path:
        real = Path(os.path.realpath(path))
        if real != self._root and self._root not in real.parents:
            raise InvalidInput(
                f"object key {key!r} resolves outside the store root {self._root} "
                "through a symbolic link",
                key=key,
            )
        return real

    def _data_path(self, key: str) -> Path:
        if key.split("/", 1)[0] == _RESERVED:
            raise InvalidInput(f"object key {key!r} uses the reserved name {_RESERVED!r}",
                               key=key)
        return self._inside(self._root / key, key)

    def _meta_path(self, key: str) -> Path:
        return self._inside(self._meta_root / f"{key}.json", key)

    @contextmanager
    def _fs_errors(self, op: str, key: str) -> Iterator[None]:
        """Translate file-system errors into gridpilot errors for ``op`` on ``key``."""
        try:
            yield
        except IsADirectoryError as exc:
            if op in ("put", "put_file"):
                raise Conflict(f"cannot {op} {key!r} in {self.describe()}: a folder of that "
                               "name holds other objects", key=key) from exc
            raise NotFound(f"object {key!r} not found in {self.describe()}", key=key) from exc
        except FileNotFoundError as exc:
            if op in ("put", "put_file"):
                raise StorageUnavailable(f"cannot {op} {key!r}: a folder of {self.describe()} "
                                         "vanished while writing", key=key) from exc
            raise NotFound(f"object {key!r} not found in {self.describe()}", key=key) from exc
        except (NotADirectoryError, FileExistsError) as exc:
            if op in ("put", "put_file"):
                raise Conflict(f"cannot {op} {key!r} in {self.describe()}: an object named like "
                               "one of its folders exists", key=key) from exc
            raise NotFound(f"object {key!r} not found in {self.describe()}", key=key) from exc
        except PermissionError as exc:
            raise StorageAccessDenied(f"permission denied to {op} {key!r} in "
                                      f"{self.describe()}", key=key) from exc
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                raise InvalidInput(f"object key {key!r} is too long for this file system",
                                   key=key) from exc
            raise StorageUnavailable(f"cannot {op} {key!r} in {self.describe()}: "
                                     f"{exc.strerror or exc}", key=key) from exc

    # ---- sync helpers (run in worker threads) ----------------------------------------------

    def _write(self, key: str, fill: Any, content_type: str,
               metadata: dict[str, str]) -> ObjectInfo:
        """Write via ``fill(file, md5)`` to a temp file, then rename it and its sidecar into place."""
        target = self._data_path(key)
        meta_target = self._meta_path(key)
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix="obj-")
        tmp = Path(tmp_name)
        try:
            digest = _md5()
            with os.fdopen(fd, "wb") as f:
                fill(f, digest)
                f.flush()
                os.fsync(f.fileno())
            st = tmp.stat()
            sidecar = {"content_type": content_type, "metadata": metadata,
                       "etag": digest.hexdigest(), "size": st.st_size,
                       "mtime_ns": st.st_mtime_ns}
            target.parent.mkdir(parents=True, exist_ok=True)
            meta_target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
            self._write_json(meta_target, sidecar)
        finally:
            with suppress(FileNotFoundError):
                tmp.unlink()
        return self._info(key, target, sidecar)

    def _write_json(self, target: Path, doc: dict[str, Any]) -> None:
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix="meta-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(doc, f)
            os.replace(tmp_name, target)
        finally:
            with suppress(FileNotFoundError):
                os.unlink(tmp_name)

    def _sidecar(self, key: str, st: os.stat_result) -> dict[str, Any] | None:
        """The sidecar of ``key`` if it describes the bytes now on disk."""
        try:
            doc = json.loads(self._meta_path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if (not isinstance(doc, dict) or doc.get("size") != st.st_size
                or doc.get("mtime_ns") != st.st_mtime_ns):
            return None
        return doc

    def _info(self, key: str, path: Path, sidecar: dict[str, Any] | None = None, *,
              full: bool = True) -> ObjectInfo:
        st = path.stat()
        if not path.is_file():
            raise IsADirectoryError(errno.EISDIR, "not a file", str(path))
        doc = sidecar if sidecar is not None else self._sidecar(key, st)
        etag = doc["etag"] if doc else f"{st.st_size:x}-{st.st_mtime_ns:x}"
        content_type, metadata = "", {}
        if full:
            content_type = (doc or {}).get("content_type") or (
                mimetypes.guess_type(path.name)[0] or DEFAULT_CONTENT_TYPE)
            metadata = dict((doc or {}).get("metadata") or {})
        return ObjectInfo(key=key, size=st.st_size, etag=str(etag), content_type=content_type,
                          metadata=metadata, modified=datetime.fromtimestamp(st.st_mtime, UTC))

    def _put_bytes_sync(self, key: str, data: bytes, content_type: str,
                        metadata: dict[str, str]) -> ObjectInfo:
        def fill(f: IO[bytes], digest: Any) -> None:
            f.write(data)
            digest.update(data)

        with self._fs_errors("put", key):
            return self._write(key, fill, content_type, metadata)

    def _put_file_sync(self, key: str, source: Path, content_type: str,
                       metadata: dict[str, str]) -> ObjectInfo:
        def fill(f: IO[bytes], digest: Any) -> None:
            with open(source, "rb") as src:
                while chunk := src.read(_COPY_CHUNK):
                    f.write(chunk)
                    digest.update(chunk)

        with self._fs_errors("put_file", key):
            return self._write(key, fill, content_type, metadata)

    def _get_bytes_sync(self, key: str) -> bytes:
        with self._fs_errors("get", key):
            return self._data_path(key).read_bytes()

    def _get_file_sync(self, key: str, dest: Path) -> ObjectInfo:
        with self._fs_errors("get", key):
            source = self._data_path(key)
            info = self._info(key, source)
            src = open(source, "rb")  # closed by the with below; opened here for NotFound
        with src:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
            try:
                with os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(src, out, _COPY_CHUNK)
                os.replace(tmp_name, dest)
            finally:
                with suppress(FileNotFoundError):
                    os.unlink(tmp_name)
        return info

    def _stat_sync(self, key: str) -> ObjectInfo:
        with self._fs_errors("stat", key):
            return self._info(key, self._data_path(key))

    def _delete_sync(self, key: str) -> None:
        with self._fs_errors("delete", key):
            target = self._data_path(key)
            if target.is_dir():
                return  # a folder of other objects, not an object: nothing to delete
            with suppress(FileNotFoundError):
                target.unlink()
            meta = self._meta_path(key)
            with suppress(FileNotFoundError):
                meta.unlink()
            self._prune(target.parent, self._root)
            self._prune(meta.parent, self._meta_root)

    @staticmethod
    def _prune(folder: Path, stop: Path) -> None:
        """Remove empty folders from ``folder`` up to (not including) ``stop``."""
        while folder != stop and stop in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent

    def _list_sync(self, prefix: str) -> builtins.list[ObjectInfo]:
        # Walk only the deepest folder the prefix names, then filter by the prefix itself.
        folder, _, _ = prefix.rpartition("/")
        start = self._root / folder if folder else self._root
        if folder and folder.split("/", 1)[0] == _RESERVED:
            return []
        found: builtins.list[ObjectInfo] = []
        with self._fs_errors("list", prefix):
            if not start.is_dir() or start.is_symlink():
                return []
            for dirpath, dirnames, filenames in os.walk(start):
                here = Path(dirpath)
                if here == self._root:
                    dirnames[:] = [d for d in dirnames if d != _RESERVED]
                for name in filenames:
                    path = here / name
                    key = path.relative_to(self._root).as_posix()
                    if not key.startswith(prefix):
                        continue
                    try:
                        validate_key(key)
                        self._inside(path, key)
                        found.append(self._info(key, path, full=False))
                    except (InvalidInput, OSError):
                        continue  # foreign or dangling files are not objects
        return found

    # ---- the async API ---------------------------------------------------------------------

    async def _put_bytes(self, key: str, data: bytes, content_type: str,
                         metadata: dict[str, str]) -> ObjectInfo:
        return await asyncio.to_thread(self._put_bytes_sync, key, data, content_type, metadata)

    async def _get_bytes(self, key: str) -> bytes:
        return await asyncio.to_thread(self._get_bytes_sync, key)

    async def _put_file(self, key: str, path: Path, content_type: str,
                        metadata: dict[str, str]) -> ObjectInfo:
        return await asyncio.to_thread(self._put_file_sync, key, path, content_type, metadata)

    async def _get_file(self, key: str, path: Path) -> ObjectInfo:
        return await asyncio.to_thread(self._get_file_sync, key, path)

    async def _iter_chunks(self, key: str, chunk_size: int) -> AsyncIterator[bytes]:
        def open_it() -> IO[bytes]:
            with self._fs_errors("get", key):
                return open(self._data_path(key), "rb")

        f = await asyncio.to_thread(open_it)
        try:
            while chunk := await asyncio.to_thread(f.read, chunk_size):
                yield chunk
        finally:
            f.close()

    async def _stat(self, key: str) -> ObjectInfo:
        return await asyncio.to_thread(self._stat_sync, key)

    async def _delete(self, key: str) -> None:
        await asyncio.to_thread(self._delete_sync, key)

    async def _list(self, prefix: str) -> builtins.list[ObjectInfo]:
        return await asyncio.to_thread(self._list_sync, prefix)
