import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from marginface.metrics.openset import open_set_metrics
from marginface.metrics.pairs import all_pairs, pair_scores
from marginface.metrics.score_norm import cohort_statistics, normalize_scores
from marginface.metrics.verification import eer


def at(degrees: float, norm: float = 1.0) -> list[float]:
    return [norm * math.cos(math.radians(degrees)), norm * math.sin(math.radians(degrees))]


def test_cohort_statistics_by_hand():
    # one image at 0 degrees (norm 3: rows are normalised), a cohort at 0, 60 and 90 degrees:
    # cosines 1, 0.5, 0 -> mean 0.5, population std sqrt(((0.5)^2 + 0 + (0.5)^2) / 3)
    e = np.array([at(0, 3.0), at(90)])
    cohort = np.array([at(0), at(60), at(90, 2.0)])
    mean, std = cohort_statistics(e, cohort)
    np.testing.assert_allclose(mean, [0.5, (0 + math.sqrt(3) / 2 + 1) / 3], atol=1e-6)
    np.testing.assert_allclose(std[0], math.sqrt(0.5**2 * 2 / 3), atol=1e-6)
    np.testing.assert_allclose(std[1], np.std([0.0, math.sqrt(3) / 2, 1.0]), atol=1e-6)
    # top_k=2: each image's two closest members only (image 0: cosines 1 and 0.5)
    mean, std = cohort_statistics(e, cohort, top_k=2)
    np.testing.assert_allclose(mean, [0.75, (math.sqrt(3) / 2 + 1) / 2], atol=1e-6)
    np.testing.assert_allclose(std, [0.25, (1 - math.sqrt(3) / 2) / 2], atol=1e-6)


def test_cohort_statistics_in_blocks_equal_one_block():
    rng = np.random.default_rng(0)
    e, cohort = rng.normal(size=(50, 8)), rng.normal(size=(30, 8))
    for k in (None, 7):
        whole = cohort_statistics(e, cohort, k, block_rows=1000)
        blocked = cohort_statistics(e, cohort, k, block_rows=7)
        np.testing.assert_allclose(blocked, whole, atol=1e-6)  # float32 GEMMs of other shapes
        # against numpy directly, the k largest by sorting
        z = (e / np.linalg.norm(e, axis=1, keepdims=True)) @ (
            cohort / np.linalg.norm(cohort, axis=1, keepdims=True)
        ).T
        z = np.sort(z, axis=1)[:, -(k or 30) :]
        np.testing.assert_allclose(whole[0], z.mean(1), atol=1e-6)
        np.testing.assert_allclose(whole[1], z.std(1), atol=1e-6)


def test_normalize_scores_by_hand():
    mean, std = np.array([0.1, 0.3, -0.2]), np.array([0.1, 0.2, 0.4])
    i, j = np.array([0, 1, 0]), np.array([1, 2, 2])
    s = np.array([0.5, 0.6, 0.2])
    expected = [
        ((0.5 - 0.1) / 0.1 + (0.5 - 0.3) / 0.2) / 2,  # 2.5
        ((0.6 - 0.3) / 0.2 + (0.6 + 0.2) / 0.4) / 2,  # 1.75
        ((0.2 - 0.1) / 0.1 + (0.2 + 0.2) / 0.4) / 2,  # 1.0
    ]
    np.testing.assert_allclose(normalize_scores(s, i, j, mean, std), expected, rtol=1e-6)


def test_bad_input_is_named():
    e, c = np.eye(3)[:2], np.eye(3)
    with pytest.raises(ValueError, match="2 <= top_k <= cohort size"):
        cohort_statistics(e, c, top_k=1)
    with pytest.raises(ValueError, match="2 <= top_k <= cohort size"):
        cohort_statistics(e, c, top_k=4)
    with pytest.raises(ValueError, match="dimensions"):
        cohort_statistics(e, np.eye(4))
    with pytest.raises(ValueError, match="zero norm"):
        cohort_statistics(np.zeros((1, 3)), c)
    with pytest.raises(ValueError, match="standard deviation 0"):
        cohort_statistics(e, np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 2.0]]))


def test_open_set_metrics_score_the_normalised_pairs_and_keep_cosines_elsewhere(brute_search):
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(8), 5)
    emb = rng.normal(size=(8, 6))[labels] + 0.8 * rng.normal(size=(40, 6))
    cohort = rng.normal(size=(25, 6))
    stats = cohort_statistics(emb, cohort)
    raw_block, cosines, issame, _ = open_set_metrics(emb, labels, brute_search)
    block, scores, same, pair_cosines = open_set_metrics(
        emb, labels, brute_search, cohort_stats=stats
    )
    np.testing.assert_array_equal(pair_cosines, cosines)  # the cosines come back beside
    i, j, expected_same = all_pairs(labels)
    np.testing.assert_array_equal(same, expected_same)
    expected = normalize_scores(pair_scores(emb, i, j), i, j, *stats)
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    verification = block["verification"]
    assert math.isclose(verification["auc"], roc_auc_score(same, expected), abs_tol=1e-9)
    assert verification["eer"] == pytest.approx(eer(expected, same))
    # the normalisation is not a monotone map of the cosine here: the figures differ
    assert verification["auc"] != raw_block["verification"]["auc"]
    # identification, retrieval and the angles are read from cosines, as without it
    for key in ("identification", "retrieval", "angles"):
        assert block[key] == raw_block[key]


def test_equal_statistics_for_every_image_leave_the_ranking_alone(brute_search):
    # one mean and std for all images: s' = (s - m) / sd, monotone, so EER and AUC do not move
    rng = np.random.default_rng(4)
    labels = np.repeat(np.arange(6), 4)
    emb = rng.normal(size=(6, 5))[labels] + rng.normal(size=(24, 5))
    stats = (np.full(24, 0.2), np.full(24, 0.5))
    raw = open_set_metrics(emb, labels, brute_search)[0]["verification"]
    normed = open_set_metrics(emb, labels, brute_search, cohort_stats=stats)[0]["verification"]
    assert normed["eer"] == pytest.approx(raw["eer"])
    assert normed["auc"] == pytest.approx(raw["auc"])
