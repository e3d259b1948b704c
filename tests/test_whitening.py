import numpy as np
import pytest

from marginface.whitening import CHECKPOINT_KEY, fit_wccn, within_class_covariance


def test_within_class_covariance_by_hand():
    # class a: (0,0), (2,0) -> mean (1,0), deviations (-1,0), (1,0)
    # class b: (5,1), (5,3) -> mean (5,2), deviations (0,-1), (0,1)
    x = np.array([[0.0, 0.0], [2.0, 0.0], [5.0, 1.0], [5.0, 3.0]])
    labels = np.array(["a", "a", "b", "b"])
    np.testing.assert_allclose(within_class_covariance(x, labels), [[0.5, 0.0], [0.0, 0.5]])


def test_whitened_within_class_covariance_is_identity():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(12, 6)) * 3
    spread = rng.normal(size=(6, 6))  # correlated within-class noise
    labels = np.repeat(np.arange(12), 8)
    x = centres[labels] + rng.normal(size=(96, 6)) @ spread
    w = fit_wccn(x, labels, shrinkage=0.0)
    z = (x - w.mean) @ w.matrix  # before the final normalisation
    np.testing.assert_allclose(within_class_covariance(z, labels), np.eye(6), atol=1e-9)
    # with shrinkage the regularised covariance, computed independently, is whitened instead
    s = 0.3
    w = fit_wccn(x, labels, shrinkage=s)
    cov = np.cov((x - np.array([x[labels == c].mean(0) for c in labels])).T, bias=True)
    cov += s * np.trace(cov) / 6 * np.eye(6)
    np.testing.assert_allclose(w.matrix.T @ cov @ w.matrix, np.eye(6), atol=1e-9)


def test_whitening_discounts_the_direction_that_varies_within_identities():
    # identities differ along y; their images vary widely along x (like pose)
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(10), 20)
    x = np.stack([rng.normal(0, 3.0, 200), labels * 1.0 + rng.normal(0, 0.1, 200)], axis=1)
    x += [0.0, 20.0]  # away from the origin, as embeddings on a sphere are
    w = fit_wccn(x, labels)
    same = np.array([[-4.0, 23.0], [4.0, 23.0]])  # one identity, far apart along x
    other = np.array([[0.0, 23.0], [0.0, 25.0]])  # two identities, same x
    cos = lambda a: float(a[0] @ a[1] / np.linalg.norm(a[0]) / np.linalg.norm(a[1]))  # noqa: E731
    assert cos(same) < cos(other)  # raw cosine: the wrong order
    ws, wo = w(same), w(other)
    assert np.allclose(np.linalg.norm(ws, axis=1), 1.0, atol=1e-6)
    assert float(ws[0] @ ws[1]) > float(wo[0] @ wo[1])  # whitened: the right order


def test_bad_input_is_named():
    x = np.zeros((4, 3))
    with pytest.raises(ValueError, match="at least 2 training identities"):
        fit_wccn(x, np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="one label each"):
        fit_wccn(x, np.array([0, 0, 1]))
    with pytest.raises(ValueError, match="singular"):
        fit_wccn(np.ones((4, 3)), np.array([0, 0, 1, 1]), shrinkage=0.0)
    with pytest.raises(ValueError, match="shrinkage"):
        fit_wccn(np.random.default_rng(0).normal(size=(4, 3)), np.array([0, 0, 1, 1]), -1.0)


def test_wccn_option_whitens_with_the_training_identities_only(tmp_path):
    """apply_wccn against the same steps done by hand: embed the training identities, fit, apply."""
    import torch
    from omegaconf import OmegaConf

    from marginface.backbones import SmallFaceNet
    from marginface.data import FaceDataModule, make_synthetic
    from marginface.evaluation.evaluate import apply_wccn
    from marginface.inference.embed import extract_embeddings

    dm = FaceDataModule(make_synthetic(num_identities=12, images_per_identity=6), num_folds=3)
    dm.setup()
    torch.manual_seed(0)
    net = SmallFaceNet(widths=(4, 8, 8, 8), embedding_dim=8).eval()
    images, labels = dm.open_set()
    raw = extract_embeddings(net, images)
    cfg = OmegaConf.create({"eval": {"flip": True, "wccn": False}})
    assert apply_wccn(cfg, net, dm, raw) == (raw, None)
    cfg.eval.wccn, cfg.eval.wccn_shrinkage = True, 0.05
    train_index = torch.cat([dm.train_index, dm.val_index])
    assert not set(dm.data.labels[train_index].tolist()) & set(dm.open_ids.tolist())
    train = extract_embeddings(net, dm.data.images[train_index])
    expected = fit_wccn(train, dm.data.labels[train_index].numpy(), 0.05)(raw)
    whitened, whitening = apply_wccn(cfg, net, dm, raw)
    np.testing.assert_allclose(whitened, expected, atol=1e-5)
    # a checkpoint's stored whitening is used as it is, not refit
    stored = {CHECKPOINT_KEY: {"mean": np.zeros(8), "matrix": 2 * np.eye(8)}}
    np.testing.assert_allclose(apply_wccn(cfg, net, dm, raw, ckpt=stored)[0], raw, atol=1e-6)
    np.testing.assert_allclose(whitening.from_state(whitening.state())(raw), whitened, atol=1e-6)
