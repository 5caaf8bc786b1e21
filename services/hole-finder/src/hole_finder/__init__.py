"""gridpilot hole-finder: the holes of a square or View image, their class, intensity and ice.

>>> from hole_finder import HoleModel, find_holes  # doctest: +SKIP
>>> found = find_holes(image, pixel_size_a=745.0, hole_diameter_um=1.2, model=HoleModel())  # doctest: +SKIP
>>> [(h.x_px, h.y_px, h.label, h.ice_thickness_nm) for h in found.holes][:2]  # doctest: +SKIP

The science (:mod:`~hole_finder.holes`, :mod:`~hole_finder.lattice`, :mod:`~hole_finder.ice`)
is pure functions of arrays; :mod:`~hole_finder.model` runs the shipped ONNX weights;
:mod:`~hole_finder.train` (needs the ``train`` extra: PyTorch and the twin) reproduces them.
"""

from __future__ import annotations

from .holes import HoleSet, find_holes
from .ice import IceEstimate, estimate_ice, hole_intensities
from .lattice import Lattice, LatticeResult, empty_sites, fit_lattice
from .model import HoleModel

__all__ = [
    "HoleModel",
    "HoleSet",
    "IceEstimate",
    "Lattice",
    "LatticeResult",
    "empty_sites",
    "estimate_ice",
    "find_holes",
    "fit_lattice",
    "hole_intensities",
]
