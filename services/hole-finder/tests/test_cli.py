"""``gridpilot detect holes`` on an MRC file: JSON and PNG outputs, and clear errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gridpilot.cli import main
from gridpilot.storage.mrc import write_mrc
from hole_finder.twin_data import TwinSample


def test_detect_holes_writes_json_and_png(tmp_path: Path, carbon_square: TwinSample,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "square.mrc"
    write_mrc(path, carbon_square.image, pixel_size_a=carbon_square.pixel_size_um * 1e4)
    out_json, out_png = tmp_path / "holes.json", tmp_path / "holes.png"
    assert main(["detect", "holes", str(path), "--hole-size-um", "2", "--json", str(out_json),
                 "--png", str(out_png)]) == 0
    doc = json.loads(out_json.read_text())
    holes = [h for h in doc["holes"] if h["label"] != "contaminant"]
    assert {"x_px", "y_px", "radius_px", "label", "score"} <= set(doc["holes"][0])
    truth = carbon_square.label < 2
    found = np.array([(h["x_px"], h["y_px"]) for h in holes])
    d = np.hypot(carbon_square.x[truth, None] - found[None, :, 0], carbon_square.y[truth, None] - found[None, :, 1])
    assert (d.min(axis=1) < 0.5 * carbon_square.radius[truth]).mean() >= 0.9
    assert out_png.read_bytes()[:4] == b"\x89PNG"
    assert "holes" in capsys.readouterr().out


def test_detect_holes_needs_a_pixel_size_and_a_readable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            mrc_without_pixel_size: Any) -> None:
    path = mrc_without_pixel_size(tmp_path / "nopx.mrc", np.zeros((64, 64), np.float32))
    assert main(["detect", "holes", str(path)]) == 2
    assert "--pixel-size-nm" in capsys.readouterr().err
    assert main(["detect", "holes", str(tmp_path / "absent.mrc"), "--pixel-size-nm", "50"]) == 2
    assert "absent.mrc" in capsys.readouterr().err
    assert main(["detect", "holes", str(path), "--pixel-size-nm", "50", "--hole-size-um", "-1"]) == 2
    assert "--hole-size-um" in capsys.readouterr().err
    assert main(["detect", "holes", str(path), "--pixel-size-nm", "50", "--hole-type", "lacey"]) == 2
    assert "names no regular hole pattern" in capsys.readouterr().err
    assert main(["detect", "holes", str(path), "--pixel-size-nm", "50", "--hole-type", "R1.2/1.3",
                 "--hole-pitch-um", "1.0"]) == 2
    assert "must exceed the hole size" in capsys.readouterr().err


def test_hole_type_sets_size_and_pitch_and_the_flags_win() -> None:
    from hole_finder.cli import film_geometry

    def geometry(**kw: Any) -> tuple[float | None, float | None]:
        return film_geometry(argparse.Namespace(**{"hole_size_um": None, "hole_pitch_um": None, "hole_type": None, **kw}))

    assert geometry(hole_type="R1.2/1.3") == (1.2, 2.5)
    assert geometry(hole_type="R2/1", hole_size_um=2.1) == (2.1, 3.0)
    assert geometry(hole_size_um=2.0) == (2.0, None)
    assert geometry() == (None, None)
