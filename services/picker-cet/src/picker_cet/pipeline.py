"""The three steps on arrays: explore a tomogram, refine a detector from labels, pick with it.

Every step works on the tomogram binned to about :data:`WORKING_VOXEL_A` (20 Å: a ribosome is
15 voxels across, apoferritin 7) and reports positions in voxels of the input tomogram, (z, y, x).

>>> import numpy as np
>>> to_input_voxels(np.array([[1.0, 2.0, 3.0]]), 2).tolist()
[[2.5, 4.5, 6.5]]
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import torch
from scipy import special

from gridpilot.detection.onnx import OnnxModel
from gridpilot.errors import InvalidInput

from .candidates import find_candidates
from .explore import (
    Exploration,
    ExploreParams,
    cluster_features,
    embed,
    kmeans,
    spectral_map,
    train_simsiam,
)
from .nms import find_peaks_3d, nms_3d
from .profiles import (
    ProfileModel,
    fit_profile_model,
    profile_distance,
    profile_scores,
    radial_profiles,
)
from .refine import RefineParams, export_onnx, train_detector
from .types import F32, Progress
from .volumes import bin_factor_for, bin_volume, check_tomogram, extract_boxes, normalise

__all__ = [
    "MODEL_FORMAT",
    "WORKING_VOXEL_A",
    "Picks",
    "cluster_members",
    "explore_tomogram",
    "pick_tomogram",
    "refine_detector",
    "to_binned_voxels",
    "to_input_voxels",
]


#: The voxel size every network sees, Å.
WORKING_VOXEL_A: Final[float] = 20.0
MODEL_FORMAT: Final[str] = "picker-cet-heatmap-1"
_MIN_LABELS: Final[int] = 1
#: With a profile, every local maximum of the detector's logits above this one is a candidate for
#: the profile to judge (the detector's own ranking puts denser look-alikes and gold first).
_CANDIDATE_LOGIT: Final[float] = float(special.logit(1e-6))


def to_input_voxels(centres_binned: npt.NDArray[np.floating], factor: int) -> npt.NDArray[np.float64]:
    """Binned-voxel (z, y, x) → input-voxel positions (block centres)."""
    return (np.asarray(centres_binned, dtype=np.float64) + 0.5) * factor - 0.5


def to_binned_voxels(centres: npt.NDArray[np.floating], factor: int) -> npt.NDArray[np.float64]:
    return (np.asarray(centres, dtype=np.float64) + 0.5) / factor - 0.5


def _working(tomogram: npt.NDArray[np.generic], voxel_size_a: float) -> tuple[F32, int]:
    vol = check_tomogram(tomogram)
    factor = bin_factor_for(voxel_size_a, WORKING_VOXEL_A)
    binned = bin_volume(vol, factor)
    if min(binned.shape) < 8:
        raise InvalidInput(f"the tomogram {vol.shape} at {voxel_size_a} Å/voxel is too small once binned "
                           f"to {voxel_size_a * factor:.0f} Å (under 8 voxels a side)", field="tomogram")
    return normalise(binned), factor


def explore_tomogram(tomogram: npt.NDArray[np.generic], *, voxel_size_a: float, min_diameter_a: float = 100.0,
                     max_diameter_a: float = 350.0, max_candidates: int = 400,
                     params: ExploreParams | None = None, progress: Progress | None = None) -> Exploration:
    """Candidates, a per-tomogram SimSiam encoder, embeddings, and the clusters and 2D map of the
    embeddings beside the candidates' radial profiles (:func:`picker_cet.explore.cluster_features`,
    laid out by :func:`picker_cet.explore.spectral_map`)."""
    if not 0 < min_diameter_a <= max_diameter_a:
        raise InvalidInput(f"need 0 < min_diameter_a <= max_diameter_a, got {min_diameter_a}, {max_diameter_a}")
    p = params or ExploreParams()
    vol, factor = _working(tomogram, voxel_size_a)
    vs = voxel_size_a * factor
    centres, _ = find_candidates(vol, voxel_size_a=vs, min_diameter_a=min_diameter_a,
                                 max_diameter_a=max_diameter_a, max_candidates=max_candidates,
                                 border_a=0.25 * min_diameter_a)
    if len(centres) < 2:
        raise InvalidInput(f"found {len(centres)} candidates in the tomogram: nothing to explore")
    boxes = extract_boxes(vol, centres, p.box_vox)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    encoder, losses = train_simsiam(boxes, p, progress=progress)
    emb = embed(encoder, boxes)
    # Shells one working voxel wide, out to the smallest diameter searched (tuning tomograms
    # 101/102: 100–140 Å alike, ARI 0.62–0.68; 160–200 Å 0.55–0.61).
    reach = min_diameter_a / vs
    features = cluster_features(emb, radial_profiles(vol, centres, reach_vox=reach, shells=max(1, round(reach))))
    coords = spectral_map(features)
    clusters = kmeans(coords, p.clusters, seed=p.seed)
    return Exploration(to_input_voxels(centres, factor), emb, coords[:, :2], clusters, boxes, losses)


def cluster_members(exploration: Exploration, clusters: list[int]) -> npt.NDArray[np.float64]:
    """The candidate positions (input voxels) of the chosen clusters: the labels for refining."""
    known = set(exploration.clusters.tolist())
    unknown = [c for c in clusters if c not in known]
    if unknown:
        raise InvalidInput(f"no clusters {unknown}; the exploration has {sorted(known)}", field="clusters")
    return exploration.centres_zyx[np.isin(exploration.clusters, clusters)]


@dataclass(frozen=True)
class Refined:
    """A trained detector: its ONNX bytes and what it was trained with."""

    onnx: bytes
    metadata: dict[str, str]
    losses: list[float]


def refine_detector(tomogram: npt.NDArray[np.generic], labels_zyx: npt.ArrayLike, *, voxel_size_a: float,
                    particle_diameter_a: float, params: RefineParams | None = None,
                    progress: Progress | None = None) -> Refined:
    """Train the heat-map detector from labelled centres (input voxels, z/y/x) and export it."""
    labels = np.asarray(labels_zyx, dtype=np.float64).reshape(-1, 3)
    if len(labels) < _MIN_LABELS:
        raise InvalidInput("refining needs at least one labelled centre", field="labels")
    if not np.isfinite(labels).all():
        raise InvalidInput("labelled centres must be finite numbers", field="labels")
    vol, factor = _working(tomogram, voxel_size_a)
    inside = np.all((labels >= -0.5) & (labels <= np.asarray(tomogram.shape) - 0.5), axis=1)
    if not inside.all():
        raise InvalidInput(f"{int((~inside).sum())} labelled centres lie outside the tomogram {tomogram.shape}",
                           field="labels")
    radius = 0.5 * particle_diameter_a / (voxel_size_a * factor)
    p = params or RefineParams()
    binned_labels = to_binned_voxels(labels, factor)
    net, losses = train_detector(vol, binned_labels, radius_vox=radius, params=p, progress=progress)
    profile = fit_profile_model(vol, binned_labels, radius_vox=radius)
    meta = {"format": MODEL_FORMAT, "working_voxel_a": str(voxel_size_a * factor),
            "particle_diameter_a": str(particle_diameter_a), "labels": str(len(labels)),
            "params": json.dumps({k: v for k, v in p.__dict__.items()}), "profile": profile.to_json()}
    return Refined(export_onnx(net, metadata=meta), meta, losses)


@dataclass(frozen=True, eq=False)
class Picks:
    """Picked centres (input voxels, z/y/x, best first) and their scores: the labels' profile score
    (:func:`picker_cet.profiles.profile_scores`) when the detector carries a profile, else the
    sigmoid of the detector's logit."""

    centres_zyx: npt.NDArray[np.float64]
    scores: npt.NDArray[np.float64]


