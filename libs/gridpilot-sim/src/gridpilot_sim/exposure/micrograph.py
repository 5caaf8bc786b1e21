"""Twin micrographs for particle picking: density, species mix, aggregation, carbon edges and
contamination as parameters, with the truth of every particle.

A picking micrograph is a drift-free exposure of the twin (:mod:`gridpilot_sim.exposure.movie`),
summed into its odd- and even-frame halves (what Noise2Noise denoisers train on), with a carbon
film beyond a straight edge over part of the field and ice contamination blobs laid over it.

>>> spec = MicrographSpec(shape=(64, 64), pixel_size_a=4.0, species=("blob_chain",), n_frames=4,
...                       density_per_um2=2000.0, seed=3)
>>> mic = render_micrograph(spec)
>>> mic.odd.shape, mic.even.shape, mic.noise_free.shape, mic.image.dtype.name
((64, 64), (64, 64), (64, 64), 'float32')
>>> sorted(mic.truth["particles"][0])[:3]
['aggregated', 'diameter_a', 'on_carbon']

Physics kept simple on purpose (the carbon and the contamination are not in the renderer's CTF):
the carbon multiplies the image by its transmission exp(−t_c/Λ_c) and adds the contrast
2·φ_c of its amorphous phase φ_c (:func:`gridpilot_sim.world.ice.ice_phase_per_nm` without the
water ring, ∝ √t_c) without passing it through the CTF; a contamination blob is a lens of ice of thickness T √(1 − (r/R)²) absorbing as exp(−t/Λ).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from gridpilot.errors import InvalidInput
from gridpilot_sim.checks import require_fraction, require_non_negative, require_positive
from gridpilot_sim.exposure.detector import DetectorSpec, sample_counts
from gridpilot_sim.exposure.motion import MotionSpec
from gridpilot_sim.exposure.movie import expected_frame, prepare_exposure
from gridpilot_sim.exposure.spec import ExposureSpec
from gridpilot_sim.world.ice import ice_phase_per_nm
from gridpilot_sim.world.particles import SPECIES, load_species
from gridpilot_sim.world.placement import ParticleSpec

__all__ = ["MICROGRAPH_SCHEMA_VERSION", "MicrographSpec", "RenderedMicrograph", "render_micrograph",
           "sample_micrograph_spec", "with_seed"]

MICROGRAPH_SCHEMA_VERSION: Final[int] = 1
_STREAM_SHOT: Final[int] = 11
_STREAM_CARBON: Final[int] = 12
_STREAM_CONTAMINATION: Final[int] = 13
# Amorphous carbon's phase noise per nm relative to ice's flat part (as the exposure scene's support).
_CARBON_NOISE_PER_NM: Final[float] = 2.0
_CARBON_ATTENUATION_NM: Final[float] = 200.0
_ICE_ATTENUATION_NM: Final[float] = 350.0
# The carbon edge is not a step: the film thins over this width (Å).
_EDGE_WIDTH_A: Final[float] = 30.0
#: Species a sampled picking micrograph draws from: small (≈ 150 kDa) and large particles.
PICK_SPECIES: Final[tuple[str, ...]] = ("apoferritin", "blob_chain", "ribosome", "hollow_shell")


@dataclass(frozen=True)
class MicrographSpec:
    """One picking micrograph: field, dose, optics, ice, particles, carbon, contamination.

    Attributes
    ----------
    shape : (H, W) pixels
    pixel_size_a : Å per pixel (picking works on binned micrographs: 2–6 Å)
    n_frames : frames summed (odd and even halves are kept apart)
    dose_e_per_a2 : total exposure, e/Å² (low dose means low SNR per particle)
    defocus_um : underfocus at the ice mid-plane, µm
    ice_nm : ice thickness at the field centre; ``ice_gradient_nm_per_um`` its slope (x, y)
    species, species_fractions : the particle mix (fractions are normalised)
    density_per_um2 : particles per µm² in the field (sparse ≈ 100, crowded ≈ 3000 for 12 nm ones)
    aggregated_fraction : fraction of particles placed touching another one, 0–1
    carbon_fraction : fraction of the field covered by a carbon film beyond a straight edge, 0–1
    carbon_nm : that film's thickness
    contamination_count : ice contamination blobs laid over the field
    seed : the one seed of everything random
    """

    shape: tuple[int, int] = (512, 512)
    pixel_size_a: float = 4.0
    n_frames: int = 10
    dose_e_per_a2: float = 40.0
    defocus_um: float = 1.5
    ice_nm: float = 40.0
    ice_gradient_nm_per_um: tuple[float, float] = (0.0, 0.0)
    species: tuple[str, ...] = ("apoferritin",)
    species_fractions: tuple[float, ...] = (1.0,)
    density_per_um2: float = 800.0
    aggregated_fraction: float = 0.0
    carbon_fraction: float = 0.0
    carbon_nm: float = 15.0
    contamination_count: int = 0
    seed: int = 0
    detector: DetectorSpec = field(default_factory=DetectorSpec)

    def __post_init__(self) -> None:
        if len(self.species) != len(self.species_fractions) or not self.species:
            raise InvalidInput(f"species ({len(self.species)}) and species_fractions "
                               f"({len(self.species_fractions)}) must have the same, non-zero length",
                               field="species")
        unknown = [s for s in self.species if s not in SPECIES]
        if unknown:
            raise InvalidInput(f"unknown species {unknown}; known: {sorted(SPECIES)}", field="species")
        if any(f < 0 for f in self.species_fractions) or sum(self.species_fractions) <= 0:
            raise InvalidInput(f"species_fractions must be >= 0 with a positive sum, got "
                               f"{self.species_fractions}", field="species_fractions")
        require_fraction(self, ("aggregated_fraction", "carbon_fraction"))
        if self.n_frames < 2:
            raise InvalidInput(f"n_frames must be >= 2 (odd and even sums), got {self.n_frames}",
                               field="n_frames")
        require_positive(self, ("dose_e_per_a2", "pixel_size_a"))
        require_non_negative(self, ("density_per_um2", "carbon_nm", "ice_nm", "contamination_count"))

    @property
    def field_xy_a(self) -> tuple[float, float]:
        return self.shape[1] * self.pixel_size_a, self.shape[0] * self.pixel_size_a

    def exposure_spec(self) -> ExposureSpec:
        """The drift-free twin exposure under the carbon and contamination."""
        total = sum(self.species_fractions)
        populations = tuple(
            ParticleSpec(species=s, areal_density_per_um2=self.density_per_um2 * f / total,
                         aggregation_onset_nm=0.0, aggregation_scale_nm=1e-6,
                         max_aggregated_fraction=self.aggregated_fraction)
            for s, f in zip(self.species, self.species_fractions, strict=True) if f > 0
        )
        defocus_a = self.defocus_um * 1e4
        return ExposureSpec(
            shape=self.shape, pixel_size_a=self.pixel_size_a, n_frames=self.n_frames,
            dose_per_frame_e_per_a2=self.dose_e_per_a2 / self.n_frames, defocus1_a=defocus_a,
            defocus2_a=defocus_a, ice_nm=self.ice_nm, ice_gradient_nm_per_um=self.ice_gradient_nm_per_um,
            particles=populations, motion=MotionSpec.still(), detector=self.detector, seed=self.seed,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MicrographSpec:
        d = dict(data)
        for key in ("shape", "ice_gradient_nm_per_um", "species", "species_fractions"):
            if key in d:
                d[key] = tuple(d[key])
        if isinstance(d.get("detector"), dict):
            d["detector"] = DetectorSpec(**d["detector"])
        return cls(**d)


@dataclass(frozen=True, eq=False)
class RenderedMicrograph:
    """A picking micrograph (electrons per pixel, float32 (H, W) each) and its truth.

    ``image = odd + even``; ``noise_free`` is the expected ``image`` (what a perfect denoiser
    returns); ``truth["particles"]`` lists every particle centred in the field (x_px = column,
    y_px = row, pixel (0, 0) centred on the origin) with species, diameter, aggregation and
    whether it lies on the carbon or under contamination.
    """

    image: npt.NDArray[np.float32]
    odd: npt.NDArray[np.float32]
    even: npt.NDArray[np.float32]
    noise_free: npt.NDArray[np.float32]
    truth: dict[str, Any]
    spec: MicrographSpec


def render_micrograph(spec: MicrographSpec, *, structures_dir: str | None = None,
                      cache_dir: str | None = None) -> RenderedMicrograph:
    """Render a picking micrograph (deterministic in ``spec.seed``)."""
    exposure = spec.exposure_spec()
    prepared = prepare_exposure(exposure, structures_dir=structures_dir, cache_dir=cache_dir)
    carbon, on_carbon_px = _carbon_layer(spec)
    blobs, under_blob_px = _contamination_layer(spec)
    rng = np.random.default_rng([spec.seed, _STREAM_SHOT])
    halves = [np.zeros(spec.shape, np.float64), np.zeros(spec.shape, np.float64)]
    noise_free = np.zeros(spec.shape, np.float64)
    for i in range(spec.n_frames):
        expected = expected_frame(prepared, i, drift=False) * carbon * blobs
        noise_free += expected
        halves[i % 2] += sample_counts(expected, spec.detector, prepared.sensitivity, rng)
    odd, even = (h.astype(np.float32) for h in halves)
    radii = {n: load_species(n, structures_dir=structures_dir, cache_dir=cache_dir).radius_a
             for n in set(spec.species)}
    particles = []
    for p in prepared.truth.particles:
        col, row = round(p.x_px), round(p.y_px)
        inside = 0 <= row < spec.shape[0] and 0 <= col < spec.shape[1]
        particles.append({
            "species": p.species, "x_px": p.x_px, "y_px": p.y_px, "z_a": p.z_a,
            "diameter_a": 2.0 * radii[p.species], "aggregated": p.aggregated,
            "on_carbon": bool(inside and on_carbon_px[row, col]),
            "under_contamination": bool(inside and under_blob_px[row, col]),
        })
    truth = {
        "schema_version": MICROGRAPH_SCHEMA_VERSION, "kind": "micrograph", "shape": list(spec.shape),
        "pixel_size_a": spec.pixel_size_a, "seed": spec.seed, "spec": spec.to_dict(),
        "n_particles": len(particles), "particles": particles,
        "carbon_area_fraction": float(on_carbon_px.mean()),
        "contaminated_area_fraction": float(under_blob_px.mean()),
    }
    return RenderedMicrograph(odd + even, odd, even, noise_free.astype(np.float32), truth, spec)


def sample_micrograph_spec(rng: np.random.Generator, *, shape: tuple[int, int] = (512, 512),
                           pixel_size_a: float = 4.0, seed: int | None = None,
                           species: tuple[str, ...] = PICK_SPECIES) -> MicrographSpec:
    """A random realistic picking micrograph: dose, defocus, ice, crowding, carbon, contamination.

    Dose 15–60 e/Å² (SNR per particle ≈ 0.01–0.1 for the small species), defocus 0.8–3 µm,
    ice 25–90 nm, 100–2500 particles/µm², one or two species, a carbon edge in a third of them
    and contamination in a quarter.
    """
    n_species = int(rng.integers(1, min(3, len(species) + 1)))
    chosen = tuple(str(s) for s in rng.choice(species, size=n_species, replace=False))
    fractions = tuple(float(f) for f in rng.dirichlet(np.ones(n_species))) if n_species > 1 else (1.0,)
    return MicrographSpec(
        shape=shape, pixel_size_a=pixel_size_a, n_frames=10,
        dose_e_per_a2=float(rng.uniform(15.0, 60.0)), defocus_um=float(rng.uniform(0.8, 3.0)),
        ice_nm=float(rng.uniform(25.0, 90.0)),
        ice_gradient_nm_per_um=(float(rng.normal(scale=20.0)), float(rng.normal(scale=20.0))),
        species=chosen, species_fractions=fractions,
        density_per_um2=float(math.exp(rng.uniform(math.log(100.0), math.log(2500.0)))),
        aggregated_fraction=float(rng.choice([0.0, 0.0, rng.uniform(0.1, 0.5)])),
        carbon_fraction=float(rng.uniform(0.1, 0.5)) if rng.random() < 1 / 3 else 0.0,
        carbon_nm=float(rng.uniform(8.0, 25.0)),
        contamination_count=int(rng.integers(1, 4)) if rng.random() < 0.25 else 0,
        seed=int(rng.integers(2**31)) if seed is None else seed,
    )


def _carbon_layer(spec: MicrographSpec) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Multiplicative carbon layer (H, W) and the carbon mask: a film beyond a straight edge."""
    h, w = spec.shape
    if spec.carbon_fraction <= 0 or spec.carbon_nm <= 0:
        return np.ones(spec.shape), np.zeros(spec.shape, bool)
    rng = np.random.default_rng([spec.seed, _STREAM_CARBON])
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    along = (xx - 0.5 * w) * math.cos(angle) + (yy - 0.5 * h) * math.sin(angle)
    edge = float(np.quantile(along, 1.0 - spec.carbon_fraction))
    cover = 0.5 * (1.0 + np.tanh((along - edge) * spec.pixel_size_a / _EDGE_WIDTH_A))
    thickness = spec.carbon_nm * cover
    phase = ice_phase_per_nm(spec.shape, spec.pixel_size_a, int(rng.integers(2**31)), water_ring=False)
    amp = math.sqrt(_CARBON_NOISE_PER_NM * spec.carbon_nm)
    contrast = 2.0 * amp * phase * cover
    layer = np.exp(-thickness / _CARBON_ATTENUATION_NM) * (1.0 + contrast)
    return np.clip(layer, 0.0, None), cover > 0.5


def _contamination_layer(spec: MicrographSpec) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Multiplicative absorption of ice blobs (H, W) and their mask."""
    if spec.contamination_count == 0:
        return np.ones(spec.shape), np.zeros(spec.shape, bool)
    rng = np.random.default_rng([spec.seed, _STREAM_CONTAMINATION])
    h, w = spec.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    thickness = np.zeros(spec.shape)
    side_a = min(spec.field_xy_a)
    for _ in range(spec.contamination_count):
        radius_px = rng.uniform(0.04, 0.15) * side_a / spec.pixel_size_a
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        r2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / radius_px**2
        thickness = np.maximum(thickness, rng.uniform(80.0, 300.0) * np.sqrt(np.clip(1.0 - r2, 0.0, None)))
    thickness = ndimage.gaussian_filter(thickness, 1.5)
    return np.exp(-thickness / _ICE_ATTENUATION_NM), thickness > 5.0


def with_seed(spec: MicrographSpec, seed: int) -> MicrographSpec:
    """The same micrograph recipe with another seed (other particles, noise, edge)."""
    return replace(spec, seed=seed)
