"""Leave-one-out precision@1 and mAP@R on hand-placed 2-D embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from marginface.metrics.retrieval import retrieval_metrics


def test_precision_at_1_and_map_at_r_by_hand(brute_search, circle):
    # a0 0, a1 10, a2 100, b0 50, b1 60 (degrees); c alone at 180 is indexed but never queries.
    # top R results (self excluded): a0 [a1 b0] AP 1/2; a1 [a0 b0] 1/2; a2 [b1 b0] 0;
    # b0 [b1] 1; b1 [b0] 1 -> mAP@R = 3/5, precision@1 = 4/5
    labels = np.array([0, 0, 0, 1, 1, 2])
    emb = circle([0, 10, 100, 50, 60, 180])
    out = retrieval_metrics(emb, labels, brute_search())
    assert out == {"precision@1": pytest.approx(0.8), "map@r": pytest.approx(0.6)}


def test_hit_in_second_place_counts_one_half_of_one_half(brute_search, circle):
    # a0 0, a1 20, a2 150, b0 5, b1 200 (degrees). Top R results and AP@R:
    # a0: [b0 at 5, a1 at 20] -> (1/2)(1/2) = 1/4; a1: [b0 at 15, a0 at 20] -> 1/4;
    # a2: [b1 at 50, a1 at 130] -> 1/4;
    # b0: [a0] -> 0; b1: [a2 at 50] -> 0
    labels = np.array([0, 0, 0, 1, 1])
    emb = circle([0, 20, 150, 5, 200])
    out = retrieval_metrics(emb, labels, brute_search())
    assert out["map@r"] == pytest.approx((0.25 + 0.25 + 0.25 + 0 + 0) / 5)
    assert out["precision@1"] == 0.0


def test_self_is_dropped_even_when_a_duplicate_ties_with_it(brute_search):
    # image 2 (identity 1) duplicates image 0 (identity 0): 0's nearest other image is 2, a miss
    labels = np.array([0, 0, 1, 1])
    emb = np.array([[1.0, 0.0], [0.8, 0.6], [1.0, 0.0], [0.0, 1.0]])
    out = retrieval_metrics(emb, labels, brute_search())
    # queries 0 and 2 each find the other (wrong identity); 1 finds 0/2 (tie, lower id 0: hit);
    # 3 finds 1 (cos .6) before 2 (cos 0): wrong
    assert out["precision@1"] == 0.25


def test_needs_an_identity_with_two_images(brute_search):
    with pytest.raises(ValueError, match="at least 2 images"):
        retrieval_metrics(np.eye(3), np.arange(3), brute_search())
