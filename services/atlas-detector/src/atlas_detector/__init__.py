"""gridpilot atlas-detector: find and classify every grid square of an atlas.

The science is :func:`atlas_detector.squares.find_squares` (pure: an array and the ONNX
network in, squares out); ``app``/``api`` serve it over HTTP and the bus, ``cli`` runs it
locally (``gridpilot detect atlas``), ``train`` makes the shipped model from twin atlases.
"""

from __future__ import annotations

from .squares import AtlasSquares, FoundSquare, SquareParams, find_squares

__all__ = ["AtlasSquares", "FoundSquare", "SquareParams", "find_squares"]
