"""Exploration: a small 3D encoder trained per data set with SimSiam, its 2D map and clusters.

For every candidate (:mod:`picker_cet.candidates`) a cube around it goes through a 3-block 3D
CNN whose features are averaged over shells about the cube's centre (:class:`Encoder`); two
wedge-respecting views (:mod:`picker_cet.augment`) of the same cube are pulled together with
SimSiam's stop-gradient negative cosine (Chen & He 2021), which needs no negative pairs and no
large batches. The map and the clusters are made of the embedding's first principal components
beside each candidate's radial density profile (:mod:`picker_cet.profiles`; both change little
when the particle turns; :func:`cluster_features`): a k-nearest-neighbour graph of those
features, laid out by its spectrum (:func:`spectral_map`, whose first two coordinates are the 2D
map), clustered by k-means (k-means++ seeding) in its first coordinates. Each cluster gets a
gallery of central xy slices, so a person can tell ribosomes from membranes and gold.

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
    "shell_weights",
    "spectral_map",
    "train_simsiam",
]


_EMBED_DIM: Final[int] = 64
_PRED_DIM: Final[int] = 32
#: Shells of the encoder's radial pooling over its (D/2)³ feature grid (24³ cubes: 12³, two 20 Å
#: voxels per shell, out to 240 Å from the centre).
_SHELLS: Final[int] = 6
#: Embedding components beside the profiles in the clustering features (see cluster_features).
_EMBEDDING_COMPONENTS: Final[int] = 8
#: Spectral coordinates the clusters are made in, and the neighbours of each row in their graph
#: (tuning tomograms 101 and 102: 4 and 10; 8 coordinates split the ribosomes, 15 neighbours alike).
_SPECTRAL_COMPONENTS: Final[int] = 4
_NEIGHBOURS: Final[int] = 10


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


def shell_weights(side: int, shells: int) -> npt.NDArray[np.float32]:
    """(shells, side, side, side) averaging weights over concentric shells about a cube's centre.

    Shell k holds the voxels whose distance r from the centre satisfies k ≤ r / (side / 2) · shells
    < k + 1; each shell's weights sum to 1; the corners beyond r = side / 2 are in none.

    >>> w = shell_weights(4, 2)
    >>> w.shape, [round(float(x), 6) for x in w.reshape(2, -1).sum(1)]
    ((2, 4, 4, 4), [1.0, 1.0])
    """
    if side < 2 or shells < 1:
        raise ValueError(f"need side >= 2 and shells >= 1, got {side}, {shells}")
    g = np.arange(side) - (side - 1) / 2
    r = np.sqrt(g[:, None, None] ** 2 + g[None, :, None] ** 2 + g[None, None, :] ** 2)
    index = np.floor(r / (side / 2) * shells).astype(np.int64)
    w = np.stack([(index == k) for k in range(shells)]).astype(np.float32)
    counts = w.reshape(shells, -1).sum(1)
    if np.any(counts == 0):
        raise ValueError(f"{shells} shells over a {side}³ grid leave some shell empty")
    return np.asarray(w / counts[:, None, None, None], dtype=np.float32)


class Encoder(nn.Module):
    """(B, 1, D, D, D) cube → (B, 64) embedding: three conv blocks (one 2× max-pool), each feature
    channel averaged over :data:`_SHELLS` concentric shells about the cube's centre, a linear head.

    Radial pooling keeps how the candidate's local features change from its core outwards, which
    does not change when it turns, and leaves out the cube's corners, where its neighbours lie.
    Global average pooling (the first release) mixed the candidate with its neighbours and kept its
    orientation: its embeddings did not tell the twin's species apart (k-means ARI −0.04 / 0.01 on
    tuning tomograms 101 and 102 at full size, against 0.78 / 0.85 with shells for one training
    seed and 0.00 / 0.00 for another; see :func:`cluster_features`).
    """

    def __init__(self, box: int = 24, width: int = 16, shells: int = _SHELLS) -> None:
        super().__init__()
        if box % 2 or box < 8:
            raise ValueError(f"the encoder needs an even cube side of at least 8 voxels, got {box}")

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv3d(cin, cout, 3, padding=1), nn.BatchNorm3d(cout), nn.ReLU(inplace=True))

        self.box = box
        self.body = nn.Sequential(block(1, width), nn.MaxPool3d(2), block(width, 2 * width),
                                  block(2 * width, 2 * width))
        self.register_buffer("shell_weights", torch.from_numpy(shell_weights(box // 2, shells)))
        self.head = nn.Linear(2 * width * shells, _EMBED_DIM)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, D, D, D) → (B, channels × shells): the radially pooled features."""
        if tuple(x.shape[-3:]) != (self.box,) * 3:
            raise ValueError(f"the encoder was built for {self.box}³ cubes, got {tuple(x.shape[-3:])}")
        return torch.einsum("bczyx,szyx->bcs", self.body(x), self.shell_weights).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pooled(x))  # type: ignore[no-any-return]


