"""MRC images and stacks in and out of bytes and files, with gridpilot's metadata inside.

An array is written as MRC2014 with ``mrcfile``: a 2-D image ``(H, W)``, a 3-D stack of
frames ``(N, H, W)`` or, when asked, a 3-D volume ``(D, H, W)``. The voxel size is set from
``pixel_size_a``; the metadata dict is stored as JSON in the extended header (``exttyp`` =
``JSON``), together with the exact pixel size, which the header keeps only as float32.
Files from other software decode too: their metadata is empty.

>>> import numpy as np
>>> data = encode_mrc(np.zeros((4, 6), np.float32), 1.06, {"defocus_um": -1.5})
>>> array, meta = decode_mrc(data)
>>> (array.shape, meta.pixel_size_a, meta.metadata)
((4, 6), 1.06, {'defocus_um': -1.5})
"""

from __future__ import annotations

import io
import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import mrcfile
import numpy as np
import numpy.typing as npt
import tifffile
from mrcfile.mrcinterpreter import MrcInterpreter
from mrcfile.mrcobject import MrcObject

from gridpilot.errors import InvalidInput, NotFound

__all__ = [
    "HEADER_PIXEL_TOLERANCE",
    "MRC_CONTENT_TYPE",
    "MRC_DTYPES",
    "ArrayMeta",
    "MrcHeader",
    "check_array",
    "check_header_pixel_size",
    "check_mrc_header",
    "decode_mrc",
    "encode_mrc",
    "metadata_json",
    "read_image_file",
    "read_mrc",
    "set_stable_label",
    "write_mrc",
]

MRC_CONTENT_TYPE: Final[str] = "application/x-mrc"
#: The dtypes stored as MRC modes without conversion (mode 2, 1, 6, 0, 12).
MRC_DTYPES: Final[tuple[str, ...]] = ("float32", "int16", "uint16", "int8", "float16")
_EXTTYP: Final[bytes] = b"JSON"
_FORMAT: Final[str] = "gridpilot"
_MRC_SUFFIXES: Final = frozenset({".mrc", ".mrcs", ".map", ".st", ".ali", ".rec", ".gz", ".bz2"})
_TIFF_SUFFIXES: Final = frozenset({".tif", ".tiff"})
_HEADER_BYTES: Final[int] = 1024
#: Bytes per voxel of each MRC mode (mode 101 packs two 4-bit voxels in a byte).
_MODE_BYTES: Final[dict[int, float]] = {0: 1, 1: 2, 2: 4, 3: 4, 4: 8, 6: 2, 12: 2, 101: 0.5}
#: A file's header may give a pixel size this fraction away from the job's (rounding in headers).
HEADER_PIXEL_TOLERANCE: Final[float] = 0.05
# Machine stamp: 0x44 0x44 (or 0x44 0x41) little-endian, 0x11 0x11 big-endian.
_BIG_ENDIAN_STAMP: Final[int] = 0x11
# TIFF ResolutionUnit: 2 = inch, 3 = centimetre; resolution is pixels per unit.
_ANGSTROM_PER_UNIT: Final[dict[int, float]] = {2: 2.54e8, 3: 1e8}


@dataclass(frozen=True)
class ArrayMeta:
    """What is known about a stored array besides its pixels.

    Attributes:
        pixel_size_a: Pixel (voxel) size in Å; 0.0 when the file does not say.
        shape: The array's shape, ``(H, W)`` or ``(N, H, W)``.
        dtype: The numpy dtype name, such as ``float32``.
        metadata: The JSON metadata stored with the array.
        volume: True when a 3-D array is a volume rather than a stack of frames.
    """

    pixel_size_a: float
    shape: tuple[int, ...]
    dtype: str
    metadata: dict[str, Any] = field(default_factory=dict)
    volume: bool = False


def _json_default(value: object) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.size <= 4096:
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def metadata_json(metadata: Mapping[str, Any] | None, *, ascii_only: bool = True) -> str:
    """Serialise array metadata to compact JSON, refusing what JSON cannot hold.

    Raises:
        InvalidInput: A value is not JSON (a NaN, an object) or a key is not a string.
    """
    try:
        return json.dumps(dict(metadata or {}), sort_keys=True, separators=(",", ":"),
                          allow_nan=False, ensure_ascii=ascii_only, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"array metadata is not JSON serialisable: {exc}",
                           field="metadata") from exc


