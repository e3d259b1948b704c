"""Within-class covariance normalisation (WCCN) of embeddings, fit on the training identities only.

Verification scores the cosine of two embeddings. Directions along which images of one identity vary
(pose, light, glasses) count there as much as directions that tell identities apart. WCCN, a classic of
speaker verification, estimates the within-class covariance S_w on labelled training embeddings and
scores cos(W^T (x - m), W^T (y - m)) with W^T S_w W = I: every direction's within-class spread becomes
one, so directions that vary within identities weigh less. Only training identities are used to fit
it; the open-set identities stay unseen. `shrinkage` adds a share of the mean eigenvalue to the
diagonal, since a few hundred images estimate a 128 x 128 covariance poorly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: where a run trained with eval.wccn=true keeps its whitening in its checkpoints
CHECKPOINT_KEY = "marginface_wccn"


@dataclass
class Whitening:
    """x -> normalise(W^T (x - mean)); fit with `fit_wccn`."""

    mean: np.ndarray  # (D,)
    matrix: np.ndarray  # (D, D): W

    def state(self) -> dict[str, np.ndarray]:
        """What a checkpoint stores (key CHECKPOINT_KEY): float64 mean and matrix."""
        return {"mean": self.mean.astype(np.float64), "matrix": self.matrix.astype(np.float64)}

    @classmethod
    def from_state(cls, state: dict) -> Whitening:
        return cls(
            mean=np.asarray(state["mean"], dtype=np.float64),
            matrix=np.asarray(state["matrix"], dtype=np.float64),
        )

    def __call__(self, embeddings: np.ndarray) -> np.ndarray:
        z = (np.asarray(embeddings, dtype=np.float64) - self.mean) @ self.matrix
        norms = np.linalg.norm(z, axis=1, keepdims=True)
        return (z / np.maximum(norms, 1e-12)).astype(np.float32)


def stored_whitening(checkpoint: dict) -> Whitening | None:
    """The whitening a training checkpoint carries (a run with eval.wccn=true), else None."""
    state = checkpoint.get(CHECKPOINT_KEY)
    return None if state is None else Whitening.from_state(state)


def within_class_covariance(embeddings: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """S_w = 1/N sum over classes c and images i of c of (x_i - mean_c)(x_i - mean_c)^T."""
    x = np.asarray(embeddings, dtype=np.float64)
    labels = np.asarray(labels)
    _, inverse = np.unique(labels, return_inverse=True)
    sums = np.zeros((inverse.max() + 1, x.shape[1]))
    np.add.at(sums, inverse, x)
    centred = x - (sums / np.bincount(inverse)[:, None])[inverse]
    return centred.T @ centred / len(x)


def fit_wccn(embeddings: np.ndarray, labels: np.ndarray, shrinkage: float = 0.01) -> Whitening:
    """WCCN fit on labelled (training) embeddings (N, D); see the module docstring."""
    x = np.asarray(embeddings, dtype=np.float64)
    labels = np.asarray(labels)
    if x.ndim != 2 or len(x) != len(labels):
        raise ValueError(
            f"embeddings must be (N, D) with one label each, got {x.shape} and {labels.shape} labels"
        )
    counts = np.unique(labels, return_counts=True)[1]
    if len(counts) < 2 or counts.max() < 2:
        raise ValueError(
            "WCCN needs at least 2 training identities and one with 2 or more images to estimate "
            f"the within-class covariance; got {len(counts)} identities, at most {counts.max(initial=0)} images each"
        )
    if not shrinkage >= 0:
        raise ValueError(f"shrinkage must be >= 0, got {shrinkage}")
    cov = within_class_covariance(x, labels)
    dim = cov.shape[0]
    cov = cov + shrinkage * np.trace(cov) / dim * np.eye(dim)
    eigenvalues, eigenvectors = np.linalg.eigh(cov)
    if eigenvalues.min() <= 1e-12 * max(eigenvalues.max(), 1e-300):
        raise ValueError(
            f"the within-class covariance is singular ({len(x)} images in {dim} dimensions): "
            "set eval.whiten_shrinkage > 0"
        )
    return Whitening(mean=x.mean(0), matrix=eigenvectors / np.sqrt(eigenvalues))
