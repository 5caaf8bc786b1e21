"""Rendering the twin: determinism, geometry (atlas transform, tilt, image shift) and contrast."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import mrcfile
import numpy as np
import pytest
from scipy import ndimage

import gridpilot_sim as sim
from gridpilot_sim import GridSpec, SquareFractions, World, apply_affine
from gridpilot_sim.cli.main import RENDERERS, add_args, main

#: Flat illumination, no detector pattern, no background: intensity is exactly N·T (after blur).
FLAT_VIEW = replace(sim.VIEW_IMAGING, vignetting=0.0, gain_sigma=0.0, stray_fraction=0.0, fringe=0.0)
ALL_GOOD = SquareFractions(small=0, dry=0, contaminated=0, cracked=0, partial=0, broken=0)


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=21, spec=GridSpec(mesh=300, hole_type="R2/1"))


def _inner_square(world: World, cls: str = "good") -> sim.SquareRecord:
    return next(s for s in world.squares()
                if s.square_class == cls and np.hypot(*s.centre_um) < 0.7 * world.frame.mesh_radius_um)


def test_the_same_seed_renders_byte_identical_images(world: World) -> None:
    sq = _inner_square(world)
    a = sim.render_square(world, sq.centre_um, shape=(80, 96))
    b = sim.render_square(World(seed=21, spec=world.spec), sq.centre_um, shape=(80, 96))
    assert a.image.tobytes() == b.image.tobytes()
    c = sim.render_square(world, sq.centre_um, shape=(80, 96), noise_seed=5)
    assert c.image.tobytes() != a.image.tobytes()


def test_atlas_squares_sit_where_its_transform_says() -> None:
    w = World(seed=3, spec=GridSpec(mesh=200, square_fractions=ALL_GOOD))
    atlas = sim.render_atlas(w, centre_um=(100.0, -50.0), shape=(384, 384), pixel_size_um=1.5, tiles=(2, 2))
    img = atlas.image.image
    bright = img > 0.5 * (np.percentile(img, 5) + np.percentile(img, 95))
    labels, n = ndimage.label(bright)
    truth = {s.id: s.centre_um for s in sim.image_truth(w, atlas.image).squares}
    centres = np.array(list(truth.values()))
    sizes = ndimage.sum(bright, labels, index=np.arange(1, n + 1))
    checked = 0
    for k, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl[0].start == 0 or sl[1].start == 0 or sl[0].stop == img.shape[0] or sl[1].stop == img.shape[1]:
            continue  # cut by the image border
        if sizes[k - 1] < 0.5 * np.median(sizes):
            continue  # a noise speck in the meniscus, not a square
        row, col = ndimage.center_of_mass(labels == k)
        x, y = apply_affine(atlas.image.image_to_stage, col, row)
        dist = np.hypot(centres[:, 0] - x, centres[:, 1] - y).min()
        assert dist < 3.0, (k, float(x), float(y), float(dist))
        checked += 1
    assert checked >= 4


def test_each_atlas_tile_carries_its_own_true_transform(world: World) -> None:
    atlas = sim.render_atlas(world, shape=(200, 200), pixel_size_um=4.0, tiles=(2, 2), noise=False)
    tile = atlas.tiles[3]
    x, y = apply_affine(tile.image.image_to_stage, (tile.image.shape[1] - 1) / 2, (tile.image.shape[0] - 1) / 2)
    assert np.hypot(x - tile.nominal_um[0], y - tile.nominal_um[1]) < 3.0  # the stage error only
    assert tile.offset_px[0] > 0 and tile.offset_px[1] > 0


def _centre_intensity(world: World, hole: sim.HoleRecord, tilt_deg: float = 0.0) -> float:
    img = sim.render_view(world, hole.centre_um, shape=(65, 65), pixel_size_um=0.02, tilt_deg=tilt_deg,
                          imaging=FLAT_VIEW, noise=False)
    return float(img.image[30:35, 30:35].mean())


def test_hole_intensity_falls_with_ice_and_gives_back_its_thickness(world: World) -> None:
    holes = [h for h in world.holes(_inner_square(world).id) if h.hole_class in ("good", "thick", "empty")]
    chosen = sorted(holes, key=lambda h: h.ice_nm)[:: max(len(holes) // 12, 1)]
    intensity = np.array([_centre_intensity(world, h) for h in chosen])
    ice = np.array([h.ice_nm for h in chosen])
    assert np.all(np.diff(intensity) <= 1e-6 * intensity[0])
    mfp = FLAT_VIEW.contrast.ice_mfp_nm
    recovered = mfp * np.log(FLAT_VIEW.counts_per_px / intensity)
    nonzero = ice > 5
    np.testing.assert_allclose(recovered[nonzero], ice[nonzero], rtol=0.03)
    assert np.all(recovered[~nonzero] < 1.0)


def test_tilt_foreshortens_across_the_axis_and_lengthens_paths(world: World) -> None:
    hole = next(h for h in world.holes(_inner_square(world).id) if h.hole_class == "good")
    flat = sim.render_view(world, hole.centre_um, shape=(129, 129), pixel_size_um=0.03, imaging=FLAT_VIEW, noise=False)
    tilted = sim.render_view(world, hole.centre_um, shape=(129, 129), pixel_size_um=0.03, tilt_deg=60.0,
                             imaging=FLAT_VIEW, noise=False)
    assert tilted.image_to_stage[1][1] == pytest.approx(2 * flat.image_to_stage[1][1])

    def extent(img: sim.RenderedImage) -> tuple[int, int]:
        # Thin ice in a hole is brighter than carbon film with ice on it: split half-way. The
        # film is sampled just outside the hole along x, which the tilt leaves unchanged.
        film = img.image[64, 64 + round(1.2 * hole.radius_um / 0.03)]
        inside = img.image > 0.5 * (img.image[64, 64] + film)
        lab, _ = ndimage.label(inside)
        rows, cols = ndimage.find_objects((lab == lab[64, 64]).astype(int))[0]
        return rows.stop - rows.start, cols.stop - cols.start

    (h0, w0), (h1, w1) = extent(flat), extent(tilted)
    assert w1 == pytest.approx(w0, abs=2)
    assert h1 == pytest.approx(0.5 * h0, abs=3)
    n = FLAT_VIEW.counts_per_px
    assert np.log(n / tilted.image[64, 64]) == pytest.approx(2 * np.log(n / flat.image[64, 64]), rel=0.02)


def test_image_shift_moves_the_field_of_view_like_the_stage(world: World) -> None:
    sq = _inner_square(world)
    shifted = sim.render_square(world, sq.centre_um, shape=(64, 64), image_shift_um=(5.0, -3.0), noise=False)
    moved = sim.render_square(world, (sq.centre_um[0] + 5.0, sq.centre_um[1] - 3.0), shape=(64, 64), noise=False)
    assert shifted.image_to_stage == moved.image_to_stage
    np.testing.assert_array_equal(shifted.image, moved.image)
    assert shifted.image_shift_um == (5.0, -3.0)


def _class_means(world: World, img: sim.RenderedImage) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for s in sim.image_truth(world, img).squares:
        col, row = s.centre_px or (0.0, 0.0)
        half = 0.25 * s.side_um / img.pixel_size_um
        r0, r1, c0, c1 = int(row - half), int(row + half), int(col - half), int(col + half)
        if r0 < 0 or c0 < 0 or r1 > img.shape[0] or c1 > img.shape[1]:
            continue
        out.setdefault(s.square_class, []).append(float(img.image[r0:r1, c0:c1].mean()))
    return out


def test_broken_squares_are_brightest_thick_squares_dark_and_bars_darkest(world: World) -> None:
    atlas = sim.render_atlas(world, shape=(600, 600), pixel_size_um=3.5, tiles=(2, 2))
    means = {k: float(np.median(v)) for k, v in _class_means(world, atlas.image).items()}
    assert means["broken"] > means["dry"] > means["good"] > means["small"]
    assert float(np.percentile(atlas.image.image, 2)) < 0.5 * means["small"]


def test_gold_film_is_near_opaque_at_square_magnification_and_darker_than_carbon_in_views() -> None:
    spec = GridSpec(hole_type="R2/1")
    carbon = World(seed=8, spec=spec)
    gold = World(seed=8, spec=spec.model_copy(update={"film_material": "gold"}))
    hole = next(h for h in carbon.holes(_inner_square(carbon).id) if h.hole_class == "good")
    film_point = (hole.centre_um[0] + hole.radius_um + 0.4, hole.centre_um[1])
    flat_square = replace(sim.SQUARE_IMAGING, vignetting=0.0, gain_sigma=0.0, stray_fraction=0.0,
                          halo_fraction=0.0, psf_sigma_px=0.3)
    view, square = [], []
    for w in (carbon, gold):
        img = sim.render_view(w, film_point, shape=(9, 9), pixel_size_um=0.02, imaging=FLAT_VIEW, noise=False)
        view.append(float(img.image[4, 4]) / FLAT_VIEW.counts_per_px)
        img = sim.render_square(w, film_point, shape=(9, 9), pixel_size_um=0.05, imaging=flat_square, noise=False)
        square.append(float(img.image[4, 4]) / flat_square.counts_per_px)
    assert 0.45 < view[0] < 0.95 and view[1] < 0.8 * view[0]
    assert square[1] < 0.3 * square[0]


def test_shot_noise_is_poisson_at_the_configured_dose(world: World) -> None:
    far = (1400.0, 0.0)  # rim: opaque, counts from the stray background only
    sq = _inner_square(world, "broken")
    img = sim.render_square(world, sq.centre_um, shape=(128, 128), pixel_size_um=0.1,
                            imaging=replace(sim.SQUARE_IMAGING, gain_sigma=0.0, vignetting=0.0, halo_fraction=0.0))
    patch = img.image[40:88, 40:88]
    assert float(patch.var()) == pytest.approx(float(patch.mean()), rel=0.15)
    assert np.all(img.image == np.round(img.image))
    assert world.local_scene(*far).region == "rim"


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_args(parser)
    return parser.parse_args(argv)


def test_cli_render_writes_mrc_truth_and_png(tmp_path: Path) -> None:
    out = tmp_path / "sq.mrc"
    assert main(_parse(["render", "square", "--seed", "4", "--size", "48", "--out", str(out), "--png"])) == 0
    with mrcfile.open(out) as mrc:
        assert mrc.data.shape == (48, 48)
        px_a = float(mrc.voxel_size.x)
    truth = json.loads((tmp_path / "sq.truth.json").read_text())
    assert truth["image"]["pixel_size_a"] == pytest.approx(px_a, rel=1e-5)
    assert (tmp_path / "sq.png").is_file()


def test_cli_dataset_writes_an_index_of_labelled_items(tmp_path: Path) -> None:
    args = _parse(["dataset", "atlas", "--count", "2", "--seed", "3", "--size", "64", "--out", str(tmp_path)])
    assert main(args) == 0
    index = json.loads((tmp_path / "index.json").read_text())
    assert [item["image"] for item in index["items"]] == ["atlas_00000.mrc", "atlas_00001.mrc"]
    assert all((tmp_path / item["truth"]).is_file() for item in index["items"])
    assert sum(index["items"][0]["counts"]["squares"].values()) > 0


def test_renderer_registry_offers_the_three_low_and_medium_mag_kinds() -> None:
    assert {"atlas", "square", "hole"} <= set(RENDERERS)
