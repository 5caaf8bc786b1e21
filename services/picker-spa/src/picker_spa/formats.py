"""Files in and out: micrographs (MRC, TIFF, PNG, JPEG) and coordinates (RELION STAR, EMAN .box, CSV).

Coordinates are a :class:`Coordinates` table: micrograph file name, x (column) and y (row) of
the particle centre in pixels of that micrograph, and a score (figure of merit). STAR files use
``_rlnCoordinateX/Y``, ``_rlnMicrographName`` and ``_rlnAutopickFigureOfMerit`` through the
``starfile`` package; a ``.box`` file holds one micrograph's boxes (EMAN: the box's corner,
x − size/2 and y − size/2, then its width and height).

>>> import tempfile, pathlib
>>> c = Coordinates.from_rows([("a.mrc", 10.0, 20.0, 0.9), ("b.mrc", 5.5, 6.5, 0.4)])
>>> p = pathlib.Path(tempfile.mkdtemp()) / "picks.star"
>>> write_coordinates(c, p)
>>> read_coordinates(p).rows()[1]
('b.mrc', 5.5, 6.5, 0.4)
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from gridpilot.errors import InvalidInput

__all__ = [
    "IMAGE_SUFFIXES",
    "Coordinates",
    "micrograph_key",
    "read_coordinates",
    "read_micrograph",
    "write_coordinates",
    "write_micrograph_mrc",
]

F32 = npt.NDArray[np.float32]

IMAGE_SUFFIXES: Final[tuple[str, ...]] = (".mrc", ".mrcs", ".tif", ".tiff", ".png", ".jpg", ".jpeg")
_STAR_X: Final[str] = "rlnCoordinateX"
_STAR_Y: Final[str] = "rlnCoordinateY"
_STAR_MIC: Final[str] = "rlnMicrographName"
_STAR_FOM: Final[str] = "rlnAutopickFigureOfMerit"


def micrograph_key(name: str) -> str:
    """How coordinates name a micrograph: its file name without folders or suffix."""
    base = Path(str(name)).name
    for suffix in IMAGE_SUFFIXES:
        if base.lower().endswith(suffix):
            return base[: -len(suffix)]
    return base


@dataclass(frozen=True)
class Coordinates:
    """Particle centres of one or more micrographs (parallel tuples, in file order)."""

    micrograph: tuple[str, ...]
    x_px: tuple[float, ...]
    y_px: tuple[float, ...]
    score: tuple[float, ...]

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, float, float, float]]) -> Coordinates:
        r = list(rows)
        return cls(tuple(str(m) for m, *_ in r), tuple(float(x) for _, x, _, _ in r),
                   tuple(float(y) for _, _, y, _ in r), tuple(float(s) for *_, s in r))

    def rows(self) -> list[tuple[str, float, float, float]]:
        return list(zip(self.micrograph, self.x_px, self.y_px, self.score, strict=True))

    def __len__(self) -> int:
        return len(self.micrograph)

    def for_micrograph(self, name: str) -> npt.NDArray[np.float64]:
        """(n, 2) centres (x, y) of the micrograph called ``name`` (matched by :func:`micrograph_key`)."""
        key = micrograph_key(name)
        pts = [(x, y) for m, x, y in zip(self.micrograph, self.x_px, self.y_px, strict=True)
               if micrograph_key(m) == key]
        return np.asarray(pts, np.float64).reshape(-1, 2)


def read_coordinates(path: str | Path, *, micrograph: str | None = None) -> Coordinates:
    """Read a STAR, .box or CSV file. A .box names no micrograph: give ``micrograph`` (else its stem).

    Raises:
        InvalidInput: An unknown suffix, or a file without the coordinate columns.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".star":
        return _read_star(p)
    if suffix == ".box":
        return _read_box(p, micrograph or p.stem)
    if suffix == ".csv":
        return _read_csv(p)
    raise InvalidInput(f"coordinates must be .star, .box or .csv, got {p.name}", field="coords")


