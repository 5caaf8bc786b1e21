"""The teamtomo packages, run by ``bench/preprocess.py`` when they are importable.

``torch-motion-correction`` and ``torch-ctf-estimation`` are not project dependencies:
torch-ctf-estimation requires torchvision, whose wheels pull another torch. Run the bench with
an interpreter that has them to include them, e.g. a throwaway venv made with
``python -m venv`` plus a ``.pth`` line adding this project's site-packages.
"""

from __future__ import annotations

import importlib
import math
import sys
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from gridpilot.contracts import PreprocessParams

__all__ = ["TEAMTOMO_INSTALL_NOTE", "Teamtomo"]

PARAMS: Final[PreprocessParams] = PreprocessParams()
TEAMTOMO_INSTALL_NOTE: Final[str] = (
    "torch-ctf-estimation imports torchvision; torchvision's wheels pull torch 2.15 and cannot be "
    "installed against the pinned torch 2.13 CPU build (PREPROCESS-NOTES)"
)


@dataclass
class Teamtomo:
    """The optional teamtomo packages and why they could not be run."""

    motion: Any = None
    ctf: Any = None
    notes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls) -> Teamtomo:
        found = cls()
        for attr, module, dist in (
            ("motion", "torch_motion_correction", "torch-motion-correction"),
            ("ctf", "torch_ctf_estimation", "torch-ctf-estimation"),
        ):
            try:
                setattr(found, attr, importlib.import_module(module))
                found.notes[dist] = "imported"
            except Exception as exc:
                found.notes[dist] = f"not usable here: {type(exc).__name__}: {exc}"
        if found.ctf is not None:
            tv = sys.modules.get("torchvision")
            shim = tv is not None and not hasattr(tv, "__version__")
            found.notes["torch-ctf-estimation"] = (
                f"imported with a torchvision gaussian_blur shim; {TEAMTOMO_INSTALL_NOTE}" if shim else "imported"
            )
        return found

    def motion_shifts_px(self, frames: npt.NDArray[np.generic], pixel_size_a: float) -> dict[str, npt.NDArray[np.float64]]:
        import torch

        stack = torch.from_numpy(np.asarray(frames, dtype=np.float32))
        out = {}
        field_g = self.motion.estimate_global_motion(stack, pixel_spacing=pixel_size_a)
        field_p, _ = self.motion.estimate_motion_cross_correlation_patches(
            stack, pixel_spacing=pixel_size_a, patch_sampling=self.motion.PatchSamplingConfig(patch_shape=(512, 512)),
            reference_strategy="mean_except_current",
        )
        for name, fld in (("global_middle_frame", field_g), ("patches_leave_one_out", field_p)):
            d = fld.data.mean(dim=(2, 3)).numpy().T / pixel_size_a  # (t, [y, x]) Å → px, same sign as the motion
            out[name] = np.stack([d[:, 1], d[:, 0]], axis=1).astype(np.float64)
        return out

    def ctf_fit(self, image: npt.NDArray[np.float32], pixel_size_a: float) -> tuple[float, float, float]:
        import torch

        tce = self.ctf
        _, _, r2 = tce.estimate_ctf(
            torch.from_numpy(np.asarray(image, dtype=np.float32)),
            tce.OpticalParams(pixel_spacing_angstroms=pixel_size_a, target_pixel_spacing_angstroms=1.5),
            tce.CTFFittingParams(
                defocus_grid_resolution=(1, 1, 1), frequency_fit_range_angstroms=(PARAMS.ctf_min_res_a, PARAMS.ctf_max_res_a),
                defocus_range_microns=(PARAMS.defocus_min_a / 1e4, PARAMS.defocus_max_a / 1e4), patch_sidelength=512,
            ),
            device=torch.device("cpu"),
        )
        return float(r2.defocus_u) * 1e4, float(r2.defocus_v) * 1e4, math.radians(float(r2.astigmatism_angle or 0.0))
