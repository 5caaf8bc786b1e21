"""Exploration: a small 3D encoder trained per data set with SimSiam, its 2D map and clusters.

For every candidate (:mod:`picker_cet.candidates`) a cube around it goes through a 3-layer 3D
CNN; two wedge-respecting views (:mod:`picker_cet.augment`) of the same cube are pulled together
with SimSiam's stop-gradient negative cosine (Chen & He 2021), which needs no negative pairs and
no large batches. The embedding alone hardly tells the species apart on the twin (ARI 0.07), and
adding its principal components to the profiles did not help there, so the clusters are made on
each candidate's radial density profile (:mod:`picker_cet.profiles`, which does not change with
the particle's turn), standardised, by k-means (k-means++ seeding), and laid out in 2D by the
first two principal components of the same features (:func:`cluster_features`); each cluster gets
a gallery of central xy slices, so a person can tell ribosomes from membranes and gold.

>>> import numpy as np
>>> adjusted_rand_index(np.array([0, 0, 1, 1]), np.array([1, 1, 0, 0]))
1.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from .augment import augment_box, wedge_mask
from .device import torch_device
from .types import F32, Progress

__all__ = [
    "Encoder",
    "Exploration",
    "ExploreParams",
    "adjusted_rand_index",
    "cluster_features",
    "embed",
    "kmeans",
    "pca_2d",
    "train_simsiam",
]


_EMBED_DIM: Final[int] = 64
_PRED_DIM: Final[int] = 32
#: Embedding components beside the profiles in the clustering features: none (see cluster_features).
_EMBEDDING_COMPONENTS: Final[int] = 0


@dataclass(frozen=True)
class ExploreParams:
    """Exploration settings (defaults sized for a few minutes on two CPU cores)."""

    box_vox: int = 24
    steps: int = 150
    batch: int = 32
    learning_rate: float = 3e-3
    clusters: int = 6
    tilt_max_deg: float = 60.0
    seed: int = 0
    #: auto (CUDA when present), cpu or cuda (:func:`picker_cet.device.torch_device`).
    device: str = "auto"


class Encoder(nn.Module):
    """(B, 1, D, D, D) cube → (B, 64) embedding: three conv blocks, global average pooling."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv3d(cin, cout, 3, padding=1), nn.BatchNorm3d(cout), nn.ReLU(inplace=True))

        self.features = nn.Sequential(
            block(1, width), nn.MaxPool3d(2), block(width, 2 * width), nn.MaxPool3d(2),
            block(2 * width, 4 * width), nn.AdaptiveAvgPool3d(1), nn.Flatten(),
        )
        self.head = nn.Linear(4 * width, _EMBED_DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # type: ignore[no-any-return]


class _SimSiam(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = Encoder()
        self.projector = nn.Sequential(nn.Linear(_EMBED_DIM, _EMBED_DIM), nn.BatchNorm1d(_EMBED_DIM),
                                       nn.ReLU(inplace=True), nn.Linear(_EMBED_DIM, _EMBED_DIM))
        self.predictor = nn.Sequential(nn.Linear(_EMBED_DIM, _PRED_DIM), nn.BatchNorm1d(_PRED_DIM),
                                       nn.ReLU(inplace=True), nn.Linear(_PRED_DIM, _EMBED_DIM))

    def loss(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        za, zb = self.projector(self.encoder(a)), self.projector(self.encoder(b))
        pa, pb = self.predictor(za), self.predictor(zb)
        cos = nn.functional.cosine_similarity
        return -0.5 * (cos(pa, zb.detach()).mean() + cos(pb, za.detach()).mean())


def _views(boxes: F32, idx: npt.NDArray[np.int64], rng: np.random.Generator,
           wedge: npt.NDArray[np.bool_]) -> torch.Tensor:
    return torch.from_numpy(np.stack([augment_box(boxes[i], rng, wedge=wedge) for i in idx])[:, None])


def train_simsiam(boxes: F32, params: ExploreParams | None = None, *,
                  progress: Progress | None = None) -> tuple[Encoder, list[float]]:
    """Train an encoder on ``(N, D, D, D)`` cubes (on ``params.device``); returns it (eval mode, on
    the CPU) and the loss per step."""
    p = params or ExploreParams()
    torch.manual_seed(p.seed)
    rng = np.random.default_rng([p.seed, 0x5135])
    dev = torch_device(p.device)
    model = _SimSiam().to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=p.learning_rate, weight_decay=1e-5)
    wedge = wedge_mask(boxes.shape[-1], p.tilt_max_deg)
    losses: list[float] = []
    batch = min(p.batch, len(boxes))
    for step in range(p.steps):
        idx = rng.choice(len(boxes), size=batch, replace=len(boxes) < batch)
        loss = model.loss(_views(boxes, idx, rng, wedge).to(dev), _views(boxes, idx, rng, wedge).to(dev))
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        losses.append(float(loss.detach()))
        if progress is not None and (step % 10 == 0 or step == p.steps - 1):
            progress((step + 1) / p.steps, f"explore step {step + 1}/{p.steps} loss {losses[-1]:.3f}")
    model.encoder.cpu().eval()
    return model.encoder, losses


@torch.no_grad()
def embed(encoder: Encoder, boxes: F32, *, batch: int = 64) -> F32:
    """(N, 64) embeddings of ``(N, D, D, D)`` cubes (no augmentation)."""
    encoder.eval()
    out = [encoder(torch.from_numpy(np.ascontiguousarray(boxes[i:i + batch]))[:, None]).numpy()
           for i in range(0, len(boxes), batch)]
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, _EMBED_DIM), np.float32)