def check_array(array: npt.NDArray[Any], pixel_size_a: float, volume: bool = False) -> None:
    """Check that ``array`` and ``pixel_size_a`` can be written as MRC.

    Raises:
        InvalidInput: Not 2-D or 3-D, an empty axis, a dtype with no MRC mode, or a pixel
            size that is not a positive number.
    """
    if not isinstance(array, np.ndarray):
        raise InvalidInput(f"array must be a numpy array, got {type(array).__name__}")
    if array.ndim not in (2, 3) or 0 in array.shape:
        raise InvalidInput(
            f"array shape {array.shape} must be (H, W) or (N, H, W) with no empty axis",
            field="shape",
        )
    if array.dtype.name not in MRC_DTYPES:
        raise InvalidInput(
            f"dtype {array.dtype.name} has no MRC mode; convert to one of {', '.join(MRC_DTYPES)}",
            field="dtype",
        )
    if volume and array.ndim != 3:
        raise InvalidInput(f"a volume must be 3-D, got shape {array.shape}", field="shape")
    if not (isinstance(pixel_size_a, (int, float)) and math.isfinite(pixel_size_a)
            and pixel_size_a > 0):
        raise InvalidInput(f"pixel_size_a must be a positive number, got {pixel_size_a!r}",
                           field="pixel_size_a")


def check_header_pixel_size(header_a: float | None, job_a: float, *, key: str,
                            tolerance: float = HEADER_PIXEL_TOLERANCE) -> None:
    """Refuse a file whose header pixel size contradicts the job's (0 or None: the header says nothing).

    >>> check_header_pixel_size(0.0, 1.06, key="movie.mrc")
    >>> check_header_pixel_size(2.12, 1.06, key="movie.mrc")
    Traceback (most recent call last):
    ...
    gridpilot.errors.InvalidInput: the job says pixel_size_a=1.06 but movie.mrc says 2.120 Å

    Raises:
        InvalidInput: ``|header_a − job_a| > tolerance · job_a`` (field ``pixel_size_a``).
    """
    if header_a and abs(header_a - job_a) > tolerance * job_a:
        raise InvalidInput(f"the job says pixel_size_a={job_a} but {key} says {header_a:.3f} Å",
                           field="pixel_size_a")


@dataclass(frozen=True)
class MrcHeader:
    """What an MRC header claims, checked against the size of its file.

    Attributes:
        shape: ``(nz, ny, nx)`` as the header states it.
        mode: The MRC mode (2 = float32, 1 = int16, 6 = uint16, 0 = int8, 12 = float16 …).
        data_bytes: Bytes of the data block the header implies.
    """

    shape: tuple[int, int, int]
    mode: int
    data_bytes: int


def _fmt_bytes(n: float) -> str:
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KB", "MB", "GB", "TB"):
        n /= 1024
        if n < 1024:
            return f"{n:.1f} {unit}"
    return f"{n / 1024:.1f} PB"


def check_mrc_header(head: bytes, file_bytes: int, *, name: str = "MRC file") -> MrcHeader:
    """Check an MRC header's dimensions against the file's size, before any data is read.

    A 5 KB file whose header claims 65536³ voxels is refused here, instead of making a reader
    allocate a petabyte.

    Args:
        head: At least the first 1024 bytes of the file.
        file_bytes: The size of the whole (uncompressed) file.
        name: How to call the file in the message (an object key).

    Returns:
        The header's shape, mode and data size.

    Raises:
        InvalidInput: The header is short, has a non-positive dimension or an unknown mode, or
            claims more data than the file holds.

    >>> import numpy as np
    >>> data = encode_mrc(np.zeros((2, 8, 8), np.float32), 1.0)
    >>> check_mrc_header(data, len(data)).shape
    (2, 8, 8)
    >>> check_mrc_header(data[:1024], 1024)
    Traceback (most recent call last):
    ...
    gridpilot.errors.InvalidInput: MRC file is truncated or its header corrupt: the header claims 2 x 8 x 8 voxels of mode 2 (596 B with the extended header) but the file has 1.0 KB
    """
    if len(head) < _HEADER_BYTES:
        raise InvalidInput(f"{name} is truncated: {len(head)} bytes is shorter than an MRC header (1024)")
    order = ">" if head[212] == _BIG_ENDIAN_STAMP else "<"
    nx, ny, nz, mode = struct.unpack_from(f"{order}4i", head, 0)
    (nsymbt,) = struct.unpack_from(f"{order}i", head, 92)
    if min(nx, ny, nz) < 1 or nsymbt < 0:
        raise InvalidInput(f"{name}: the header's dimensions {nz} x {ny} x {nx} (extended header "
                           f"{nsymbt} B) are not positive")
    if mode not in _MODE_BYTES:
        raise InvalidInput(f"{name}: unknown MRC mode {mode}; known: "
                           f"{', '.join(map(str, sorted(_MODE_BYTES)))}")
    data_bytes = math.ceil(nx * ny * nz * _MODE_BYTES[mode])
    needed = _HEADER_BYTES + nsymbt + data_bytes
    if needed > file_bytes:
        raise InvalidInput(
            f"{name} is truncated or its header corrupt: the header claims {nz} x {ny} x {nx} voxels of mode {mode} "
            f"({_fmt_bytes(data_bytes + nsymbt)} with the extended header) but the file has "
            f"{_fmt_bytes(file_bytes)}", shape=[nz, ny, nx], file_bytes=file_bytes)
    return MrcHeader(shape=(nz, ny, nx), mode=mode, data_bytes=data_bytes)


