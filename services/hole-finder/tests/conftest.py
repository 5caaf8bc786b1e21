"""Twin images with known holes for the hole-finder tests (rendered once per session)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import mrcfile
import numpy as np
import numpy.typing as npt
import pytest

from hole_finder.model import HoleModel
from hole_finder.twin_data import TwinSample, square_sample


def _mrc_without_pixel_size(path: Path, image: npt.NDArray[np.float32]) -> Path:
    with mrcfile.new(str(path), overwrite=True) as mrc:
        mrc.set_data(np.asarray(image, np.float32))
    return path


@pytest.fixture
def mrc_without_pixel_size() -> Callable[[Path, npt.NDArray[np.float32]], Path]:
    """Writes an MRC file whose header has no pixel size (voxel size 0), as some software does."""
    return _mrc_without_pixel_size


@pytest.fixture(scope="session")
def carbon_square() -> TwinSample:
    """A 384² high-contrast carbon R2/1 square crop at the square images' real pixel size."""
    return square_sample(seed=1_500_007, combo=("carbon", "R2/1"), contrast="high", shape=(384, 384),
                         radius_px=7.0, offset_frac=0.2)


@pytest.fixture(scope="session")
def hole_model() -> HoleModel:
    """The shipped detector, one thread."""
    return HoleModel(threads=1)