def write_coordinates(coords: Coordinates, path: str | Path, *, box_size_px: float = 0.0) -> None:
    """Write a STAR or CSV file, or a .box file (one micrograph; ``box_size_px`` is its box side)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".star":
        _write_star(coords, p)
    elif suffix == ".box":
        if len(set(coords.micrograph)) > 1:
            raise InvalidInput("a .box file holds one micrograph's picks; write one per micrograph",
                               field="out")
        half = 0.5 * box_size_px
        p.write_text("".join(f"{x - half:.2f}\t{y - half:.2f}\t{box_size_px:.0f}\t{box_size_px:.0f}\n"
                             for x, y in zip(coords.x_px, coords.y_px, strict=True)))
    elif suffix == ".csv":
        with p.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["micrograph", "x_px", "y_px", "score"])
            w.writerows((m, f"{x:.2f}", f"{y:.2f}", f"{s:.5f}") for m, x, y, s in coords.rows())
    else:
        raise InvalidInput(f"coordinates must be .star, .box or .csv, got {p.name}", field="out")


def _read_star(p: Path) -> Coordinates:
    import starfile

    data: Any = starfile.read(p, always_dict=True)
    for table in data.values():
        cols = set(getattr(table, "columns", []))
        if {_STAR_X, _STAR_Y} <= cols:
            n = len(table)
            names = table[_STAR_MIC].astype(str).tolist() if _STAR_MIC in cols else [p.stem] * n
            scores = table[_STAR_FOM].astype(float).tolist() if _STAR_FOM in cols else [1.0] * n
            return Coordinates(tuple(names), tuple(table[_STAR_X].astype(float).tolist()),
                               tuple(table[_STAR_Y].astype(float).tolist()), tuple(scores))
    raise InvalidInput(f"{p.name} has no table with _{_STAR_X} and _{_STAR_Y}", field="coords")


def _write_star(coords: Coordinates, p: Path) -> None:
    import pandas as pd
    import starfile

    df = pd.DataFrame({_STAR_X: np.round(np.asarray(coords.x_px, np.float64), 2),
                       _STAR_Y: np.round(np.asarray(coords.y_px, np.float64), 2),
                       _STAR_MIC: list(coords.micrograph),
                       _STAR_FOM: np.round(np.asarray(coords.score, np.float64), 5)})
    starfile.write({"": df}, p, overwrite=True)


def _read_box(p: Path, micrograph: str) -> Coordinates:
    rows = []
    for n, line in enumerate(p.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 4:
            raise InvalidInput(f"{p.name} line {n}: a .box line is 'x y width height'", field="coords")
        x, y, w, h = (float(v) for v in parts[:4])
        rows.append((micrograph, x + 0.5 * w, y + 0.5 * h, 1.0))
    return Coordinates.from_rows(rows)


def _read_csv(p: Path) -> Coordinates:
    with p.open(newline="") as f:
        reader = csv.DictReader(f)
        need = {"micrograph", "x_px", "y_px"}
        if not need <= set(reader.fieldnames or []):
            raise InvalidInput(f"{p.name} needs the columns micrograph, x_px, y_px (score optional)",
                               field="coords")
        return Coordinates.from_rows((r["micrograph"], float(r["x_px"]), float(r["y_px"]),
                                      float(r.get("score") or 1.0)) for r in reader)


def read_micrograph(path: str | Path) -> tuple[F32, float | None]:
    """A micrograph as (H, W) float32 and its pixel size in Å (``None`` when the file has none).

    MRC (a stack is summed), TIFF (likewise), PNG and JPEG (8- or 16-bit grey; colour is
    averaged to grey). Row 0 is the top of the picture, as the file stores it.

    Raises:
        InvalidInput: An unknown suffix or an unreadable file.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    try:
        if suffix in (".mrc", ".mrcs"):
            import mrcfile

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with mrcfile.open(p, permissive=True) as m:
                    data = np.asarray(m.data, dtype=np.float32)
                    vx = float(m.voxel_size.x)
            pixel = vx if vx > 0 else None
        elif suffix in (".tif", ".tiff"):
            import tifffile

            data, pixel = np.asarray(tifffile.imread(p), dtype=np.float32), None
        elif suffix in (".png", ".jpg", ".jpeg"):
            from PIL import Image

            with Image.open(p) as im:
                data = np.asarray(im, dtype=np.float32)
            pixel = None
        else:
            raise InvalidInput(f"micrographs must be {', '.join(IMAGE_SUFFIXES)}, got {p.name}",
                               field="micrograph")
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read {p.name}: {exc}", field="micrograph") from exc
    if data.ndim == 3:
        data = data.mean(axis=2) if suffix in (".png", ".jpg", ".jpeg") else data.sum(axis=0)
    if data.ndim != 2:
        raise InvalidInput(f"{p.name} is not a 2-D image (shape {data.shape})", field="micrograph")
    return np.ascontiguousarray(data, dtype=np.float32), pixel


def write_micrograph_mrc(path: str | Path, image: npt.NDArray[np.generic], *, pixel_size_a: float | None) -> Path:
    """Write a 2-D float32 MRC (the denoised micrograph), with its pixel size when known."""
    import mrcfile

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with mrcfile.new(out, overwrite=True) as m:
        m.set_data(np.ascontiguousarray(np.asarray(image, np.float32)))
        if pixel_size_a:
            m.voxel_size = pixel_size_a
    return out


def expand_micrographs(paths: Sequence[str | Path]) -> list[Path]:
    """The micrograph files named, a folder standing for the images in it (sorted)."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            out.extend(sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES
                              and not q.name.startswith(".")))
        else:
            out.append(p)
    return out
