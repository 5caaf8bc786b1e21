"""Local maxima of a 3D score map and greedy non-maximum suppression at a particle radius.

>>> import numpy as np
>>> heat = np.zeros((10, 10, 10), np.float32); heat[5, 5, 5] = 1.0; heat[5, 5, 6] = 0.9
>>> find_peaks_3d(heat, threshold=0.5, radius_vox=2.0)[0].tolist()
[[5.0, 5.0, 5.0]]
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from scipy.spatial import cKDTree

__all__ = ["find_peaks_3d", "nms_3d"]


def nms_3d(centres_zyx: npt.NDArray[np.floating], scores: npt.NDArray[np.floating],
           radius_vox: float) -> npt.NDArray[np.int64]:
    """Indices of the points kept by greedy NMS: best score first, each suppressing every other
    point closer than ``radius_vox`` (3D Euclidean). Returned best first."""
    pts = np.asarray(centres_zyx, dtype=np.float64).reshape(-1, 3)
    if len(pts) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    tree = cKDTree(pts)
    alive = np.ones(len(pts), dtype=bool)
    keep = []
    for i in order:
        if not alive[i]:
            continue
        keep.append(i)
        alive[tree.query_ball_point(pts[i], r=radius_vox - 1e-9)] = False
    return np.asarray(keep, dtype=np.int64)


def find_peaks_3d(score: npt.NDArray[np.floating], *, threshold: float, radius_vox: float,
                  border_vox: int = 0) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Local maxima above ``threshold`` of a ``(Z, Y, X)`` map, thinned by :func:`nms_3d`.

    Returns
    -------
    centres : (N, 3) float64 (z, y, x) voxels, best first
    scores : (N,) float64
    """
    s = np.asarray(score, dtype=np.float32)
    size = max(3, 2 * int(radius_vox // 2) + 1)
    local = (s == ndimage.maximum_filter(s, size=size, mode="nearest")) & (s > threshold)
    if border_vox > 0:
        b = border_vox
        inner = np.zeros_like(local)
        inner[b:-b or None, b:-b or None, b:-b or None] = True
        local &= inner
    idx = np.argwhere(local).astype(np.float64)
    vals = s[local].astype(np.float64)
    keep = nms_3d(idx, vals, radius_vox)
    return idx[keep], vals[keep]
