"""The fake's optics, stage, focus, drift and image-shift commands, over the twin.

Each method is one row of :data:`~scope_gateway.serialem_commands.COMMANDS` and does what
that row's sources say. Image shift has two frames, as in SerialEM: the *specimen* frame in
µm (``ImageShiftByMicrons``, ``ReportSpecimenShift``; the twin's ``image_shift_um``) and
*image-shift units* (``SetImageShift``, ``ReportImageShift``), related by the
``IStoSpecimen`` matrix :data:`IS_TO_SPECIMEN_UM` (µm per unit).
"""

from __future__ import annotations

import math
from typing import Any, Final

import numpy as np

from gridpilot_sim.instrument.presets import PresetName

from .fake_serialem_base import Args, FakeBase, SEMerror, command

__all__ = ["IS_TO_SPECIMEN_UM", "ScopeCommands"]

#: µm on the specimen per image-shift unit (a Krios-like ``IStoSpecimen``, rotated and skewed).
IS_TO_SPECIMEN_UM: Final[tuple[tuple[float, float], tuple[float, float]]] = (
    (0.95, 0.08), (-0.06, 0.90))
_UM_TO_A: Final[float] = 1.0e4
_LD_AREAS: Final[dict[str, PresetName]] = {"V": "view", "F": "record", "T": "record",
                                           "R": "record", "S": "search"}
_EUCENTRIC_COARSE: Final[int] = 1
_EUCENTRIC_FINE: Final[int] = 2
_SPOT_RANGE: Final[tuple[int, int]] = (1, 11)
_MAG_TOLERANCE: Final[float] = 0.05
_LOW_MAG_BELOW: Final[int] = 1000
#: Wait-for-drift dialog defaults (ParticleTasks.cpp 44-53): nm/s, s, s, error on timeout.
_DRIFT_DIALOG: Final[dict[str, float]] = {"rate_nm_s": 0.1, "max_s": 60.0, "interval_s": 10.0,
                                          "fail": 1.0}
_DW_FAILED_TOO_LONG: Final[int] = 1


