"""How long each microscope operation takes, and how long the twin waits for it.

A :class:`TimingModel` turns an operation (a stage move of so many µm, an atlas of so many
tiles, a movie of so many frames) into *microscope seconds*: the time a Titan Krios with an
autoloader and a K3-class camera driven by SerialEM would spend on it. The digital twin adds
these seconds to its own clock and waits ``seconds / speedup`` of wall time, so a demo session
can run at real speed (``speedup=1``), faster (``speedup=60``) or without any waiting
(``speedup=math.inf``, the default for tests and training).

The defaults are typical of a screening session (SmartScope's published timings, SEED-DIGEST
"Numbers to beat": 7.8 min for a grid exchange plus a partial atlas, 0.7–1.0 holes per minute):

============================  ==========================================  =============
operation                     method                                      default
============================  ==========================================  =============
grid exchange (autoloader)    :meth:`TimingModel.grid_load_s`             240 s
stage move                    :meth:`TimingModel.stage_move_s`            2.5 s + d / 200 µm/s
stage tilt                    :meth:`TimingModel.tilt_s`                  1.5 s + Δ / 10 °/s
atlas montage                 :meth:`TimingModel.atlas_s`                 15 s + 4 s per tile
square image (Search)         :meth:`TimingModel.square_image_s`          ≈ 4.5 s
hole image (View)             :meth:`TimingModel.view_image_s`            ≈ 3.5 s
high-mag exposure (Record)    :meth:`TimingModel.exposure_s`              ≈ 5 s for 40 frames in 2.5 s
eucentric height              :meth:`TimingModel.eucentric_s`             20 s (rough)
autofocus                     :meth:`TimingModel.autofocus_s`             10 s
drift measurement             :meth:`TimingModel.drift_measurement_s`     3 s per measurement
image shift                   :meth:`TimingModel.image_shift_s`           0.3 s settle
magnification / preset change :meth:`TimingModel.mag_change_s`            2 s
============================  ==========================================  =============

>>> t = TimingModel()
>>> t.atlas_s(3, 3)
51.0
>>> round(t.stage_move_s(100.0), 2)
3.0
>>> TimingModel(speedup=60.0).wall_s(t.grid_load_s())
4.0
>>> TimingModel.instant().wall_s(1e6)
0.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Final, Literal

__all__ = ["EucentricMode", "TimingModel"]

EucentricMode = Literal["rough", "refine", "both"]

_EUCENTRIC_FACTOR: Final[dict[str, float]] = {"rough": 1.0, "refine": 1.5, "both": 2.5}


@dataclass(frozen=True)
class TimingModel:
    """Durations of microscope operations in seconds (pure: no clock, no waiting).

    Every ``*_s()`` method returns microscope seconds; :meth:`wall_s` converts them to the wall
    time the twin waits, given :attr:`speedup`.

    Attributes
    ----------
    speedup : float
        Microscope seconds per wall second; ``math.inf`` means never wait. Must be > 0.
    grid_exchange_time_s : float
        Autoloader exchange: unload the previous cartridge, load the next one, valves and settle.
    stage_overhead_s : float
        Fixed cost of any stage move (acceleration, backlash correction, settling).
    stage_speed_um_per_s : float
        Stage travel speed over long distances.
    tilt_overhead_s, tilt_speed_deg_per_s : float
        Fixed cost of a tilt and its speed.
    atlas_setup_time_s : float
        Switching to atlas optics (LM, slit out) and opening the montage file.
    atlas_tile_time_s : float
        One montage tile: stage move to the tile, settle, exposure and readout.
    mag_change_time_s : float
        Changing the low-dose area or magnification (lens settling).
    camera_overhead_s : float
        Camera preparation and readout of a single (non-movie) image.
    search_exposure_time_s, view_exposure_time_s : float
        Exposure of a Search (square) and a View (hole) image.
    frame_readout_s : float
        Extra time per saved movie frame (writing the frame stack).
    eucentric_time_s : float
        A rough eucentric-height run (SerialEM ``Eucentricity 1``).
    autofocus_time_s : float
        One autofocus (two beam-tilted images, focus change, settle).
    drift_measurement_time_s : float
        One drift measurement (a pair of images) inside ``DriftWaitTask``.
    image_shift_settle_s : float
        Settling after an image shift.
    """

    speedup: float = 1.0
    grid_exchange_time_s: float = 240.0
    stage_overhead_s: float = 2.5
    stage_speed_um_per_s: float = 200.0
    tilt_overhead_s: float = 1.5
    tilt_speed_deg_per_s: float = 10.0
    atlas_setup_time_s: float = 15.0
    atlas_tile_time_s: float = 4.0
    mag_change_time_s: float = 2.0
    camera_overhead_s: float = 1.5
    search_exposure_time_s: float = 1.0
    view_exposure_time_s: float = 1.0
    frame_readout_s: float = 0.025
    eucentric_time_s: float = 20.0
    autofocus_time_s: float = 10.0
    drift_measurement_time_s: float = 3.0
    image_shift_settle_s: float = 0.3

    def __post_init__(self) -> None:
        if not self.speedup > 0:
            raise ValueError(f"speedup must be > 0 (math.inf for no waiting), got {self.speedup}")
        for name, value in self.__dict__.items():
            if name != "speedup" and (not math.isfinite(value) or value < 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if self.stage_speed_um_per_s == 0 or self.tilt_speed_deg_per_s == 0:
            raise ValueError("stage_speed_um_per_s and tilt_speed_deg_per_s must be > 0")

    @classmethod
    def instant(cls) -> TimingModel:
        """The default durations, but the twin never waits (``speedup=inf``)."""
        return cls(speedup=math.inf)

    def with_speedup(self, speedup: float) -> TimingModel:
        """The same durations with another speed-up."""
        return replace(self, speedup=speedup)

    # ---- conversion -------------------------------------------------------------------------
    def wall_s(self, scope_s: float) -> float:
        """Wall-clock seconds the twin waits for ``scope_s`` microscope seconds."""
        if math.isinf(self.speedup):
            return 0.0
        return max(scope_s, 0.0) / self.speedup

    # ---- operations -------------------------------------------------------------------------
    def grid_load_s(self) -> float:
        """A grid exchange through the autoloader (unload + load + valves)."""
        return self.grid_exchange_time_s

    def stage_move_s(self, distance_um: float) -> float:
        """A stage move over ``distance_um`` (Euclidean, x/y/z) µm; 0 µm costs nothing."""
        if distance_um <= 0:
            return 0.0
        return self.stage_overhead_s + distance_um / self.stage_speed_um_per_s

    def tilt_s(self, delta_deg: float) -> float:
        """A stage tilt by ``delta_deg`` degrees (either sign); 0° costs nothing."""
        if delta_deg == 0:
            return 0.0
        return self.tilt_overhead_s + abs(delta_deg) / self.tilt_speed_deg_per_s

    def mag_change_s(self) -> float:
        """Changing the low-dose area (Search ↔ View ↔ Record) or magnification."""
        return self.mag_change_time_s

    def atlas_s(self, tiles_x: int, tiles_y: int) -> float:
        """An atlas montage of ``tiles_x × tiles_y`` tiles, including the optics set-up."""
        if tiles_x < 1 or tiles_y < 1:
            raise ValueError(f"an atlas needs at least 1×1 tiles, got {tiles_x}×{tiles_y}")
        return self.atlas_setup_time_s + tiles_x * tiles_y * self.atlas_tile_time_s

    def square_image_s(self) -> float:
        """One Search image of a grid square (preset change + exposure + readout)."""
        return self.mag_change_time_s + self.search_exposure_time_s + self.camera_overhead_s

    def view_image_s(self) -> float:
        """One View image of a hole and its surroundings (preset change + exposure + readout)."""
        return self.mag_change_time_s + self.view_exposure_time_s + self.camera_overhead_s

    def exposure_s(self, n_frames: int, exposure_s: float) -> float:
        """A high-magnification Record movie: preset change, exposure and frame readout.

        Parameters
        ----------
        n_frames : number of saved frames (1 for an integrated image)
        exposure_s : total exposure time in seconds
        """
        if n_frames < 1 or exposure_s < 0:
            raise ValueError(f"need n_frames >= 1 and exposure_s >= 0, got {n_frames}, {exposure_s}")
        return (self.mag_change_time_s + self.camera_overhead_s + exposure_s
                + n_frames * self.frame_readout_s)

    def eucentric_s(self, mode: EucentricMode = "rough") -> float:
        """Eucentric height: rough (tilt series at Search), refine, or both."""
        return self.eucentric_time_s * _EUCENTRIC_FACTOR[mode]

    def autofocus_s(self) -> float:
        """One autofocus run."""
        return self.autofocus_time_s

    def drift_measurement_s(self) -> float:
        """One drift measurement inside a drift wait (the wait is a series of these)."""
        return self.drift_measurement_time_s

    def image_shift_s(self) -> float:
        """Settling after an image (beam-image) shift."""
        return self.image_shift_settle_s
