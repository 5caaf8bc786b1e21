"""Particle orientations as unit quaternions: uniform on SO(3), or preferred along one axis.

A quaternion ``q = (w, x, y, z)`` rotates a particle's body coordinates into the specimen
(lab) frame, ``r_lab = R(q) @ r_body``. The lab frame has x along image columns, y along image
rows and z along the beam, positive downstream (towards the detector); it is right-handed.
Projection images integrate along lab z.

>>> rng = np.random.default_rng(0)
>>> q = random_quaternions(rng, 3)
>>> q.shape, bool(np.allclose(np.linalg.norm(q, axis=1), 1.0))
((3, 4), True)
>>> bool(np.allclose(quaternion_to_matrix(q[0]) @ quaternion_to_matrix(q[0]).T, np.eye(3)))
True
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "preferred_quaternions",
    "quaternion_from_axis_angle",
    "quaternion_multiply",
    "quaternion_to_matrix",
    "quaternions_between",
    "random_quaternions",
]

_BEAM_AXIS: Final[npt.NDArray[np.float64]] = np.array([0.0, 0.0, 1.0])
# Below this |sin| two directions count as parallel when building the rotation between them.
_PARALLEL_TOL: Final[float] = 1e-9


def random_quaternions(rng: np.random.Generator, n: int) -> npt.NDArray[np.float64]:
    """``n`` unit quaternions uniform on SO(3), with ``w >= 0``.

    Returns
    -------
    q : (n, 4) float64, ``(w, x, y, z)``

    Notes
    -----
    Shoemake's subgroup algorithm (Graphics Gems III, 1992): with u₁, u₂, u₃ ~ U(0, 1),
    q = (√(1−u₁) sin 2πu₂, √(1−u₁) cos 2πu₂, √u₁ sin 2πu₃, √u₁ cos 2πu₃).
    """
    u = rng.random((n, 3))
    a, b = np.sqrt(1.0 - u[:, 0]), np.sqrt(u[:, 0])
    q = np.stack(
        [a * np.sin(2 * np.pi * u[:, 1]), a * np.cos(2 * np.pi * u[:, 1]),
         b * np.sin(2 * np.pi * u[:, 2]), b * np.cos(2 * np.pi * u[:, 2])],
        axis=1,
    )
    return _canonical(q)


def quaternion_to_matrix(q: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Rotation matrices of quaternions ``(..., 4)`` → ``(..., 3, 3)`` (active rotation)."""
    qa = np.asarray(q, dtype=np.float64)
    qa = qa / np.linalg.norm(qa, axis=-1, keepdims=True)
    w, x, y, z = qa[..., 0], qa[..., 1], qa[..., 2], qa[..., 3]
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
    return np.stack([np.stack(r, axis=-1) for r in rows], axis=-2)


def quaternion_multiply(a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Hamilton product ``a ⊗ b`` (apply ``b`` first, then ``a``), broadcast over ``(..., 4)``."""
    qa, qb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    w1, x1, y1, z1 = np.moveaxis(qa, -1, 0)
    w2, x2, y2, z2 = np.moveaxis(qb, -1, 0)
    return np.stack(
        [w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
         w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
         w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
         w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2],
        axis=-1,
    )


def quaternion_from_axis_angle(axis: npt.ArrayLike, angle_rad: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Quaternions of rotations by ``angle_rad`` about ``axis`` (broadcast; axis ``(..., 3)``)."""
    ax = np.asarray(axis, dtype=np.float64)
    ax = ax / np.linalg.norm(ax, axis=-1, keepdims=True)
    half = 0.5 * np.asarray(angle_rad, dtype=np.float64)
    return np.concatenate([np.cos(half)[..., None], np.sin(half)[..., None] * ax], axis=-1)


def quaternions_between(a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Shortest rotations taking unit direction(s) ``a`` onto ``b`` (``(..., 3)`` → ``(..., 4)``)."""
    va = np.asarray(a, dtype=np.float64)
    vb = np.asarray(b, dtype=np.float64)
    va = va / np.linalg.norm(va, axis=-1, keepdims=True)
    vb = vb / np.linalg.norm(vb, axis=-1, keepdims=True)
    va, vb = np.broadcast_arrays(va, vb)
    cross = np.cross(va, vb)
    dot = np.sum(va * vb, axis=-1)
    q = np.concatenate([(1.0 + dot)[..., None], cross], axis=-1)
    # Antiparallel directions: rotate by π about any axis perpendicular to a.
    anti = np.linalg.norm(q, axis=-1) < _PARALLEL_TOL
    if np.any(anti):
        helper = np.where(np.abs(va[..., :1]) < 0.9, [1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
        perp = np.cross(va, helper)
        q = np.where(anti[..., None], np.concatenate([np.zeros_like(dot)[..., None], perp], -1), q)
    return _canonical(q / np.linalg.norm(q, axis=-1, keepdims=True))


def preferred_quaternions(
    rng: np.random.Generator,
    n: int,
    body_axis: tuple[float, float, float] = (0.0, 0.0, 1.0),
    spread_rad: float = 0.2,
) -> npt.NDArray[np.float64]:
    """``n`` orientations whose ``body_axis`` lies near the beam (a preferred view).

    Parameters
    ----------
    rng : seeded generator
    n : number of orientations
    body_axis : particle axis that the air–water interface aligns with the beam
    spread_rad : angular spread of that axis about the beam (von Mises–Fisher, κ = 1/spread²)

    Returns
    -------
    q : (n, 4) float64

    Notes
    -----
    The tilt θ from the beam follows the von Mises–Fisher law on the sphere,
    cos θ = 1 + ln(u + (1 − u) e^{−2κ}) / κ; the azimuth of the tilt and the in-plane
    rotation about the beam are uniform. q = R_z(ψ) ⊗ R(z → u) ⊗ R(a → z).
    """
    if spread_rad <= 0:
        raise ValueError(f"spread_rad must be positive, got {spread_rad}")
    kappa = 1.0 / spread_rad**2
    u = rng.random(n)
    cos_t = 1.0 + np.log(u + (1.0 - u) * math.exp(-2.0 * kappa)) / kappa
    sin_t = np.sqrt(np.clip(1.0 - cos_t**2, 0.0, None))
    phi = 2 * np.pi * rng.random(n)
    psi = 2 * np.pi * rng.random(n)
    direction = np.stack([sin_t * np.cos(phi), sin_t * np.sin(phi), cos_t], axis=1)
    align = quaternions_between(np.asarray(body_axis, dtype=np.float64), _BEAM_AXIS)
    tilt = quaternions_between(np.broadcast_to(_BEAM_AXIS, direction.shape), direction)
    spin = quaternion_from_axis_angle(np.broadcast_to(_BEAM_AXIS, direction.shape), psi)
    return _canonical(quaternion_multiply(spin, quaternion_multiply(tilt, align)))


def _canonical(q: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """q and −q are the same rotation; keep the one with w ≥ 0."""
    sign = np.where(q[..., :1] < 0, -1.0, 1.0)
    return np.asarray(q * sign, dtype=np.float64)