def _fill(mrc: MrcObject, array: npt.NDArray[Any], pixel_size_a: float,
          metadata: Mapping[str, Any] | None, volume: bool) -> None:
    envelope = {"format": _FORMAT, "version": 1, "pixel_size_a": float(pixel_size_a),
                "volume": volume, "metadata": json.loads(metadata_json(metadata))}
    text = json.dumps(envelope, sort_keys=True, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)  # keep the data block 4-byte aligned
    mrc.set_data(np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")))
    if array.ndim == 3:
        if volume:
            mrc.set_volume()
        else:
            mrc.set_image_stack()
    mrc.voxel_size = float(pixel_size_a)
    mrc.set_extended_header(np.frombuffer(text, dtype="V1"))
    mrc.header.exttyp = _EXTTYP
    set_stable_label(mrc, f"gridpilot: pixel size {pixel_size_a:.6g} A; metadata JSON in extended header")


def set_stable_label(mrc: MrcObject, text: str) -> None:
    """Make ``text`` the file's only label.

    mrcfile stamps every new file with a "Created by mrcfile.py <date time>" label, so the same
    array written twice would give two different files; without it, the same data gives the same
    bytes, and renders can be cached and compared by hash.
    """
    mrc.header.label[:] = b""
    mrc.header.nlabl = 0
    mrc.add_label(text[:80])


class _MrcStreamWriter(MrcInterpreter):  # type: ignore[misc]  # mrcfile is untyped
    """An MRC object on an in-memory stream (mrcfile's documented way to subclass the interpreter)."""

    def __init__(self, stream: io.BytesIO) -> None:
        super().__init__()
        self._iostream = stream
        self._create_default_attributes()


def encode_mrc(array: npt.NDArray[Any], pixel_size_a: float,
               metadata: Mapping[str, Any] | None = None, *, volume: bool = False) -> bytes:
    """Encode an image, a stack of frames or a volume as MRC bytes.

    Args:
        array: ``(H, W)`` image, ``(N, H, W)`` stack, or ``(D, H, W)`` volume; one of
            :data:`MRC_DTYPES`.
        pixel_size_a: Pixel size in Å (> 0).
        metadata: JSON-serialisable metadata, stored in the extended header.
        volume: Mark a 3-D array as a volume instead of a stack of frames.

    Raises:
        InvalidInput: The array, pixel size or metadata cannot be stored.
    """
    check_array(array, pixel_size_a, volume)
    stream = io.BytesIO()
    writer = _MrcStreamWriter(stream)
    _fill(writer, array, pixel_size_a, metadata, volume)
    writer.flush()
    return stream.getvalue()


def write_mrc(path: Path, array: npt.NDArray[Any], pixel_size_a: float,
              metadata: Mapping[str, Any] | None = None, *, volume: bool = False) -> None:
    """Write what :func:`encode_mrc` encodes to ``path`` (overwritten), without a copy in memory."""
    check_array(array, pixel_size_a, volume)
    with mrcfile.new(str(path), overwrite=True) as mrc:
        _fill(mrc, array, pixel_size_a, metadata, volume)


def _meta_from(mrc: MrcObject) -> tuple[npt.NDArray[Any], ArrayMeta]:
    data = mrc.data
    if data is None:
        raise InvalidInput("MRC file has no data block")
    native = data.dtype.newbyteorder("=")
    array = data if data.dtype == native and data.flags.writeable else data.astype(native)
    header_px = float(mrc.voxel_size.x)
    pixel_size_a, metadata, volume = header_px, {}, bool(array.ndim == 3 and mrc.is_volume())
    ext = mrc.extended_header
    if bytes(mrc.header.exttyp) == _EXTTYP and ext is not None and ext.size:
        try:
            envelope = json.loads(ext.tobytes().decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise InvalidInput(f"MRC extended header of type JSON does not parse: {exc}") from exc
        if isinstance(envelope, dict) and envelope.get("format") == _FORMAT:
            metadata = dict(envelope.get("metadata") or {})
            exact = float(envelope.get("pixel_size_a", 0.0))
            # Prefer the exact value unless the header was edited after writing.
            if math.isclose(exact, header_px, rel_tol=1e-5):
                pixel_size_a = exact
    meta = ArrayMeta(pixel_size_a=pixel_size_a, shape=tuple(int(n) for n in array.shape),
                     dtype=array.dtype.name, metadata=metadata, volume=volume)
    return array, meta


def decode_mrc(data: bytes) -> tuple[npt.NDArray[Any], ArrayMeta]:
    """Decode MRC bytes into the array and its :class:`ArrayMeta`.

    Raises:
        InvalidInput: The bytes are not a complete MRC file (truncated, corrupt, not MRC), or
            the header claims more data than there are bytes (checked before allocating).
    """
    try:
        # The header alone first (its map tag, mode …), then its size claim, then the data.
        MrcInterpreter(iostream=io.BytesIO(data), permissive=False, header_only=True)
        check_mrc_header(data[:_HEADER_BYTES], len(data))
        mrc = MrcInterpreter(iostream=io.BytesIO(data), permissive=False)
    except (ValueError, InvalidInput) as exc:
        raise InvalidInput(f"not a valid MRC file ({len(data)} bytes): {exc}") from exc
    return _meta_from(mrc)


def read_mrc(path: Path, *, name: str | None = None) -> tuple[npt.NDArray[Any], ArrayMeta]:
    """Read an MRC file (also gzip- or bzip2-compressed) into memory.

    Args:
        path: The file.
        name: How to call it in error messages (an object key); the path by default.

    Raises:
        NotFound: No file at ``path``.
        InvalidInput: The file is not a complete MRC file, or its header claims more data than
            the file holds (checked before allocating).
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEADER_BYTES)
        if head[:2] != b"\x1f\x8b" and head[:3] != b"BZh":  # compressed: mrcfile checks the size
            check_mrc_header(head, path.stat().st_size, name="the file")
        with mrcfile.open(str(path), permissive=False) as mrc:
            return _meta_from(mrc)
    except FileNotFoundError as exc:
        raise NotFound(f"no image file at {path}", path=str(path)) from exc
    except (ValueError, InvalidInput) as exc:
        raise InvalidInput(f"{name or str(path)!r} is not a valid MRC file: {exc}") from exc


def _tiff_pixel_size_a(tif: tifffile.TiffFile) -> float:
    page = tif.pages.first
    unit = page.tags.get("ResolutionUnit")
    res = page.tags.get("XResolution")
    if unit is None or res is None or int(unit.value) not in _ANGSTROM_PER_UNIT:
        return 0.0
    num, den = res.value
    per_unit = num / den if den else 0.0
    return _ANGSTROM_PER_UNIT[int(unit.value)] / per_unit if per_unit > 1.0 else 0.0


def read_image_file(path: Path, *, pixel_size_a: float | None = None,
                    ) -> tuple[npt.NDArray[Any], ArrayMeta]:
    """Read an MRC image/stack or a TIFF image/stack (a detector movie) from disk.

    Args:
        path: A ``.mrc``/``.mrcs``/``.st``/``.map``/``.rec`` (optionally ``.gz``/``.bz2``)
            or ``.tif``/``.tiff`` file.
        pixel_size_a: Overrides the file's pixel size (TIFF movies rarely carry one).

    Returns:
        The array (any dtype the file holds; TIFF movies are often uint8) and its metadata;
        ``pixel_size_a`` is 0.0 when neither the file nor the caller gives it.

    Raises:
        NotFound: No file at ``path``.
        InvalidInput: Unknown extension, or the file is corrupt.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in _TIFF_SUFFIXES:
        try:
            with tifffile.TiffFile(path) as tif:
                array = tif.asarray()
                px = _tiff_pixel_size_a(tif)
        except FileNotFoundError as exc:
            raise NotFound(f"no image file at {path}", path=str(path)) from exc
        except (tifffile.TiffFileError, ValueError, OSError, IndexError, KeyError) as exc:
            raise InvalidInput(f"{path} is not a readable TIFF: {exc}", path=str(path)) from exc
        meta = ArrayMeta(pixel_size_a=px, shape=tuple(int(n) for n in array.shape),
                         dtype=array.dtype.name)
    elif suffix in _MRC_SUFFIXES:
        array, meta = read_mrc(path)
    else:
        raise InvalidInput(
            f"{path.name}: unsupported image format {suffix or '(none)'!r}; expected "
            f"{', '.join(sorted(_MRC_SUFFIXES | _TIFF_SUFFIXES))}",
            path=str(path),
        )
    if pixel_size_a is not None:
        meta = ArrayMeta(pixel_size_a=float(pixel_size_a), shape=meta.shape, dtype=meta.dtype,
                         metadata=meta.metadata, volume=meta.volume)
    return array, meta
