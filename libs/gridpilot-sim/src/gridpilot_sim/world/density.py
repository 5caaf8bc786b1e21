"""Density maps and projections of Gaussian-mixture particles.

Two ways to a projection, which agree (a test checks it):

- :func:`project_mixture` splats the rotated components straight into 2D (exact, fast: what the
  exposure renderer uses, one particle at a time or many per canvas with :func:`deposit_bilinear`);
- :func:`project_density` rotates a 3D map and sums along the beam (real-space rotate-and-sum),
  for maps that do not come from a mixture.

Grids put position 0 at index ``n // 2``; volumes are indexed ``(z, y, x)``. Potentials are in
V (3D) and V·Å (projections); multiply a projection by
:func:`gridpilot.optics.interaction_constant` for the phase in radians.

>>> from gridpilot_sim.world.particles import load_species
>>> shell = load_species("hollow_shell")
>>> proj = project_mixture(shell, (1.0, 0.0, 0.0, 0.0), pixel_size_a=2.0)
>>> proj.shape
(86, 86)
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import scipy.fft as sfft
from scipy import ndimage

from gridpilot_sim.world.orientations import quaternion_to_matrix
from gridpilot_sim.world.particles import (
    SPECIES,
    GaussianMixture,
    density_cache_dir,
    find_structures_dir,
    load_species,
)

__all__ = [
    "DensityMap",
    "cached_density_map",
    "density_map",
    "deposit_bilinear",
    "project_density",
    "project_mixture",
    "splat_kernel_rfft",
]

# Half-width of a box in Gaussian σ beyond the particle radius: the tail is e^{-4.5} ≈ 1 %.
_BOX_SIGMAS: Final[float] = 3.0
_DENSITY_CACHE_FORMAT: Final[int] = 1
# Deconvolving the bilinear (triangle) splat is capped so that empty frequencies are not blown up.
_MIN_SINC2: Final[float] = 0.05


@dataclass(frozen=True, eq=False)
class DensityMap:
    """A cubic map of the Coulomb potential relative to ice.

    Attributes
    ----------
    potential_v : (n, n, n) float32, ΔV in volts, indexed (z, y, x); position 0 at index n // 2
    voxel_size_a : Å per voxel
    name : species name
    """

    potential_v: npt.NDArray[np.float32]
    voxel_size_a: float
    name: str


def splat_kernel_rfft(
    shape: tuple[int, ...], pixel_size_a: float, sigma_a: float, oversample: int = 1
) -> npt.NDArray[np.float64]:
    """Fourier factor turning a bilinear splat of points into a sum of Gaussians (rfft grid).

    ``oversample`` > 1 when the splat was made on a grid that many times finer and then
    Fourier-cropped to ``shape``.

    Notes
    -----
    K(k) = exp(−2π² σ² |k|²) / Π_d sinc²(f_d / oversample), with f_d in cycles per pixel of
    ``shape``: the Gaussian of each component times the inverse of the linear-interpolation
    kernel's transfer.
    """
    k2 = np.zeros((*shape[:-1], shape[-1] // 2 + 1))
    sinc2 = np.ones_like(k2)
    for axis, n in enumerate(shape):
        f = np.fft.rfftfreq(n) if axis == len(shape) - 1 else np.fft.fftfreq(n)
        view = [1] * len(shape)
        view[axis] = f.size
        f = f.reshape(view)
        k2 = k2 + (f / pixel_size_a) ** 2
        sinc2 = sinc2 * np.sinc(f / oversample) ** 2
    return np.asarray(np.exp(-2.0 * math.pi**2 * sigma_a**2 * k2) / np.maximum(sinc2, _MIN_SINC2))


def deposit_bilinear(
    shape: tuple[int, int],
    x_px: npt.NDArray[np.float64],
    y_px: npt.NDArray[np.float64],
    weights: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """Splat weighted points onto a periodic (H, W) grid with bilinear weights.

    Points are at continuous pixel coordinates (x = column, y = row); the grid wraps, as the
    FFT that follows assumes.
    """
    h, w = shape
    x0, y0 = np.floor(x_px), np.floor(y_px)
    fx, fy = x_px - x0, y_px - y0
    ix = x0.astype(np.int64) % w
    iy = y0.astype(np.int64) % h
    ix1, iy1 = (ix + 1) % w, (iy + 1) % h
    idx = np.concatenate([iy * w + ix, iy * w + ix1, iy1 * w + ix, iy1 * w + ix1])
    wts = np.concatenate([
        weights * (1 - fx) * (1 - fy), weights * fx * (1 - fy),
        weights * (1 - fx) * fy, weights * fx * fy,
    ])
    grid = np.bincount(idx, weights=wts, minlength=h * w).astype(np.float64)
    return grid.reshape(h, w)


def project_mixture(
    mixture: GaussianMixture,
    quaternion: npt.ArrayLike,
    pixel_size_a: float,
    box_px: int | None = None,
    offset_px: tuple[float, float] = (0.0, 0.0),
) -> npt.NDArray[np.float64]:
    """Projected potential ∫ΔV dz (V·Å) of one particle in a box.

    Parameters
    ----------
    quaternion : (4,) orientation, body → lab
    pixel_size_a : Å per pixel
    box_px : side of the square box (default: the particle's extent plus 3σ)
    offset_px : sub-pixel (x, y) offset of the centre from index ``box_px // 2``

    Returns
    -------
    projection : (box_px, box_px) float64

    Notes
    -----
    Each component projects to a 2D Gaussian with the same σ and integral U_j, so
    P(x, y) = Σ_j U_j G_σ(x − x_j, y − y_j) with (x_j, y_j) the first two rows of R(q) c_j.
    """
    if box_px is None:
        box_px = 2 * math.ceil((mixture.radius_a + _BOX_SIGMAS * mixture.sigma_a) / pixel_size_a)
    xyz = mixture.centers_a.astype(np.float64) @ quaternion_to_matrix(quaternion).T
    c = box_px // 2
    grid = deposit_bilinear(
        (box_px, box_px), xyz[:, 0] / pixel_size_a + c + offset_px[0],
        xyz[:, 1] / pixel_size_a + c + offset_px[1],
        mixture.potential_v_a3.astype(np.float64) / pixel_size_a**2,
    )
    kernel = splat_kernel_rfft(grid.shape, pixel_size_a, mixture.sigma_a)
    return np.asarray(sfft.irfft2(sfft.rfft2(grid) * kernel, s=grid.shape))


def density_map(mixture: GaussianMixture, voxel_size_a: float) -> DensityMap:
    """The mixture sampled on a cubic grid (trilinear splat + Gaussian kernel in Fourier space).

    Notes
    -----
    ΔV(r) = Σ_j U_j (2πσ²)^{-3/2} exp(−|r − c_j|² / 2σ²), in volts for U_j in V·Å³.
    """
    n = 2 * math.ceil((mixture.radius_a + _BOX_SIGMAS * mixture.sigma_a) / voxel_size_a)
    c = mixture.centers_a.astype(np.float64) / voxel_size_a + n // 2
    base = np.floor(c).astype(np.int64)
    frac = c - base
    u = mixture.potential_v_a3.astype(np.float64) / voxel_size_a**3
    flat_idx, flat_w = [], []
    for corner in np.ndindex(2, 2, 2):
        off = np.array(corner)
        wt = np.prod(np.where(off == 1, frac, 1 - frac), axis=1) * u
        ijk = (base + off) % n
        flat_idx.append((ijk[:, 2] * n + ijk[:, 1]) * n + ijk[:, 0])  # (z, y, x) from (x, y, z)
        flat_w.append(wt)
    grid = np.bincount(np.concatenate(flat_idx), np.concatenate(flat_w), minlength=n**3).reshape(n, n, n)
    kernel = splat_kernel_rfft(grid.shape, voxel_size_a, mixture.sigma_a)
    vol = sfft.irfftn(sfft.rfftn(grid) * kernel, s=grid.shape)
    return DensityMap(vol.astype(np.float32), voxel_size_a, mixture.name)


def cached_density_map(
    name: str,
    voxel_size_a: float,
    *,
    structures_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> DensityMap:
    """:func:`density_map` of a registered species, cached on disk for real structures.

    The cache file is named by the model's SHA-256 digest and the voxel size, so a changed model
    or voxel size never reads a stale map.
    """
    mixture = load_species(name, structures_dir=structures_dir, cache_dir=cache_dir)
    if SPECIES[name].filename is None:
        return density_map(mixture, voxel_size_a)
    folder = find_structures_dir(structures_dir)
    assert folder is not None  # load_species raised otherwise
    digest = mixture.source.rsplit("#", 1)[-1]
    path = density_cache_dir(cache_dir) / (
        f"density-{name}-{digest}-{voxel_size_a:.4f}A-v{_DENSITY_CACHE_FORMAT}.npy"
    )
    if path.is_file():
        return DensityMap(np.load(path), voxel_size_a, name)
    dmap = density_map(mixture, voxel_size_a)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npy")
    np.save(tmp, dmap.potential_v)
    os.replace(tmp, path)
    return dmap


def project_density(dmap: DensityMap, quaternion: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Real-space rotate-and-sum projection ∫ΔV dz (V·Å) of a map at one orientation.

    Returns
    -------
    projection : (n, n) float64 on the map's voxel grid, centre at index n // 2

    Notes
    -----
    P(x, y) = Σ_z ΔV(Rᵀ (x, y, z)) Δz, with trilinear interpolation (``map_coordinates``,
    order 1) and Δz = one voxel.
    """
    vol = dmap.potential_v
    n = vol.shape[0]
    r = quaternion_to_matrix(quaternion)
    ax = (np.arange(n) - n // 2).astype(np.float64)
    y, x = np.meshgrid(ax, ax, indexing="ij")
    out = np.zeros((n, n))
    for z in ax:
        body = np.einsum("ji,jyx->iyx", r, np.stack([x, y, np.full_like(x, z)]))
        coords = body[::-1] + n // 2  # (z, y, x) index order
        out += ndimage.map_coordinates(vol, coords, order=1, mode="constant", cval=0.0)
    return out * dmap.voxel_size_a
