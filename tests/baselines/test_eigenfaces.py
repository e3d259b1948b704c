"""Eigenfaces against sklearn's PCA, component by component up to sign."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from marginface.baselines import Eigenfaces
from marginface.metrics import open_set_metrics
from marginface.search import FlatSearch


def data(n, d, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + 3.0


@pytest.mark.parametrize(("n", "d", "whiten"), [(30, 200, True), (200, 12, True), (30, 200, False)])
def test_matches_sklearn_pca_up_to_sign(n, d, whiten):
    train, test = data(n, d), data(7, d, seed=1)
    ours = Eigenfaces(n_components=10, whiten=whiten).fit(train)
    ref = PCA(n_components=10, whiten=whiten, svd_solver="full").fit(train)
    z, z_ref = ours.transform(test), ref.transform(test)
    signs = np.sign((z * z_ref).sum(axis=0))
    assert set(signs) <= {-1.0, 1.0}
    np.testing.assert_allclose(z, z_ref * signs, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ours.explained_variance_, ref.explained_variance_, rtol=1e-9)


def test_whitened_training_embeddings_have_unit_variance():
    z = Eigenfaces(n_components=5).fit_transform(data(50, 20))
    assert z.dtype == np.float32 and z.shape == (50, 5)
    np.testing.assert_allclose(z.var(axis=0, ddof=1), 1.0, rtol=1e-4)


def test_uint8_image_tensors_are_flattened():
    images = torch.randint(0, 256, (12, 1, 8, 6), dtype=torch.uint8)
    z = Eigenfaces(n_components=4).fit(images).transform(images[:3])
    ref = Eigenfaces(n_components=4).fit(images.reshape(12, -1).double().numpy())
    np.testing.assert_allclose(z, ref.transform(images[:3].reshape(3, -1).numpy()), atol=1e-5)


def test_errors():
    with pytest.raises(ValueError, match="min\\(N - 1, D\\) = 9"):
        Eigenfaces(n_components=10).fit(data(10, 30))
    with pytest.raises(RuntimeError, match="before fit"):
        Eigenfaces().transform(np.ones((2, 3)))
    with pytest.raises(ValueError, match="fitted on 30"):
        Eigenfaces(n_components=3).fit(data(10, 30)).transform(np.ones((2, 5)))


def test_eigenface_embeddings_go_through_the_open_set_metrics():
    # 6 identities x 4 "images" of 64 pixels; train on 4 identities, evaluate on the other 2
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(6), 4)
    images = rng.normal(size=(6, 64))[labels] + 0.3 * rng.normal(size=(24, 64))
    model = Eigenfaces(n_components=8).fit(images[labels < 4])
    block, _, _, _ = open_set_metrics(
        model.transform(images[labels >= 4]), labels[labels >= 4], FlatSearch, n_folds=2
    )
    assert 0.0 <= block["verification"]["auc"] <= 1.0
