"""Coordinates and maps out: RELION STAR (3D), IMOD point text, CSV; the embedding map as PNG.

STAR files carry ``_rlnCoordinateX/Y/Z`` in voxels of the tomogram (RELION's convention for
tomogram coordinates) and ``_rlnAutopickFigureOfMerit``; IMOD text is one ``x y z`` line per point,
what ``point2model -input FILE -output FILE.mod`` turns into a model; CSV has a header line.
Positions cross in and out of this module as (z, y, x) arrays; files are x, y, z.

>>> import numpy as np, tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "picks.star"
>>> write_star(p, np.array([[3.0, 2.0, 1.0]]), np.array([0.9]))
>>> read_star(p)[0].tolist()
[[3.0, 2.0, 1.0]]
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import starfile

from gridpilot.errors import InvalidInput

__all__ = ["imod_text", "read_star", "star_text", "write_csv", "write_imod_points", "write_star"]

_STAR_COLUMNS: Final[tuple[str, str, str]] = ("rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ")


def _frame(centres_zyx: npt.ArrayLike, scores: npt.ArrayLike | None) -> pd.DataFrame:
    c = np.asarray(centres_zyx, dtype=np.float64).reshape(-1, 3)
    data = {"rlnCoordinateX": c[:, 2], "rlnCoordinateY": c[:, 1], "rlnCoordinateZ": c[:, 0]}
    if scores is not None:
        data["rlnAutopickFigureOfMerit"] = np.asarray(scores, dtype=np.float64).reshape(-1)
    return pd.DataFrame(data)


def write_star(path: str | Path, centres_zyx: npt.ArrayLike, scores: npt.ArrayLike | None = None) -> None:
    """A RELION STAR file of 3D coordinates (one data block, x/y/z in voxels)."""
    starfile.write(_frame(centres_zyx, scores), Path(path), overwrite=True)


def star_text(centres_zyx: npt.ArrayLike, scores: npt.ArrayLike | None = None) -> str:
    """The same STAR file as text (for object storage)."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "picks.star"
        write_star(p, centres_zyx, scores)
        return p.read_text()


def read_star(path: str | Path) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64] | None]:
    """(z, y, x) positions and figures of merit (or None) from a STAR file of 3D coordinates."""
    df = starfile.read(Path(path), always_dict=False)
    if isinstance(df, dict):
        df = next(iter(df.values()))
    missing = [c for c in _STAR_COLUMNS if c not in df.columns]
    if missing:
        raise InvalidInput(f"STAR file {path} lacks {', '.join('_' + m for m in missing)}", field="labels")
    centres = np.stack([df["rlnCoordinateZ"], df["rlnCoordinateY"], df["rlnCoordinateX"]], axis=1).astype(np.float64)
    fom = df["rlnAutopickFigureOfMerit"].to_numpy(np.float64) if "rlnAutopickFigureOfMerit" in df.columns else None
    return centres, fom


def imod_text(centres_zyx: npt.ArrayLike) -> str:
    """IMOD point-list text: ``x y z`` per line (``point2model`` input)."""
    c = np.asarray(centres_zyx, dtype=np.float64).reshape(-1, 3)
    return "".join(f"{x:.2f} {y:.2f} {z:.2f}\n" for z, y, x in c)


def write_imod_points(path: str | Path, centres_zyx: npt.ArrayLike) -> None:
    Path(path).write_text(imod_text(centres_zyx))


def write_csv(path: str | Path, centres_zyx: npt.ArrayLike, scores: npt.ArrayLike | None = None,
              extra: dict[str, npt.ArrayLike] | None = None) -> None:
    """CSV with ``x,y,z[,score][,extra columns…]`` in voxels."""
    c = np.asarray(centres_zyx, dtype=np.float64).reshape(-1, 3)
    cols: dict[str, npt.NDArray[np.generic]] = {"x": c[:, 2], "y": c[:, 1], "z": c[:, 0]}
    if scores is not None:
        cols["score"] = np.asarray(scores).reshape(-1)
    for k, v in (extra or {}).items():
        cols[k] = np.asarray(v).reshape(-1)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(list(cols))
    for row in zip(*cols.values(), strict=True):
        w.writerow([f"{v:.3f}" if isinstance(v, float | np.floating) else v for v in row])
    Path(path).write_text(buf.getvalue())
