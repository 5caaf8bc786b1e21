"""The shipped models on broken squares whose film tore open inside the square (issue 8)."""

from __future__ import annotations

import numpy as np

from atlas_detector.decoding import box_iou
from atlas_detector.model import SquareModel
from atlas_detector.squares import SquareParams, find_squares


def test_no_torn_broken_square_of_a_twin_atlas_is_called_good() -> None:
    """Regression: the real atlas's torn square at (328, 373) was called good (P(broken) 0.18).

    The twin's torn broken squares (film missing inside an irregular hole) of the held-out grid
    kind, at 1.4 µm/px: 8 found; atlas-classes-2+cffc7c0b calls all 8 broken, the cls-seed 1002
    replicate 6 (2 dry), the 3 December classifier (+efb87406) 5, and one good.
    """
    from gridpilot_sim import GridSpec, SquareFractions, World, image_truth, render_atlas
    from gridpilot_sim.imaging.camera import apply_affine, invert_affine

    world = World(seed=5, spec=GridSpec(mesh=200, hole_type="R2/1", square_fractions=SquareFractions(broken=0.2)))
    atlas = render_atlas(world, shape=(1024, 1024), pixel_size_um=1.4, tiles=(2, 2)).image
    inv = invert_affine(atlas.image_to_stage)
    torn_boxes = []
    for sq in image_truth(world, atlas).squares:
        cols, rows = apply_affine(inv, [p[0] for p in sq.polygon_um], [p[1] for p in sq.polygon_um])
        inside = cols.min() >= 0 and rows.min() >= 0 and cols.max() <= 1024 and rows.max() <= 1024
        if inside and world.torn.active[world.row(sq.id)]:
            torn_boxes.append((cols.min(), rows.min(), cols.max(), rows.max()))
    assert len(torn_boxes) >= 5
    model = SquareModel.load(None, threads=1, classifier=True)
    found = find_squares(atlas.image, model.run, input_size=model.input_size, params=SquareParams(),
                         classifier=model.classifier, rescale=True)
    boxes = np.array([s.box_px for s in found.squares]).reshape(-1, 4)
    iou = box_iou(np.array(torn_boxes), boxes)
    matched = [found.squares[int(j)].label for j, best in zip(iou.argmax(axis=1), iou.max(axis=1), strict=True)
               if best >= 0.5]
    assert len(matched) >= 0.8 * len(torn_boxes)
    assert "good" not in matched
    assert matched.count("broken") >= 0.7 * len(matched)
