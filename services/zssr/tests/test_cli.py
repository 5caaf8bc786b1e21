"""``gridpilot zssr MOVIE``: writes the SR micrograph and its metadata; bad input exits 2."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np
import pytest

from zssr import cli


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_args(parser)
    return parser.parse_args(list(argv))


def _write(path: Path, frames: np.ndarray, pixel_size_a: float) -> Path:
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(frames.astype(np.float32))
        mrc.voxel_size = pixel_size_a
    return path


def test_the_command_writes_the_sr_mrc_at_the_finer_pixel_and_its_json(
        tmp_path: Path, make_movie: Any, capsys: pytest.CaptureFixture[str]) -> None:
    frames, _, _ = make_movie(n_frames=6, lr_side=64, scale=2, dose=500.0, seed=8)
    movie = _write(tmp_path / "movie.mrcs", frames, 1.6)
    out = tmp_path / "sr.mrc"
    assert cli.main(_args(str(movie), "--scale", "2", "--out", str(out), "--max-iterations", "2",
                          "--threads", "1", "--device", "cpu")) == 0
    with mrcfile.open(out) as mrc:
        assert mrc.data.shape == (128, 128)
        assert float(mrc.voxel_size.x) == pytest.approx(0.8, abs=1e-4)
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["iterations"] == 2 and meta["preset"] == "fast" and len(meta["settings_hash"]) == 16
    assert "sr.mrc" in capsys.readouterr().out


def test_a_single_frame_exits_2_with_the_reason(tmp_path: Path, make_movie: Any,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    frames, _, _ = make_movie(n_frames=2)
    movie = _write(tmp_path / "one.mrc", frames[:1], 1.0)
    assert cli.main(_args(str(movie), "--max-iterations", "1")) == 2
    assert "at least 2 frames" in capsys.readouterr().err
    assert cli.main(_args(str(tmp_path / "none.mrc"))) == 2
