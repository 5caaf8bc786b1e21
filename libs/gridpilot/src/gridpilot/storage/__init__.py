"""Object storage for pixels and products: one async API, a folder or an S3 bucket behind it.

Keys come from :mod:`gridpilot.storage.keys` (``sessions/<session>/grids/<grid>/...``) and
travel in messages; pixels stay in the store. Images are stored as MRC with their pixel size
and metadata inside (:mod:`gridpilot.storage.mrc`).

>>> import asyncio, tempfile
>>> import numpy as np
>>> async def demo(root: str) -> tuple[tuple[int, ...], float]:
...     async with open_store(StorageSettings(url=f"file://{root}")) as store:
...         key = keys.image_key("s1", "g1", "search", "sq_1")
...         await store.put_array(key, np.zeros((8, 8), np.float32), pixel_size_a=12.5)
...         array, meta = await store.get_array(key)
...         return array.shape, meta.pixel_size_a
>>> with tempfile.TemporaryDirectory() as root:
...     asyncio.run(demo(root))
((8, 8), 12.5)
"""

from __future__ import annotations

from pathlib import Path

from gridpilot.errors import ConfigError

from . import keys, mrc
from .base import (
    DEFAULT_CONTENT_TYPE,
    MAX_METADATA_BYTES,
    ObjectInfo,
    ObjectStore,
    StorageAccessDenied,
)
from .local import LocalStore
from .mrc import ArrayMeta, decode_mrc, encode_mrc, read_image_file
from .s3 import S3Store
from .settings import StorageLocation, StorageSettings

__all__ = [
    "DEFAULT_CONTENT_TYPE",
    "MAX_METADATA_BYTES",
    "ArrayMeta",
    "LocalStore",
    "ObjectInfo",
    "ObjectStore",
    "S3Store",
    "StorageAccessDenied",
    "StorageLocation",
    "StorageSettings",
    "decode_mrc",
    "encode_mrc",
    "keys",
    "mrc",
    "open_store",
    "read_image_file",
]


def open_store(settings: StorageSettings) -> ObjectStore:
    """The store ``settings.url`` names.

    A folder is created at once; an S3 bucket on first use, or by
    ``await store.ensure_ready()``, which services call at start-up (and ``/readyz`` may
    call) so that a wrong endpoint or credentials fail early. Building the store never blocks
    on the network.

    Raises:
        ConfigError: The S3 endpoint is not a valid ``host:port``.
        StorageUnavailable: The folder cannot be created.
    """
    location = settings.location
    if location.kind == "file":
        return LocalStore(Path(location.path))
    if settings.access_key is None or settings.secret_key is None:  # the validator ensures it
        raise ConfigError(f"{location.describe()} needs an access key and a secret key")
    try:
        return S3Store(
            endpoint=location.endpoint, bucket=location.bucket, secure=location.secure,
            access_key=settings.access_key.get_secret_value(),
            secret_key=settings.secret_key.get_secret_value(),
            region=settings.region, connect_timeout_s=settings.connect_timeout_s,
            read_timeout_s=settings.read_timeout_s, max_retries=settings.max_retries,
            part_size_mib=settings.part_size_mib,
        )
    except ValueError as exc:
        # minio validates the endpoint; its message holds no credentials.
        raise ConfigError(f"GRIDPILOT_STORAGE_URL {location.describe()} is not usable: {exc}") from exc
