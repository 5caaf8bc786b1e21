"""The command lines the READMEs show run, and their results are right."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mrcfile


def _gridpilot(*args: str, cwd: Path) -> str:
    r = subprocess.run([sys.executable, "-m", "gridpilot.cli", *args], cwd=cwd,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def test_render_a_twin_movie_then_preprocess_it(tmp_path: Path) -> None:
    _gridpilot("sim", "render", "movie", "--seed", "3", "--size", "512", "--frames", "16",
               "--out", "m.mrc", cwd=tmp_path)
    truth = json.loads((tmp_path / "m.truth.json").read_text())
    _gridpilot("preprocess", "m.mrc", "--dose-per-frame", str(truth.get("dose_per_frame_e_per_a2", 2.5)),
               "--json", "out.json", "--png", "out.png", cwd=tmp_path)
    out = json.loads((tmp_path / "out.json").read_text())
    assert (tmp_path / "out.png").read_bytes()[:4] == b"\x89PNG"
    assert set(out) >= {"ctf", "motion"}


def test_render_an_atlas_with_truth_and_a_png(tmp_path: Path) -> None:
    _gridpilot("sim", "render", "atlas", "--seed", "1", "--size", "512", "--out", "a.mrc", "--png",
               cwd=tmp_path)
    with mrcfile.open(tmp_path / "a.mrc") as m:
        assert m.data.shape == (512, 512)
        assert float(m.voxel_size.x) > 1000  # Å per pixel at atlas magnification
    truth = json.loads((tmp_path / "a.truth.json").read_text())
    assert truth["squares"]
    assert (tmp_path / "a.png").exists()


def test_a_square_dataset_has_an_index(tmp_path: Path) -> None:
    _gridpilot("sim", "dataset", "square", "--count", "2", "--seed", "5", "--size", "256",
               "--out", "d", cwd=tmp_path)
    assert list((tmp_path / "d").glob("*.json"))
    assert len(list((tmp_path / "d").rglob("*.mrc"))) == 2


def test_the_asyncapi_command_writes_the_checked_in_document(tmp_path: Path) -> None:
    _gridpilot("docs", "asyncapi", "--out", "a.json", cwd=tmp_path)
    root = Path(__file__).resolve().parents[1]
    assert (tmp_path / "a.json").read_text() == (root / "docs" / "asyncapi.json").read_text()


def test_render_a_twin_movie_then_super_resolve_it(tmp_path: Path) -> None:
    _gridpilot("sim", "render", "movie", "--seed", "3", "--size", "128", "--frames", "8",
               "--out", "m.mrc", cwd=tmp_path)
    _gridpilot("zssr", "m.mrc", "--scale", "2", "--out", "m_sr.mrc", "--max-iterations", "2",
               "--threads", "1", cwd=tmp_path)
    with mrcfile.open(tmp_path / "m.mrc") as lr, mrcfile.open(tmp_path / "m_sr.mrc") as sr:
        assert sr.data.shape == (2 * lr.data.shape[1], 2 * lr.data.shape[2])
        assert float(sr.voxel_size.x) * 2 == float(lr.voxel_size.x)
    assert json.loads((tmp_path / "m_sr.json").read_text())["iterations"] == 2


def test_render_a_twin_square_then_find_its_holes(tmp_path: Path) -> None:
    _gridpilot("sim", "render", "square", "--seed", "4", "--grid-spec", '{"hole_type": "R2/1"}',
               "--square-class", "good", "--out", "sq.mrc", cwd=tmp_path)
    _gridpilot("detect", "holes", "sq.mrc", "--hole-type", "R2/1", "--json", "holes.json", "--png", "holes.png",
               cwd=tmp_path)
    found = json.loads((tmp_path / "holes.json").read_text())["holes"]
    truth = json.loads((tmp_path / "sq.truth.json").read_text())["holes"]
    assert (tmp_path / "holes.png").read_bytes()[:4] == b"\x89PNG"
    assert {"x_px", "y_px", "radius_px", "label", "score"} <= set(found[0])
    targets = [h for h in found if h["label"] != "contaminant"]
    hits = sum(any((h["x_px"] - t["centre_px"][0]) ** 2 + (h["y_px"] - t["centre_px"][1]) ** 2
                   < (0.5 * t["radius_px"]) ** 2 for h in targets) for t in truth)
    assert len(truth) > 100 and hits / len(truth) >= 0.9


def test_render_a_twin_atlas_then_detect_its_squares(tmp_path: Path) -> None:
    _gridpilot("sim", "render", "atlas", "--seed", "1", "--size", "1024", "--out", "a.mrc", cwd=tmp_path)
    _gridpilot("detect", "atlas", "a.mrc", "--json", "squares.json", "--png", "squares.png", cwd=tmp_path)
    out = json.loads((tmp_path / "squares.json").read_text())
    truth = json.loads((tmp_path / "a.truth.json").read_text())
    assert (tmp_path / "squares.png").read_bytes()[:4] == b"\x89PNG"
    assert {"x_px", "y_px", "width_px", "height_px", "label", "score"} <= set(out["squares"][0])
    # most squares of the twin atlas are found (a loose count check; accuracy is the bench's)
    assert 0.6 * len(truth["squares"]) <= len(out["squares"]) <= 1.3 * len(truth["squares"])


def test_twin_micrographs_then_pick_them_with_the_shipped_picker(tmp_path: Path) -> None:
    import numpy as np

    from picker_spa.formats import read_coordinates
    from picker_spa.matching import score_picks

    _gridpilot("sim", "dataset", "micrograph", "--count", "1", "--seed", "5", "--species", "apoferritin",
               "--size", "256", "--out", "mics", cwd=tmp_path)
    _gridpilot("pick", "spa", "pick", "mics/micrograph_00000.mrc", "--diameter-px", "35", "--out", "picks.star",
               cwd=tmp_path)
    _gridpilot("pick", "spa", "denoise", "mics", "--out", "den", cwd=tmp_path)
    truth = json.loads((tmp_path / "mics" / "micrograph_00000.truth.json").read_text())
    found = read_coordinates(tmp_path / "picks.star")
    centres = np.array([(p["x_px"], p["y_px"]) for p in truth["particles"]]).reshape(-1, 2)
    s = score_picks([(np.array(found.x_px), np.array(found.y_px), np.array(found.score))], [centres],
                    tolerance_px=[17.5])
    assert s.n_true > 0 and s.auprc > 0.5
    assert (tmp_path / "den" / "micrograph_00000_denoised.mrc").is_file()
