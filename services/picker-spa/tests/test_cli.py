"""``gridpilot pick spa train|pick|denoise`` on twin micrographs written as MRC and PNG files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gridpilot.cli import main
from picker_spa.decoding import DEFAULT_FLOOR
from picker_spa.formats import (
    Coordinates,
    read_coordinates,
    read_micrograph,
    write_coordinates,
    write_micrograph_mrc,
)
from picker_spa.matching import score_picks
from picker_spa.model import DEFAULT_MODEL_DIR
from picker_spa.twin_data import TwinMicrograph


@pytest.fixture
def mic_dir(tmp_path: Path, twin_mics: list[TwinMicrograph]) -> Path:
    d = tmp_path / "mics"
    for n, m in enumerate(twin_mics[:2]):
        write_micrograph_mrc(d / f"mic_{n}.mrc", m.image, pixel_size_a=m.pixel_size_a)
    return d


def test_train_then_pick_then_denoise_from_the_command_line(
        mic_dir: Path, tmp_path: Path, twin_mics: list[TwinMicrograph], capsys: pytest.CaptureFixture[str]) -> None:
    m = twin_mics[0]
    labels = Coordinates.from_rows([("mic_0.mrc", float(x), float(y), 1.0) for x, y in m.centres_px[:5]])
    write_coordinates(labels, tmp_path / "labels.star")
    d = f"{m.diameter_px:.1f}"
    model = tmp_path / "model"
    assert main(["pick", "spa", "train", str(mic_dir), "--coords", str(tmp_path / "labels.star"),
                 "--diameter-px", d, "--epochs", "1", "--steps", "2", "--out", str(model)]) == 0
    assert {p.name for p in model.iterdir()} >= {"picker.onnx", "picker.pt", "picker.json"}
    shipped = json.loads((DEFAULT_MODEL_DIR / "picker.json").read_text())
    # A fine-tuning keeps its starting model's working scale.
    assert json.loads((model / "picker.json").read_text())["work_diameter_px"] == shipped["work_diameter_px"]
    assert "trained on 2 micrographs (5 labels)" in capsys.readouterr().out
    picks = tmp_path / "picks.star"
    assert main(["pick", "spa", "pick", str(mic_dir / "mic_0.mrc"), "--diameter-px", d, "--out", str(picks),
                 "--denoised", str(tmp_path / "den")]) == 0
    found = read_coordinates(picks)
    assert set(found.micrograph) == {"mic_0.mrc"} and min(found.score) >= DEFAULT_FLOOR
    s = score_picks([(np.array(found.x_px), np.array(found.y_px), np.array(found.score))], [m.centres_px],
                    tolerance_px=[0.5 * m.diameter_px])
    assert s.auprc > 0.5  # the shipped model, every pick above the floor
    assert read_micrograph(tmp_path / "den" / "mic_0_denoised.mrc")[0].ndim == 2
    assert main(["pick", "spa", "pick", str(mic_dir), "--model", str(model), "--diameter-px", d,
                 "--threshold", "0.5", "--out", str(tmp_path / "picks.csv")]) == 0
    assert min(read_coordinates(tmp_path / "picks.csv").score, default=1.0) >= 0.5
    assert main(["pick", "spa", "denoise", str(mic_dir), "--out", str(tmp_path / "den2")]) == 0
    den, px = read_micrograph(tmp_path / "den2" / "mic_1_denoised.mrc")
    assert den.shape == (128, 128) and px == pytest.approx(2 * m.pixel_size_a, rel=1e-3)


def test_pick_reads_8_bit_pictures(tmp_path: Path, twin_mics: list[TwinMicrograph]) -> None:
    m = twin_mics[1]
    a = m.image
    grey = np.clip((a - a.mean()) / (4 * a.std()) * 127 + 128, 0, 255).astype(np.uint8)
    Image.fromarray(grey).save(tmp_path / "mic.png")
    assert main(["pick", "spa", "pick", str(tmp_path / "mic.png"), "--diameter-px", f"{m.diameter_px:.1f}",
                 "--out", str(tmp_path / "mic.box")]) == 0
    assert len(read_coordinates(tmp_path / "mic.box")) > 0


def test_bad_input_is_a_message_and_exit_status_2(mic_dir: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "none.star").write_text("\ndata_\n\nloop_\n_rlnCoordinateX #1\n_rlnCoordinateY #2\n"
                                        "_rlnMicrographName #3\n10 10 elsewhere.mrc\n")
    assert main(["pick", "spa", "train", str(mic_dir), "--coords", str(tmp_path / "none.star"),
                 "--diameter-px", "20", "--epochs", "1", "--out", str(tmp_path / "m")]) == 2
    assert "no labelled particle" in capsys.readouterr().err
    assert main(["pick", "spa", "pick", str(mic_dir), "--diameter-px", "400", "--out", str(tmp_path / "p.star")]) == 2
    assert "too large" in capsys.readouterr().err