class ScopeCommands(FakeBase):
    """Optics, stage, focus, drift and image shift."""

    def __init__(self, *args: Any, image_shift_limit_um: float = 15.0,
                 imaging_states: dict[str, PresetName] | None = None,
                 energy_filter: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.image_shift_limit_um = image_shift_limit_um
        #: Whether image shift is calibrated at this magnification (IStoSpecimen exists).
        self.is_calibrated = True
        #: The Imaging States dialog's table, in order: name → the optics it sets.
        self.imaging_states: dict[str, PresetName] = dict(imaging_states if imaging_states is not None else {
            "Atlas": "atlas", "Square": "search", "Hole": "view", "Exposure": "record"})
        self.energy_filter = energy_filter
        self.valves_open = True
        self.low_dose = False
        self.area: PresetName = "atlas"
        self.spot_size = 5
        self.percent_c2 = 50.0
        self.zlp_refined = 0
        self._last_autofocus = (0.0, 0.0)
        self._last_drift = (0.0, 0.0)
        self._clock_zero_s = 0.0

    # ---- helpers --------------------------------------------------------------------------------
    def _pixel_size_a(self) -> float:
        return self.twin.optics.preset(self.area).pixel_size_a

    def _specimen_shift_um(self) -> tuple[float, float]:
        x, y = self.twin.state().image_shift_um
        return float(x), float(y)

    def _within_limit(self, x_um: float, y_um: float) -> bool:
        return math.hypot(x_um, y_um) <= self.image_shift_limit_um

    # ---- housekeeping that needs the twin ------------------------------------------------------
    @command
    def Delay(self, a: Args) -> None:
        self._run(self.twin.idle(a[0]))

    @command
    def ReportClock(self, a: Args) -> float:
        return self.twin.clock_s - self._clock_zero_s

    @command
    def SetColumnOrGunValve(self, a: Args) -> None:
        self.valves_open = a[0] != 0

    @command
    def AreDewarsFilling(self, a: Args) -> float:
        return float(self.twin.dewars_filling)

    # ---- optics ---------------------------------------------------------------------------------
    @command
    def SetLowDoseMode(self, a: Args) -> float:
        previous, self.low_dose = self.low_dose, a[0] != 0
        return float(previous)

    @command
    def GoToLowDoseArea(self, a: Args) -> None:
        area = _LD_AREAS.get(a[0][:1].upper())
        if area is None:
            raise SEMerror(f"The low dose area must be V, F, T, R or S, not {a[0]}")
        self.area = area

    @command
    def GoToImagingState(self, a: Args) -> float:
        names = list(self.imaging_states)
        text = a[0].strip()
        matches = [n for n in names if n.lower() == text.lower()] or [
            n for n in names if n.lower().startswith(text.lower())]
        if not matches and text.isdigit():
            index = int(text)
            if not 1 <= index <= len(names):
                return 3.0
            matches = [names[index - 1]]
        if not matches:
            return 1.0
        if len(matches) > 1:
            return 2.0
        self.area = self.imaging_states[matches[0]]
        return 0.0

    @command
    def SetMag(self, a: Args) -> None:
        presets: tuple[PresetName, ...] = ("atlas", "search", "view", "record")
        for name in presets:
            mag = self.twin.optics.preset(name).magnification
            if abs(a[0] - mag) <= _MAG_TOLERANCE * mag:
                self.area = name
                return
        raise SEMerror(f"The value is not near enough to an existing mag in: SetMag {a[0]:g}")

    @command
    def SetSpotSize(self, a: Args) -> None:
        if not _SPOT_RANGE[0] <= a[0] <= _SPOT_RANGE[1]:
            raise SEMerror(f"Spot size {a[0]} is out of range")
        self.spot_size = a[0]

    @command
    def SetPercentC2(self, a: Args) -> None:
        self.percent_c2 = a[0]

    @command
    def RefineZLP(self, a: Args) -> float | None:
        allow_fail = a[3] is not None and a[3] != 0
        if not self.energy_filter:
            if allow_fail:
                return 1.0
            raise SEMerror("Refine ZLP failed: there is no energy filter")
        self.zlp_refined += 1
        return 0.0 if allow_fail else None

    @command
    def ReportMag(self, a: Args) -> tuple[float, float, float]:
        mag = self.twin.optics.preset(self.area).magnification
        return float(mag), float(mag < _LOW_MAG_BELOW), 0.0

    # ---- stage ----------------------------------------------------------------------------------
    @command
    def MoveStageTo(self, a: Args) -> None:
        self._run(self.twin.move_stage(a[0], a[1], a[2]))

    @command
    def ReportStageXYZ(self, a: Args) -> tuple[float, float, float]:
        s = self.twin.state().stage
        return s.x_um, s.y_um, s.z_um

    @command
    def TiltTo(self, a: Args) -> None:
        self._run(self.twin.tilt(a[0]))

    @command
    def ReportTiltAngle(self, a: Args) -> float:
        return self.twin.state().stage.tilt_deg

    @command
    def Eucentricity(self, a: Args) -> None:
        option = _EUCENTRIC_FINE if a[0] is None else a[0]
        if option < 0:
            self._run(self.twin.eucentric_height("rough"))
            return
        both = _EUCENTRIC_COARSE | _EUCENTRIC_FINE
        if option & both == 0:
            raise SEMerror("Error in script: value on Eucentricity statement should be 1 for "
                           "coarse, 2 for fine, or 3 for both")
        mode = {_EUCENTRIC_COARSE: "rough", _EUCENTRIC_FINE: "refine", both: "both"}[option & both]
        self._run(self.twin.eucentric_height(mode))  # type: ignore[arg-type]

    # ---- focus ----------------------------------------------------------------------------------
    @command
    def SetTargetDefocus(self, a: Args) -> None:
        try:
            self.twin.set_target_defocus(a[0])
        except Exception as exc:
            raise SEMerror(str(exc)) from None

    @command
    def ReportTargetDefocus(self, a: Args) -> float:
        return self.twin.state().target_defocus_um

    @command
    def SetDefocus(self, a: Args) -> None:
        self.twin.set_focus(a[0])

    @command
    def ChangeFocus(self, a: Args) -> None:
        self.twin.set_focus(self.twin.state().focus_um + a[0])

    @command
    def ReportDefocus(self, a: Args) -> float:
        return self.twin.state().focus_um

    @command
    def AutoFocus(self, a: Args) -> None:
        if a[0] == -1:
            self._last_autofocus = (self.twin.defocus_um(), 0.0)
            return
        outcome = self._run(self.twin.autofocus())
        self._last_autofocus = (outcome.measured_defocus_um, 0.0 if outcome.ok else -1.0)

    @command
    def ReportAutoFocus(self, a: Args) -> tuple[float, float]:
        return self._last_autofocus

    # ---- drift ----------------------------------------------------------------------------------
    @command
    def DriftWaitTask(self, a: Args) -> None:
        rate, unit, max_s, _interval_s, fail, kind = a[:6]
        if unit is not None and unit not in ("nm", "A", "0"):
            raise SEMerror('The second entry should be "nm", "A", or "0" in line: DriftWaitTask')
        if kind is not None and kind not in ("T", "F", "A", "0"):
            raise SEMerror("The image type to measure defocus from must be one of T, F, A, or 0")
        d = _DRIFT_DIALOG
        rate_nm_s = d["rate_nm_s"] if not rate or rate <= 0 else (
            rate / 10.0 if unit == "A" else rate)
        max_s = max_s if max_s and max_s > 0 else d["max_s"]
        error_on_timeout = d["fail"] > 0 if not fail else fail > 0
        out = self._run(self.twin.drift_wait(rate_nm_s * 10.0, max_s))
        code = 0 if out.settled else _DW_FAILED_TOO_LONG
        self._last_drift = (out.drift_a_per_s / 10.0, float(code))
        if code and error_on_timeout:
            raise SEMerror(f"Stopping the wait for drift: drift is still "
                           f"{out.drift_a_per_s / 10.0:.2f} nm/sec after {out.waited_s:.0f} sec")

    @command
    def GetWaitTaskDrift(self, a: Args) -> tuple[float, float]:
        return self._last_drift

    # ---- image shift ----------------------------------------------------------------------------
    @command
    def ImageShiftByMicrons(self, a: Args) -> float:
        x, y = self._specimen_shift_um()
        if not self._within_limit(x + a[0], y + a[1]):
            return 1.0
        self._run(self.twin.image_shift(a[0], a[1]))
        return 0.0

    @command
    def SetImageShift(self, a: Args) -> float:
        (m11, m12), (m21, m22) = IS_TO_SPECIMEN_UM
        x, y = m11 * a[0] + m12 * a[1], m21 * a[0] + m22 * a[1]
        if not self._within_limit(x, y):
            return 1.0
        self._run(self.twin.image_shift(x, y, absolute=True))
        return 0.0

    @command
    def ResetImageShift(self, a: Args) -> None:
        x, y = self._specimen_shift_um()
        stage = self.twin.state().stage
        self._run(self.twin.move_stage(stage.x_um + x, stage.y_um + y))
        self._run(self.twin.image_shift(0.0, 0.0, absolute=True))

    @command
    def ReportImageShift(self, a: Args) -> tuple[float, ...]:
        x, y = self._specimen_shift_um()
        isx, isy = (float(v) for v in np.linalg.solve(np.array(IS_TO_SPECIMEN_UM), [x, y]))
        if not self.is_calibrated:
            return isx, isy
        px = _UM_TO_A / self._pixel_size_a()
        return isx, isy, -x * px, -y * px, x, y

    @command
    def ReportSpecimenShift(self, a: Args) -> tuple[float, float] | None:
        return self._specimen_shift_um() if self.is_calibrated else None
