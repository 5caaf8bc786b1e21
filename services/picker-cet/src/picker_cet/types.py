"""The array and callback types the picker-cet modules share.

>>> import numpy as np
>>> box: F32 = np.zeros((24, 24, 24), dtype=np.float32)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

__all__ = ["F32", "Progress"]

#: A float32 array: a tomogram, a stack of boxes, embeddings (each function gives the shape).
F32 = npt.NDArray[np.float32]
#: Told how far a long step is (fraction done, 0–1) and what it is doing.
Progress = Callable[[float, str], None]
