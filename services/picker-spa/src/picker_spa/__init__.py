"""gridpilot picker-spa: joint denoising and particle picking in micrographs from a few labels.

The science is pure: :func:`picker_spa.picking.pick_micrograph` (an image and a network runner
in, picks out), :func:`picker_spa.train.train_picker` (micrographs and sparse labels in, a
network out; PU risk in :mod:`picker_spa.risk`); ``app``/``api`` serve it over HTTP and the bus,
``cli`` runs it locally (``gridpilot pick spa``).
"""

from __future__ import annotations

from .decoding import Picks, decode_picks
from .picking import pick_micrograph

__all__ = ["Picks", "decode_picks", "pick_micrograph"]
