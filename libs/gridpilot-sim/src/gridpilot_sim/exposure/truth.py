"""Ground truth of a rendered exposure, for scoring pickers, aligners and CTF fitters.

Conventions:

- Positions are in the reference (drift-free) frame. ``x`` is the image column, ``y`` the row;
  ``x_px = x_a / pixel_size_a``, and pixel (0, 0) is centred on the physical origin.
- ``drift_xy_a[i]`` is the displacement of the image content in frame ``i``: something at ``r``
  in the reference frame is seen at ``r + drift_xy_a[i]`` (frame-averaged; sub-steps in
  ``drift_substeps_xy_a``). Local doming adds ``doming.displacement_a(x, y, i)``.
- Depth ``z_a`` is from the ice mid-plane along the beam, positive downstream; a particle's own
  defocus is the mid-plane defocus plus ``z_a`` (positive = underfocus). The renderer images it at
  ``z_a`` rounded to ``depth_bin_a``.
- Quaternions ``(w, x, y, z)`` rotate body coordinates into the lab frame (x, y as above, z along
  the beam).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from gridpilot_sim.exposure.motion import DOMING_TERMS, DomingField

__all__ = ["ExposureTruth", "ParticleTruth"]


@dataclass(frozen=True)
class ParticleTruth:
    """One particle in the field of view (its centre inside the reference frame's field)."""

    species: str
    x_a: float
    y_a: float
    z_a: float
    x_px: float
    y_px: float
    defocus1_a: float
    defocus2_a: float
    quaternion: tuple[float, float, float, float]
    aggregated: bool


@dataclass(frozen=True, eq=False)
class ExposureTruth:
    """Everything the renderer knows about an exposure.

    Attributes
    ----------
    shape, pixel_size_a, n_frames, seed : as in the spec
    particles : particles whose centre lies in the field ``[0, W·p) × [0, H·p)``
    defocus1_a, defocus2_a, astig_angle_rad : defocus at the ice mid-plane
    drift_xy_a : (N, 2) frame-averaged content displacement, Å
    drift_substeps_xy_a : (N, S, 2) displacement at the sub-steps within each frame, Å
    dose_per_frame_e_per_a2 : (N,) exposure of each frame, e/Å²
    exposure_mid_e_per_a2 : (N,) cumulative exposure at each frame's middle (drives damage), e/Å²
    ice_nm, ice_gradient_nm_per_um : thickness at the field centre and its gradient
    ice_transmission : mean of exp(−t/Λ) over the field (the ice alone)
    support_nm : support film thickness under the ice (0 in a hole)
    crystalline_ice : whether Bragg spots were added
    doming : the local deformation, or ``None``
    """

    shape: tuple[int, int]
    pixel_size_a: float
    n_frames: int
    seed: int
    particles: tuple[ParticleTruth, ...]
    defocus1_a: float
    defocus2_a: float
    astig_angle_rad: float
    drift_xy_a: npt.NDArray[np.float64]
    drift_substeps_xy_a: npt.NDArray[np.float64]
    dose_per_frame_e_per_a2: npt.NDArray[np.float64]
    exposure_mid_e_per_a2: npt.NDArray[np.float64]
    ice_nm: float
    ice_gradient_nm_per_um: tuple[float, float]
    ice_transmission: float
    support_nm: float
    crystalline_ice: bool
    doming: DomingField | None

    @property
    def drift_xy_px(self) -> npt.NDArray[np.float64]:
        """(N, 2) frame-averaged displacement in pixels."""
        return self.drift_xy_a / self.pixel_size_a

    def particle_xy_px(self) -> npt.NDArray[np.float64]:
        """(n, 2) particle centres (x, y) in pixels of the reference frame."""
        return np.array([[p.x_px, p.y_px] for p in self.particles]).reshape(-1, 2)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (arrays as nested lists)."""
        out: dict[str, Any] = {
            "shape": list(self.shape),
            "pixel_size_a": self.pixel_size_a,
            "n_frames": self.n_frames,
            "seed": self.seed,
            "defocus1_a": self.defocus1_a,
            "defocus2_a": self.defocus2_a,
            "astig_angle_rad": self.astig_angle_rad,
            "drift_xy_a": self.drift_xy_a.tolist(),
            "drift_xy_px": self.drift_xy_px.tolist(),
            "drift_substeps_xy_a": self.drift_substeps_xy_a.tolist(),
            "dose_per_frame_e_per_a2": self.dose_per_frame_e_per_a2.tolist(),
            "exposure_mid_e_per_a2": self.exposure_mid_e_per_a2.tolist(),
            "ice_nm": self.ice_nm,
            "ice_gradient_nm_per_um": list(self.ice_gradient_nm_per_um),
            "ice_transmission": self.ice_transmission,
            "support_nm": self.support_nm,
            "crystalline_ice": self.crystalline_ice,
            "particles": [
                {**p.__dict__, "quaternion": list(p.quaternion)} for p in self.particles
            ],
            "doming": None,
        }
        if self.doming is not None:
            out["doming"] = {
                "coeffs_a": self.doming.coeffs_a.tolist(),
                "terms": list(DOMING_TERMS),
                "center_xy_a": list(self.doming.center_xy_a),
                "half_size_xy_a": list(self.doming.half_size_xy_a),
                "profile": self.doming.profile.tolist(),
            }
        return out

    def to_json(self, indent: int | None = None) -> str:
        """The truth as JSON text (see :meth:`to_dict`)."""
        return json.dumps(self.to_dict(), indent=indent)
