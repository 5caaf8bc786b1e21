"""The twin's optics: magnification, pixel size, image size and exposure of each preset.

Four presets mirror a SerialEM low-dose set-up (TWIN-PHYSICS.md, magnification levels):

========  ===========  =================================  =========================
preset    nominal mag  pixel size                         what it shows
========  ===========  =================================  =========================
atlas     135×         900 µm field / size (≈ 1.8 µm)     the grid, over a montage
search    2 250×       130 µm field / size (≈ 130 nm)     one or two grid squares
view      11 500×      16 µm field / size (≈ 16 nm)       a few holes
record    105 000×     ``record_pixel_size_a`` (≈ 1 Å)    particles, a movie
========  ===========  =================================  =========================

Atlas, search and view keep their field of view whatever the image size (a 64-pixel test
image covers the same square as a 4096-pixel one); the record preset keeps its pixel size.

>>> optics = TwinOptics.sized(atlas_tile_px=256, search_px=256, view_px=256, record_px=128)
>>> optics.search.pixel_size_a
5078.125
>>> optics.record.shape
(128, 128)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["PresetName", "PresetOptics", "TwinOptics"]

PresetName = Literal["atlas", "search", "view", "record"]

_UM_TO_A: Final[float] = 1e4
#: Fields of view in µm (TWIN-PHYSICS.md: square view 200–400 µm → one square of a
#: 300-mesh grid with its bars; hole view 20–40 µm).
_ATLAS_TILE_FOV_UM: Final[float] = 900.0
_SEARCH_FOV_UM: Final[float] = 130.0
_VIEW_FOV_UM: Final[float] = 16.0
_RECORD_PIXEL_SIZE_A: Final[float] = 1.0


@dataclass(frozen=True)
class PresetOptics:
    """One preset: nominal magnification, pixel size (Å), image shape (rows, columns),
    exposure time (s) and dose (e/Å²) of one image."""

    name: PresetName
    magnification: int
    pixel_size_a: float
    shape: tuple[int, int]
    exposure_time_s: float
    dose_e_per_a2: float

    @property
    def field_of_view_um(self) -> tuple[float, float]:
        """(height, width) of the image on the specimen, µm."""
        return (self.shape[0] * self.pixel_size_a / _UM_TO_A,
                self.shape[1] * self.pixel_size_a / _UM_TO_A)


@dataclass(frozen=True)
class TwinOptics:
    """The four presets of the twin (see the module docstring)."""

    atlas: PresetOptics
    search: PresetOptics
    view: PresetOptics
    record: PresetOptics
    #: Fractional overlap of neighbouring atlas tiles (SerialEM's montage default is ~10 %).
    atlas_overlap: float = 0.1

    @classmethod
    def sized(cls, *, atlas_tile_px: int = 512, search_px: int = 1024, view_px: int = 1024,
              record_px: int = 1024, record_pixel_size_a: float = _RECORD_PIXEL_SIZE_A,
              record_exposure_s: float = 2.5,
              record_dose_e_per_a2: float = 50.0) -> TwinOptics:
        """Presets for square images of the given sizes (pixels per side)."""
        for name, px in (("atlas_tile_px", atlas_tile_px), ("search_px", search_px),
                         ("view_px", view_px), ("record_px", record_px)):
            if not 16 <= px <= 8192:
                raise ValueError(f"{name} must be in [16, 8192], got {px}")
        return cls(
            atlas=PresetOptics("atlas", 135, _ATLAS_TILE_FOV_UM * _UM_TO_A / atlas_tile_px,
                               (atlas_tile_px, atlas_tile_px), 0.5, 0.01),
            search=PresetOptics("search", 2250, _SEARCH_FOV_UM * _UM_TO_A / search_px,
                                (search_px, search_px), 1.0, 0.05),
            view=PresetOptics("view", 11500, _VIEW_FOV_UM * _UM_TO_A / view_px,
                              (view_px, view_px), 1.0, 0.5),
            record=PresetOptics("record", 105000, record_pixel_size_a, (record_px, record_px),
                                record_exposure_s, record_dose_e_per_a2),
        )

    @classmethod
    def tiny(cls) -> TwinOptics:
        """Small images for fast tests (64 px; 64 px movies)."""
        return cls.sized(atlas_tile_px=64, search_px=64, view_px=64, record_px=64)

    def preset(self, name: PresetName) -> PresetOptics:
        """The preset called ``name``."""
        found: PresetOptics = getattr(self, name)
        return found
