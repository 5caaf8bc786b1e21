"""A picture of the detections: the normalised atlas with one coloured box per square.

Colours follow the class (good blue as in SmartScope, the others warm); a legend with the
count of each class is written in the top-left corner.

>>> import numpy as np
>>> from atlas_detector.squares import FoundSquare
>>> sq = FoundSquare((10.0, 10.0, 40.0, 40.0), 0.9, (0.9, 0.02, 0.02, 0.02, 0.02, 0.01, 0.01), 0.5, 0.1, 0.5, 0.9)
>>> png = draw_squares(np.random.default_rng(0).random((64, 64)), [sq])
>>> png[:4]
b'\\x89PNG'
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from gridpilot.contracts.detect import SQUARE_CLASSES

from .preprocessing import normalise
from .squares import FoundSquare

__all__ = ["CLASS_COLOURS", "draw_squares"]

CLASS_COLOURS: Final[dict[str, tuple[int, int, int]]] = {
    "good": (40, 120, 255), "small": (170, 60, 255), "dry": (255, 220, 0), "contaminated": (255, 120, 0),
    "cracked": (255, 0, 160), "partial": (0, 220, 160), "broken": (255, 30, 30),
}


def draw_squares(image: npt.NDArray[np.generic], squares: Sequence[FoundSquare], *,
                 max_side_px: int = 2048, extra: Sequence[tuple[float, float, str]] = ()) -> bytes:
    """PNG bytes of the atlas with the squares drawn on it.

    Parameters
    ----------
    image : (H, W) atlas
    squares : detections in atlas pixels
    max_side_px : the picture is downscaled to at most this side
    extra : ``(x_px, y_px, text)`` marks drawn as white crosses with a label (another method's
        squares, for comparison)
    """
    norm = np.clip(normalise(np.asarray(image, dtype=np.float32)), 0.0, 1.0)
    pic = Image.fromarray((norm * 255).astype(np.uint8)).convert("RGB")
    scale = min(1.0, max_side_px / max(pic.size))
    if scale < 1.0:
        pic = pic.resize((round(pic.size[0] * scale), round(pic.size[1] * scale)), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(pic)
    width = max(1, round(max(pic.size) / 512))
    for sq in squares:
        x0, y0, x1, y1 = (v * scale for v in sq.box_px)
        draw.rectangle((x0, y0, x1, y1), outline=CLASS_COLOURS[sq.label], width=width)
    for x, y, text in extra:
        cx, cy, r = x * scale, y * scale, 3 * width
        draw.line((cx - r, cy, cx + r, cy), fill=(255, 255, 255), width=width)
        draw.line((cx, cy - r, cx, cy + r), fill=(255, 255, 255), width=width)
        if text:
            draw.text((cx + r + 1, cy - r), text, fill=(255, 255, 255))
    counts = Counter(sq.label for sq in squares)
    y = 2
    for name in SQUARE_CLASSES:
        if counts[name]:
            draw.rectangle((2, y, 10, y + 8), fill=CLASS_COLOURS[name])
            draw.text((14, y - 2), f"{name} {counts[name]}", fill=(255, 255, 255))
            y += 12
    buf = io.BytesIO()
    pic.save(buf, format="PNG")
    return buf.getvalue()
