"""Open-set identification on a hand-built gallery of 2-D embeddings at known angles."""

from __future__ import annotations

import numpy as np
import pytest

from marginface.metrics.identification import identification_metrics, split_gallery_probes

LABELS = np.repeat(np.arange(4), 3)  # 4 identities x 3 images; 2 get enrolled


def hand_built(unit_circle):
    """Place every image of LABELS by its role in the seed-0 split (angles in degrees)."""
    split = split_gallery_probes(LABELS, seed=0)
    a, b = LABELS[split.gallery]
    angles = np.zeros(len(LABELS))
    angles[split.gallery] = [0, 90]  # gallery A at 0, B at 90
    # mated: A at 10 (rank 1, cos 10 = .985), A at 80 (B is nearer: rank 2),
    # B at 95 (rank 1, cos 5 = .996), B at 140 (rank 1, cos 50 = .643)
    angles[split.mated[LABELS[split.mated] == a]] = [10, 80]
    angles[split.mated[LABELS[split.mated] == b]] = [95, 140]
    # non-mated best gallery scores: 345 -> .966, 330 -> .866, 300 -> .5, 180 -> 0 (B),
    # 200 -> -.342 (B), 225 -> -.707
    angles[split.nonmated] = [345, 330, 300, 180, 200, 225]
    return unit_circle(angles)


def test_split_is_a_deterministic_partition():
    labels = np.random.default_rng(0).integers(0, 20, 200)
    split = split_gallery_probes(labels, seed=5)
    all_idx = np.concatenate((split.gallery, split.mated, split.nonmated))
    assert sorted(all_idx.tolist()) == list(range(200))
    enrolled = labels[split.gallery]
    assert len(np.unique(enrolled)) == len(enrolled) == 10  # one image per enrolled identity
    assert set(labels[split.mated]) <= set(enrolled)
    assert not set(labels[split.nonmated]) & set(enrolled)
    again = split_gallery_probes(labels, seed=5)
    assert np.array_equal(split.gallery, again.gallery)
    assert not np.array_equal(split.gallery, split_gallery_probes(labels, seed=6).gallery)


def test_rank_k_and_dir_at_fpir_by_hand(brute_search, circle):
    out = identification_metrics(
        hand_built(circle), LABELS, brute_search(), ranks=(1, 2, 5), fpirs=(0.1, 0.2, 0.5)
    )
    assert out["rank1"] == 0.75  # all but A at 80
    assert out["rank2"] == 1.0
    assert out["rank5"] == 1.0  # only 2 gallery entries: every mate is found
    assert out["dir@fpir=1e-1"] is None  # 0.1 * 6 non-mated < 1
    # FPIR 0.2: one false alarm allowed, t = .866; rank-1 mates above it: .985 and .996
    assert out["dir@fpir=2e-1"] == 0.5
    # FPIR 0.5: three allowed, t = 0 (.966 .866 .5 above it); .643 passes too
    assert out["dir@fpir=5e-1"] == 0.75


def test_matches_a_full_similarity_matrix(brute_search):
    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(30), 5)
    centres = rng.normal(size=(30, 8))
    emb = centres[labels] + 0.8 * rng.normal(size=(150, 8))
    out = identification_metrics(emb, labels, brute_search(), seed=1, fpirs=(0.1,))
    split = split_gallery_probes(labels, seed=1)
    u = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sims = u[split.mated] @ u[split.gallery].T
    mate = labels[split.mated][:, None] == labels[split.gallery][None, :]
    mate_score = sims[mate]
    rank = (sims > mate_score[:, None]).sum(axis=1)  # entries strictly better than the mate
    assert out["rank1"] == pytest.approx(np.mean(rank == 0))
    assert out["rank5"] == pytest.approx(np.mean(rank < 5))
    best_nonmated = (u[split.nonmated] @ u[split.gallery].T).max(axis=1)
    t = np.sort(best_nonmated)[::-1][int(0.1 * len(best_nonmated))]
    assert out["dir@fpir=1e-1"] == pytest.approx(np.mean((rank == 0) & (mate_score > t)))


def test_errors_say_what_is_missing(brute_search):
    with pytest.raises(ValueError, match="at least 2 identities"):
        identification_metrics(np.eye(3), np.zeros(3), brute_search())
    with pytest.raises(ValueError, match="no mated probes"):
        identification_metrics(np.eye(4), np.arange(4), brute_search())
    with pytest.raises(ValueError, match="gallery_fraction"):
        split_gallery_probes(LABELS, gallery_fraction=1.0)


def test_distractors_take_rank1_and_raise_the_non_mated_scores_by_hand(brute_search, circle):
    """One distractor at 130 degrees in the hand-built gallery (A at 0, B at 90)."""
    embeddings = hand_built(circle)
    distractor = circle(np.array([130.0]))
    out = identification_metrics(
        embeddings,
        LABELS,
        brute_search(),
        ranks=(1, 2, 5),
        fpirs=(0.2, 0.5),
        distractors=distractor,
    )
    # B at 140 is now nearer the distractor (10 deg) than B (50 deg): rank 2; A at 80 falls to
    # rank 3 (B at 10 deg, distractor at 50 deg, A at 80 deg); A at 10 and B at 95 keep rank 1
    assert out["rank1"] == 0.5
    assert out["rank2"] == 0.75
    assert out["rank5"] == 1.0
    # best non-mated scores: .966 .866 .643 (180 vs 130) .5 .342 (200 vs 130) -.087 (225 vs 130)
    # FPIR 0.2: t = .866, mates above it at rank 1: A at 10 and B at 95
    assert out["dir@fpir=2e-1"] == 0.5
    # FPIR 0.5: t = .5; B at 140 lost rank 1, so 0.5 instead of 0.75 without the distractor
    assert out["dir@fpir=5e-1"] == 0.5
    plain = identification_metrics(embeddings, LABELS, brute_search(), fpirs=(0.5,))
    assert plain["rank1"] == 0.75 and plain["dir@fpir=5e-1"] == 0.75


def test_distractors_of_another_width_are_refused(brute_search, circle):
    with pytest.raises(ValueError, match="distractors must be"):
        identification_metrics(
            hand_built(circle), LABELS, brute_search(), distractors=np.ones((2, 3))
        )
