"""Topaz (``topaz-em``) as the learned peer of ``bench/picker_spa.py``, run from a throwaway venv.

Topaz imports torchvision, whose only build here is CUDA-linked and breaks the CPU torch, so
the venv has ``topaz-em`` installed with ``--no-deps`` beside the pinned torch, ``setuptools<81``
(Topaz imports ``pkg_resources``) and a tiny stand-in ``torchvision`` package holding the few
transforms Topaz imports (written here, bench code only, never a dependency of a service). Make
it once with::

    python3.11 -m venv bench/out/topaz-venv
    bench/out/topaz-venv/bin/pip install "setuptools<81" torch==2.13.0 numpy scipy pandas psutil \\
        scikit-learn pillow future tqdm h5py
    bench/out/topaz-venv/bin/pip install --no-deps topaz-em

and :func:`install_standin` adds the stand-in. Every Topaz step runs as its own process with
one thread on the CPU (``-d -1``): ``topaz normalize`` (downsampling first when
the particle is large, by its ``-s``), ``topaz train`` with its GE-binomial PU objective, and ``topaz extract``
with a trained model or its shipped pretrained ``resnet16``.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["TopazRun", "extract", "install_standin", "normalize", "topaz_bin", "train", "version"]

_TIMEOUT_S: Final[float] = 3600.0
# What topaz-em 0.3 takes from torchvision: transforms.functional.rotate (training augmentation,
# sampler.py), hflip and vflip (memory_mapped_data.py). Written as torchvision's defaults behave:
# rotation about the centre, nearest-neighbour, zeros outside.
_STANDIN: Final[str] = '''"""Stand-in for the parts of torchvision that topaz-em imports (bench only)."""
from . import transforms  # noqa: F401
__version__ = "0.0-standin"
'''
_STANDIN_TRANSFORMS: Final[str] = '''"""Minimal torchvision.transforms for topaz-em (bench only)."""
from . import functional  # noqa: F401
'''
_STANDIN_FUNCTIONAL: Final[str] = '''"""rotate, hflip, vflip on (..., H, W) tensors, as torchvision's defaults (bench only)."""
import math

import torch
import torch.nn.functional as F


def hflip(x):
    return x.flip(-1)


def vflip(x):
    return x.flip(-2)


def rotate(x, angle, interpolation=None, expand=False, center=None, fill=None):
    """Rotate counter-clockwise by ``angle`` degrees about the centre (nearest, zeros outside)."""
    shape = x.shape
    img = x.reshape(-1, 1, shape[-2], shape[-1]).float()
    a = math.radians(float(angle))
    theta = torch.tensor([[math.cos(a), math.sin(a), 0.0], [-math.sin(a), math.cos(a), 0.0]],
                         dtype=img.dtype).unsqueeze(0).expand(img.shape[0], 2, 3)
    grid = F.affine_grid(theta, list(img.shape), align_corners=False)
    out = F.grid_sample(img, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return out.reshape(shape).to(x.dtype)
'''


@dataclass(frozen=True)
class TopazRun:
    """Wall seconds of one Topaz step and its output path."""

    wall_s: float
    out: Path


def topaz_bin(venv: Path) -> Path | None:
    exe = venv / "bin" / "topaz"
    return exe if exe.is_file() else None


def install_standin(venv: Path) -> None:
    """Write the torchvision stand-in into the venv (when no torchvision is there)."""
    site = next((venv / "lib").glob("python3*/site-packages"))
    pkg = site / "torchvision"
    if (pkg / "transforms" / "functional.py").is_file():
        return
    (pkg / "transforms").mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text(_STANDIN)
    (pkg / "transforms" / "__init__.py").write_text(_STANDIN_TRANSFORMS)
    (pkg / "transforms" / "functional.py").write_text(_STANDIN_FUNCTIONAL)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    return env


def _run(venv: Path, args: list[str], log: Path) -> float:
    exe = topaz_bin(venv)
    assert exe is not None
    start = time.perf_counter()
    with log.open("a") as f:
        f.write("$ topaz " + " ".join(args) + "\n")
        f.flush()
        proc = subprocess.run([str(exe), *args], stdout=f, stderr=subprocess.STDOUT, env=_env(),
                              timeout=_TIMEOUT_S, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"topaz {args[0]} failed ({proc.returncode}); see {log}")
    return time.perf_counter() - start


def version(venv: Path) -> str | None:
    exe = topaz_bin(venv)
    if exe is None:
        return None
    install_standin(venv)  # topaz imports torchvision even for --version
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, env=_env(), check=False)
    return (out.stdout or out.stderr).strip() or None


def normalize(venv: Path, images: list[Path], out_dir: Path, log: Path, *, downsample: int = 1) -> TopazRun:
    """``topaz normalize`` (downsampling by ``downsample`` first, its ``-s``) into ``out_dir`` (MRC)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    wall = _run(venv, ["normalize", "-s", str(downsample), "-t", "0", "-j", "1", "-d", "-1", "--format", "mrc",
                       "-o", str(out_dir), *map(str, images)], log)
    return TopazRun(wall, out_dir)


def train(venv: Path, image_dir: Path, targets: Path, out_prefix: Path, log: Path, *, expected_per_image: float,
          radius_px: int, epochs: int, epoch_size: int, model: str = "resnet8") -> TopazRun:
    """``topaz train`` with the GE-binomial PU objective; returns the last epoch's model file."""
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    wall = _run(venv, ["train", "--train-images", str(image_dir), "--train-targets", str(targets),
                       "-n", str(max(round(expected_per_image), 1)), "--radius", str(radius_px),
                       "--model", model, "--method", "GE-binomial", "--num-epochs", str(epochs),
                       "--epoch-size", str(epoch_size), "--num-workers", "0", "-j", "1", "--format", "coord",
                       "-d", "-1", "--image-ext", ".mrc", "--no-pretrained",
                       "--save-prefix", str(out_prefix), "-o", str(out_prefix) + ".log.txt"], log)
    return TopazRun(wall, Path(f"{out_prefix}_epoch{epochs}.sav"))


def extract(venv: Path, images: list[Path], model: str, out: Path, log: Path, *, radius_px: int,
            upscale: int) -> TopazRun:
    """``topaz extract`` of every pick above a low logit threshold, coordinates upscaled back."""
    wall = _run(venv, ["extract", "-m", model, "-r", str(radius_px), "-t", "-6", "-x", str(upscale),
                       "-j", "1", "--num-workers", "0", "-d", "-1", "--format", "coord", "-o", str(out),
                       *map(str, images)], log)
    return TopazRun(wall, out)


def read_picks(path: Path) -> dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]]:
    """Topaz's table (image_name, x_coord, y_coord, score) by image name (without suffix)."""
    out: dict[str, list[tuple[float, float, float]]] = {}
    lines = path.read_text().splitlines()
    for line in lines[1:]:
        parts = line.split("\t") if "\t" in line else line.split()
        if len(parts) < 4:
            continue
        out.setdefault(Path(parts[0]).stem, []).append((float(parts[1]), float(parts[2]), float(parts[3])))
    return {k: (np.array([r[0] for r in v]), np.array([r[1] for r in v]), np.array([r[2] for r in v]))
            for k, v in out.items()}
