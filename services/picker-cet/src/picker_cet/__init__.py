"""picker-cet: find proteins in tomograms — explore what is there, then pick one kind from a few labels.

MiLoPYP-style (thesis chapter 6): a small 3D encoder trained per data set with a SimSiam
objective on sub-volumes around blob candidates maps every candidate to an embedding, whose 2D map
and clusters show what the tomogram holds (:mod:`picker_cet.explore`); a cluster or a few
hand-placed centres then train a light 3D centre heat-map detector with a positive-unlabelled
objective (:mod:`picker_cet.refine`), exported to ONNX and run with ONNX Runtime.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
