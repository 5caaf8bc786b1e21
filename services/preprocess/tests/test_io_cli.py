"""Reading movies (MRC, TIFF, bytes or paths) and the ``gridpilot preprocess`` command."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path

import mrcfile
import numpy as np
import numpy.typing as npt
import pytest
import tifffile

from gridpilot.errors import InvalidInput
from preprocess import cli
from preprocess.io import read_image, read_movie


def _mrc(path: Path, data: npt.NDArray[np.generic], voxel: float = 0.9) -> bytes:
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = voxel
    return path.read_bytes()


def test_an_mrc_stack_is_read_from_a_path_and_from_bytes_with_its_pixel_size(tmp_path: Path) -> None:
    data = np.arange(3 * 16 * 16, dtype=np.float32).reshape(3, 16, 16)
    raw = _mrc(tmp_path / "m.mrcs", data)
    for source in (tmp_path / "m.mrcs", raw):
        movie = read_movie(source)
        np.testing.assert_array_equal(movie.frames, data)
        assert movie.pixel_size_a == pytest.approx(0.9)
        assert movie.file_format == "mrc"


def test_a_tiff_movie_and_a_single_image_are_read(tmp_path: Path) -> None:
    data = np.random.default_rng(0).integers(0, 5, (4, 16, 16)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "m.tif", data, photometric="minisblack")
    movie = read_movie(tmp_path / "m.tif")
    np.testing.assert_array_equal(movie.frames, data)
    assert movie.pixel_size_a is None and movie.file_format == "tiff"
    tifffile.imwrite(tmp_path / "g.tif", np.full((16, 16), 1.25, dtype=np.float32))
    assert read_image(tmp_path / "g.tif").shape == (16, 16)


@pytest.mark.parametrize("kind", ["mrc", "tiff"])
@pytest.mark.parametrize("keep", [0.95, 0.3, 0.02])
def test_a_truncated_file_is_invalid_input_not_a_crash(tmp_path: Path, kind: str, keep: float) -> None:
    data = np.ones((3, 64, 64), dtype=np.float32)
    if kind == "mrc":
        raw = _mrc(tmp_path / "m.mrc", data)
    else:
        tifffile.imwrite(tmp_path / "m.tif", data, photometric="minisblack")
        raw = (tmp_path / "m.tif").read_bytes()
    with pytest.raises(InvalidInput, match=r"truncated|not an MRC"):
        read_movie(raw[: int(len(raw) * keep)])


def test_garbage_and_missing_files_are_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="not an MRC or TIFF"):
        read_movie(b"hello")
    with pytest.raises(InvalidInput, match="no such file"):
        read_movie(tmp_path / "absent.mrc")


def _args(movie: Path, **extra: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_args(parser)
    argv = [str(movie)]
    for key, value in extra.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    return parser.parse_args(argv)


def test_the_command_writes_json_and_png_and_takes_the_pixel_size_from_the_header(
    tmp_path: Path, make_movie: Callable[..., npt.NDArray[np.float32]], capsys: pytest.CaptureFixture[str]
) -> None:
    frames = make_movie(np.zeros((6, 2)), dose_per_frame_e_per_a2=2.0, seed=1)
    _mrc(tmp_path / "m.mrcs", frames, voxel=1.0)
    code = cli.main(_args(tmp_path / "m.mrcs", dose_per_frame=2.0, json=tmp_path / "o.json", png=tmp_path / "o.png"))
    assert code == 0
    result = json.loads((tmp_path / "o.json").read_text())
    assert result["pixel_size_a"] == 1.0
    assert {"ctf", "motion", "ice_thickness_nm", "ice_method", "timings_s"} <= set(result)
    assert (tmp_path / "o.png").read_bytes()[:4] == b"\x89PNG"
    assert "defocus" in capsys.readouterr().out


def test_the_command_exits_2_with_a_message_on_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.mrc").write_bytes(b"\x00" * 2000)
    assert cli.main(_args(tmp_path / "bad.mrc", pixel_size_a=1.0)) == 2
    assert "gridpilot preprocess:" in capsys.readouterr().err


def test_the_module_runs_as_a_script_and_its_docstring_is_the_help() -> None:
    done = subprocess.run([sys.executable, "-m", "preprocess.cli", "--help"], capture_output=True, text=True, check=True)
    assert "dose-weight the sum and fit its CTF" in done.stdout


def test_the_command_is_registered_with_gridpilot() -> None:
    found = {ep.name: ep.value for ep in entry_points(group="gridpilot.commands")}
    assert found.get("preprocess") == "preprocess.cli"
