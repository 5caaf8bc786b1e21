"""The one builder of object keys, and the one check every key passes before any I/O.

Every object gridpilot stores lives under a key built here, never by string pasting in a
service. The layout::

    sessions/<session>/grids/<grid>/images/<kind>/<image>.<ext>         acquired images
    sessions/<session>/grids/<grid>/images/<kind>/<image>.truth.json    the twin's ground truth
    sessions/<session>/grids/<grid>/exposures/<exposure>/<product>.<ext>  movie and its products
    sessions/<session>/reports/<name>                                   session reports
    models/<model_kind>/<version>/<filename>                            the model registry

Identifiers follow :data:`gridpilot.contracts.base.Id` (``[A-Za-z0-9_-]{1,64}``), so a key
built here is safe as a file path and in a URL without escaping.

>>> image_key("s1", "g1", "atlas", "img_1")
'sessions/s1/grids/g1/images/atlas/img_1.mrc'
>>> truth_key(image_key("s1", "g1", "atlas", "img_1"))
'sessions/s1/grids/g1/images/atlas/img_1.truth.json'
>>> exposure_key("s1", "g1", "e7", "aligned_dw")
'sessions/s1/grids/g1/exposures/e7/aligned_dw.mrc'
>>> validate_key("sessions/../etc/passwd")
Traceback (most recent call last):
...
gridpilot.errors.InvalidInput: object key 'sessions/../etc/passwd' has a '..' segment
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

from gridpilot.errors import InvalidInput

__all__ = [
    "MAX_KEY_BYTES",
    "MAX_SEGMENT_BYTES",
    "PRODUCT_EXTENSIONS",
    "exposure_key",
    "exposure_prefix",
    "grid_prefix",
    "image_key",
    "model_key",
    "model_prefix",
    "report_key",
    "session_prefix",
    "truth_key",
    "validate_id",
    "validate_key",
    "validate_prefix",
]

#: S3's limit on a key, in UTF-8 bytes.
MAX_KEY_BYTES: Final[int] = 1024
#: Every segment must fit a POSIX file name (255 bytes) with room for the ``.json`` sidecar.
MAX_SEGMENT_BYTES: Final[int] = 240

_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
_EXT: Final = re.compile(r"[a-z0-9]{1,8}(?:\.[a-z0-9]{1,8})?")
_FILENAME: Final = re.compile(r"[A-Za-z0-9_-]{1,64}(?:\.[A-Za-z0-9]{1,16}){0,3}")
_VERSION: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]|\.(?!\.)){0,63}")
# Unicode categories refused anywhere in a key: controls (NUL, newline, DEL, C1), surrogates
# (not encodable as UTF-8), and line/paragraph separators.
_REFUSED_CATEGORIES: Final = frozenset({"Cc", "Cs", "Zl", "Zp"})

#: The extension each exposure product gets when ``exposure_key`` is not told one.
PRODUCT_EXTENSIONS: Final[dict[str, str]] = {
    "movie": "mrc",
    "gain": "mrc",
    "aligned": "mrc",
    "aligned_dw": "mrc",
    "zssr": "mrc",
    "thumbnail": "png",
    "ctf_png": "png",
    "drift_png": "png",
    "ctf_json": "json",
    "motion_json": "json",
    "picks_json": "json",
}


def validate_id(value: str, what: str = "id") -> str:
    """Check one identifier component of a key.

    Args:
        value: The identifier, such as a session id.
        what: Its name, for the error message.

    Returns:
        ``value`` unchanged.

    Raises:
        InvalidInput: ``value`` is not 1–64 characters of ``[A-Za-z0-9_-]``.
    """
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidInput(
            f"{what} {value!r} must be 1-64 characters of A-Z, a-z, 0-9, '_' and '-'",
            field=what,
        )
    return value


def _check_text(text: object, what: str) -> str:
    if not isinstance(text, str):
        raise InvalidInput(f"{what} must be a string, got {type(text).__name__}")
    for ch in text:
        if unicodedata.category(ch) in _REFUSED_CATEGORIES:
            raise InvalidInput(
                f"{what} {text!r} contains the control character U+{ord(ch):04X}", key=repr(text)
            )
    if "\\" in text:
        raise InvalidInput(f"{what} {text!r} contains a backslash", key=text)
    if text.startswith("/"):
        raise InvalidInput(f"{what} {text!r} is absolute (starts with '/')", key=text)
    size = len(text.encode("utf-8"))
    if size > MAX_KEY_BYTES:
        raise InvalidInput(
            f"{what} {text[:64]!r}... is {size} bytes long; the limit is {MAX_KEY_BYTES}",
            key=text[:64],
        )
    return text


def _check_segments(text: str, segments: list[str], what: str) -> None:
    for segment in segments:
        if segment == "":
            raise InvalidInput(f"{what} {text!r} has an empty segment", key=text)
        if segment in (".", ".."):
            raise InvalidInput(f"{what} {text!r} has a {segment!r} segment", key=text)
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise InvalidInput(
                f"{what} {text[:64]!r} has a segment longer than {MAX_SEGMENT_BYTES} bytes",
                key=text[:64],
            )


def validate_key(key: str) -> str:
    """Check that ``key`` is a safe object key; every store method calls this first.

    A key is refused when it is empty, starts with ``/``, contains a backslash or a control
    character, has an empty, ``.`` or ``..`` segment, or is longer than 1024 UTF-8 bytes
    (240 per segment).

    Returns:
        ``key`` unchanged.

    Raises:
        InvalidInput: The key is unsafe; the message names it.
    """
    _check_text(key, "object key")
    if key == "":
        raise InvalidInput("object key must not be empty", key="")
    _check_segments(key, key.split("/"), "object key")
    return key


def validate_prefix(prefix: str) -> str:
    """Check a listing prefix: like a key, but it may be empty or end with ``/``."""
    _check_text(prefix, "key prefix")
    if prefix == "":
        return prefix
    segments = prefix.split("/")
    # The last segment is a partial name ("img_" matches "img_1.mrc") or empty after "/".
    _check_segments(prefix, segments[:-1], "key prefix")
    if segments[-1] in (".", ".."):
        raise InvalidInput(f"key prefix {prefix!r} has a {segments[-1]!r} segment", key=prefix)
    return prefix


def _check_ext(ext: str) -> str:
    if not isinstance(ext, str) or not _EXT.fullmatch(ext):
        raise InvalidInput(
            f"extension {ext!r} must be lower-case letters and digits, such as 'mrc' or 'tar.gz'",
            field="ext",
        )
    return ext


def session_prefix(session_id: str) -> str:
    """``sessions/<session>/``: everything a session stored."""
    return f"sessions/{validate_id(session_id, 'session_id')}/"


def grid_prefix(session_id: str, grid_id: str) -> str:
    """``sessions/<session>/grids/<grid>/``: everything stored for one grid."""
    return f"{session_prefix(session_id)}grids/{validate_id(grid_id, 'grid_id')}/"


def image_key(session_id: str, grid_id: str | None, kind: str, image_id: str,
              ext: str = "mrc") -> str:
    """The key of an acquired image (atlas, atlas tile, square, hole, exposure).

    Args:
        session_id: The session.
        grid_id: The grid, or None for an image taken with no grid loaded (a calibration);
            such images live under ``sessions/<session>/images/``.
        kind: The image kind, such as ``atlas`` or ``search`` (see ``contracts.scope.ImageKind``).
        image_id: The image's id.
        ext: File extension without the dot.
    """
    base = session_prefix(session_id) if grid_id is None else grid_prefix(session_id, grid_id)
    return (f"{base}images/{validate_id(kind, 'kind')}/"
            f"{validate_id(image_id, 'image_id')}.{_check_ext(ext)}")


def truth_key(image_key: str) -> str:
    """The twin's ground truth for an image: the image's key with ``.truth.json`` for its extension.

    >>> truth_key("sessions/s1/grids/g1/images/search/sq_3.mrc")
    'sessions/s1/grids/g1/images/search/sq_3.truth.json'
    """
    validate_key(image_key)
    folder, _, name = image_key.rpartition("/")
    stem = name.split(".", 1)[0]
    if not stem or name.endswith(".truth.json"):
        raise InvalidInput(f"{image_key!r} is not an image key", key=image_key)
    return f"{folder}/{stem}.truth.json" if folder else f"{stem}.truth.json"


def exposure_prefix(session_id: str, grid_id: str, exposure_id: str) -> str:
    """``sessions/<session>/grids/<grid>/exposures/<exposure>/``: a movie and its products."""
    return f"{grid_prefix(session_id, grid_id)}exposures/{validate_id(exposure_id, 'exposure_id')}/"


def exposure_key(session_id: str, grid_id: str, exposure_id: str, product: str,
                 ext: str | None = None) -> str:
    """The key of one product of an exposure.

    Args:
        session_id: The session.
        grid_id: The grid.
        exposure_id: The exposure.
        product: ``movie``, ``aligned``, ``aligned_dw``, ``ctf_png``, ``drift_png``,
            ``ctf_json`` … (any id-like name).
        ext: The extension; by default the one in :data:`PRODUCT_EXTENSIONS`, else ``bin``.
    """
    validate_id(product, "product")
    suffix = _check_ext(ext if ext is not None else PRODUCT_EXTENSIONS.get(product, "bin"))
    return f"{exposure_prefix(session_id, grid_id, exposure_id)}{product}.{suffix}"


def report_key(session_id: str, name: str) -> str:
    """``sessions/<session>/reports/<name>``, where ``name`` is a file name like ``summary.html``."""
    if not isinstance(name, str) or not _FILENAME.fullmatch(name):
        raise InvalidInput(
            f"report name {name!r} must be an id with up to three extensions, such as 'summary.html'",
            field="name",
        )
    return f"{session_prefix(session_id)}reports/{name}"


def model_prefix(model_kind: str, version: str | None = None) -> str:
    """``models/<model_kind>/`` or ``models/<model_kind>/<version>/``, for listing the registry."""
    base = f"models/{validate_id(model_kind, 'model_kind')}/"
    if version is None:
        return base
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise InvalidInput(
            f"model version {version!r} must be 1-64 characters of letters, digits, '_', '-' "
            "and single dots, starting with a letter or digit",
            field="version",
        )
    return f"{base}{version}/"


def model_key(model_kind: str, version: str, filename: str) -> str:
    """``models/<model_kind>/<version>/<filename>``, e.g. ``models/holes/1.2.0/model.onnx``."""
    if not isinstance(filename, str) or not _FILENAME.fullmatch(filename):
        raise InvalidInput(
            f"model file name {filename!r} must be an id with up to three extensions, "
            "such as 'model.onnx'",
            field="filename",
        )
    return f"{model_prefix(model_kind, version)}{filename}"
