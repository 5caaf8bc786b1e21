"""The movie sets of ``bench/preprocess.py``: held-out, tuning and session exposures.

Two distributions, each with a tuning set and a held-out set whose seeds are disjoint:

- **benchmark** movies (:func:`benchmark_movie`) from the twin's high-magnification renderer,
  :func:`gridpilot_sim.exposure.movie.render_movie`: 1024², 40 frames, 0.8–1.2 Å/px, defocus
  0.5–3 µm, astigmatism 0–1000 Å at a random angle, 30–60 e/Å², thin (20–60 nm) and thick
  (100–200 nm) ice in turn, beam-induced jump 5–20 Å settling over 2–5 e/Å², stage drift,
  random walk, doming in one movie of three, DQE(0) 0.8–0.95, a gain spread in one of two;
- **session** exposures (:func:`session_movies`) recorded by the twin microscope the way
  ``make demo`` records them (:class:`gridpilot_sim.instrument.microscope.TwinMicroscope`, the
  scope-gateway's twin driver): grid loaded from the cassette, stage moved to a good hole with
  15–120 nm of ice (the demo's window), eucentric height, autofocus to 1.2/1.8/2.4 µm
  underfocus (the realistic profile's focus error of ±0.15 µm and its drift), a Record movie of 20–50 frames and 40 e/Å² at 1 Å/px. The world sets the ice,
  the support and the (few) particles; one exposure in six is aimed at the carbon film just
  outside a hole (the twin renders a film *or* a hole per field, never an edge across it).

Seeds: benchmark movies use ``[seed, index]`` streams; the held-out seed is
``HELD_OUT_SEED``, the tuning seed ``TUNING_SEED``. Session sets use twin seeds
``SESSION_HELD_OUT_TWIN_SEEDS`` (7 is ``make demo``'s seed) and ``SESSION_TUNING_TWIN_SEEDS``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from gridpilot_sim.exposure.detector import DetectorSpec
from gridpilot_sim.exposure.motion import MotionSpec
from gridpilot_sim.exposure.movie import ExposureSpec, render_movie
from gridpilot_sim.instrument.imperfections import ImperfectionProfile
from gridpilot_sim.instrument.microscope import TwinMicroscope
from gridpilot_sim.instrument.render_scope import world_for
from gridpilot_sim.instrument.timing import TimingModel

__all__ = [
    "HELD_OUT_SEED",
    "SESSION_HELD_OUT_TWIN_SEEDS",
    "SESSION_THIN_TUNING_SETS",
    "SESSION_TUNING_TWIN_SEEDS",
    "TUNING_SEED",
    "BenchMovie",
    "benchmark_movie",
    "benchmark_spec",
    "scope_time_s",
    "session_movies",
]

#: Seeds of the benchmark movies: held out (never looked at while choosing tolerances) and
#: tuning (the only movies tolerances were chosen on). The tests use neither.
HELD_OUT_SEED: Final[int] = 910_000
TUNING_SEED: Final[int] = 930_000
SESSION_HELD_OUT_TWIN_SEEDS: Final[tuple[int, ...]] = (7, 8)
#: 101 and 102 alone gave 16 exposures with one hole under 35 nm of ice (29 nm), while issue 14's
#: held-out misses are on thin ice: 103–106 add 32 more, 7 of them holes with 26–34 nm and 4 on
#: film (a twin's hole ice follows its world). With 48 exposures (8 per seed) the first 16 are
#: the set used before.
SESSION_TUNING_TWIN_SEEDS: Final[tuple[int, ...]] = (101, 102, 103, 104, 105, 106)
#: Thin-ice session tuning sets, (twin seeds, hole ice window nm): the 48 exposures above hold
#: few holes under 30 nm, where the held-out misses were; these two reproduce them (2 and 5 of
#: 24 not confident at first, fits cut at 14–22 Å, halves 15 kÅ off a correct full fit). The
#: sag rule, the 12 Å bar and the significance overrule of ``preprocess.ctfquality`` were
#: chosen on them and the sets above, never on the held-out seeds.
SESSION_THIN_TUNING_SETS: Final[tuple[tuple[tuple[int, ...], tuple[float, float]], ...]] = (
    ((107, 108, 109, 110, 111, 112), (15.0, 30.0)),
    ((113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124), (12.0, 26.0)),
)
N_FRAMES: Final[int] = 40
SHAPE_1K: Final[tuple[int, int]] = (1024, 1024)
#: The Record preset's exposure time (TwinOptics default), s: sets the microscope's time.
RECORD_EXPOSURE_S: Final[float] = 2.5
# Session exposures: what make demo records (DemoPlan) and the range sessions use.
_SESSION_DEFOCUS_UM: Final[tuple[float, ...]] = (-1.2, -1.8, -2.4)
_SESSION_FRAMES: Final[tuple[int, int]] = (20, 50)
_SESSION_DOSE_E_PER_A2: Final[float] = 40.0
_SESSION_HOLE_ICE_NM: Final[tuple[float, float]] = (15.0, 120.0)
#: Cassette slots visited in turn: carbon R1.2/1.3, thin-ice R2/1, carbon again, thick R2/2.
_SESSION_SLOTS: Final[tuple[int, ...]] = (1, 4, 1, 3)
_CARBON_EVERY: Final[int] = 6
#: Distance from a hole's rim to the film target, µm.
_CARBON_OFFSET_UM: Final[float] = 0.15
_STAGE_RADIUS_UM: Final[float] = 900.0
#: A well-kept Krios's focus error and drift (the realistic profile), without its stage error
#: (targets are aimed from the world's truth) and without its failures (no exposure then).
SESSION_IMPERFECTIONS: Final[ImperfectionProfile] = replace(
    ImperfectionProfile.realistic(), stage_error_um=0.0, autofocus_failure_probability=0.0,
    dewar_fill_probability=0.0, connection_loss_probability=0.0,
)
_MAX_HOLES: Final[int] = 400


@dataclass(frozen=True, eq=False)
class BenchMovie:
    """One movie with what the estimator is told and the truth it is scored against.

    Attributes
    ----------
    name : set and index, e.g. ``held_out/3``
    frames : (N, H, W) counts; gain : gain reference or None
    pixel_size_a, voltage_kv, cs_mm, amplitude_contrast, dose_per_frame_e_per_a2 : acquisition
    defocus1_a, defocus2_a, astig_angle_rad : true CTF (Å, rad)
    drift_xy_px : (N, 2) true specimen displacement of each frame, px
    ice_nm : true ice thickness at the centre
    labels : what else describes it (seed, doming, region, slot, …)
    """

    name: str
    frames: npt.NDArray[np.float32]
    gain: npt.NDArray[np.float32] | None
    pixel_size_a: float
    voltage_kv: float
    cs_mm: float
    amplitude_contrast: float
    dose_per_frame_e_per_a2: float
    defocus1_a: float
    defocus2_a: float
    astig_angle_rad: float
    drift_xy_px: npt.NDArray[np.float64]
    ice_nm: float
    labels: dict[str, Any]

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def defocus_mean_a(self) -> float:
        return 0.5 * (self.defocus1_a + self.defocus2_a)

    @property
    def astigmatism_a(self) -> float:
        return abs(self.defocus1_a - self.defocus2_a)


def scope_time_s(n_frames: int, exposure_s: float = RECORD_EXPOSURE_S) -> float:
    """The twin timing model's microscope time for one Record movie, s."""
    return TimingModel().exposure_s(n_frames, exposure_s)


