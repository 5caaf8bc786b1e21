"""Low- and medium-magnification images of the world: atlas tiles, squares and hole views.

Image formation, per pixel (all thickness paths lengthened by 1/cos α at stage tilt α):

    T = open · exp(−c/Λ_ice) · [vac + (1 − vac)·(h·exp(−t_h/Λ_ice) + (1 − h)·exp(−t_f/Λ_ice − d/Λ_film))]
    I = N · L(r) · g · (s + (1 − s) · (PSF ∗ T)),     counts ~ Poisson(I)

with open = metal-free fraction, vac = missing film, h = hole fraction, t_h / t_f the ice in
holes / on the film, d the film thickness, c contamination, N the counts per pixel through
vacuum, L the illumination falloff, g the detector gain, s the stray/background fraction
(why bars are not perfectly black). Λ are effective attenuation lengths (TWIN-PHYSICS.md:
ice 300–400 nm zero-loss; gold ≪ carbon), all tunable in :class:`ContrastParams`.

>>> from gridpilot_sim.world.world import World
>>> w = World(seed=0)
>>> img = render_view(w, w.squares()[0].centre_um, shape=(48, 64), pixel_size_um=0.05, noise=False)
>>> img.image.shape, img.image.dtype.name, img.kind
((48, 64), 'float32', 'view')
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Final, Literal

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from gridpilot_sim.imaging.camera import Affine, PixelGrid, invert_affine, make_pixel_grid
from gridpilot_sim.world.scene import SceneFields, evaluate_grid

if TYPE_CHECKING:
    from gridpilot_sim.world.world import World

__all__ = [
    "ATLAS_IMAGING",
    "SQUARE_IMAGING",
    "VIEW_IMAGING",
    "ContrastParams",
    "ImageKind",
    "ImagingParams",
    "RenderedImage",
    "render_grid",
    "render_square",
    "render_tile",
    "render_view",
    "transmission",
]

ImageKind = Literal["atlas_tile", "atlas", "square", "view"]
F32 = npt.NDArray[np.float32]
STREAM_NOISE: Final[int] = 7
_CAMERA_STREAM: Final[int] = 8
DEFAULT_SQUARE_SHAPE: Final[tuple[int, int]] = (1280, 1280)  # SEED-DIGEST 3.2.5: squares at 1280²
DEFAULT_VIEW_SHAPE: Final[tuple[int, int]] = (1024, 1024)
DEFAULT_VIEW_PIXEL_UM: Final[float] = 0.01
SQUARE_FOV_PITCHES: Final[float] = 1.15  # default square image: field of view in mesh pitches


@dataclass(frozen=True)
class ContrastParams:
    """Effective attenuation lengths (nm) of each material; larger = more transparent."""

    ice_mfp_nm: float = 350.0
    carbon_mfp_nm: float = 60.0
    gold_mfp_nm: float = 70.0


@dataclass(frozen=True)
class ImagingParams:
    """How one magnification images: dose, optics blur, illumination and detector."""

    counts_per_px: float  # expected counts per pixel through vacuum at the beam centre
    psf_sigma_px: float  # Gaussian blur of the optics
    halo_fraction: float = 0.0  # weight of a wide scattering halo around bright areas
    halo_sigma_px: float = 8.0
    stray_fraction: float = 0.0  # background reaching the detector through opaque areas
    vignetting: float = 0.12  # relative illumination loss at the image corners
    gain_sigma: float = 0.01  # residual per-pixel gain variation after gain normalisation (σ)
    fringe: float = 0.0  # depth of the Fresnel fringes at hole edges (defocused views)
    fringe_width_um: float = 0.05  # their width (grows with defocus)
    beam_radius: float | None = None  # round beam: radius / half the shorter side (None: flood)
    beam_edge: float = 0.12  # width of the beam's soft edge / its radius
    contrast: ContrastParams = field(default_factory=ContrastParams)


#: Low-magnification atlas tiles: ~1 µm/px, high dose per pixel, a scattering halo, and more
#: carbon contrast (no objective aperture in LM: the film's wide-angle scattering is lost).
ATLAS_IMAGING: Final = ImagingParams(counts_per_px=1000.0, psf_sigma_px=0.7, halo_fraction=0.12,
                                     halo_sigma_px=8.0, stray_fraction=0.07, vignetting=0.18,
                                     contrast=ContrastParams(carbon_mfp_nm=50.0, gold_mfp_nm=25.0))
#: Square (Search) images: ~70 nm/px; gold film is near-opaque here, grey in views.
SQUARE_IMAGING: Final = ImagingParams(counts_per_px=600.0, psf_sigma_px=1.0, halo_fraction=0.05,
                                      halo_sigma_px=10.0, stray_fraction=0.04, vignetting=0.15,
                                      contrast=ContrastParams(gold_mfp_nm=25.0))
#: Hole (View) images: ~10 nm/px, a defocus fringe at hole edges.
VIEW_IMAGING: Final = ImagingParams(counts_per_px=1000.0, psf_sigma_px=1.0, stray_fraction=0.0,
                                    vignetting=0.10, fringe=0.3, fringe_width_um=0.03)


@dataclass(frozen=True)
class RenderedImage:
    """A rendered image and where it is: ``image`` (H, W) float32 counts."""

    image: F32
    kind: ImageKind
    pixel_size_um: float
    image_to_stage: Affine
    centre_um: tuple[float, float]
    tilt_deg: float
    image_shift_um: tuple[float, float]
    counts_per_px: float
    seed: int

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.image.shape[0]), int(self.image.shape[1]))

    @property
    def pixel_size_a(self) -> float:
        return self.pixel_size_um * 1e4

    def stage_to_pixel(self, x_um: float, y_um: float) -> tuple[float, float]:
        """(col, row) of a stage point in this image."""
        (a, b, tx), (d, e, ty) = invert_affine(self.image_to_stage)
        return a * x_um + b * y_um + tx, d * x_um + e * y_um + ty


def transmission(world: World, fields: SceneFields, contrast: ContrastParams, path_factor: float = 1.0) -> F32:
    """Fraction of the beam transmitted at each pixel, (H, W) float32 in [0, 1].

    Parameters
    ----------
    world : gives the film material and thickness
    fields : scene fields of the image (:func:`gridpilot_sim.world.scene.evaluate_grid`)
    contrast : attenuation lengths
    path_factor : 1 / cos(tilt): how much longer paths through flat layers are
    """
    film_mfp = contrast.gold_mfp_nm if world.spec.film_material == "gold" else contrast.carbon_mfp_nm
    k_ice = np.float32(path_factor / contrast.ice_mfp_nm)
    film_mu = np.float32(path_factor * world.spec.film_thickness_nm / film_mfp)
    hole_t = np.exp(-fields.hole_nm * k_ice)
    film_t = np.exp(-fields.film_ice_nm * k_ice - film_mu * fields.film_rel)
    specimen = fields.hole_cov * hole_t + (1 - fields.hole_cov) * film_t
    t = fields.vacuum + (1 - fields.vacuum) * specimen
    # Contamination rests on film or in ice: where the film is missing there is none.
    contamination = np.exp(-fields.extra_nm * (1 - fields.vacuum) * k_ice)
    return np.asarray(fields.open_cov * contamination * t, dtype=np.float32)


def _illumination(shape: tuple[int, int], imaging: ImagingParams) -> F32:
    """Relative illumination: a quadratic falloff to the corners, optionally a round beam."""
    h, w = shape
    yy = (np.arange(h, dtype=np.float32) - (h - 1) / 2)[:, None]
    xx = (np.arange(w, dtype=np.float32) - (w - 1) / 2)[None, :]
    rho2 = xx * xx + yy * yy
    light = 1.0 - imaging.vignetting * rho2 / np.float32(((h - 1) / 2) ** 2 + ((w - 1) / 2) ** 2 + 1e-9)
    if imaging.beam_radius is not None:
        radius = imaging.beam_radius * min(h, w) / 2
        edge = max(imaging.beam_edge * radius, 1e-3)
        light = light / (1.0 + np.exp(np.clip((np.sqrt(rho2) - radius) / edge, -50, 50)))
    return np.asarray(light, dtype=np.float32)


def _fringes(edge_um: F32, depth: float, width_um: float) -> F32:
    """Underfocus Fresnel fringes at an edge: a dark band outside the hole, a bright one inside.

    Notes
    -----
    f = 1 − A·exp(−((d − w)/w)²) + (A/2)·exp(−((d + w)/w)²), d the signed distance to the hole
    edge (> 0 on the film side), A the depth and w the width.
    """
    d = edge_um / np.float32(width_um)
    a = np.float32(depth)
    return np.asarray(1 - a * np.exp(-((d - 1) ** 2)) + 0.5 * a * np.exp(-((d + 1) ** 2)), dtype=np.float32)


def _gain(shape: tuple[int, int], sigma: float, seed: int) -> F32:
    """The detector's fixed gain pattern (same camera for every image of that shape)."""
    rng = np.random.default_rng([_CAMERA_STREAM, shape[0], shape[1], seed])
    return np.asarray(1.0 + sigma * rng.standard_normal(shape, dtype=np.float32), dtype=np.float32)


