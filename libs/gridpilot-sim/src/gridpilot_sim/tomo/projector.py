"""Parallel-beam projection and back-projection of a volume tilted about y, as sparse matrices.

For a tilt θ about the y axis a ray at detector column u (centred) meets slice z (centred) at
x = (u − z sin θ) / cos θ; every row y sees the same geometry, so one sparse matrix
``(T·X, Z·X)`` projects all tilts of every row in one product with the volume laid out as
``(Z·X, Y)``. Linear interpolation along x; the ray's path length per slice, 1 / cos θ, is in
the projector's weights. The back-projector samples each tilt at the column a voxel falls on,
u = x cos θ + z sin θ (the usual voxel-driven back-projection).

>>> import numpy as np
>>> vol = np.zeros((4, 3, 8), np.float32); vol[:, :, 4] = 1.0
>>> proj = project_volume(vol, np.array([0.0]))
>>> proj.shape, float(proj[0, 0, 4])
((1, 3, 8), 4.0)
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

__all__ = ["back_project", "backprojection_matrix", "project_volume", "projection_matrix"]


I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


def _centred(nx: int, nz: int, angles_deg: npt.ArrayLike) -> tuple[F64, float, F64, F64]:
    """Tilt angles (rad), the x centre, and centred x and z coordinates of an ``(nz, nx)`` slice."""
    angles = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    cx, cz = (nx - 1) / 2.0, (nz - 1) / 2.0
    return angles, cx, np.arange(nx, dtype=np.float64) - cx, np.arange(nz, dtype=np.float64) - cz


def _lerp_taps(pos: F64, n: int) -> list[tuple[I64, F64, npt.NDArray[np.bool_]]]:
    """Linear interpolation at positions on 0..n−1: for the lower and the upper neighbour, its
    index, its weight and where it is inside and weighs anything."""
    i0 = np.floor(pos).astype(np.int64)
    frac = pos - i0
    taps = []
    for off, w in ((0, 1.0 - frac), (1, frac)):
        ii = i0 + off
        taps.append((ii, w, (ii >= 0) & (ii < n) & (w > 0)))
    return taps


def _csr(rows: list[I64], cols: list[I64], vals: list[F64], shape: tuple[int, int]) -> sp.csr_matrix:
    return sp.csr_matrix(
        (np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))), shape=shape,
    )


def projection_matrix(nx: int, nz: int, angles_deg: npt.ArrayLike) -> sp.csr_matrix:
    """Sparse ``(T·nx, nz·nx)`` projector; row ``t·nx + u``, column ``z·nx + x``."""
    angles, cx, u, z = _centred(nx, nz, angles_deg)
    rows, cols, vals = [], [], []
    for t, a in enumerate(angles):
        c, s = np.cos(a), np.sin(a)
        x = (u[None, :] - z[:, None] * s) / c + cx  # (nz, nx): slice z, detector column u
        zz = np.broadcast_to(np.arange(nz)[:, None], x.shape)
        uu = np.broadcast_to(np.arange(nx)[None, :], x.shape)
        for ii, w, ok in _lerp_taps(x, nx):
            rows.append(t * nx + uu[ok])
            cols.append(zz[ok] * nx + ii[ok])
            vals.append(w[ok] / c)
    return _csr(rows, cols, vals, (len(angles) * nx, nz * nx))


def backprojection_matrix(nx: int, nz: int, angles_deg: npt.ArrayLike) -> sp.csr_matrix:
    """Sparse ``(nz·nx, T·nx)`` voxel-driven back-projector (sum over tilts, unweighted)."""
    angles, cx, x, z = _centred(nx, nz, angles_deg)
    rows, cols, vals = [], [], []
    vox = np.arange(nz)[:, None] * nx + np.arange(nx)[None, :]
    for t, a in enumerate(angles):
        u = x[None, :] * np.cos(a) + z[:, None] * np.sin(a) + cx  # (nz, nx)
        for ii, w, ok in _lerp_taps(u, nx):
            rows.append(vox[ok])
            cols.append(t * nx + ii[ok])
            vals.append(w[ok])
    return _csr(rows, cols, vals, (nz * nx, len(angles) * nx))


def project_volume(volume: npt.NDArray[np.floating], angles_deg: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Line integrals (in voxel units) of a ``(Z, Y, X)`` volume at each tilt about y.

    Returns
    -------
    projections : (T, Y, X) float32
    """
    nz, ny, nx = volume.shape
    a = projection_matrix(nx, nz, angles_deg)
    flat = np.ascontiguousarray(np.asarray(volume, dtype=np.float32).transpose(0, 2, 1)).reshape(nz * nx, ny)
    out = np.asarray(a @ flat, dtype=np.float32)  # (T·X, Y)
    return np.ascontiguousarray(out.reshape(-1, nx, ny).transpose(0, 2, 1))


def back_project(images: npt.NDArray[np.floating], angles_deg: npt.ArrayLike, nz: int) -> npt.NDArray[np.float32]:
    """Sum over tilts of each ``(Y, X)`` image smeared back along its rays into ``(nz, Y, X)``."""
    t, ny, nx = images.shape
    b = backprojection_matrix(nx, nz, angles_deg)
    flat = np.ascontiguousarray(np.asarray(images, dtype=np.float32).transpose(0, 2, 1)).reshape(t * nx, ny)
    out = np.asarray(b @ flat, dtype=np.float32)  # (Z·X, Y)
    return np.ascontiguousarray(out.reshape(nz, nx, ny).transpose(0, 2, 1))
