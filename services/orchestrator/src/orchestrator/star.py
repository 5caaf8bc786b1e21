"""RELION STAR export of a session's exposures, with optics groups from the BIS groups.

Exposures shot by the same beam-image shift see the same beam tilt, so RELION should refine
them as one optics group. As SmartScope's ``export_optics`` does (SMARTSCOPE-NOTES §3), the
image-shift vectors are clustered into as many groups as the largest BIS group has holes
(one group when BIS is off); the clustering here is a deterministic k-means seeded with the
farthest-point rule.

>>> labels = image_shift_groups(np.array([[0, 0], [0.1, 0], [3, 3], [3.1, 3]]), 2)
>>> labels.tolist()
[1, 1, 2, 2]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import starfile

from .models import Exposure, Hole

__all__ = ["exposures_star", "image_shift_groups"]

_AMPLITUDE_CONTRAST: Final[float] = 0.1
_KMEANS_ITERATIONS: Final[int] = 50


def image_shift_groups(shifts_um: npt.NDArray[np.float64], k: int) -> npt.NDArray[np.int64]:
    """Optics-group label (1..k) of each image-shift vector, (N, 2) µm, by k-means."""
    x = np.asarray(shifts_um, dtype=np.float64).reshape(-1, 2)
    n = len(x)
    k = max(1, min(k, n))
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    centres = [x[0]]
    while len(centres) < k:  # farthest point from the centres so far: deterministic seeding
        d = np.min([np.hypot(*(x - c).T) for c in centres], axis=0)
        centres.append(x[int(np.argmax(d))])
    c = np.array(centres)
    labels = np.zeros(n, dtype=np.int64)
    for _ in range(_KMEANS_ITERATIONS):
        labels = np.argmin(((x[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
        new = np.array([x[labels == j].mean(axis=0) if np.any(labels == j) else c[j]
                        for j in range(k)])
        if np.allclose(new, c):
            break
        c = new
    # Number groups in order of first appearance so the file reads naturally.
    order = {int(g): i + 1 for i, g in enumerate(dict.fromkeys(labels.tolist()))}
    return np.array([order[int(g)] for g in labels], dtype=np.int64)


def exposures_star(exposures: Sequence[Exposure], holes: Mapping[str, Hole], *,
                   voltage_kv: float, cs_mm: float) -> str:
    """The ``data_optics`` and ``data_movies`` blocks of the exposures, as STAR text."""
    group_sizes = Counter(h.bis_group for h in holes.values() if h.bis_group is not None)
    k = max(group_sizes.values(), default=1)
    shifts = np.array([(x.image_shift_x_um, x.image_shift_y_um) for x in exposures],
                      dtype=np.float64).reshape(-1, 2)
    labels = image_shift_groups(shifts, k)
    pixel = next((x.pixel_size_a for x in exposures if x.pixel_size_a), 1.0)
    n_groups = int(labels.max()) if len(labels) else 1
    optics = pd.DataFrame({
        "rlnOpticsGroupName": [f"opticsGroup{g}" for g in range(1, n_groups + 1)],
        "rlnOpticsGroup": list(range(1, n_groups + 1)),
        "rlnMicrographOriginalPixelSize": [pixel] * n_groups,
        "rlnVoltage": [voltage_kv] * n_groups,
        "rlnSphericalAberration": [cs_mm] * n_groups,
        "rlnAmplitudeContrast": [_AMPLITUDE_CONTRAST] * n_groups,
    })
    movies = pd.DataFrame({
        "rlnMicrographMovieName": [x.movie_key for x in exposures],
        "rlnOpticsGroup": labels.tolist(),
    })
    text: str = starfile.to_string({"optics": optics, "movies": movies})
    return text