def _noise_seed(world: World, grid: PixelGrid, kind: str) -> list[int]:
    """A noise stream keyed by the world and by where the image is (µnm-rounded)."""
    (a, _, tx), (_, e, ty) = grid.image_to_stage
    keys = [round(v * 1e3) & 0xFFFFFFFF for v in (a, e, tx, ty)]
    return [world.seed, STREAM_NOISE, len(kind), *keys, grid.shape[0], grid.shape[1]]


def render_grid(world: World, grid: PixelGrid, *, kind: ImageKind, imaging: ImagingParams,
                noise: bool = True, noise_seed: int | None = None, camera_seed: int = 0) -> RenderedImage:
    """Render the world on an arbitrary pixel grid.

    Parameters
    ----------
    world : the world
    grid : pixels and their stage positions (:func:`gridpilot_sim.imaging.camera.make_pixel_grid`)
    kind : what the image is (recorded, and keys the noise)
    imaging : dose, blur, illumination and detector of this magnification
    noise : False gives the expected counts (no shot noise; gain pattern still applied)
    noise_seed : the shot-noise stream; ``None`` derives one from the world and the position,
        so the same call gives the same bytes (pass an acquisition counter for fresh noise)
    camera_seed : which detector (its fixed gain pattern)

    Returns
    -------
    RenderedImage with counts (float32, (H, W)).
    """
    fields = evaluate_grid(world, grid)
    t = transmission(world, fields, imaging.contrast, grid.path_factor)
    if imaging.fringe > 0 and grid.pixel_size_um < 2 * imaging.fringe_width_um:
        t = t * _fringes(fields.edge_um, imaging.fringe, imaging.fringe_width_um)
    blurred = ndimage.gaussian_filter(t, imaging.psf_sigma_px, mode="nearest")
    if imaging.halo_fraction > 0:
        halo = ndimage.gaussian_filter(t, imaging.halo_sigma_px, mode="nearest")
        blurred = (1 - imaging.halo_fraction) * blurred + imaging.halo_fraction * halo
    s = np.float32(imaging.stray_fraction)
    expected = np.float32(imaging.counts_per_px) * _illumination(grid.shape, imaging) * (s + (1 - s) * blurred)
    if imaging.gain_sigma > 0:
        expected = expected * _gain(grid.shape, imaging.gain_sigma, camera_seed)
    if noise:
        seed = [world.seed, STREAM_NOISE, noise_seed] if noise_seed is not None else _noise_seed(world, grid, kind)
        image = np.random.default_rng(seed).poisson(np.maximum(expected, 0)).astype(np.float32)
    else:
        image = expected.astype(np.float32)
    (a, _, tx), (_, e, ty) = grid.image_to_stage
    h, w = grid.shape
    centre = (tx + a * (w - 1) / 2, ty + e * (h - 1) / 2)
    return RenderedImage(image=image, kind=kind, pixel_size_um=grid.pixel_size_um,
                         image_to_stage=grid.image_to_stage, centre_um=centre, tilt_deg=grid.tilt_deg,
                         image_shift_um=(0.0, 0.0), counts_per_px=imaging.counts_per_px, seed=world.seed)