class _SimSiam(nn.Module):
    def __init__(self, box: int) -> None:
        super().__init__()
        self.encoder = Encoder(box)
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
    model = _SimSiam(boxes.shape[-1]).to(dev)
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
    """What the map and the clusters are made of: each candidate's standardised radial profile
    (N, K) beside the first ``components`` principal components of its standardised SimSiam
    embedding (N, 64); (N, K + components).

    Notes
    -----
    Tuning tomograms 101 and 102 (6 clusters, ARI against the true species over candidates on a
    particle; full size 512×512×128 and 256×256×128), with the clusters of :func:`spectral_map`:
    the profiles beside the embedding's 8 components 0.91 / 0.89 and 0.68 / 0.62, the profiles
    alone 0.91 / 0.85 and 0.68 / 0.52, the embedding alone 0.77 / 0.85 and 0.22 / 0.31 (and as
    low as 0.00 for another training seed). k-means straight on the profiles gave 0.50 / 0.49 and
    0.75 / 0.60.
    """
    prof = _standardise(profiles)
    if components <= 0 or len(prof) < 2:
        return prof
    z = _standardise(embeddings)
    _, _, vt = np.linalg.svd(z, full_matrices=False)
    return np.hstack([prof, z @ vt[:components].T])


def spectral_map(x: npt.NDArray[np.floating], *, components: int = _SPECTRAL_COMPONENTS,
                 neighbours: int = _NEIGHBOURS) -> npt.NDArray[np.float64]:
    """Laplacian eigenmap of standardised rows: (N, components) coordinates in which the
    neighbourhoods of the rows' k-nearest-neighbour graph stay together (the graph that UMAP
    starts from, laid out by its spectrum).

    Notes
    -----
    Edges join each row to its ``neighbours`` nearest (Euclidean); weights
    w_ij = exp(−d_ij² / (σ_i σ_j)), σ_i the distance to the i-th row's farthest neighbour
    (self-tuning scale, Zelnik-Manor & Perona 2004), symmetrised by the larger. The coordinates
    are the eigenvectors 2 … components + 1 of D^−½ W D^−½, largest eigenvalues first, scaled by
    D^−½ (the random-walk Laplacian's eigenvectors). Groups that touch no other group's
    neighbourhoods fall apart in these coordinates even where their shapes are not round, which
    k-means on the rows themselves needs.
    """
    z = _standardise(x)
    n = len(z)
    if n < 3:
        return np.zeros((n, components))
    k = max(1, min(neighbours, n - 1))
    sq = (z ** 2).sum(axis=1)
    d2 = np.maximum(sq[:, None] + sq[None] - 2.0 * (z @ z.T), 0.0)  # (N, N), not (N, N, K)
    np.fill_diagonal(d2, np.inf)
    nearest = np.argsort(d2, axis=1)[:, :k]
    rows = np.repeat(np.arange(n), k)
    cols = nearest.ravel()
    sigma = np.sqrt(np.maximum(d2[np.arange(n), nearest[:, -1]], 1e-12))
    w = np.zeros((n, n))
    w[rows, cols] = np.exp(-d2[rows, cols] / (sigma[rows] * sigma[cols]))
    w = np.maximum(w, w.T)
    inv_sqrt = 1.0 / np.sqrt(w.sum(axis=1))
    _, vecs = np.linalg.eigh(w * inv_sqrt[:, None] * inv_sqrt[None, :])
    coords = vecs[:, ::-1][:, 1:components + 1] * inv_sqrt[:, None]
    if coords.shape[1] < components:
        coords = np.hstack([coords, np.zeros((n, components - coords.shape[1]))])
    return np.asarray(coords)


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
    map_2d : (N, 2) the first two coordinates of :func:`spectral_map` of the clustering features
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
