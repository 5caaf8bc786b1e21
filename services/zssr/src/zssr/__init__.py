"""gridpilot zssr: cryo-ZSSR multi-frame super-resolution of movies (thesis chapter 4)."""

from __future__ import annotations

from .params import PRESETS, ZssrParams
from .superres import SuperResolved, super_resolve

__all__ = ["PRESETS", "SuperResolved", "ZssrParams", "super_resolve"]
