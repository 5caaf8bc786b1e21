"""The twin's world: one simulated grid, built deterministically from a seed and a GridSpec.

Conventions (every part of gridpilot that talks to the twin relies on them):

- **Stage coordinates** are µm with the origin at the grid centre, +x right, +y up; z is the
  height (µm) of the film plane, which is gently bowed and tilted (``World.height_um``).
  Ice has a bottom and a top surface, ``z ∓ t/2``.
- **Images** are arrays with row 0 at the top. Every rendered image carries ``image_to_stage``,
  a 2×3 affine mapping ``(col, row, 1)`` to ``(x_um, y_um)`` (:mod:`gridpilot_sim.imaging.camera`).
  Stage tilt is about the stage x axis; image shift moves the imaged area in the specimen plane.
- **Ice thickness** is in nm, vertical (a tilted beam crosses ``t / cos α``).
- **Randomness**: only ``np.random.default_rng`` streams keyed by ``(seed, stream, …)`` and
  counter-based hashes of ``(seed, salt, keys)``; no global state. The mesh and square table are
  built eagerly (cheap); each square's holes, blobs and cracks are drawn on demand from keys of
  that square or hole, so any square is identical whenever it is requested.
- **Ids** are stable: squares ``"sq{i:+d}{j:+d}"`` (mesh lattice indices), holes
  ``"h{a:+d}{b:+d}"`` (film lattice indices), blobs ``"<square id>/b<n>"`` and hole contaminants
  ``"<hole id>/c"``.

>>> w = World(seed=1, spec=GridSpec(mesh=300))
>>> sq = w.squares()[0]
>>> w.square(sq.id) == sq
True
>>> scene = w.local_scene(*w.holes(sq.id)[0].centre_um) if w.holes(sq.id) else None
>>> scene is None or scene.region in ("hole", "film", "vacuum")
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from gridpilot_sim.imaging.camera import Affine, apply_affine
from gridpilot_sim.world.features import BLOB_KINDS, SquareFeatures, square_features
from gridpilot_sim.world.film import (
    FilmFrame,
    build_film_frame,
    hole_density_factor,
    hole_id,
    hole_properties,
    mean_hole_ice_nm,
)
from gridpilot_sim.world.grid import MeshFrame, SquareTable, build_square_table, locate_squares
from gridpilot_sim.world.scene import evaluate_points
from gridpilot_sim.world.spec import (
    HOLE_CLASSES,
    SPECIES,
    SQUARE_CLASSES,
    GridSpec,
    HoleClass,
    SquareClass,
)
from gridpilot_sim.world.torn import TornFilm, draw_torn_film
from gridpilot_sim.world.truth import BlobRecord, HoleRecord, SquareRecord

__all__ = ["LocalScene", "Region", "World", "square_id"]

Region = Literal["hole", "film", "bar", "rim", "vacuum"]
_POINT_PX_UM: Final[float] = 1e-4  # "pixel" of a point query: effectively sharp
_GRADIENT_STEP_UM: Final[float] = 0.02
FILM_ADSORPTION: Final[float] = 0.2  # particle density on the film relative to the holes


def square_id(i: int, j: int) -> str:
    """Stable id of mesh square (i, j)."""
    return f"sq{i:+d}{j:+d}"


@dataclass(frozen=True)
class LocalScene:
    """What a high-magnification exposure centred at (x_um, y_um) looks at.

    ``region`` is ``hole`` (ice over vacuum), ``film`` (support film with ice on it), ``bar``
    (mesh bar: opaque), ``rim`` (outside the meshed area: opaque) or ``vacuum`` (film missing).
    ``ice_nm`` is the vertical ice thickness at the point (0 in vacuum / on metal) and
    ``ice_gradient_nm_per_um`` its stage-frame gradient (d/dx, d/dy). ``contamination_nm`` is the
    equivalent ice thickness of any contaminant at the point. ``particle_density_per_um2`` is the
    expected number of particle centres per µm² of specimen around the point, split between
    ``species`` by ``species_fractions``; ``particle_diameters_nm`` follow ``species``.
    """

    x_um: float
    y_um: float
    region: Region
    square_id: str | None
    square_class: SquareClass | None
    hole_id: str | None
    hole_class: HoleClass | None
    hole_centre_um: tuple[float, float] | None
    hole_radius_um: float | None
    ice_nm: float
    ice_gradient_nm_per_um: tuple[float, float]
    z_um: float
    ice_bottom_z_um: float
    ice_top_z_um: float
    film_material: Literal["carbon", "gold"] | None
    film_nm: float
    contamination_nm: float
    crystalline: bool
    species: tuple[str, ...]
    species_fractions: tuple[float, ...]
    particle_diameters_nm: tuple[float, ...]
    particle_density_per_um2: float


class World:
    """One simulated grid. Cheap to build; squares' details are generated when asked for.

    Parameters
    ----------
    seed : any non-negative integer
    spec : the kind of grid (defaults: 300 mesh copper, carbon R1.2/1.3)
    """

    def __init__(self, seed: int, spec: GridSpec | None = None) -> None:
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        self.seed: Final[int] = int(seed)
        self.spec: Final[GridSpec] = spec if spec is not None else GridSpec()
        frame, table = build_square_table(self.seed, self.spec)
        self.frame: Final[MeshFrame] = frame
        self.table: Final[SquareTable] = table
        self.film: Final[FilmFrame] = build_film_frame(self.seed, self.spec)
        self.torn: Final[TornFilm] = draw_torn_film(self.seed, table)
        self._row = {square_id(int(i), int(j)): k for k, (i, j) in enumerate(zip(table.i, table.j, strict=True))}
        self._features: dict[int, SquareFeatures] = {}
        self._holes: dict[int, tuple[HoleRecord, ...]] = {}
        self._squares: tuple[SquareRecord, ...] | None = None

    def __repr__(self) -> str:
        return f"World(seed={self.seed}, squares={self.table.count}, spec={self.spec!r})"

    # -- squares ---------------------------------------------------------------------------
    def row(self, sid: str) -> int:
        """Table row of a square id (KeyError if the world has no such square)."""
        return self._row[sid]

    def features(self, k: int) -> SquareFeatures:
        """Blobs and cracks of table row ``k`` (cached)."""
        if k not in self._features:
            self._features[k] = square_features(self.seed, self.frame, self.table, k)
        return self._features[k]

    def _square_record(self, k: int) -> SquareRecord:
        t = self.table
        h = float(t.half_um[k])
        c, s = math.cos(self.frame.rotation_rad), math.sin(self.frame.rotation_rad)
        corners = [(-h, -h), (h, -h), (h, h), (-h, h)]
        poly = tuple((float(t.cx[k] + c * u - s * v), float(t.cy[k] + s * u + c * v)) for u, v in corners)
        xs, ys = [p[0] for p in poly], [p[1] for p in poly]
        cx, cy = float(t.cx[k]), float(t.cy[k])
        return SquareRecord(
            id=square_id(int(t.i[k]), int(t.j[k])), index=(int(t.i[k]), int(t.j[k])),
            square_class=SQUARE_CLASSES[int(t.cls[k])], centre_um=(cx, cy),
            z_um=float(self.frame.height_um(cx, cy)), polygon_um=poly,
            box_um=(min(xs), min(ys), max(xs), max(ys)), side_um=2 * h, ice_nm=float(t.ice_nm[k]),
        )

    def squares(self) -> tuple[SquareRecord, ...]:
        """Every square of the grid, in table order (built once)."""
        if self._squares is None:
            self._squares = tuple(self._square_record(k) for k in range(self.table.count))
        return self._squares

    def square(self, sid: str) -> SquareRecord:
        """One square by id."""
        return self._square_record(self.row(sid))

    def squares_in(self, image_to_stage: Affine, shape: tuple[int, int]) -> tuple[SquareRecord, ...]:
        """Squares whose open area overlaps an image's field of view."""
        h, w = shape
        xs, ys = apply_affine(image_to_stage, [-0.5, w - 0.5, -0.5, w - 0.5], [-0.5, -0.5, h - 0.5, h - 0.5])
        t = self.table
        reach = t.half_um * math.sqrt(2)
        rows = np.flatnonzero((t.cx + reach > xs.min()) & (t.cx - reach < xs.max())
                              & (t.cy + reach > ys.min()) & (t.cy - reach < ys.max()))
        return tuple(self._square_record(int(k)) for k in rows)

    def height_um(self, x_um: float, y_um: float) -> float:
        """Stage z (µm) of the film plane at a point."""
        return float(self.frame.height_um(x_um, y_um))

    # -- holes and blobs ---------------------------------------------------------------------
    def holes(self, sid: str) -> tuple[HoleRecord, ...]:
        """The holes of a square (regular films only; empty for lacey and continuous).

        A hole is listed when it lies wholly in the open area on intact film; a hole crossed
        by a crack is labelled empty.
        """
        k = self.row(sid)
        if k not in self._holes:
            self._holes[k] = self._list_holes(k, sid)
        return self._holes[k]

    def _list_holes(self, k: int, sid: str) -> tuple[HoleRecord, ...]:
        ff = self.film
        if ff.kind != "holey":
            return ()
        sq = self._square_record(k)
        c, s = math.cos(ff.rotation_rad), math.sin(ff.rotation_rad)
        pa = [(c * (x - ff.origin_um[0]) + s * (y - ff.origin_um[1])) / ff.pitch_um for x, y in sq.polygon_um]
        pb = [(-s * (x - ff.origin_um[0]) + c * (y - ff.origin_um[1])) / ff.pitch_um for x, y in sq.polygon_um]
        a, b = np.meshgrid(np.arange(math.floor(min(pa)) - 1, math.ceil(max(pa)) + 2),
                           np.arange(math.floor(min(pb)) - 1, math.ceil(max(pb)) + 2), indexing="ij")
        hp = hole_properties(self.seed, self.spec, ff, self.frame, self.table, a.ravel(), b.ravel())
        hit = locate_squares(self.frame, self.table, hp.cx, hp.cy)
        pf = evaluate_points(self, hp.cx, hp.cy, _POINT_PX_UM, hit=hit)
        keep = hp.present & (hp.square_k == k) & (hit.sdf_um < -hp.radius_um) & (pf.vacuum < 0.5)
        cls = hp.cls.copy()
        segs = self.features(k).segments
        for x0, y0, x1, y1, hw in segs:
            dx, dy = x1 - x0, y1 - y0
            tt = np.clip(((hp.cx - x0) * dx + (hp.cy - y0) * dy) / max(dx * dx + dy * dy, 1e-12), 0, 1)
            crossed = np.hypot(hp.cx - x0 - tt * dx, hp.cy - y0 - tt * dy) < hp.radius_um + hw
            cls[crossed] = HOLE_CLASSES.index("empty")
        out = []
        for n in np.flatnonzero(keep):
            t0 = 0.0 if cls[n] == HOLE_CLASSES.index("empty") else float(hp.t0_nm[n])
            mean = mean_hole_ice_nm(np.array([t0]), hp.edge_coef[n:n + 1], hp.rim_coef[n:n + 1])
            out.append(HoleRecord(
                id=hole_id(int(hp.a[n]), int(hp.b[n])), square_id=sid,
                centre_um=(float(hp.cx[n]), float(hp.cy[n])), radius_um=float(hp.radius_um[n]),
                ice_nm=t0, ice_mean_nm=float(mean[0]),
                hole_class=HOLE_CLASSES[int(cls[n])],
            ))
        return tuple(out)

    def blobs(self, sid: str, *, include_hole_contaminants: bool = True) -> tuple[BlobRecord, ...]:
        """Contamination blobs of a square on intact film, and (optionally) those inside its holes.

        Blob ids keep their index among all the square's blobs, so they never shift.
        """
        k = self.row(sid)
        f = self.features(k)
        on_film = evaluate_points(self, f.blob_x, f.blob_y, _POINT_PX_UM).vacuum < 0.5
        out = [
            BlobRecord(id=f"{sid}/b{n}", square_id=sid, kind=BLOB_KINDS[int(f.blob_kind[n])],
                       centre_um=(float(f.blob_x[n]), float(f.blob_y[n])), radius_um=float(f.blob_r[n]),
                       thickness_nm=float(f.blob_nm[n]))
            for n in range(f.blob_count) if on_film[n]
        ]
        if include_hole_contaminants and self.film.kind == "holey":
            for hole in self.holes(sid):
                if hole.hole_class == "contaminated":
                    a, b = _hole_indices(hole.id)
                    hp = hole_properties(self.seed, self.spec, self.film, self.frame, self.table,
                                         np.array([a]), np.array([b]))
                    out.append(BlobRecord(
                        id=f"{hole.id}/c", square_id=sid, kind="ethane",
                        centre_um=(float(hp.cx[0] + hp.blob_dx[0]), float(hp.cy[0] + hp.blob_dy[0])),
                        radius_um=float(hp.blob_r[0]), thickness_nm=float(hp.blob_nm[0])))
        return tuple(out)

    # -- local scene ---------------------------------------------------------------------------
    def ice_nm_at(self, x_um: npt.ArrayLike, y_um: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Vertical ice thickness (nm) at stage points (holes, film; 0 on metal and in vacuum)."""
        x = np.atleast_1d(np.asarray(x_um, dtype=np.float64)).ravel()
        y = np.atleast_1d(np.asarray(y_um, dtype=np.float64)).ravel()
        pf = evaluate_points(self, x, y, _POINT_PX_UM)
        ice = np.where(pf.hole_cov >= 0.5, pf.hole_nm, pf.film_ice_nm)
        return np.asarray(np.where((pf.open_cov >= 0.5) & (pf.vacuum < 0.5), ice, 0.0))

    def local_scene(self, x_um: float, y_um: float) -> LocalScene:
        """The local scene parameters of a high-magnification exposure at a stage point."""
        d = _GRADIENT_STEP_UM
        xs = np.array([x_um, x_um + d, x_um - d, x_um, x_um])
        ys = np.array([y_um, y_um, y_um, y_um + d, y_um - d])
        ice = self.ice_nm_at(xs, ys)
        pf = evaluate_points(self, xs[:1], ys[:1], _POINT_PX_UM)
        k = int(pf.hit.k[0])
        r = math.hypot(x_um, y_um)
        in_hole = bool(pf.hole_cov[0] >= 0.5)
        region: Region
        if pf.open_cov[0] < 0.5:
            region = "rim" if (k < 0 or r > self.frame.mesh_radius_um) else "bar"
        elif pf.vacuum[0] >= 0.5:
            region = "vacuum"
        else:
            region = "hole" if in_hole else "film"
        sid = square_id(int(self.table.i[k]), int(self.table.j[k])) if k >= 0 else None
        hole = _nearest_hole_record(self, sid, x_um, y_um) if (sid and region == "hole") else None
        contam = float(pf.extra_nm[0]) + (_blob_nm_at(self.features(k), x_um, y_um) if k >= 0 else 0.0)
        z = self.height_um(x_um, y_um)
        t = float(ice[0])
        sample = self.spec.sample
        diam = tuple(SPECIES[s].diameter_nm for s in sample.species)
        density = self._particle_density(region, hole, t, max(diam))
        crystalline = bool(hole is not None and hole.hole_class == "crystalline")
        return LocalScene(
            x_um=float(x_um), y_um=float(y_um), region=region, square_id=sid,
            square_class=SQUARE_CLASSES[int(self.table.cls[k])] if k >= 0 else None,
            hole_id=hole.id if hole else None, hole_class=hole.hole_class if hole else None,
            hole_centre_um=hole.centre_um if hole else None, hole_radius_um=hole.radius_um if hole else None,
            ice_nm=t, ice_gradient_nm_per_um=(float((ice[1] - ice[2]) / (2 * d)), float((ice[3] - ice[4]) / (2 * d))),
            z_um=z, ice_bottom_z_um=z - 0.5e-3 * t, ice_top_z_um=z + 0.5e-3 * t,
            film_material=self.spec.film_material if region == "film" else None,
            film_nm=self.spec.film_thickness_nm if region == "film" else 0.0,
            contamination_nm=contam, crystalline=crystalline,
            species=sample.species, species_fractions=sample.fractions, particle_diameters_nm=diam,
            particle_density_per_um2=density,
        )

    def _particle_density(self, region: Region, hole: HoleRecord | None, ice_nm: float, diam_nm: float) -> float:
        """Particles per µm²: excluded from ice thinner than the particle, fewer on the film."""
        if region not in ("hole", "film") or ice_nm <= 0:
            return 0.0
        fit = min(max((ice_nm - 0.8 * diam_nm) / (0.6 * diam_nm), 0.0), 1.0)
        base = self.spec.sample.density_per_um2 * fit
        if region == "film":
            return base * FILM_ADSORPTION
        if hole is None:  # lacey and continuous films have no hole records
            return base
        a, b = _hole_indices(hole.id)
        factor = float(hole_density_factor(self.seed, np.array([a]), np.array([b]))[0])
        return 0.0 if hole.hole_class in ("empty", "crystalline") else base * factor


def _hole_indices(hid: str) -> tuple[int, int]:
    """(a, b) from a hole id ``h{a:+d}{b:+d}``."""
    body = hid[1:]
    split = max(body.rfind("+"), body.rfind("-"))
    return int(body[:split]), int(body[split:])


def _nearest_hole_record(world: World, sid: str, x_um: float, y_um: float) -> HoleRecord | None:
    best, best_d = None, math.inf
    for hole in world.holes(sid):
        dist = math.hypot(hole.centre_um[0] - x_um, hole.centre_um[1] - y_um)
        if dist < best_d:
            best, best_d = hole, dist
    return best if best is not None and best_d <= best.radius_um else None


def _blob_nm_at(f: SquareFeatures, x_um: float, y_um: float) -> float:
    d = np.hypot(f.blob_x - x_um, f.blob_y - y_um) / np.maximum(f.blob_r, 1e-9)
    return float((f.blob_nm * np.sqrt(np.clip(1 - d * d, 0, 1))).sum())