def benchmark_spec(index: int, seed: int, shape: tuple[int, int] = SHAPE_1K) -> ExposureSpec:
    """Benchmark exposure number ``index`` of the set with ``seed`` (see the module docstring)."""
    rng = np.random.default_rng([seed, index])
    defocus = rng.uniform(5000.0, 30000.0)
    astig = rng.uniform(0.0, 1000.0)
    thin = index % 2 == 0
    motion = MotionSpec(
        initial_jump_a=rng.uniform(5.0, 20.0), jump_exposure_e_per_a2=rng.uniform(2.0, 5.0),
        stage_drift_a_per_frame=rng.uniform(0.05, 0.3), random_walk_a=rng.uniform(0.1, 0.3),
        doming_a=rng.uniform(2.0, 5.0) if index % 3 == 0 else 0.0,
    )
    detector = DetectorSpec(dqe_zero=rng.uniform(0.8, 0.95), gain_rms=0.03 if index % 2 else 0.0)
    return ExposureSpec(
        shape=shape, pixel_size_a=round(float(rng.uniform(0.8, 1.2)), 3), n_frames=N_FRAMES,
        dose_per_frame_e_per_a2=rng.uniform(30.0, 60.0) / N_FRAMES,
        defocus1_a=defocus + astig / 2, defocus2_a=defocus - astig / 2,
        astig_angle_rad=rng.uniform(0.0, math.pi),
        ice_nm=rng.uniform(20.0, 60.0) if thin else rng.uniform(100.0, 200.0),
        motion=motion, detector=detector, seed=seed + index,
    )


def benchmark_movie(index: int, seed: int, set_name: str) -> BenchMovie:
    """Render benchmark exposure ``index`` (see :func:`benchmark_spec`)."""
    spec = benchmark_spec(index, seed)
    movie = render_movie(spec)
    t = movie.truth
    return BenchMovie(
        name=f"{set_name}/{index}", frames=np.asarray(movie.frames, dtype=np.float32),
        gain=movie.gain_reference, pixel_size_a=spec.pixel_size_a, voltage_kv=spec.voltage_kv,
        cs_mm=spec.cs_mm, amplitude_contrast=spec.amplitude_contrast,
        dose_per_frame_e_per_a2=spec.dose_per_frame_e_per_a2, defocus1_a=t.defocus1_a,
        defocus2_a=t.defocus2_a, astig_angle_rad=t.astig_angle_rad,
        drift_xy_px=np.asarray(t.drift_xy_px, dtype=np.float64), ice_nm=t.ice_nm,
        labels={"seed": spec.seed, "doming_a": spec.motion.doming_a, "region": "hole",
                "support_nm": spec.support_nm},
    )