def _standardise(x: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    x = np.asarray(x, dtype=np.float64)
    return np.asarray((x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-9))


def cluster_features(embeddings: npt.NDArray[np.floating], profiles: npt.NDArray[np.floating], *,
                     components: int = _EMBEDDING_COMPONENTS) -> npt.NDArray[np.float64]:
    """What the clusters are made on: each candidate's radial profile (N, K), beside the first
    ``components`` principal components of its standardised embedding (N, 64) when asked;
    (N, K + components).

    Notes
    -----
    On tuning tomograms 101 and 102 (6 clusters, ARI against the true species over candidates on a
    particle, mean of 4 k-means seeds): embeddings alone 0.07 / 0.02; one-voxel shells alone out to
    100–200 Å 0.55–0.68 (mean 0.62); with the embedding's 2 components 0.42–0.66 (mean 0.55). The
    embedding does not help on the twin yet, so by default none of it is used.
    """
    prof = np.asarray(profiles, dtype=np.float64)
    if components <= 0 or len(prof) < 2:
        return prof
    z = _standardise(embeddings)
    _, _, vt = np.linalg.svd(z, full_matrices=False)
    return np.hstack([prof, z @ vt[:components].T])


def pca_2d(x: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """The first two principal components of standardised rows, (N, 2)."""
    z = _standardise(x)
    if len(z) < 2:
        return np.zeros((len(z), 2))
    _, _, vt = np.linalg.svd(z, full_matrices=False)
    return np.asarray(z @ vt[:2].T)


def kmeans(x: npt.NDArray[np.floating], k: int, *, seed: int = 0, iters: int = 100,
           restarts: int = 5) -> npt.NDArray[np.int64]:
    """Cluster labels of standardised rows: Lloyd's algorithm from k-means++ seeds, best of
    ``restarts`` by inertia."""
    z = _standardise(x)
    n = len(z)
    k = max(1, min(k, n))
    rng = np.random.default_rng([seed, 0x3EA5])
    best, best_inertia = np.zeros(n, dtype=np.int64), math.inf
    for _ in range(restarts):
        centres = [z[rng.integers(n)]]
        for _ in range(1, k):
            d2 = np.min(((z[:, None] - np.asarray(centres)[None]) ** 2).sum(-1), axis=1)
            centres.append(z[rng.choice(n, p=d2 / d2.sum())] if d2.sum() > 0 else z[rng.integers(n)])
        c = np.asarray(centres)
        labels = np.zeros(n, dtype=np.int64)
        for _ in range(iters):
            d2 = ((z[:, None] - c[None]) ** 2).sum(-1)
            new = np.argmin(d2, axis=1)
            if np.array_equal(new, labels) and _ > 0:
                break
            labels = new
            c = np.asarray([z[labels == j].mean(0) if np.any(labels == j) else c[j] for j in range(k)])
        inertia = float(((z - c[labels]) ** 2).sum())
        if inertia < best_inertia:
            best, best_inertia = labels, inertia
    return best


def adjusted_rand_index(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Hubert & Arabie's adjusted Rand index of two labellings (1 = identical partitions).

    Notes
    -----
    ARI = (Σ C(n_ij, 2) − E) / (½ (Σ C(a_i, 2) + Σ C(b_j, 2)) − E), E = Σ C(a_i, 2) Σ C(b_j, 2) / C(n, 2).
    """
    _, ia = np.unique(np.asarray(a), return_inverse=True)
    _, ib = np.unique(np.asarray(b), return_inverse=True)
    n = ia.size
    if n < 2:
        return 1.0
    table = np.zeros((ia.max() + 1, ib.max() + 1))
    np.add.at(table, (ia, ib), 1)

    def c2(v: npt.NDArray[np.float64]) -> float:
        return float((v * (v - 1) / 2).sum())

    sum_ij, sum_a, sum_b = c2(table), c2(table.sum(1)), c2(table.sum(0))
    expected = sum_a * sum_b / (n * (n - 1) / 2)
    top = 0.5 * (sum_a + sum_b) - expected
    return 1.0 if top == 0 else float((sum_ij - expected) / top)


@dataclass(frozen=True, eq=False)
class Exploration:
    """What exploring one tomogram gives.

    Attributes
    ----------
    centres_zyx : (N, 3) candidate positions in voxels of the input tomogram
    embeddings : (N, 64)
    map_2d : (N, 2) PCA layout of the clustering features (:func:`cluster_features`)
    clusters : (N,) cluster of each candidate
    boxes : (N, D, D, D) the cubes (binned voxels), for galleries
    losses : SimSiam loss per step
    """

    centres_zyx: npt.NDArray[np.float64]
    embeddings: F32
    map_2d: npt.NDArray[np.float64]
    clusters: npt.NDArray[np.int64]
    boxes: F32
    losses: list[float]
