"""Per-target acquisition policies: rolling defocus, offset targeting, tilt, drift, ZLP.

Each is a small pure function of the session's parameters and counters (SEED-DIGEST Table 3.1;
SMARTSCOPE-NOTES §2.7–2.9).

>>> [defocus_for_target(i, -1.0, -1.6, 0.2) for i in range(5)]
[-1.0, -1.2, -1.4, -1.6, -1.0]
>>> round(tilted_defocus_um(-2.0, image_shift_y_um=2.0, tilt_deg=30.0), 3)
-3.0
>>> focus_change_um(-3.0, defocus_um=-2.0, applied_um=0.0)
-1.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np

__all__ = [
    "OFFSET_FRACTION_CARBON",
    "OFFSET_FRACTION_OTHER",
    "DriftWait",
    "defocus_for_target",
    "focus_change_um",
    "needs_zlp_refinement",
    "offset_for_target",
    "tilted_defocus_um",
    "wait_for_drift",
]

#: Random offsets reach this fraction of the hole radius on carbon film, and on gold (or any
#: other film) the smaller one (SmartScope ``add_IS_offset``; SMARTSCOPE-NOTES §2.7).
OFFSET_FRACTION_CARBON: Final[float] = 0.8
OFFSET_FRACTION_OTHER: Final[float] = 0.5
_DEFOCUS_DECIMALS: Final[int] = 3


def defocus_for_target(index: int, defocus_min_um: float, defocus_max_um: float,
                       step_um: float) -> float:
    """Target defocus of the ``index``-th target group: rolling from near to far, wrapping.

    Parameters
    ----------
    index : how many target groups were focused before this one in the session
    defocus_min_um, defocus_max_um : the range, µm, negative = underfocus (order-insensitive)
    step_um : step between successive groups, µm; 0 keeps the near end

    Notes
    -----
    near = max(d₁, d₂), far = min(d₁, d₂), period P = ⌊(near − far)/step⌋ + 1;
    defocus(i) = near − (i mod P)·step (SmartScope ``rollDefocus``: step further from focus
    each time, back to near when past far).
    """
    near, far = max(defocus_min_um, defocus_max_um), min(defocus_min_um, defocus_max_um)
    if step_um <= 0 or near == far:
        return near
    period = math.floor((near - far) / step_um + 1e-9) + 1
    return round(near - (index % period) * step_um, _DEFOCUS_DECIMALS)


def offset_for_target(rng: np.random.Generator, *, hole_radius_um: float | None,
                      film_material: str, offset_targeting: bool, offset_distance_um: float,
                      collection_mode: bool) -> tuple[float, float]:
    """Offset of the shot from the hole centre, µm (dx, dy).

    A fixed ``offset_distance_um >= 0`` is used whenever set (collection mode included), in a
    random direction. Otherwise, when ``offset_targeting`` is on and the session is screening,
    the distance is uniform in [0, f·r] with f = 0.8 on carbon, 0.5 on gold: screening then
    samples the ice gradient from the hole centre to its edge. Collection mode, or an unknown
    hole radius, shoots the centre.
    """
    if offset_distance_um >= 0:
        distance = offset_distance_um
    elif offset_targeting and not collection_mode and hole_radius_um:
        f = OFFSET_FRACTION_CARBON if film_material.lower() == "carbon" else OFFSET_FRACTION_OTHER
        distance = round(float(rng.random()) * hole_radius_um * f, 2)
    else:
        return (0.0, 0.0)
    angle = float(rng.random()) * 2 * math.pi
    return (distance * math.cos(angle), distance * math.sin(angle))


def tilted_defocus_um(defocus_um: float, *, image_shift_y_um: float, tilt_deg: float) -> float:
    """Defocus to set for a target shot by image shift on a tilted specimen, µm.

    Notes
    -----
    With the tilt axis along x, a target displaced by y along the specimen lies y·sin(θ) lower
    (or higher) than the focused centre, so Δf = −y·sin(θ) keeps it at the target defocus
    (SmartScope ``highMag``: ``SetDefocus(currentDefocus − isY·sin(tilt))``).
    """
    return defocus_um - image_shift_y_um * math.sin(math.radians(tilt_deg))


#: Focus changes smaller than this are not sent (the objective's reproducibility is ~10 nm).
FOCUS_STEP_MIN_UM: Final[float] = 0.001


def focus_change_um(target_defocus_um: float, *, defocus_um: float, applied_um: float) -> float:
    """The ``change_focus`` step that takes the objective from its present offset to a target.

    Parameters
    ----------
    target_defocus_um : the defocus this exposure needs (:func:`tilted_defocus_um`), µm
    defocus_um : the defocus autofocus set for the target group, µm
    applied_um : the focus change already applied since then, µm

    Returns
    -------
    float
        Δ = (target − defocus) − applied, rounded to 0.1 nm; 0 when below
        :data:`FOCUS_STEP_MIN_UM` (nothing to send). Sending −applied at the end of the group
        gives the focus back to the next autofocus.
    """
    delta = round((target_defocus_um - defocus_um) - applied_um, 4)
    return delta if abs(delta) >= FOCUS_STEP_MIN_UM else 0.0


@dataclass(frozen=True)
class DriftWait:
    threshold_a_per_s: float
    timeout_s: float


def wait_for_drift(drift_crit_a_per_s: float, timeout_s: float) -> DriftWait | None:
    """A drift wait before the exposure when ``drift crit`` > 0 (Å/s), else None (off)."""
    if drift_crit_a_per_s <= 0:
        return None
    return DriftWait(drift_crit_a_per_s, timeout_s)


def needs_zlp_refinement(last_refined_s: float | None, now_s: float, zeroloss_delay_h: float) -> bool:
    """Whether the energy filter's zero-loss peak is due for refinement (every ``delay`` hours).

    ``zeroloss_delay_h <= 0`` turns it off; a session that never refined refines at once.
    Times are microscope seconds.
    """
    if zeroloss_delay_h <= 0:
        return False
    if last_refined_s is None:
        return True
    return now_s - last_refined_s >= zeroloss_delay_h * 3600.0
