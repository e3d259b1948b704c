"""The cross-checkpoint group on hand-made runs: a row per checkpoint, apart from in-domain runs,
paired differences only where the same pairs were scored, the bootstrap against numpy."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np

from marginface.metrics.verification import auc, eer
from marginface.report.checkpoints import bootstrap_difference, paired_on_same_pairs
from marginface.report.runs import collect

FOLDER = {
    "_target_": "marginface.data.FaceDataModule",
    "split": "unseen",
    "image_size": [56, 48],
    "dataset": {"_target_": "marginface.data.folder.load_folder", "root": "/faces"},
}
ORL = {"_target_": "marginface.data.FaceDataModule", "dataset": {"_target_": "x.load_orl"}}


def evaluation(loss: str, seed: int, sha1: str, data=FOLDER, auc_value=0.9) -> dict:
    return {
        "loss": loss,
        "seed": 0,
        "fold": 0,
        "config": {"data": data, "eval": {"pairs": "all"}, "ckpt_path": f"/ckpt/{loss}{seed}"},
        "head": None,
        "closed_set": {"accuracy": None},
        "open_set": {"verification": {"auc": auc_value, "eer": 0.1}},
        "timing": {},
        "checkpoint": {
            "path": f"/ckpt/{loss}{seed}",
            "loss": loss,
            "seed": seed,
            "fold": 2,
            "data": ORL,
        },
        "pairs": {"count": 300, "sha1": sha1},
    }


def write(folder: Path, payload: dict, scores: np.ndarray, issame: np.ndarray) -> None:
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(payload))
    np.savez(folder / "scores.npz", scores=scores, issame=issame)


def test_checkpoints_get_rows_of_their_own_and_pair_on_the_same_pairs(tmp_path):
    rng = np.random.default_rng(0)
    issame = rng.random(300) < 0.3
    base = rng.normal(0.2 + 0.4 * issame, 0.2)
    write(tmp_path / "0", evaluation("softmax", 0, "aaa"), base, issame)
    write(tmp_path / "1", evaluation("arcface", 0, "aaa"), base + 0.1 * issame, issame)
    write(tmp_path / "2", evaluation("cosface", 0, "bbb"), base, issame)  # other pairs
    in_domain = copy.deepcopy(evaluation("softmax", 0, "aaa", data={**FOLDER, "split": "folds"}))
    del in_domain["checkpoint"]
    write(tmp_path / "3", in_domain, base, issame)
    groups = collect(tmp_path).groups
    assert sorted((g.checkpoints, len(g.runs)) for g in groups) == [(False, 1), (True, 3)]
    group = next(g for g in groups if g.checkpoints)
    assert list(group.rows()) == [
        "softmax, trained on ORL faces fold 2, seed 0",
        "cosface, trained on ORL faces fold 2, seed 0",
        "arcface, trained on ORL faces fold 2, seed 0",
    ]
    paired = paired_on_same_pairs(group, resamples=50)
    assert {p.row for p in paired} == {"arcface, trained on ORL faces fold 2, seed 0"}
    by_metric = {p.metric: p for p in paired}
    better = base + 0.1 * issame
    assert np.isclose(by_metric["EER"].difference, eer(better, issame) - eer(base, issame))
    assert np.isclose(by_metric["AUC"].difference, auc(better, issame) - auc(base, issame))
    assert by_metric["AUC"].difference > 0 and by_metric["AUC"].shown


def test_bootstrap_difference_resamples_pairs_jointly():
    rng = np.random.default_rng(1)
    issame = rng.random(200) < 0.5
    a = rng.normal(issame * 1.0, 1.0)
    b = a + 0.5 * issame
    diff, lo, hi = bootstrap_difference(a, b, issame, auc, resamples=100, seed=3)
    expected = []
    draw = np.random.default_rng(3)
    for _ in range(100):
        pick = draw.integers(0, 200, size=200)
        expected.append(auc(b[pick], issame[pick]) - auc(a[pick], issame[pick]))
    assert np.isclose(diff, auc(b, issame) - auc(a, issame))
    assert np.allclose([lo, hi], np.percentile(expected, [2.5, 97.5]))
    assert bootstrap_difference(a, b, np.ones(200, bool), auc) == (None, None, None)
