"""Pair enumeration, deterministic sampling and chunked cosine scores."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marginface.metrics.pairs import (
    all_pairs,
    genuine_pairs,
    pair_scores,
    pairs_for,
    sampled_pairs,
)


def test_all_pairs_by_hand():
    i, j, same = all_pairs(np.array([7, 7, 3, 7]))
    assert i.tolist() == [0, 0, 0, 1, 1, 2]
    assert j.tolist() == [1, 2, 3, 2, 3, 3]
    assert same.tolist() == [True, False, True, False, True, False]
    assert i.dtype == j.dtype == np.int64


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=0, max_size=30))
def test_genuine_pairs_are_the_genuine_subset_of_all_pairs(labels):
    labels = np.array(labels, dtype=np.int64)
    i, j, same = all_pairs(labels)
    gi, gj = genuine_pairs(labels)
    np.testing.assert_array_equal(gi, i[same])
    np.testing.assert_array_equal(gj, j[same])


def check_valid(labels, i, j, same, max_pairs):
    assert len(i) <= max_pairs
    assert (i < j).all()
    assert len(np.unique(i * len(labels) + j)) == len(i)  # no repeats
    np.testing.assert_array_equal(same, labels[i] == labels[j])
    assert (np.diff(i * len(labels) + j) > 0).all()  # ordered by i then j


def test_sampled_pairs_keep_every_genuine_pair_when_they_fit():
    labels = np.repeat(np.arange(10), 4)  # 60 genuine pairs of 780
    i, j, same = sampled_pairs(labels, 200, seed=3)
    check_valid(labels, i, j, same, 200)
    assert len(i) == 200 and same.sum() == 60
    again = sampled_pairs(labels, 200, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((i, j, same), again, strict=True))
    other = sampled_pairs(labels, 200, seed=4)
    assert not np.array_equal(i, other[0])


def test_sampled_pairs_halve_the_budget_when_genuine_pairs_are_many():
    labels = np.repeat(np.arange(3), 10)  # 135 genuine pairs, 300 impostor
    i, j, same = sampled_pairs(labels, 100, seed=0)
    check_valid(labels, i, j, same, 100)
    assert same.sum() == 50 and (~same).sum() == 50


def test_sampled_pairs_on_many_images_use_rejection_sampling():
    labels = np.random.default_rng(0).integers(0, 1000, 4000)  # 8 million pairs
    i, j, same = sampled_pairs(labels, 20_000, seed=1)
    check_valid(labels, i, j, same, 20_000)
    assert len(i) == 20_000
    assert same.sum() == len(genuine_pairs(labels)[0])  # about 8000: all kept


def test_pairs_for_chooses():
    labels = np.repeat(np.arange(4), 3)  # 66 pairs
    assert len(pairs_for(labels)[0]) == 66
    assert len(pairs_for(labels, max_pairs=66)[0]) == 66
    assert len(pairs_for(labels, max_pairs=20)[0]) == 20


def test_pair_scores_are_cosines_in_chunks():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(9, 5)) * rng.uniform(0.1, 10, size=(9, 1))
    i, j, _ = all_pairs(np.zeros(9))
    u = e / np.linalg.norm(e, axis=1, keepdims=True)
    expected = (u[i] * u[j]).sum(axis=1)
    np.testing.assert_allclose(pair_scores(e, i, j, chunk=4), expected, atol=1e-6)  # gathered
    np.testing.assert_allclose(pair_scores(e, i, j), expected, atol=1e-6)  # Gram blocks
    perm = np.random.default_rng(1).permutation(len(i))
    np.testing.assert_allclose(pair_scores(e, i[perm], j[perm]), expected[perm], atol=1e-6)
    assert pair_scores(e, i, j).dtype == np.float32
    with pytest.raises(ValueError, match="zero norm"):
        pair_scores(np.zeros((2, 3)), [0], [1])
