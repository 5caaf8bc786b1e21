"""Reading an uploaded file into memory within a size limit.

>>> import asyncio, io
>>> from starlette.datastructures import UploadFile
>>> asyncio.run(read_upload(UploadFile(io.BytesIO(b"MRC")), 1 << 20, field="image"))
b'MRC'
"""

from __future__ import annotations

from typing import Final

from starlette.datastructures import UploadFile

from gridpilot.errors import InvalidInput, PayloadTooLarge

__all__ = ["read_upload"]

#: Bytes read from an upload at a time.
_CHUNK: Final[int] = 1 << 20


async def read_upload(file: UploadFile, limit_bytes: int, *, field: str) -> bytes:
    """The whole upload, refused as soon as it passes ``limit_bytes``, or when it is empty.

    Raises:
        PayloadTooLarge: the upload is larger than the limit (413, as preprocess answers it).
        InvalidInput: the upload is empty (``field`` names the form field).
    """
    data = bytearray()
    while chunk := await file.read(_CHUNK):
        data += chunk
        if len(data) > limit_bytes:
            raise PayloadTooLarge(f"upload larger than {limit_bytes >> 20} MB; the limit is "
                                  f"{limit_bytes:,} bytes", field=field)
    if not data:
        raise InvalidInput(f"the uploaded {field} is empty", field=field)
    return bytes(data)
