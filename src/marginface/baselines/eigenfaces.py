"""Eigenfaces: PCA of raw pixels as face embeddings (Turk & Pentland, 1991)."""

from __future__ import annotations

from typing import Any

import numpy as np


def _as_rows(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2:
        raise ValueError(f"expected (N, D) features or (N, C, H, W) images, got shape {x.shape}")
    return x.reshape(len(x), -1)  # images are flattened to pixel vectors


class Eigenfaces:
    """PCA projection onto the top `n_components` eigenfaces; https://doi.org/10.1162/jocn.1991.3.1.71.

    fit takes training images (N, D) or (N, C, H, W), any float or integer scale. With whiten,
    every component is divided by its standard deviation (so it has unit variance on the training
    set), as sklearn.decomposition.PCA(whiten=True). Components are signed so that their largest
    loading is positive. Embeddings are compared by cosine like a network's.
    """

    def __init__(self, n_components: int = 64, whiten: bool = True) -> None:
        if n_components < 1:
            raise ValueError(f"n_components must be >= 1, got {n_components}")
        self.n_components = n_components
        self.whiten = whiten
        self.mean_: np.ndarray | None = None
        self.components_: np.ndarray | None = None  # (n_components, D), orthonormal rows
        self.explained_variance_: np.ndarray | None = None  # (n_components,), pixel units squared

    def fit(self, x: Any) -> Eigenfaces:
        """Learn the mean image and the eigenfaces from training images x (N, D); return self."""
        x = _as_rows(x)
        n, d = x.shape
        if self.n_components > min(n - 1, d):
            raise ValueError(
                f"n_components={self.n_components} exceeds min(N - 1, D) = {min(n - 1, d)} for "
                f"{n} training images of {d} pixels (centred data has rank <= N - 1)"
            )
        self.mean_ = x.mean(axis=0)
        centred = x - self.mean_
        # economy SVD costs O(N D min(N, D)): with N < D it works in the N x N image space
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        vt = vt[: self.n_components]
        signs = np.sign(vt[np.arange(len(vt)), np.argmax(np.abs(vt), axis=1)])
        self.components_ = vt * signs[:, None]
        self.explained_variance_ = s[: self.n_components] ** 2 / (n - 1)
        return self

    def transform(self, x: Any) -> np.ndarray:
        """Project images x (N, D) onto the eigenfaces: embeddings (N, n_components) float32."""
        if self.components_ is None or self.mean_ is None or self.explained_variance_ is None:
            raise RuntimeError("Eigenfaces.transform called before fit()")
        x = _as_rows(x)
        if x.shape[1] != self.mean_.shape[0]:
            raise ValueError(
                f"images have {x.shape[1]} pixels, the eigenfaces were fitted on {self.mean_.shape[0]}"
            )
        z = (x - self.mean_) @ self.components_.T
        if self.whiten:
            z /= np.sqrt(np.maximum(self.explained_variance_, np.finfo(np.float64).tiny))
        return z.astype(np.float32)

    def fit_transform(self, x: Any) -> np.ndarray:
        """fit(x), then transform(x)."""
        return self.fit(x).transform(x)
