"""``gridpilot detect atlas`` on a twin atlas, its refusals, a tiny training run exported to
ONNX and served by ONNX Runtime, and the modules' doctests."""

from __future__ import annotations

import argparse
import doctest
import importlib
import json
from pathlib import Path

import numpy as np
import pytest

from atlas_detector import cli
from atlas_detector.crop_data import crop_bank
from atlas_detector.model import CLASSIFIER_FILE, SquareModel
from atlas_detector.squares import find_squares
from atlas_detector.train import export_classifier_onnx, export_onnx, train, train_classifier
from atlas_detector.twin_data import twin_sample
from gridpilot.detect_cli import detectors
from gridpilot.storage.mrc import write_mrc

from .conftest import PlantedAtlas, recall


def _args(path: Path, **extra: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_args(parser)
    argv = [str(path)] + [x for k, v in extra.items() for x in (f"--{k.replace('_', '-')}", str(v))]
    return parser.parse_args(argv)


def test_gridpilot_detect_atlas_is_registered() -> None:
    assert detectors()["atlas"] == "atlas_detector.cli"


def test_cli_writes_the_documented_json_and_a_picture(tmp_path: Path, twin_atlas: PlantedAtlas) -> None:
    mrc = tmp_path / "atlas.mrc"
    write_mrc(mrc, twin_atlas.image, 2.0e4)
    out, png = tmp_path / "squares.json", tmp_path / "squares.png"
    assert cli.main(_args(mrc, json=out, png=png)) == 0
    result = json.loads(out.read_text())
    sq = result["squares"][0]
    assert {"x_px", "y_px", "width_px", "height_px", "label", "score", "class_probs", "quality"} <= set(sq)
    assert sq["x_px"] == pytest.approx((sq["box_px"][0] + sq["box_px"][2]) / 2)
    assert result["pixel_size_um"] == pytest.approx(2.0) and "stage_x_um" in sq
    found = np.array([s["box_px"] for s in result["squares"]])
    assert recall(found, twin_atlas.sample.boxes) >= 0.7
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_cli_refuses_a_file_that_is_not_an_mrc(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "notes.mrc"
    bad.write_text("hello" * 300)
    assert cli.main(_args(bad)) == 2
    assert "not a valid MRC" in capsys.readouterr().err


def test_cli_refuses_an_absurd_pixel_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mrc = tmp_path / "a.mrc"
    write_mrc(mrc, np.random.default_rng(0).random((128, 128)).astype(np.float32), 1e4)
    assert cli.main(_args(mrc, pixel_size_um=4000)) == 2
    assert "absurd" in capsys.readouterr().err


def test_a_tiny_model_trains_exports_and_runs_in_onnx_runtime(tmp_path: Path) -> None:
    samples = [twin_sample(5, n, shape=(128, 128)) for n in range(2)]
    net, record = train(samples, steps=2, batch=2, width=4, lr=1e-3, crop=128, seed=0, threads=1)
    assert len(record["history"]) == 2 and np.isfinite(record["history"][-1]["total"])
    path = export_onnx(net, tmp_path / "tiny.onnx", input_size=128, metadata={"version": "tiny-0"})
    model = SquareModel.load(path, threads=1)
    assert model.input_size == 128 and model.version.startswith("tiny-0+")
    # ONNX Runtime and PyTorch agree on the same input.
    import torch

    x = np.random.default_rng(1).random((128, 128)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)[None, None]).numpy()[0]
    np.testing.assert_allclose(model.run(x), expected, atol=1e-4)
    result = find_squares(samples[0].image, model.run, input_size=model.input_size)
    assert result.timings_s["total"] > 0


def test_a_tiny_crop_classifier_trains_exports_and_is_loaded_beside_the_detector(tmp_path: Path) -> None:
    samples = [twin_sample(6, n, shape=(160, 160), pixel_size_um=1.5) for n in range(2)]
    bank = crop_bank(samples, np.random.default_rng(0), augments=1, size=32, channels=2)
    squares = sum(len(s.boxes) for s in samples)
    assert (bank.classes < 7).sum() == squares and (bank.classes == 7).sum() >= 2
    assert bank.crops.shape[1:] == (2, 32, 32)  # intensity and detail
    net, record = train_classifier(bank, steps=2, batch=8, width=4, lr=1e-3, seed=0, threads=1)
    assert np.isfinite(record["history"][-1]["total"])
    detector, _ = train(samples, steps=1, batch=1, width=4, lr=1e-3, crop=128, seed=0, threads=1)
    export_onnx(detector, tmp_path / "det.onnx", input_size=128, metadata={"version": "tiny-0"})
    export_classifier_onnx(net, tmp_path / CLASSIFIER_FILE, metadata={"version": "tiny-cls-0"}, crop_px=32)
    model = SquareModel.load(tmp_path / "det.onnx", threads=1)
    assert model.classifier is not None and "/tiny-cls-0+" in model.version
    import torch

    x = bank.crops[:3].astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    assert model.classifier.channels == 2
    np.testing.assert_allclose(model.classifier.run(x), expected, atol=1e-4)
    assert model.classifier.run(np.zeros((0, 2, 32, 32), np.float32)).shape == (0, 12)
    result = find_squares(samples[0].image, model.run, input_size=model.input_size, classifier=model.classifier)
    assert all(len(sq.class_probs) == 7 for sq in result.squares)
    assert SquareModel.load(tmp_path / "det.onnx", threads=1, classifier=False).classifier is None


@pytest.mark.parametrize("module", ["preprocessing", "decoding", "targets", "lattice", "augment", "picture",
                                    "network", "api", "twin_data", "model", "squares", "crops", "crop_data"])
def test_doctests(module: str) -> None:
    mod = importlib.import_module(f"atlas_detector.{module}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
