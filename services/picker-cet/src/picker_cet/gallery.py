"""Pictures of an exploration: the 2D map of the clustering features coloured by cluster, and per-cluster galleries.

>>> import numpy as np
>>> img = map_png_array(np.random.default_rng(0).normal(size=(20, 2)), np.arange(20) % 3)
>>> img.shape
(512, 512, 3)
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

__all__ = ["PALETTE", "gallery_png_array", "map_png_array", "save_png"]

PALETTE: Final[tuple[tuple[int, int, int], ...]] = (
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
    (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40), (128, 0, 0),
)
_TILE: Final[int] = 64


def map_png_array(map_2d: npt.NDArray[np.floating], clusters: npt.NDArray[np.integer], *,
                  size: int = 512) -> npt.NDArray[np.uint8]:
    """A scatter of the 2D map, one colour per cluster (RGB, size × size).

    Each axis is drawn half by value and half by rank (the candidate's place in the order of that
    coordinate), so that a far-off group (gold beads in a spectral map) does not squeeze the rest
    into a corner while the gaps between groups still show; the order along each axis is kept.
    The coordinates themselves are in the exploration's table.
    """
    img = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    xy = np.asarray(map_2d, dtype=np.float64)
    if len(xy):
        ranks = np.argsort(np.argsort(xy, axis=0, kind="stable"), axis=0, kind="stable") / max(len(xy) - 1, 1)
        lo, hi = xy.min(0), xy.max(0)
        values = (xy - lo) / np.where(hi - lo > 0, hi - lo, 1.0)
        pix = 16 + 0.5 * (ranks + values) * (size - 32)
        for (x, y), c in zip(pix, clusters, strict=True):
            col = PALETTE[int(c) % len(PALETTE)]
            draw.ellipse([x - 3, size - y - 3, x + 3, size - y + 3], fill=col)
        for c in sorted(set(int(v) for v in clusters)):
            draw.rectangle([8, 8 + 14 * c, 18, 18 + 14 * c], fill=PALETTE[c % len(PALETTE)])
            draw.text((22, 7 + 14 * c), f"cluster {c}", fill=(0, 0, 0))
        draw.text((size // 2 - 70, size - 14), "map coordinate 1 (value + rank)", fill=(90, 90, 90))
    return np.asarray(img)


def gallery_png_array(boxes: npt.NDArray[np.floating], clusters: npt.NDArray[np.integer], *,
                      per_cluster: int = 10) -> npt.NDArray[np.uint8]:
    """One row per cluster of central xy slices (5-slice means) of its first members (grey)."""
    ids = sorted(set(int(c) for c in clusters))
    rows = []
    for c in ids:
        members = np.flatnonzero(np.asarray(clusters) == c)[:per_cluster]
        row = np.full((_TILE, _TILE * per_cluster), 255, dtype=np.uint8)
        for j, i in enumerate(members):
            b = np.asarray(boxes[i], dtype=np.float32)
            mid = b.shape[0] // 2
            sl = b[max(mid - 2, 0):mid + 3].mean(0)
            lo, hi = np.percentile(sl, (1, 99))
            tile = np.clip((sl - lo) / max(float(hi - lo), 1e-6) * 255, 0, 255).astype(np.uint8)
            tile = np.asarray(Image.fromarray(tile).resize((_TILE - 4, _TILE - 4), Image.Resampling.BILINEAR))
            row[2:_TILE - 2, j * _TILE + 2:(j + 1) * _TILE - 2] = tile
        rows.append(row)
    if not rows:
        return np.full((_TILE, _TILE), 255, dtype=np.uint8)
    return np.concatenate(rows, axis=0)


def save_png(path: str | Path, image: npt.NDArray[np.uint8]) -> Path:
    out = Path(path)
    Image.fromarray(image).save(out)
    return out
