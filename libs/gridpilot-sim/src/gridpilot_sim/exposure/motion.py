"""Beam-induced motion and stage drift of a movie, in Å (independent of the pixel size).

Convention: a trajectory ``s`` is the displacement of the specimen's image. Content at position
``r`` in the reference (drift-free) frame appears at ``r + s(i)`` in frame ``i``; x is the image
column, y the row. An aligner that reports the shift to *apply* to frame i reports ``−s(i)``.

>>> traj = drift_trajectory(MotionSpec(), n_frames=40, dose_per_frame_e_per_a2=1.25,
...                         rng=np.random.default_rng(0))
>>> traj.mean_xy_a.shape, traj.substeps_xy_a.shape
((40, 2), (40, 4, 2))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from gridpilot.errors import InvalidInput
from gridpilot_sim.checks import require_non_negative, require_positive

__all__ = ["DOMING_TERMS", "DomingField", "DriftTrajectory", "MotionSpec", "doming_field", "drift_trajectory"]

# Terms (x̂, ŷ, x̂², ŷ², x̂ŷ) of the doming polynomial in normalised field coordinates (x̂, ŷ ∈ [−1, 1]).
DOMING_TERMS: Final[tuple[str, ...]] = ("x", "y", "x^2", "y^2", "x*y")


@dataclass(frozen=True)
class MotionSpec:
    """Parameters of s(i) = A (1 − exp(−N_i / N₀)) û + v i + random walk (TWIN-PHYSICS.md).

    Attributes
    ----------
    initial_jump_a : A, the beam-induced jump, Å (5–20 typical)
    jump_exposure_e_per_a2 : N₀, the exposure over which the jump settles, e/Å² (2–5)
    jump_angle_rad : direction of û from the x axis; ``None`` draws it from the seed
    stage_drift_a_per_frame : |v|, Å per frame (0.05–0.3)
    stage_drift_angle_rad : direction of v; ``None`` draws it from the seed
    random_walk_a : standard deviation of the random-walk step per frame, Å (0.1–0.3)
    substeps : positions averaged within one frame (intra-frame blur), ≥ 1
    doming_a : largest local (non-rigid) displacement across the field at the end, Å (0 = off)
    """

    initial_jump_a: float = 12.0
    jump_exposure_e_per_a2: float = 3.0
    jump_angle_rad: float | None = None
    stage_drift_a_per_frame: float = 0.1
    stage_drift_angle_rad: float | None = None
    random_walk_a: float = 0.15
    substeps: int = 4
    doming_a: float = 0.0

    def __post_init__(self) -> None:
        if self.substeps < 1:
            raise InvalidInput(f"substeps must be >= 1, got {self.substeps}", field="substeps")
        require_positive(self, ("jump_exposure_e_per_a2",))
        require_non_negative(self, ("initial_jump_a", "stage_drift_a_per_frame", "random_walk_a", "doming_a"))

    @classmethod
    def still(cls) -> MotionSpec:
        """No motion at all (for tests of everything else)."""
        return cls(initial_jump_a=0.0, stage_drift_a_per_frame=0.0, random_walk_a=0.0, substeps=1)


@dataclass(frozen=True, eq=False)
class DriftTrajectory:
    """The true global trajectory.

    Attributes
    ----------
    substeps_xy_a : (N, S, 2) positions (x, y) in Å at S evenly spaced instants within each frame
    mean_xy_a : (N, 2) the frame-averaged position (what a global aligner estimates), Å
    profile : (N,) the jump's time profile 1 − exp(−N_mid / N₀) at mid-frame (drives doming)
    """

    substeps_xy_a: npt.NDArray[np.float64]
    mean_xy_a: npt.NDArray[np.float64]
    profile: npt.NDArray[np.float64]

    def max_extent_a(self) -> float:
        return float(np.abs(self.substeps_xy_a).max(initial=0.0))


def drift_trajectory(
    spec: MotionSpec, n_frames: int, dose_per_frame_e_per_a2: float, rng: np.random.Generator
) -> DriftTrajectory:
    """Sample a trajectory (deterministic for a given generator state).

    Notes
    -----
    At instant t (in frames, from the start of the exposure; sub-step j of frame i sits at
    t = i + (j + ½)/S), with cumulative exposure N = t·D:
    s(t) = A (1 − exp(−N/N₀)) û + v t + W(t), W a Gaussian random walk with step variance
    σ² per frame (σ²/S per sub-step).
    """
    s = spec.substeps
    t = (np.arange(n_frames)[:, None] + (np.arange(s)[None, :] + 0.5) / s).ravel()
    jump_dir = spec.jump_angle_rad if spec.jump_angle_rad is not None else rng.uniform(0, 2 * math.pi)
    drift_dir = (
        spec.stage_drift_angle_rad if spec.stage_drift_angle_rad is not None
        else rng.uniform(0, 2 * math.pi)
    )
    steps = rng.normal(scale=spec.random_walk_a / math.sqrt(s), size=(t.size, 2))
    walk = np.cumsum(steps, axis=0)
    jump = spec.initial_jump_a * (1.0 - np.exp(-t * dose_per_frame_e_per_a2 / spec.jump_exposure_e_per_a2))
    xy = (
        jump[:, None] * np.array([math.cos(jump_dir), math.sin(jump_dir)])
        + spec.stage_drift_a_per_frame * t[:, None] * np.array([math.cos(drift_dir), math.sin(drift_dir)])
        + walk
    )
    sub = xy.reshape(n_frames, s, 2)
    t_mid = np.arange(n_frames) + 0.5
    profile = 1.0 - np.exp(-t_mid * dose_per_frame_e_per_a2 / spec.jump_exposure_e_per_a2)
    return DriftTrajectory(sub, sub.mean(axis=1), profile)


@dataclass(frozen=True, eq=False)
class DomingField:
    """Local displacement d(x, y, i) = profile(i) · Σ_m c_m p_m(x̂, ŷ), per axis, in Å.

    The terms p_m are (x̂, ŷ, x̂², ŷ², x̂ŷ) (:data:`DOMING_TERMS`): no constant, which is the global
    drift's. A specimen bulging under the beam moves radially (the linear terms) and bends.

    Attributes
    ----------
    coeffs_a : (2, 5) coefficients of the terms for the x and y displacement, Å
    center_xy_a : field centre in Å; x̂ = (x − cx) / half_size
    half_size_xy_a : half the field's width and height, Å
    profile : (N,) time profile (0 → 1)
    """

    coeffs_a: npt.NDArray[np.float64]
    center_xy_a: tuple[float, float]
    half_size_xy_a: tuple[float, float]
    profile: npt.NDArray[np.float64]

    def displacement_a(
        self, x_a: npt.ArrayLike, y_a: npt.ArrayLike, frame: int
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """(dx, dy) in Å at positions (x, y) Å of the reference frame, in frame ``frame``."""
        xh = (np.asarray(x_a, dtype=np.float64) - self.center_xy_a[0]) / self.half_size_xy_a[0]
        yh = (np.asarray(y_a, dtype=np.float64) - self.center_xy_a[1]) / self.half_size_xy_a[1]
        terms = (xh, yh, xh * xh, yh * yh, xh * yh)
        scale = float(self.profile[frame])
        dx = scale * sum((c * p for c, p in zip(self.coeffs_a[0], terms, strict=True)), np.zeros_like(xh))
        dy = scale * sum((c * p for c, p in zip(self.coeffs_a[1], terms, strict=True)), np.zeros_like(xh))
        return dx, dy


def doming_field(
    spec: MotionSpec,
    trajectory: DriftTrajectory,
    field_xy_a: tuple[float, float],
    rng: np.random.Generator,
) -> DomingField | None:
    """A random doming whose largest displacement over the field is ``spec.doming_a`` (at the end).

    Returns ``None`` when doming is off. The field is ``[0, width) × [0, height)`` Å.
    """
    if spec.doming_a <= 0:
        return None
    coeffs = rng.normal(size=(2, len(DOMING_TERMS)))
    center = (0.5 * field_xy_a[0], 0.5 * field_xy_a[1])
    field = DomingField(coeffs, center, center, np.ones(1))
    grid = np.linspace(0.0, 1.0, 9)
    gx, gy = np.meshgrid(grid * field_xy_a[0], grid * field_xy_a[1])
    dx, dy = field.displacement_a(gx, gy, 0)
    peak = float(np.sqrt(dx**2 + dy**2).max())
    return DomingField(coeffs * spec.doming_a / peak, center, center, trajectory.profile)
