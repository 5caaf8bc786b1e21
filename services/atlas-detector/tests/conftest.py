"""A small twin atlas with its truth, shared by the service and CLI tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest

from atlas_detector.twin_data import TwinSample, twin_sample


@dataclass(frozen=True)
class PlantedAtlas:
    image: npt.NDArray[np.float32]
    sample: TwinSample


@pytest.fixture(scope="session")
def twin_atlas() -> PlantedAtlas:
    """A 1024² twin atlas at 2 µm/px of the grid kind held out of training (200-mesh R2/1)."""
    s = twin_sample(77, 0, shape=(1024, 1024), pixel_size_um=2.0, tiles=(2, 2), held_out=True)
    return PlantedAtlas(image=s.image, sample=s)


def recall(found: npt.NDArray[np.float64], truth: npt.NDArray[np.float64], iou: float = 0.5) -> float:
    """Fraction of truth boxes matched by a found box at IoU ≥ iou."""
    from atlas_detector.decoding import box_iou

    if len(truth) == 0:
        return 1.0
    if len(found) == 0:
        return 0.0
    return float((box_iou(truth, found).max(axis=1) >= iou).mean())
