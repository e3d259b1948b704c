"""The results.json "open_set" block: keys, JSON safety, angles and input validation."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from marginface.metrics.openset import open_set_metrics
from marginface.metrics.pairs import pairs_for
from marginface.metrics.quality import error_versus_reject
from marginface.metrics.verification import verification_metrics
from marginface.results import OPEN_SET_KEYS

CONTRACT = {block: list(keys) for block, keys in OPEN_SET_KEYS.items()}


def clustered(n_ids=12, per_id=5, dim=8, noise=0.7, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_ids), per_id)
    emb = rng.normal(size=(n_ids, dim))[labels] + noise * rng.normal(size=(len(labels), dim))
    return emb.astype(np.float32), labels


def test_block_matches_the_contract_and_is_json_safe(brute_search):
    emb, labels = clustered()
    norms = np.linalg.norm(emb, axis=1)
    block, scores, issame, _ = open_set_metrics(emb, labels, brute_search, seed=0, quality=norms)
    assert {k: list(v) for k, v in block.items()} == CONTRACT
    json.dumps(block, allow_nan=False)
    for name, part in block.items():
        if name != "quality":  # its curve is lists, one entry per rejected share
            assert all(v is None or type(v) is float for v in part.values())
    assert block["verification"]["tar@far=1e-4"] is None  # 1650 impostor pairs: not measurable
    assert len(scores) == 60 * 59 // 2 and issame.sum() == 12 * 10
    assert block["verification"] == verification_metrics(scores, issame)
    assert brute_search.builds == 2  # identification and retrieval each got a fresh search
    i, j, _ = pairs_for(labels, None, 0)
    assert block["quality"] == error_versus_reject(scores, issame, i, j, norms, far=1e-3)


def test_quality_block_is_null_without_quality_and_checks_its_length(brute_search):
    emb, labels = clustered()
    assert open_set_metrics(emb, labels, brute_search)[0]["quality"] is None
    with pytest.raises(ValueError, match="one value per embedding"):
        open_set_metrics(emb, labels, brute_search, quality=np.ones(len(emb) - 1))


def test_scale_of_embeddings_does_not_matter(brute_search):
    emb, labels = clustered(seed=1)
    scaled = emb * np.random.default_rng(0).uniform(0.01, 100, size=(len(emb), 1))
    a = open_set_metrics(emb, labels, brute_search)[0]
    b = open_set_metrics(scaled, labels, brute_search)[0]
    for part in CONTRACT:
        if part != "quality":  # null here: no quality given
            assert a[part] == pytest.approx(b[part], abs=1e-5)


def test_angles_by_hand(brute_search, circle):
    # identity 0 at 0 and 30 degrees, identity 1 at 90 and 150: genuine angles 30 and 60,
    # impostor angles 90, 150, 60, 120 -> means 45 and 105
    emb = circle([0, 30, 90, 150])
    block, _, _, _ = open_set_metrics(emb, np.array([0, 0, 1, 1]), brute_search, n_folds=2)
    assert block["angles"]["genuine_mean_deg"] == pytest.approx(45, abs=1e-4)
    assert block["angles"]["impostor_mean_deg"] == pytest.approx(105, abs=1e-4)


def test_given_and_sampled_pairs(brute_search):
    emb, labels = clustered()
    _, scores, issame, _ = open_set_metrics(emb, labels, brute_search, max_pairs=500)
    assert len(scores) == 500 and issame.sum() == 120
    i, j = np.array([0, 0, 5, 1]), np.array([1, 5, 6, 9])
    _, scores, issame, _ = open_set_metrics(emb, labels, brute_search, pairs=(i, j), n_folds=2)
    assert issame.tolist() == [True, False, True, False]
    with pytest.raises(ValueError, match="disagrees"):
        open_set_metrics(emb, labels, brute_search, pairs=(i, j, ~issame), n_folds=2)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda e, y: (np.where(np.arange(len(e))[:, None] == 3, np.nan, e), y), "NaN or Inf"),
        (lambda e, y: (np.where(np.arange(len(e))[:, None] == 0, np.inf, e), y), "NaN or Inf"),
        (lambda e, y: (e * (np.arange(len(e)) != 2)[:, None], y), "all zeros"),
        (lambda e, y: (e, np.zeros_like(y)), "at least 2 identities"),
        (lambda e, y: (e, np.arange(len(y))), "at least 2 images"),
        (lambda e, y: (e[:, 0], y), r"\(N, D\)"),
    ],
)
def test_bad_input_is_refused_with_a_reason(brute_search, change, match):
    emb, labels = clustered()
    emb, labels = change(emb, labels)
    with pytest.raises(ValueError, match=match):
        open_set_metrics(emb, labels, brute_search)


def test_metrics_never_import_faiss():
    code = "import sys, marginface.metrics; assert 'faiss' not in sys.modules, 'faiss imported'"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert out.returncode == 0, out.stderr.decode()