def pick_tomogram(tomogram: npt.NDArray[np.generic], model: OnnxModel, *, voxel_size_a: float,
                  particle_diameter_a: float | None = None, threshold: float = 0.5,
                  border_a: float = 0.0) -> Picks:
    """Run the detector over the whole tomogram; peaks scoring above ``threshold``, NMS at the particle radius.

    A detector refined with a profile of its labels proposes every local maximum of its logits
    above a low floor, and the profile scores them; without one (older models), the peaks of the
    logits are scored by their sigmoid.
    """
    if model.metadata.get("format") != MODEL_FORMAT:
        raise InvalidInput(f"model {model.path.name} is not a picker-cet detector "
                           f"(format {model.metadata.get('format')!r})", field="model_id")
    diameter = particle_diameter_a or float(model.metadata["particle_diameter_a"])
    vol = check_tomogram(tomogram)
    factor = max(1, round(float(model.metadata["working_voxel_a"]) / voxel_size_a))
    binned = normalise(bin_volume(vol, factor))
    pad = [(0, s % 2) for s in binned.shape]
    logits = model.run(np.pad(binned, pad, mode="edge")[None, None])[0][0, 0]
    logits = logits[: binned.shape[0], : binned.shape[1], : binned.shape[2]]
    radius = max(0.5 * diameter / (voxel_size_a * factor), 1.0)
    border = int(border_a / (voxel_size_a * factor))
    if "profile" in model.metadata:
        profile = ProfileModel.from_json(model.metadata["profile"])
        # Every local maximum first (NMS over one voxel), so that a look-alike beside a particle
        # cannot suppress it before the profile has judged both.
        centres, peak_logits = find_peaks_3d(logits, threshold=_CANDIDATE_LOGIT, radius_vox=1.0, border_vox=border)
        scores = profile_scores(profile, profile_distance(profile, binned, centres))
        # Ties (far-off profiles underflow to 0) go to the detector's logit.
        order = np.lexsort((-peak_logits, -scores))
        centres, scores = centres[order], scores[order]
        keep = nms_3d(centres, np.arange(len(centres), 0, -1, dtype=np.float64), radius)
        centres, scores = centres[keep], scores[keep]
        above = scores > threshold
        return Picks(to_input_voxels(centres[above], factor), scores[above])
    # Peaks of the logits, not of the float32 sigmoid: a trained detector's best peaks lie beyond
    # logit 17, where the float32 sigmoid is 1.0 for all of them and no threshold can rank them.
    centres, peak_logits = find_peaks_3d(logits, threshold=float(special.logit(threshold)), radius_vox=radius,
                                         border_vox=border)
    return Picks(to_input_voxels(centres, factor), special.expit(np.asarray(peak_logits, np.float64)))


def with_steps(params: Any, steps: int | None) -> Any:
    """``params`` with ``steps`` replaced when given (ExploreParams or RefineParams)."""
    return params if steps is None else replace(params, steps=steps)
