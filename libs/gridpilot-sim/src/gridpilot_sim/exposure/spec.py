"""What one high-magnification exposure of the twin shows and how it is recorded.

Everything in an :class:`ExposureSpec` is physical (Å, nm, e/Å²) except ``shape``, so
``spec.with_pixel_size(2 * spec.pixel_size_a)`` is the same scene — same particles, same ice,
same drift — sampled on a grid half as fine over the same field of view.

>>> spec = ExposureSpec(shape=(256, 256), pixel_size_a=1.0, n_frames=10)
>>> spec.with_pixel_size(2.0).shape, spec.total_dose_e_per_a2
((128, 128), 12.5)

:func:`exposure_spec_for_scene` puts an exposure in the simulated world: the ice, support and
particles of a :class:`~gridpilot_sim.world.world.LocalScene` on top of the optics, dose and seed of a
base spec (what the twin microscope and ``gridpilot sim render movie`` record).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Final

from gridpilot.errors import InvalidInput
from gridpilot_sim.checks import require_non_negative, require_positive
from gridpilot_sim.exposure.detector import DetectorSpec
from gridpilot_sim.exposure.motion import MotionSpec
from gridpilot_sim.exposure.transfer import LensParams
from gridpilot_sim.world.particles import SPECIES
from gridpilot_sim.world.placement import ParticlePlacement, ParticleSpec

if TYPE_CHECKING:
    from gridpilot_sim.world.world import LocalScene

__all__ = ["ExposureSpec", "exposure_spec_for_scene"]

_MAX_SIDE_PX: Final[int] = 16384
# Pixel sizes of a high-magnification exposure (TWIN-PHYSICS.md: 0.5–1.5 Å, with room for binning).
_PIXEL_RANGE_A: Final[tuple[float, float]] = (0.2, 20.0)
# Mesh bars and the rim let nothing through: 10 µm of "support" at Λ = 20 nm.
_OPAQUE_SUPPORT_NM: Final[float] = 1e4
_OPAQUE_ATTENUATION_NM: Final[float] = 20.0
# Effective attenuation lengths of support films at high magnification (energy filtered), nm.
_SUPPORT_ATTENUATION_NM: Final[dict[str, float]] = {"carbon": 200.0, "gold": 30.0}
_CRYSTALLINE_PHASE_RAD: Final[float] = 0.03
# A sample species with no model of its own is drawn as this procedural one.
_FALLBACK_SPECIES: Final[str] = "hollow_shell"


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
        require_positive(self, ("dose_per_frame_e_per_a2", "voltage_kv", "ice_attenuation_nm", "depth_bin_a",
                                "support_attenuation_nm"))
        require_non_negative(self, ("ice_nm", "b_factor_a2", "ice_noise_scale", "crystalline_ice_rad",
                                    "support_nm", "focal_spread_a", "illumination_semi_angle_mrad", "cs_mm"))
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


def exposure_spec_for_scene(scene: LocalScene, base: ExposureSpec) -> ExposureSpec:
    """The exposure of a world's local scene, on top of ``base`` (optics, dose, detector, seed).

    Parameters
    ----------
    scene : what the world has at the exposure's centre (ice in nm, gradient in nm/µm in the
        stage frame, particles per µm²)
    base : everything the scene does not set: shape, pixel size, frames, dose, defocus, motion,
        detector, seed

    Returns
    -------
    ExposureSpec with the scene's ice, support and particles.

    Notes
    -----
    Bars and the rim are opaque; on the film the support's thickness and material set its
    absorption; contamination counts as extra ice. Particles keep the world's areal density
    as it is: the world has already excluded them from ice thinner than they are. The stage
    y axis points up and image rows down, so the y gradient changes sign.
    """
    gx, gy = scene.ice_gradient_nm_per_um
    opaque = scene.region in ("bar", "rim")
    if opaque:
        support_nm, support_att = _OPAQUE_SUPPORT_NM, _OPAQUE_ATTENUATION_NM
    elif scene.film_material is not None and scene.film_nm > 0:
        support_nm, support_att = scene.film_nm, _SUPPORT_ATTENUATION_NM[scene.film_material]
    else:
        support_nm, support_att = 0.0, base.support_attenuation_nm
    populations = tuple(
        ParticleSpec(species=name if name in SPECIES else _FALLBACK_SPECIES,
                     areal_density_per_um2=scene.particle_density_per_um2 * fraction)
        for name, fraction in zip(scene.species, scene.species_fractions, strict=True)
        if scene.particle_density_per_um2 * fraction > 0 and not opaque
    )
    return replace(
        base, ice_nm=0.0 if opaque else scene.ice_nm + scene.contamination_nm,
        ice_gradient_nm_per_um=(0.0, 0.0) if opaque else (gx, -gy),
        support_nm=support_nm, support_attenuation_nm=support_att,
        crystalline_ice_rad=_CRYSTALLINE_PHASE_RAD if scene.crystalline else 0.0,
        particles=populations,
    )


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