def _session_targets(twin: TwinMicroscope, rng: np.random.Generator,
                     hole_ice_nm: tuple[float, float] = _SESSION_HOLE_ICE_NM) -> list[tuple[float, float, str]]:
    """Good holes with ice in ``hole_ice_nm`` on the loaded grid, as (x, y, region) stage targets."""
    loaded = twin.loaded
    assert loaded is not None
    world = world_for(loaded)
    lo, hi = hole_ice_nm
    holes = []
    for sq in world.squares():
        if sq.square_class != "good" or math.hypot(*sq.centre_um) > _STAGE_RADIUS_UM:
            continue
        holes += [h for h in world.holes(sq.id) if h.hole_class == "good" and lo <= h.ice_nm <= hi]
        if len(holes) >= _MAX_HOLES:
            break
    order = rng.permutation(len(holes))
    out = []
    for j in order:
        h = holes[int(j)]
        out.append((h.centre_um[0], h.centre_um[1], "hole"))
        angle = rng.uniform(0.0, 2.0 * math.pi)
        r = h.radius_um + _CARBON_OFFSET_UM
        out.append((h.centre_um[0] + r * math.cos(angle), h.centre_um[1] + r * math.sin(angle), "film"))
    return out


async def _record_one(twin: TwinMicroscope, i: int, rng: np.random.Generator,
                      targets: dict[int, list[tuple[float, float, str]]], name: str,
                      hole_ice_nm: tuple[float, float] = _SESSION_HOLE_ICE_NM) -> BenchMovie:
    """Exposure ``i`` of a session: load, move, eucentric height, focus, drift wait, record."""
    slot = _SESSION_SLOTS[i % len(_SESSION_SLOTS)]
    if twin.loaded is not twin.cassette[slot]:
        await twin.load_grid(slot)
    pool = targets.setdefault(slot, _session_targets(twin, np.random.default_rng([twin.seed, slot]), hole_ice_nm))
    want = "film" if (i + 1) % _CARBON_EVERY == 0 else "hole"
    x, y, kind = pool.pop(0)
    while kind != want:
        x, y, kind = pool.pop(0)
    await twin.move_stage(x, y)
    await twin.eucentric_height("rough")
    target = float(_SESSION_DEFOCUS_UM[i % len(_SESSION_DEFOCUS_UM)])
    await twin.autofocus(target_defocus_um=target)
    await twin.drift_wait(threshold_a_per_s=2.0, timeout_s=60.0)
    frames = int(rng.integers(_SESSION_FRAMES[0], _SESSION_FRAMES[1] + 1))
    image = await twin.acquire("record", frames=frames, dose_e_per_a2=_SESSION_DOSE_E_PER_A2)
    truth = image.truth["exposure"]
    return BenchMovie(
        name=name, frames=np.asarray(image.data, dtype=np.float32), gain=None,
        pixel_size_a=image.pixel_size_a, voltage_kv=ExposureSpec.voltage_kv,
        cs_mm=ExposureSpec.cs_mm, amplitude_contrast=ExposureSpec.amplitude_contrast,
        dose_per_frame_e_per_a2=_SESSION_DOSE_E_PER_A2 / frames,
        defocus1_a=float(truth["defocus1_a"]), defocus2_a=float(truth["defocus2_a"]),
        astig_angle_rad=float(truth["astig_angle_rad"]),
        drift_xy_px=np.asarray(truth["drift_xy_px"], dtype=np.float64), ice_nm=float(truth["ice_nm"]),
        labels={"twin_seed": twin.seed, "slot": slot, "region": image.truth["scene"]["region"],
                "support_nm": float(truth.get("support_nm", 0.0)), "target_defocus_um": target,
                "particles": len(truth.get("particles", [])), "doming_a": 0.0},
    )


def session_movies(twin_seeds: tuple[int, ...], count: int, set_name: str,
                   hole_ice_nm: tuple[float, float] = _SESSION_HOLE_ICE_NM) -> Iterator[BenchMovie]:
    """``count`` session exposures recorded by twin microscopes of ``twin_seeds`` in turn, one
    at a time (a set of 50-frame movies does not fit in memory at once); holes are drawn from
    those with ice in ``hole_ice_nm``."""
    per_seed = [count // len(twin_seeds) + (1 if k < count % len(twin_seeds) else 0)
                for k in range(len(twin_seeds))]
    done = 0
    for seed, n in zip(twin_seeds, per_seed, strict=True):
        if not n:
            continue
        loop = asyncio.new_event_loop()
        try:
            twin = TwinMicroscope(seed=seed, timing=TimingModel.instant(), imperfections=SESSION_IMPERFECTIONS)
            rng = np.random.default_rng([seed, 0x5E55])
            targets: dict[int, list[tuple[float, float, str]]] = {}
            for i in range(n):
                yield loop.run_until_complete(_record_one(twin, i, rng, targets, f"{set_name}/{done}", hole_ice_nm))
                done += 1
        finally:
            loop.close()
