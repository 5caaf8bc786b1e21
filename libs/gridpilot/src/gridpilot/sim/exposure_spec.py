"""What one high-magnification exposure of the twin shows and how it is recorded.

Everything in an :class:`ExposureSpec` is physical (Å, nm, e/Å²) except ``shape``, so
``spec.with_pixel_size(2 * spec.pixel_size_a)`` is the same scene — same particles, same ice,
same drift — sampled on a grid half as fine over the same field of view.

>>> spec = ExposureSpec(shape=(256, 256), pixel_size_a=1.0, n_frames=10)
>>> spec.with_pixel_size(2.0).shape, spec.total_dose_e_per_a2
((128, 128), 12.5)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Final

from gridpilot.errors import InvalidInput
from gridpilot.sim.detector import DetectorSpec
from gridpilot.sim.motion import MotionSpec
from gridpilot.sim.placement import ParticlePlacement, ParticleSpec
from gridpilot.sim.transfer import LensParams

__all__ = ["ExposureSpec"]

_MAX_SIDE_PX: Final[int] = 16384
# Pixel sizes of a high-magnification exposure (TWIN-PHYSICS.md: 0.5–1.5 Å, with room for binning).
_PIXEL_RANGE_A: Final[tuple[float, float]] = (0.2, 20.0)


@dataclass(frozen=True)
class ExposureSpec:
    """An exposure: field, dose, optics, ice, particles, motion, detector, seed.

    Attributes
    ----------
    shape : (H, W) pixels of the recorded frames
    pixel_size_a : Å per pixel at the specimen
    n_frames : frames in the movie
    dose_per_frame_e_per_a2 : exposure per frame, e/Å² (a total of 40–60 is typical)
    voltage_kv, cs_mm, amplitude_contrast, phase_shift_rad : microscope optics
    defocus1_a, defocus2_a, astig_angle_rad : defocus at the ice mid-plane (positive = underfocus,
        Å) and the angle of defocus1 from the x axis, as in :mod:`gridpilot.optics`
    b_factor_a2 : envelope exp(−B k²/4) of everything else that blurs (B ≈ 40–150 Å²)
    focal_spread_a, illumination_semi_angle_mrad : temporal and spatial coherence
    ice_nm : ice thickness at the field centre, nm
    ice_gradient_nm_per_um : (d t/d x, d t/d y) of the thickness across the field, nm per µm
    ice_attenuation_nm : Λ in the transmission exp(−t/Λ) (≈ 300–400 nm energy-filtered at 300 kV)
    ice_noise_scale : multiplies the ice's structural phase noise (1 = nominal, 0 = none)
    crystalline_ice_rad : phase amplitude of each hexagonal-ice reflection (0 = vitreous)
    support_nm : thickness of a support film under the ice (exposures on the carbon), nm
    support_attenuation_nm : its Λ (≈ 200 nm for amorphous carbon at 300 kV; tens of nm for gold)
    particles : populations placed at random (density rising with the ice thickness)
    placements : particles at explicit positions (Å), placed first
    motion : beam-induced motion and drift
    detector : MTF, DQE, gain, frame type
    depth_bin_a : particles are imaged at their depth rounded to this step (CTF per slab), Å
    seed : the one seed of everything random
    """

    shape: tuple[int, int] = (1024, 1024)
    pixel_size_a: float = 1.0
    n_frames: int = 40
    dose_per_frame_e_per_a2: float = 1.25
    voltage_kv: float = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.07
    phase_shift_rad: float = 0.0
    defocus1_a: float = 15000.0
    defocus2_a: float = 15000.0
    astig_angle_rad: float = 0.0
    b_factor_a2: float = 60.0
    focal_spread_a: float = 70.0
    illumination_semi_angle_mrad: float = 0.03
    ice_nm: float = 40.0
    ice_gradient_nm_per_um: tuple[float, float] = (0.0, 0.0)
    ice_attenuation_nm: float = 350.0
    ice_noise_scale: float = 1.0
    crystalline_ice_rad: float = 0.0
    support_nm: float = 0.0
    support_attenuation_nm: float = 200.0
    particles: tuple[ParticleSpec, ...] = (ParticleSpec(),)
    placements: tuple[ParticlePlacement, ...] = ()
    motion: MotionSpec = field(default_factory=MotionSpec)
    detector: DetectorSpec = field(default_factory=DetectorSpec)
    depth_bin_a: float = 50.0
    seed: int = 0

    def __post_init__(self) -> None:
        h, w = self.shape
        if not (8 <= h <= _MAX_SIDE_PX and 8 <= w <= _MAX_SIDE_PX) or h % 2 or w % 2:
            raise InvalidInput(f"shape must be even sides in [8, {_MAX_SIDE_PX}], got {self.shape}",
                               field="shape")
        if not _PIXEL_RANGE_A[0] <= self.pixel_size_a <= _PIXEL_RANGE_A[1]:
            raise InvalidInput(f"pixel_size_a must be in {_PIXEL_RANGE_A}, got {self.pixel_size_a}",
                               field="pixel_size_a")
        if self.n_frames < 1:
            raise InvalidInput(f"n_frames must be >= 1, got {self.n_frames}", field="n_frames")
        positive = ("dose_per_frame_e_per_a2", "voltage_kv", "ice_attenuation_nm", "depth_bin_a",
                    "support_attenuation_nm")
        for name in positive:
            if getattr(self, name) <= 0:
                raise InvalidInput(f"{name} must be positive, got {getattr(self, name)}", field=name)
        non_negative = ("ice_nm", "b_factor_a2", "ice_noise_scale", "crystalline_ice_rad", "support_nm",
                        "focal_spread_a", "illumination_semi_angle_mrad", "cs_mm")
        for name in non_negative:
            if getattr(self, name) < 0:
                raise InvalidInput(f"{name} must be >= 0, got {getattr(self, name)}", field=name)
        if not 0.0 <= self.amplitude_contrast < 1.0:
            raise InvalidInput(f"amplitude_contrast must be in [0, 1), got {self.amplitude_contrast}",
                               field="amplitude_contrast")

    @property
    def field_xy_a(self) -> tuple[float, float]:
        """Width and height of the field of view, Å."""
        return self.shape[1] * self.pixel_size_a, self.shape[0] * self.pixel_size_a

    @property
    def total_dose_e_per_a2(self) -> float:
        return self.n_frames * self.dose_per_frame_e_per_a2

    def lens(self) -> LensParams:
        """The optics at the ice mid-plane."""
        return LensParams(
            self.defocus1_a, self.defocus2_a, self.astig_angle_rad, self.voltage_kv, self.cs_mm,
            self.amplitude_contrast, self.phase_shift_rad, self.b_factor_a2, self.focal_spread_a,
            self.illumination_semi_angle_mrad,
        )

    def with_pixel_size(self, pixel_size_a: float) -> ExposureSpec:
        """The same scene over the same field of view, sampled at another pixel size."""
        scale = self.pixel_size_a / pixel_size_a
        h, w = (2 * round(n * scale / 2) for n in self.shape)
        return replace(self, pixel_size_a=pixel_size_a, shape=(h, w))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (nested specs as dicts); :meth:`from_dict` reverses it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExposureSpec:
        """Build a spec from :meth:`to_dict` output (unknown keys are an error)."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InvalidInput(f"unknown ExposureSpec fields: {sorted(unknown)}")
        d = dict(data)
        if "shape" in d:
            d["shape"] = tuple(d["shape"])
        if "ice_gradient_nm_per_um" in d:
            d["ice_gradient_nm_per_um"] = tuple(d["ice_gradient_nm_per_um"])
        if "particles" in d:
            d["particles"] = tuple(_particle_spec(p) for p in d["particles"])
        if "placements" in d:
            d["placements"] = tuple(_placement(p) for p in d["placements"])
        if isinstance(d.get("motion"), dict):
            d["motion"] = MotionSpec(**d["motion"])
        if isinstance(d.get("detector"), dict):
            d["detector"] = DetectorSpec(**d["detector"])
        return cls(**d)


def _particle_spec(p: dict[str, Any] | ParticleSpec) -> ParticleSpec:
    if isinstance(p, ParticleSpec):
        return p
    d = dict(p)
    if "preferred_axis" in d:
        d["preferred_axis"] = tuple(d["preferred_axis"])
    return ParticleSpec(**d)


def _placement(p: dict[str, Any] | ParticlePlacement) -> ParticlePlacement:
    if isinstance(p, ParticlePlacement):
        return p
    d = dict(p)
    if d.get("quaternion") is not None:
        d["quaternion"] = tuple(d["quaternion"])
    return ParticlePlacement(**d)
