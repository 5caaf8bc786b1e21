"""Cellular tomograms from the twin: a crowded volume, its tilt series and its reconstruction.

- :mod:`~gridpilot_sim.tomo.cell`: the specimen — protein species at their real sizes from the
  vendored atomic models, lipid vesicles, gold fiducials and small crowders, with full truth;
- :mod:`~gridpilot_sim.tomo.tiltseries`: a dose-symmetric tilt series of it, with per-tilt CTF,
  dose, radiation damage and shot noise;
- :mod:`~gridpilot_sim.tomo.reconstruct`: weighted back-projection (the missing wedge comes from
  the tilt range, as in a real tomogram).

>>> from gridpilot_sim.tomo import CellSpec, build_cell, simulate_tilt_series, reconstruct_wbp
>>> cell = build_cell(CellSpec(shape_zyx=(16, 48, 48), species=(("hollow_shell", 2),),
...                            crowders=0, vesicles=0, gold=1, seed=1))
>>> ts = simulate_tilt_series(cell, seed=1)
>>> reconstruct_wbp(ts).shape
(16, 48, 48)
"""

from __future__ import annotations

from gridpilot_sim.tomo.cell import Cell, CellSpec, TomoParticle, build_cell
from gridpilot_sim.tomo.reconstruct import reconstruct_wbp
from gridpilot_sim.tomo.tiltseries import (
    TiltSeries,
    TiltSeriesSpec,
    dose_symmetric_angles,
    simulate_tilt_series,
)

__all__ = [
    "Cell",
    "CellSpec",
    "TiltSeries",
    "TiltSeriesSpec",
    "TomoParticle",
    "build_cell",
    "dose_symmetric_angles",
    "reconstruct_wbp",
    "simulate_tilt_series",
]
