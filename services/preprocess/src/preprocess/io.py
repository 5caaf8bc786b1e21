"""Read a movie or a single image (MRC/MRCS or TIFF) from a path or from bytes.

The format is recognised from the content, not the name. Every failure to parse — a truncated
data block, a corrupt header, an unknown format — becomes :class:`gridpilot.errors.InvalidInput`
with the reason, so the service terms the job instead of retrying it. :func:`probe_movie` reads
only the header (an MRC header is checked against the file's size first), so a job's memory
need is known before any pixel is allocated; an MRC movie read from bytes is a read-only view of
those bytes, not a copy.

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
import mrcfile.utils
import numpy as np
import numpy.typing as npt
import tifffile
from mrcfile.mrcinterpreter import MrcInterpreter

from gridpilot.errors import InvalidInput
from gridpilot.storage.mrc import check_mrc_header

__all__ = ["Movie", "MovieInfo", "probe_movie", "read_image", "read_movie"]

_TIFF_MAGIC: Final[tuple[bytes, ...]] = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_MRC_HEADER_BYTES: Final[int] = 1024
_MRC_MAP_OFFSET: Final[int] = 208
#: The 4-bit mode packs two pixels per byte: read through mrcfile (a copy), not as a view.
_PACKED_MODE: Final[int] = 101
_COMPRESSED_MAGIC: Final[tuple[bytes, ...]] = (b"\x1f\x8b", b"BZh")

FileFormat = Literal["mrc", "tiff"]
Source = bytes | str | os.PathLike[str]


@dataclass(frozen=True, eq=False)
class Movie:
    """Frames as stored (N, H, W) — a single image has N = 1 — and the header's pixel size."""

    frames: npt.NDArray[np.generic]
    pixel_size_a: float | None
    file_format: FileFormat


@dataclass(frozen=True)
class MovieInfo:
    """What a movie's header says, read without decoding its pixels."""

    n_frames: int
    shape: tuple[int, int]
    itemsize: int
    file_format: FileFormat


def _size(source: Source) -> int:
    return len(source) if isinstance(source, bytes) else os.stat(source).st_size


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


def _mrc_view(source: bytes) -> tuple[npt.NDArray[np.generic], float] | None:
    """The data block of MRC bytes as a read-only view (no copy), or None for a packed mode."""
    with MrcInterpreter(iostream=io.BytesIO(source), permissive=False, header_only=True) as mrc:
        header = mrc.header
        if int(header.mode) == _PACKED_MODE:
            return None
        dtype = mrcfile.utils.data_dtype_from_header(header)
        shape = mrcfile.utils.data_shape_from_header(header)
        offset = _MRC_HEADER_BYTES + int(header.nsymbt)
        voxel = float(mrc.voxel_size.x)
    count = int(np.prod(shape))
    return np.frombuffer(source, dtype=dtype, count=count, offset=offset).reshape(shape), voxel


def _read_mrc(source: Source) -> Movie:
    head = _head(source, _MRC_HEADER_BYTES)
    if head[:3] not in _COMPRESSED_MAGIC and head[:2] not in _COMPRESSED_MAGIC:
        check_mrc_header(head, _size(source), name="the movie")
    try:
        view = _mrc_view(source) if isinstance(source, bytes) else None
        if view is not None:
            data, voxel = view
        elif isinstance(source, bytes):
            with MrcInterpreter(iostream=io.BytesIO(source), permissive=False) as mrc:
                data, voxel = np.asarray(mrc.data), float(mrc.voxel_size.x)
        else:
            with mrcfile.open(os.fspath(source), permissive=False) as mrc:
                data, voxel = np.asarray(mrc.data), float(mrc.voxel_size.x)
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


def _probe_tiff(source: Source) -> MovieInfo:
    try:
        target = io.BytesIO(source) if isinstance(source, bytes) else os.fspath(source)
        with tifffile.TiffFile(target) as tif:
            series = tif.series[0]
            shape, itemsize = tuple(int(n) for n in series.shape), int(series.dtype.itemsize)
    except (tifffile.TiffFileError, ValueError, EOFError, struct.error, IndexError, KeyError, OSError) as exc:
        raise InvalidInput(f"corrupt or truncated TIFF file: {exc}", field="movie") from exc
    if len(shape) not in (2, 3):
        raise InvalidInput(f"expected a 2D image or a 3D stack, got shape {shape}", field="movie")
    n, h, w = (1, *shape) if len(shape) == 2 else shape
    return MovieInfo(n, (h, w), itemsize, "tiff")


def probe_movie(source: Source) -> MovieInfo:
    """Frames, frame shape and bytes per pixel from the header alone (no pixel is decoded).

    Raises
    ------
    gridpilot.errors.InvalidInput
        For a missing or unrecognised file, or an MRC header that claims more data than the
        file holds (a 5 KB file claiming 65536³ voxels).
    """
    if not isinstance(source, bytes) and not Path(source).is_file():
        raise InvalidInput(f"no such file: {os.fspath(source)!s}", field="movie")
    head = _head(source, _MRC_HEADER_BYTES)
    if _format(head) == "tiff":
        return _probe_tiff(source)
    if head[:3] in _COMPRESSED_MAGIC or head[:2] in _COMPRESSED_MAGIC:
        movie = _read_mrc(source)  # the header is inside the compressed stream
        n, h, w = movie.frames.shape
        return MovieInfo(n, (h, w), movie.frames.dtype.itemsize, "mrc")
    header = check_mrc_header(head, _size(source), name="the movie")
    nz, ny, nx = header.shape
    return MovieInfo(nz, (ny, nx), max(1, header.data_bytes // (nx * ny * nz)), "mrc")


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

