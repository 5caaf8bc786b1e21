"""A picture of the detections: the image with a circle per hole, coloured by class.

Colours: hole green, empty cyan, contaminant red; holes added by the lattice fit yellow.

>>> import numpy as np
>>> from gridpilot.contracts import HoleDetection
>>> h = HoleDetection(x_px=20, y_px=20, radius_px=8, score=0.9, mean_intensity=1, stage_x_um=0, stage_y_um=0)
>>> png = overlay_png(np.zeros((40, 40), np.float32), [h])
>>> png[:4]
b'\\x89PNG'
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from gridpilot.contracts import HoleDetection
from gridpilot.detection import resize, robust_normalize

__all__ = ["overlay_png"]

_COLOURS: Final[dict[str, tuple[int, int, int]]] = {
    "hole": (40, 220, 60), "empty": (0, 200, 255), "contaminant": (255, 40, 40), "lattice": (255, 220, 0),
}
#: Pictures are drawn at most this wide (a 4k View image is shrunk).
_MAX_SIDE_PX: Final[int] = 1600


def overlay_png(image: npt.NDArray[np.floating], holes: Sequence[HoleDetection], *, title: str | None = None) -> bytes:
    """PNG bytes of the image (auto-contrast) with every detection circled."""
    scale = min(1.0, _MAX_SIDE_PX / max(image.shape))
    grey = robust_normalize(resize(image, scale) if scale < 1 else image, clip=(0.0, 1.0))
    pic = Image.fromarray((grey * 255).astype(np.uint8)).convert("RGB")
    draw = ImageDraw.Draw(pic)
    width = max(1, round(max(pic.size) / 800))
    for h in holes:
        x, y, r = (h.x_px + 0.5) * scale - 0.5, (h.y_px + 0.5) * scale - 0.5, max(h.radius_px * scale, 2.0)
        colour = _COLOURS["lattice"] if h.from_lattice else _COLOURS[h.label]
        draw.ellipse((x - r, y - r, x + r, y + r), outline=colour, width=width)
    if title:
        draw.text((6, 6), title, fill=(255, 255, 255))
    out = io.BytesIO()
    pic.save(out, format="PNG")
    return out.getvalue()
