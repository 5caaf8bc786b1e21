"""Per-square objects of variable number: contamination blobs and film cracks.

Each square draws them from its own stream, ``default_rng([seed, STREAM_SQUARE, i + o, j + o])``
keyed by its lattice indices (i, j), so a square's blobs and cracks are identical whenever and
in whatever order squares are asked for. Coordinates are stage µm; blob thickness is the
equivalent vitreous-ice thickness in nm (how much they attenuate).

>>> from gridpilot_sim.world.spec import GridSpec
>>> from gridpilot_sim.world.grid import build_square_table
>>> frame, table = build_square_table(1, GridSpec())
>>> f1 = square_features(1, frame, table, 10)
>>> f2 = square_features(1, frame, table, 10)
>>> bool(np.array_equal(f1.blob_x, f2.blob_x))
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from gridpilot_sim.world.grid import MeshFrame, SquareTable
from gridpilot_sim.world.spec import SQUARE_CLASSES

__all__ = ["BLOB_KINDS", "STREAM_SQUARE", "SquareFeatures", "square_features"]

F64 = npt.NDArray[np.float64]

STREAM_SQUARE: Final[int] = 3
_INDEX_OFFSET: Final[int] = 10_000  # makes lattice indices non-negative for SeedSequence
#: Kinds of contamination blob, in code order.
BLOB_KINDS: Final[tuple[str, ...]] = ("ice_crystal", "ethane", "frost")
_CRYSTAL_RADIUS_UM: Final[tuple[float, float]] = (0.3, 5.0)  # log-uniform
_CRYSTAL_NM: Final[tuple[float, float]] = (400.0, 3000.0)
_ETHANE_RADIUS_UM: Final[tuple[float, float]] = (0.1, 0.6)
_ETHANE_NM: Final[tuple[float, float]] = (200.0, 900.0)
_FROST_RADIUS_UM: Final[tuple[float, float]] = (0.05, 0.25)
_FROST_NM: Final[tuple[float, float]] = (100.0, 500.0)
_CRACK_WIDTH_UM: Final[tuple[float, float]] = (0.6, 2.5)
_SQ: dict[str, int] = {c: i for i, c in enumerate(SQUARE_CLASSES)}


@dataclass(frozen=True)
class SquareFeatures:
    """Blobs (arrays of length n_blobs) and crack segments (array (n_segments, 5)) of a square."""

    blob_x: F64
    blob_y: F64
    blob_r: F64
    blob_nm: F64
    blob_kind: npt.NDArray[np.int8]  # index into BLOB_KINDS
    segments: F64  # rows x0, y0, x1, y1, half width (µm)

    @property
    def blob_count(self) -> int:
        return int(self.blob_x.shape[0])


def _to_stage(frame: MeshFrame, table: SquareTable, k: int, lx: F64, ly: F64) -> tuple[F64, F64]:
    c, s = math.cos(frame.rotation_rad), math.sin(frame.rotation_rad)
    return table.cx[k] + c * lx - s * ly, table.cy[k] + s * lx + c * ly


def _log_uniform(rng: np.random.Generator, lo_hi: tuple[float, float], n: int) -> F64:
    return np.exp(rng.uniform(math.log(lo_hi[0]), math.log(lo_hi[1]), n))


def _blobs(rng: np.random.Generator, cls: int, contam: float,
           half: float) -> tuple[F64, F64, F64, F64, npt.NDArray[np.int8]]:
    """Blob positions in the mesh frame (µm), radii (µm), thickness (nm) and kinds."""
    level = max(contam, 0.0)
    if cls == _SQ["contaminated"]:
        n_crystal = int(rng.poisson(3 + 6 * level))
        n_clusters, n_frost = int(rng.integers(1, 4)), int(rng.poisson(10))
    else:
        n_crystal = int(rng.poisson(0.3 + 0.5 * level))
        n_clusters, n_frost = int(rng.random() < 0.1), int(rng.poisson(1))
    xs, ys, rs, ts, ks = [], [], [], [], []
    crystal_r = np.minimum(_log_uniform(rng, _CRYSTAL_RADIUS_UM, int(n_crystal)), 0.3 * half)
    xs.append(rng.uniform(-half, half, int(n_crystal)))
    ys.append(rng.uniform(-half, half, int(n_crystal)))
    rs.append(crystal_r)
    ts.append(rng.uniform(*_CRYSTAL_NM, int(n_crystal)))
    ks.append(np.zeros(int(n_crystal), dtype=np.int8))
    for _ in range(int(n_clusters)):
        m = int(rng.integers(4, 16))
        centre = rng.uniform(-0.8 * half, 0.8 * half, 2)
        spread = rng.uniform(0.5, 3.0)
        xs.append(centre[0] + rng.normal(0, spread, m))
        ys.append(centre[1] + rng.normal(0, spread, m))
        rs.append(_log_uniform(rng, _ETHANE_RADIUS_UM, m))
        ts.append(rng.uniform(*_ETHANE_NM, m))
        ks.append(np.full(m, 1, dtype=np.int8))
    xs.append(rng.uniform(-half, half, int(n_frost)))
    ys.append(rng.uniform(-half, half, int(n_frost)))
    rs.append(_log_uniform(rng, _FROST_RADIUS_UM, int(n_frost)))
    ts.append(rng.uniform(*_FROST_NM, int(n_frost)))
    ks.append(np.full(int(n_frost), 2, dtype=np.int8))
    x, y = np.concatenate(xs), np.concatenate(ys)
    inside = (np.abs(x) < half) & (np.abs(y) < half)
    return x[inside], y[inside], np.concatenate(rs)[inside], np.concatenate(ts)[inside], np.concatenate(ks)[inside]


def _cracks(rng: np.random.Generator, half: float) -> F64:
    """Crack segments in the mesh frame: random-walk polylines or a star from one point."""
    rows: list[list[float]] = []
    if rng.random() < 0.4:
        centre = rng.uniform(-0.5 * half, 0.5 * half, 2)
        for _ in range(int(rng.integers(3, 7))):
            p = centre.copy()
            ang = rng.uniform(0, 2 * math.pi)
            width = rng.uniform(*_CRACK_WIDTH_UM) / 2
            for _ in range(int(rng.integers(2, 5))):
                step = rng.uniform(0.1, 0.3) * 2 * half
                ang += rng.normal(0, 0.3)
                q = p + step * np.array([math.cos(ang), math.sin(ang)])
                rows.append([p[0], p[1], q[0], q[1], width])
                p, width = q, width * 0.8
    else:
        for _ in range(int(rng.integers(1, 4))):
            p = rng.uniform(-half, half, 2)
            ang = rng.uniform(0, 2 * math.pi)
            width = rng.uniform(*_CRACK_WIDTH_UM) / 2
            for _ in range(int(rng.integers(3, 8))):
                step = rng.uniform(0.15, 0.35) * 2 * half
                ang += rng.normal(0, 0.4)
                q = p + step * np.array([math.cos(ang), math.sin(ang)])
                rows.append([p[0], p[1], q[0], q[1], width])
                p = q
    return np.asarray(rows, dtype=np.float64).reshape(-1, 5)


def square_features(seed: int, frame: MeshFrame, table: SquareTable, k: int) -> SquareFeatures:
    """The blobs and cracks of square row ``k`` (drawn from that square's own stream).

    Parameters
    ----------
    seed : world seed
    frame, table : the world's mesh
    k : table row of the square

    Returns
    -------
    SquareFeatures in stage coordinates (µm).
    """
    i, j = int(table.i[k]), int(table.j[k])
    rng = np.random.default_rng([seed, STREAM_SQUARE, i + _INDEX_OFFSET, j + _INDEX_OFFSET])
    half = float(table.half_um[k])
    cls = int(table.cls[k])
    bx, by, br, bt, bk = _blobs(rng, cls, float(table.contam[k]), half)
    bx_s, by_s = _to_stage(frame, table, k, bx, by)
    segs = _cracks(rng, half) if cls == _SQ["cracked"] else np.zeros((0, 5))
    if segs.size:
        x0, y0 = _to_stage(frame, table, k, segs[:, 0], segs[:, 1])
        x1, y1 = _to_stage(frame, table, k, segs[:, 2], segs[:, 3])
        segs = np.stack([x0, y0, x1, y1, segs[:, 4]], axis=1)
    return SquareFeatures(blob_x=np.asarray(bx_s), blob_y=np.asarray(by_s), blob_r=br, blob_nm=bt,
                          blob_kind=bk, segments=segs)
