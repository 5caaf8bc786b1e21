"""Read a movie or a single image (MRC/MRCS or TIFF) from a path or from bytes.

The format is recognised from the content, not the name. Every failure to parse — a truncated
data block, a corrupt header, an unknown format — becomes :class:`gridpilot.errors.InvalidInput`
with the reason, so the service terms the job instead of retrying it.

>>> import tempfile, mrcfile, numpy as np
>>> with tempfile.TemporaryDirectory() as tmp:
...     with mrcfile.new(f"{tmp}/m.mrc") as mrc:
...         mrc.set_data(np.zeros((2, 8, 8), dtype=np.float32))
...         mrc.voxel_size = 1.5
...     movie = read_movie(f"{tmp}/m.mrc")
>>> movie.frames.shape, movie.pixel_size_a, movie.file_format
((2, 8, 8), 1.5, 'mrc')
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import mrcfile
import numpy as np
import numpy.typing as npt
import tifffile
from mrcfile.mrcinterpreter import MrcInterpreter

from gridpilot.errors import InvalidInput

__all__ = ["Movie", "read_image", "read_movie"]

_TIFF_MAGIC: Final[tuple[bytes, ...]] = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_MRC_HEADER_BYTES: Final[int] = 1024
_MRC_MAP_OFFSET: Final[int] = 208

FileFormat = Literal["mrc", "tiff"]
Source = bytes | str | os.PathLike[str]


@dataclass(frozen=True, eq=False)
class Movie:
    """Frames as stored (N, H, W) — a single image has N = 1 — and the header's pixel size."""

    frames: npt.NDArray[np.generic]
    pixel_size_a: float | None
    file_format: FileFormat


def _head(source: Source, n: int) -> bytes:
    if isinstance(source, bytes):
        return source[:n]
    try:
        with open(source, "rb") as fh:
            return fh.read(n)
    except OSError as exc:
        raise InvalidInput(f"cannot read {os.fspath(source)!s}: {exc.strerror}", field="movie") from exc


def _format(head: bytes) -> FileFormat:
    if head[:4] in _TIFF_MAGIC:
        return "tiff"
    if len(head) >= _MRC_MAP_OFFSET + 4 and head[_MRC_MAP_OFFSET : _MRC_MAP_OFFSET + 4] in (b"MAP ", b"MAP\x00"):
        return "mrc"
    if len(head) >= _MRC_HEADER_BYTES:
        return "mrc"  # MRC files written before MRC2014 may lack the MAP tag
    raise InvalidInput(f"not an MRC or TIFF file ({len(head)} bytes of header)", field="movie")


def _stack(data: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
    if data.ndim == 2:
        return data[None]
    if data.ndim == 3:
        return data
    raise InvalidInput(f"expected a 2D image or a 3D stack, got shape {data.shape}", field="movie")


def _read_mrc(source: Source) -> Movie:
    try:
        if isinstance(source, bytes):
            with MrcInterpreter(iostream=io.BytesIO(source), permissive=False) as mrc:
                data, voxel = np.array(mrc.data), float(mrc.voxel_size.x)
        else:
            with mrcfile.open(os.fspath(source), permissive=False) as mrc:
                data, voxel = np.array(mrc.data), float(mrc.voxel_size.x)
    except (ValueError, EOFError, struct.error) as exc:
        raise InvalidInput(f"corrupt or truncated MRC file: {exc}", field="movie") from exc
    if data is None or data.size == 0:
        raise InvalidInput("MRC file holds no data", field="movie")
    # The header stores float32: 0.9 reads back as 0.89999998.
    return Movie(_stack(data), round(voxel, 5) if voxel > 0 else None, "mrc")


def _read_tiff(source: Source) -> Movie:
    try:
        target = io.BytesIO(source) if isinstance(source, bytes) else os.fspath(source)
        data = np.asarray(tifffile.imread(target))
    except (tifffile.TiffFileError, ValueError, EOFError, struct.error, IndexError, KeyError, OSError) as exc:
        raise InvalidInput(f"corrupt or truncated TIFF file: {exc}", field="movie") from exc
    return Movie(_stack(data), None, "tiff")


def read_movie(source: Source) -> Movie:
    """Read an MRC/MRCS or (multi-page) TIFF movie or image from a path or bytes.

    Raises
    ------
    gridpilot.errors.InvalidInput
        For a missing, truncated, corrupt or unrecognised file.
    """
    if not isinstance(source, bytes) and not Path(source).is_file():
        raise InvalidInput(f"no such file: {os.fspath(source)!s}", field="movie")
    fmt = _format(_head(source, _MRC_HEADER_BYTES))
    return _read_mrc(source) if fmt == "mrc" else _read_tiff(source)


def read_image(source: Source) -> npt.NDArray[np.float32]:
    """Read a single 2D image (e.g. a gain reference) as float32 (H, W)."""
    movie = read_movie(source)
    if movie.frames.shape[0] != 1:
        raise InvalidInput(f"expected one image, got a stack of {movie.frames.shape[0]}", field="image")
    return np.asarray(movie.frames[0], dtype=np.float32)