def _render_at(world: World, kind: ImageKind, centre_um: tuple[float, float], shape: tuple[int, int],
               pixel_size_um: float, tilt_deg: float, image_shift_um: tuple[float, float],
               imaging: ImagingParams, noise: bool, noise_seed: int | None) -> RenderedImage:
    grid = make_pixel_grid(shape, pixel_size_um, centre_um, tilt_deg=tilt_deg, image_shift_um=image_shift_um)
    img = render_grid(world, grid, kind=kind, imaging=imaging, noise=noise, noise_seed=noise_seed)
    return replace(img, centre_um=(float(centre_um[0]), float(centre_um[1])),
                   image_shift_um=(float(image_shift_um[0]), float(image_shift_um[1])))


def render_square(world: World, centre_um: tuple[float, float], *,
                  shape: tuple[int, int] = DEFAULT_SQUARE_SHAPE, pixel_size_um: float | None = None,
                  tilt_deg: float = 0.0, image_shift_um: tuple[float, float] = (0.0, 0.0),
                  imaging: ImagingParams = SQUARE_IMAGING, noise: bool = True,
                  noise_seed: int | None = None) -> RenderedImage:
    """A square (Search-magnification) image centred on a stage point.

    Parameters
    ----------
    centre_um : stage (x, y) of the optical axis, µm
    shape : (H, W) pixels
    pixel_size_um : µm/px; ``None`` fits 1.15 mesh pitches across the shorter side (≈ 50–100 nm/px)
    tilt_deg, image_shift_um : stage tilt (about x) and image shift (µm, specimen plane)
    """
    px = pixel_size_um if pixel_size_um is not None else SQUARE_FOV_PITCHES * world.frame.pitch_um / min(shape)
    return _render_at(world, "square", centre_um, shape, px, tilt_deg, image_shift_um, imaging, noise, noise_seed)


def render_view(world: World, centre_um: tuple[float, float], *,
                shape: tuple[int, int] = DEFAULT_VIEW_SHAPE, pixel_size_um: float = DEFAULT_VIEW_PIXEL_UM,
                tilt_deg: float = 0.0, image_shift_um: tuple[float, float] = (0.0, 0.0),
                imaging: ImagingParams = VIEW_IMAGING, noise: bool = True,
                noise_seed: int | None = None) -> RenderedImage:
    """A medium-magnification (View) image of holes around a stage point (≈ 5–10 nm/px)."""
    return _render_at(world, "view", centre_um, shape, pixel_size_um, tilt_deg, image_shift_um, imaging, noise,
                      noise_seed)


def render_tile(world: World, centre_um: tuple[float, float], *, shape: tuple[int, int], pixel_size_um: float,
                tilt_deg: float = 0.0, imaging: ImagingParams = ATLAS_IMAGING, noise: bool = True,
                noise_seed: int | None = None) -> RenderedImage:
    """One low-magnification atlas tile (≈ 0.5–1 µm/px)."""
    return _render_at(world, "atlas_tile", centre_um, shape, pixel_size_um, tilt_deg, (0.0, 0.0), imaging,
                      noise, noise_seed)

