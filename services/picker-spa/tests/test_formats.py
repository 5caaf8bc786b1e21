"""Coordinates round-trip through STAR, .box and CSV; micrographs read from MRC, TIFF, PNG, JPEG."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pytest
import starfile
import tifffile
from PIL import Image

from gridpilot.errors import InvalidInput
from picker_spa.formats import (
    Coordinates,
    micrograph_key,
    read_coordinates,
    read_micrograph,
    write_coordinates,
    write_micrograph_mrc,
)

ROWS = [("mic_001.mrc", 10.25, 20.5, 0.91), ("mic_001.mrc", 300.0, 41.75, 0.33), ("mic_002.mrc", 5.0, 6.0, 0.05)]


def test_star_round_trip_keeps_every_field_and_uses_relion_names(tmp_path: Path) -> None:
    path = tmp_path / "picks.star"
    write_coordinates(Coordinates.from_rows(ROWS), path)
    assert read_coordinates(path).rows() == ROWS
    table = starfile.read(path)
    assert list(table.columns) == ["rlnCoordinateX", "rlnCoordinateY", "rlnMicrographName",
                                   "rlnAutopickFigureOfMerit"]


def test_a_relion_star_without_scores_or_names_reads_with_defaults(tmp_path: Path) -> None:
    path = tmp_path / "mic_009.star"
    path.write_text("\ndata_\n\nloop_\n_rlnCoordinateX #1\n_rlnCoordinateY #2\n12.0 13.0\n14.0 15.0\n")
    c = read_coordinates(path)
    assert c.rows() == [("mic_009", 12.0, 13.0, 1.0), ("mic_009", 14.0, 15.0, 1.0)]


def test_box_round_trip_stores_corners_and_gives_back_centres(tmp_path: Path) -> None:
    one = Coordinates.from_rows(ROWS[:2])
    path = tmp_path / "mic_001.box"
    write_coordinates(one, path, box_size_px=64)
    first = path.read_text().splitlines()[0].split()
    assert [float(v) for v in first] == [10.25 - 32, 20.5 - 32, 64, 64]
    back = read_coordinates(path)
    assert [(m, x, y) for m, x, y, _ in back.rows()] == [("mic_001", 10.25, 20.5), ("mic_001", 300.0, 41.75)]
    with pytest.raises(InvalidInput, match="one micrograph"):
        write_coordinates(Coordinates.from_rows(ROWS), tmp_path / "all.box", box_size_px=64)


def test_csv_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "picks.csv"
    write_coordinates(Coordinates.from_rows(ROWS), path)
    assert read_coordinates(path).rows() == ROWS


def test_coordinates_name_micrographs_by_file_name() -> None:
    c = Coordinates.from_rows(ROWS)
    assert micrograph_key("/data/run1/mic_001.mrc") == "mic_001"
    assert c.for_micrograph("elsewhere/mic_001.png").tolist() == [[10.25, 20.5], [300.0, 41.75]]
    assert c.for_micrograph("mic_003.mrc").shape == (0, 2)


def test_micrographs_read_from_every_format_alike(tmp_path: Path) -> None:
    img = (np.random.default_rng(0).random((40, 60)) * 255).astype(np.uint8)
    write_micrograph_mrc(tmp_path / "m.mrc", img.astype(np.float32), pixel_size_a=1.5)
    tifffile.imwrite(tmp_path / "m.tif", img)
    Image.fromarray(img).save(tmp_path / "m.png")
    Image.fromarray(np.stack([img] * 3, axis=2)).save(tmp_path / "m.jpg", quality=100)
    for name in ("m.mrc", "m.tif", "m.png"):
        data, _ = read_micrograph(tmp_path / name)
        assert data.shape == (40, 60) and np.array_equal(data, img.astype(np.float32)), name
    jpg, px = read_micrograph(tmp_path / "m.jpg")
    assert jpg.shape == (40, 60) and np.abs(jpg - img).mean() < 3 and px is None
    assert read_micrograph(tmp_path / "m.mrc")[1] == pytest.approx(1.5)
    with mrcfile.new(tmp_path / "stack.mrc") as m:
        m.set_data(np.ones((3, 8, 8), np.float32))
    assert read_micrograph(tmp_path / "stack.mrc")[0].max() == pytest.approx(3.0)
    with pytest.raises(InvalidInput, match="must be"):
        read_micrograph(tmp_path / "m.gif")
