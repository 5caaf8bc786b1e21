"""RELION's own motion correction as the frame-alignment peer of ``bench/preprocess.py``.

``relion_run_motioncorr --use_own`` (RELION 3.1, Debian package ``relion``) reads a movie STAR
file, aligns each movie (whole-frame: one patch) and writes ``<movie>.star`` with a
``data_global_shift`` table: per frame, ``rlnMicrographShiftX`` and ``rlnMicrographShiftY`` in
unbinned pixels, frame 1 at (0, 0). These are the shifts *applied to* each frame to bring it
into register, so the specimen displacement that the twin's truth records (and gridpilot
reports) is their negative; x is the column and y the row of the MRC image, as in the twin.
The sign was checked on the tuning movies (``relion_sign_check`` in the bench JSON: the RMS
error with either sign).

The movie is written as an MRC stack (float32) with its gain reference as an MRC file
(``--gainref``, multiplying the raw frames, as gridpilot is given it), and RELION runs with
the same number of threads as gridpilot's FFTs use. Its time is the wall time of the process:
it includes reading the movie and writing its outputs, which gridpilot's in-process time does
not.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import mrcfile
import numpy as np
import numpy.typing as npt

__all__ = ["RelionResult", "relion_executable", "relion_threads", "relion_version", "run_relion_motioncorr"]

EXECUTABLE: Final[str] = "relion_run_motioncorr"
#: The B-factor RELION's alignment uses, in pixels² (its default).
_BFACTOR_PX2: Final[int] = 150
_TIMEOUT_S: Final[float] = 600.0
_SHIFT_ROW = re.compile(r"^\s*(\d+)\s+(-?[\d.eE+-]+)\s+(-?[\d.eE+-]+)\s*$")


@dataclass(frozen=True)
class RelionResult:
    """Specimen displacement (N, 2) of each frame, px (x, y), frame 0 at the origin, and the
    wall time of the run, s."""

    displacement_px: npt.NDArray[np.float64]
    wall_s: float


def relion_executable() -> str | None:
    """Path of ``relion_run_motioncorr``, or None when RELION is not installed."""
    return shutil.which(EXECUTABLE)


def relion_version() -> str | None:
    exe = relion_executable()
    if exe is None:
        return None
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def relion_threads() -> int:
    """Threads gridpilot's FFTs use (every core this process may use): RELION gets the same."""
    return len(os.sched_getaffinity(0))


def _movie_star(movie: str, pixel_size_a: float, voltage_kv: float, cs_mm: float, amplitude_contrast: float) -> str:
    return (
        "data_optics\n\nloop_\n_rlnOpticsGroupName #1\n_rlnOpticsGroup #2\n"
        "_rlnMicrographOriginalPixelSize #3\n_rlnVoltage #4\n_rlnSphericalAberration #5\n"
        "_rlnAmplitudeContrast #6\n"
        f"opticsGroup1 1 {pixel_size_a:.6f} {voltage_kv:.3f} {cs_mm:.3f} {amplitude_contrast:.4f}\n\n"
        "data_movies\n\nloop_\n_rlnMicrographMovieName #1\n_rlnOpticsGroup #2\n"
        f"{movie} 1\n"
    )


def read_global_shifts(star: Path) -> npt.NDArray[np.float64]:
    """(N, 2) ``rlnMicrographShiftX/Y`` of the ``data_global_shift`` table of a RELION movie STAR file."""
    rows: list[tuple[float, float]] = []
    in_table = False
    for line in star.read_text().splitlines():
        if line.startswith("data_"):
            in_table = line.strip() == "data_global_shift"
            continue
        m = _SHIFT_ROW.match(line) if in_table else None
        if m:
            rows.append((float(m.group(2)), float(m.group(3))))
    if not rows:
        raise ValueError(f"{star} has no data_global_shift rows")
    return np.asarray(rows, dtype=np.float64)


def run_relion_motioncorr(
    frames: npt.NDArray[np.float32],
    *,
    pixel_size_a: float,
    dose_per_frame_e_per_a2: float,
    voltage_kv: float,
    cs_mm: float,
    amplitude_contrast: float,
    gain: npt.NDArray[np.float32] | None = None,
    threads: int | None = None,
) -> RelionResult:
    """Align one movie (N, H, W) with RELION's own motion correction (global, one patch).

    Raises
    ------
    RuntimeError
        When RELION is absent, fails, or writes no shifts.
    """
    exe = relion_executable()
    if exe is None:
        raise RuntimeError(f"{EXECUTABLE} is not on PATH")
    with tempfile.TemporaryDirectory(prefix="gridpilot-relion-") as tmp:
        work = Path(tmp)
        (work / "Movies").mkdir()
        with mrcfile.new(work / "Movies" / "movie.mrcs") as f:
            f.set_data(np.ascontiguousarray(frames, dtype=np.float32))
            f.voxel_size = pixel_size_a
        args = [
            exe, "--i", "movies.star", "--o", "MotionCorr/", "--use_own", "--j", str(threads or relion_threads()),
            "--bin_factor", "1", "--bfactor", str(_BFACTOR_PX2), "--patch_x", "1", "--patch_y", "1",
            "--angpix", f"{pixel_size_a:.6f}", "--voltage", f"{voltage_kv:.3f}",
            "--dose_per_frame", f"{dose_per_frame_e_per_a2:.6f}", "--dose_weighting",
        ]
        if gain is not None:
            with mrcfile.new(work / "gain.mrc") as f:
                f.set_data(np.ascontiguousarray(gain, dtype=np.float32))
            args += ["--gainref", "gain.mrc"]
        (work / "movies.star").write_text(
            _movie_star("Movies/movie.mrcs", pixel_size_a, voltage_kv, cs_mm, amplitude_contrast))
        t0 = time.perf_counter()
        done = subprocess.run(args, cwd=work, capture_output=True, text=True, timeout=_TIMEOUT_S)
        wall = time.perf_counter() - t0
        star = work / "MotionCorr" / "Movies" / "movie.star"
        if done.returncode != 0 or not star.exists():
            raise RuntimeError(f"{EXECUTABLE} failed (rc {done.returncode}): {(done.stdout + done.stderr)[-800:]}")
        shifts = read_global_shifts(star)
    displacement = -(shifts - shifts[0])
    return RelionResult(displacement, wall)
