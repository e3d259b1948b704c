"""Verification metrics against hand-computed values, sklearn and brute-force definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score, roc_curve

from marginface.metrics.verification import (
    _kfold,
    _rank,
    accuracy_kfold,
    auc,
    eer,
    rate_key,
    roc,
    sort_pairs,
    tar_at_far,
    threshold_at_far,
    verification_metrics,
)
from marginface.results import OPEN_SET_KEYS

# genuine scores 0.9, 0.8, 0.7, 0.6; impostor scores 0.8, 0.6, 0.5, 0.4 (ties at 0.8 and 0.6)
TIED_SCORES = np.array([0.9, 0.8, 0.8, 0.7, 0.6, 0.6, 0.5, 0.4])
TIED_SAME = np.array([1, 1, 0, 1, 0, 1, 0, 0], dtype=bool)


def test_roc_by_hand_with_ties():
    far, tar, thresholds = roc(TIED_SCORES, TIED_SAME)
    # t=0.9 accepts nothing; t=0.8 accepts 0.9g; t=0.7 adds both 0.8s (tied: together);
    # t=0.6 adds 0.7g; t=0.5 adds both 0.6s; t=0.4 adds 0.5i; t=-inf adds 0.4i
    np.testing.assert_allclose(far, [0, 0, 0.25, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(tar, [0, 0.25, 0.5, 0.75, 1, 1, 1])
    np.testing.assert_allclose(thresholds, [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, -np.inf])
    for f, t, th in zip(far, tar, thresholds, strict=True):
        assert f == np.mean(TIED_SCORES[~TIED_SAME] > th)
        assert t == np.mean(TIED_SCORES[TIED_SAME] > th)


def test_auc_and_eer_by_hand():
    # AUC = P(genuine > impostor) + P(tie) / 2: (4 + 3.5 + 3 + 2.5) / 16 = 13 / 16
    assert auc(TIED_SCORES, TIED_SAME) == pytest.approx(13 / 16)
    # FAR - FRR along the ROC: -1, -.75, -.25, 0, ... -> crosses exactly at FAR = FRR = 0.25
    assert eer(TIED_SCORES, TIED_SAME) == pytest.approx(0.25)


def test_eer_interpolates_between_roc_points():
    # desc: .9g .8i .7i .6g .5i -> ROC (FAR, FRR): (0,1) (0,.5) (1/3,.5) (2/3,.5) (2/3,0) (1,0);
    # FRR stays 0.5 while FAR goes 1/3 -> 2/3, so the lines cross at FAR = FRR = 0.5
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    issame = np.array([1, 0, 0, 1, 0], dtype=bool)
    assert eer(scores, issame) == pytest.approx(0.5)


def test_tar_at_far_by_hand():
    # impostors descending: .8 .6 .5 .4 (n=4)
    assert tar_at_far(TIED_SCORES, TIED_SAME, 0.25) == 0.75  # t = .6: .9 .8 .7 pass
    assert tar_at_far(TIED_SCORES, TIED_SAME, 0.3) == 0.75  # still one false accept allowed
    assert tar_at_far(TIED_SCORES, TIED_SAME, 0.5) == 1.0  # t = .5
    assert tar_at_far(TIED_SCORES, TIED_SAME, 1.0) == 1.0  # t = -inf
    assert tar_at_far(TIED_SCORES, TIED_SAME, 0.1) is None  # 0.1 * 4 < 1: not measurable
    assert tar_at_far(TIED_SCORES, TIED_SAME, 0.0) is None


def test_tar_at_far_never_splits_tied_impostors():
    # genuine .9 .85 .8; impostors .8 .8 .5 .4: one false accept allowed at FAR=.25, but the two
    # .8 impostors come as a pair, so the threshold must stay at .8 and reject the genuine .8 too
    scores = np.array([0.9, 0.85, 0.8, 0.8, 0.8, 0.5, 0.4])
    issame = np.array([1, 1, 1, 0, 0, 0, 0], dtype=bool)
    assert tar_at_far(scores, issame, 0.25) == pytest.approx(2 / 3)
    assert tar_at_far(scores, issame, 0.5) == 1.0


def test_threshold_at_far():
    negatives = np.array([0.8, 0.6, 0.5, 0.4])
    assert threshold_at_far(negatives, 0.25) == 0.6
    assert threshold_at_far(negatives, 1.0) == -math.inf
    assert threshold_at_far(negatives, 0.2) is None
    # 0.29 * 100 is 28.999999999999996 in floats: still 29 allowed false accepts
    assert threshold_at_far(np.arange(100.0)[::-1], 0.29) == 70.0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        threshold_at_far(negatives, 1.5)


def test_rate_key():
    assert rate_key("tar@far", 1e-1) == "tar@far=1e-1"
    assert rate_key("tar@far", 1e-4) == "tar@far=1e-4"
    assert rate_key("dir@fpir", 0.05) == "dir@fpir=5e-2"


def test_kfold_known_answer():
    # 10 contiguous folds of (genuine 0.9, impostor 0.1), except fold 0 whose genuine scores 0.05.
    # Every training set is best split midway between 0.1 and 0.9 (t = 0.5): folds 1-9 score 1.0,
    # fold 0 gets its impostor right and its genuine wrong: 0.5. Mean 0.95, std 0.15.
    scores = np.tile([0.9, 0.1], 10)
    scores[0] = 0.05
    issame = np.tile([True, False], 10)
    mean, std = accuracy_kfold(scores, issame, n_folds=10)
    assert mean == pytest.approx(0.95)
    assert std == pytest.approx(0.15)
    r = _rank(scores, issame)
    _, thresholds = _kfold(r, (np.arange(20) // 2)[r.order], 10)
    np.testing.assert_allclose(thresholds, 0.5)
    # the same folds given explicitly after shuffling the pairs
    perm = np.random.default_rng(0).permutation(20)
    folds = (np.arange(20) // 2)[perm]
    assert accuracy_kfold(scores[perm], issame[perm], folds=folds) == pytest.approx((0.95, 0.15))


def test_kfold_perfectly_separable_is_one():
    rng = np.random.default_rng(1)
    issame = rng.random(200) < 0.3
    scores = np.where(issame, rng.uniform(0.6, 1.0, 200), rng.uniform(-1.0, 0.4, 200))
    assert accuracy_kfold(scores, issame) == (1.0, 0.0)


def brute_kfold(scores, issame, folds):
    """Definition: per fold, midpoints of distinct training scores, highest threshold on ties."""
    out = []
    for f in np.unique(folds):
        train = folds != f
        u = np.unique(scores[train])[::-1]
        cands = [u[0], *((u[:-1].astype(float) + u[1:]) / 2), -np.inf]
        accs = [np.mean((scores[train] > t) == issame[train]) for t in cands]
        t = cands[int(np.argmax(accs))]
        out.append(np.mean((scores[~train] > t) == issame[~train]))
    return np.mean(out), np.std(out)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=12, max_value=60).flatmap(
        lambda n: st.tuples(
            st.lists(st.integers(0, 6), min_size=n, max_size=n),
            st.lists(st.booleans(), min_size=n, max_size=n),
            st.integers(2, 6),
        )
    )
)
def test_kfold_matches_brute_force(case):
    values, same, n_folds = case
    scores, issame = np.array(values, dtype=np.float32) / 4, np.array(same)
    if issame.all() or not issame.any():
        return
    folds = np.arange(len(scores)) * n_folds // len(scores)
    got = accuracy_kfold(scores, issame, n_folds=n_folds)
    np.testing.assert_allclose(got, brute_kfold(scores, issame, folds), atol=1e-12)
    shuffled = np.random.default_rng(len(scores)).permutation(folds) + 100  # any fold names
    got = accuracy_kfold(scores, issame, folds=shuffled)
    np.testing.assert_allclose(got, brute_kfold(scores, issame, shuffled), atol=1e-12)


def random_scores(seed, n=300, levels=None):
    rng = np.random.default_rng(seed)
    issame = rng.random(n) < 0.3
    issame[:2] = [True, False]
    scores = rng.normal(size=n) + 1.2 * issame
    if levels:  # coarse values: many ties
        scores = np.round(scores * levels) / levels
    return scores, issame


@pytest.mark.parametrize("levels", [None, 2])
def test_roc_and_auc_match_sklearn(levels):
    scores, issame = random_scores(3, levels=levels)
    far, tar, _ = roc(scores, issame)
    ref_far, ref_tar, _ = roc_curve(issame, scores, drop_intermediate=False)
    np.testing.assert_allclose(far, ref_far)
    np.testing.assert_allclose(tar, ref_tar)
    assert auc(scores, issame) == pytest.approx(roc_auc_score(issame, scores), abs=1e-12)


@pytest.mark.parametrize("levels", [None, 3])
def test_tar_at_far_matches_definition(levels):
    scores, issame = random_scores(4, n=2000, levels=levels)
    impostor = np.sort(scores[~issame])
    for far in (1e-3, 1e-2, 0.05, 0.1, 0.5):
        # brute force: the smallest candidate threshold whose FAR is at most far
        candidates = np.concatenate(([-np.inf], impostor))
        ok = [t for t in candidates if np.mean(impostor > t) <= far]
        expected = None if far * len(impostor) < 1 else np.mean(scores[issame] > min(ok))
        assert tar_at_far(scores, issame, far) == expected


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([None, 1, 4]))
def test_auc_invariant_to_monotone_transforms(seed, levels):
    scores, issame = random_scores(seed, n=80, levels=levels)
    a = auc(scores, issame)
    assert auc(np.exp(3 * scores) + 7, issame) == pytest.approx(a, abs=1e-12)
    assert auc(rankdata(scores), issame) == pytest.approx(a, abs=1e-12)  # ties stay tied
    assert auc(-scores, issame) == pytest.approx(1 - a, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([None, 1, 4]))
def test_eer_lies_between_the_error_curves(seed, levels):
    scores, issame = random_scores(seed, n=60, levels=levels)
    far, tar, _ = roc(scores, issame)
    frr = 1 - tar
    e = eer(scores, issame)
    # at every ROC point one of the two errors is at least the EER and one at most
    assert np.max(np.minimum(far, frr)) - 1e-12 <= e <= np.min(np.maximum(far, frr)) + 1e-12


def test_verification_metrics_keys_and_values():
    scores, issame = random_scores(5, n=1000)
    out = verification_metrics(scores, issame)
    assert list(out) == list(OPEN_SET_KEYS["verification"])
    assert out["auc"] == pytest.approx(roc_auc_score(issame, scores))
    assert (out["accuracy_10fold"], out["accuracy_10fold_std"]) == accuracy_kfold(scores, issame)
    assert out["tar@far=1e-2"] == tar_at_far(scores, issame, 1e-2)
    assert out["tar@far=1e-3"] is None  # about 700 impostors: 1e-3 * 700 < 1
    assert out["tar@far=1e-4"] is None


@pytest.mark.parametrize(
    ("scores", "issame", "match"),
    [
        ([0.1, 0.2], [True, True], "genuine and impostor"),
        ([0.1, 0.2], [False, False], "genuine and impostor"),
        ([0.1, np.nan], [True, False], "NaN"),
        ([0.1, 0.2, 0.3], [True, False], "one length"),
        ([0.1, 0.2], [2, 0], "booleans"),
    ],
)
def test_bad_input(scores, issame, match):
    with pytest.raises(ValueError, match=match):
        verification_metrics(np.array(scores), np.array(issame))


def test_bad_folds():
    scores, issame = random_scores(6, n=20)
    with pytest.raises(ValueError, match="n_folds <= n_pairs"):
        accuracy_kfold(scores[:5], issame[:5], n_folds=10)
    with pytest.raises(ValueError, match="at least 2 folds"):
        accuracy_kfold(scores, issame, folds=np.zeros(20))
    with pytest.raises(ValueError, match="one fold id per pair"):
        accuracy_kfold(scores, issame, folds=np.zeros(3))


@settings(deadline=None, max_examples=60)
@given(st.integers(0, 10_000), st.sampled_from([None, 3, 50]))
def test_float32_pairs_sort_like_numpy(seed, levels):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    values = rng.normal(size=n) if levels is None else rng.integers(-levels, levels + 1, n) / 7
    scores = values.astype(np.float32)
    scores[rng.random(n) < 0.1] = -0.0  # signed zeros: equal values, different bits
    scores[rng.random(n) < 0.05] = np.float32(np.inf)
    issame = rng.random(n) < 0.4
    order, s, g = sort_pairs(scores, issame)
    assert np.array_equal(np.sort(order), np.arange(n))  # a permutation
    np.testing.assert_array_equal(s, np.sort(scores)[::-1])
    assert s.dtype == np.float32
    # the sorted scores and labels are those of the pairs `order` names, bit for bit
    assert np.array_equal(s.view(np.uint32), scores[order].view(np.uint32))
    assert np.array_equal(g, issame[order])


@settings(deadline=None, max_examples=40)
@given(st.integers(0, 10_000), st.sampled_from([None, 4]))
def test_float32_scores_give_the_figures_of_the_same_values_in_float64(seed, levels):
    # float32 takes sort_pairs' packed-key sort, float64 np.argsort: same values, same figures
    rng = np.random.default_rng(seed)
    issame = rng.random(300) < 0.3
    issame[:2] = [True, False]
    raw = (
        rng.normal(issame * 1.0, 1.0) if levels is None else rng.integers(-levels, levels, 300) / 3
    )
    scores = raw.astype(np.float32)
    assert verification_metrics(scores, issame) == verification_metrics(
        scores.astype(np.float64), issame
    )
