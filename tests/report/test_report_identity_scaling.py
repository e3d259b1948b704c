"""The "where the margin helps" table on hand-made results.json files, against scipy's paired t-interval."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from marginface.report.build import build_report

PNG = b"\x89PNG\r\n\x1a\n"
DATA = {
    "_target_": "marginface.data.FaceDataModule",
    "num_folds": 4,
    "image_size": [28, 24],
    "dataset": {"_target_": "marginface.data.synthetic.make_synthetic", "num_identities": 200},
}
NS = (10, 30)
KEYS = [(fold, seed) for fold in range(2) for seed in range(3)]
RNG = np.random.default_rng(0)
# softmax's EER per (N, fold, seed); arcface is 0.02 lower at N=30 (an effect), noise only at N=10
SOFTMAX_EER = {(n, k): 0.2 - 0.002 * n + 0.01 * RNG.random() for n in NS for k in KEYS}
WOBBLE = dict(zip(KEYS, [0.004, -0.003, 0.002, -0.004, 0.003, -0.001], strict=True))
ARCFACE_EER = {
    (n, k): SOFTMAX_EER[n, k] + (-0.02 if n == 30 else 0.0) + WOBBLE[k] for n in NS for k in KEYS
}
RANK1 = {
    (loss, n, k): 0.3 + 0.1 * RNG.random()
    for loss in ("softmax", "arcface")
    for n in NS
    for k in KEYS
}


def payload(loss: str, n: int, fold: int, seed: int, eer: float) -> dict:
    rank1 = RANK1[loss, n, (fold, seed)]
    return {
        "loss": loss,
        "seed": seed,
        "fold": fold,
        "config": {
            "data": {**DATA, "train_identities": n, "fold": fold, "seed": seed},
            "eval": {"flip": True, "distractors": 100, "artifacts": False},
            "loss": {"_target_": f"marginface.heads.{loss}"},
            "criterion": "ce",
            "fold": fold,
            "seed": seed,
        },
        "head": {"parameters": n * 16, "bytes": 64 * n},
        "closed_set": {"accuracy": 0.9 + 0.001 * n},
        "open_set": {
            "verification": {
                "auc": 0.9,
                "eer": eer,
                "tar@far=1e-3": 0.5 - eer,
                "tar@far=1e-4": None if seed == 2 else 0.3 - eer,  # unmeasured in one seed
            },
            "identification": {"rank1": 0.9},
            "identification_distractors": {"distractors": 100, "rank1": rank1},
        },
    }


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("study")
    for n in NS:
        for fold, seed in KEYS:
            for loss, eer in (("softmax", SOFTMAX_EER), ("arcface", ARCFACE_EER)):
                folder = root / f"{loss}_n{n}_f{fold}_s{seed}"
                (folder / ".hydra").mkdir(parents=True)
                run = payload(loss, n, fold, seed, eer[n, (fold, seed)])
                (folder / "results.json").write_text(json.dumps(run))
    build_report(root, root / "report", None, False, None, log=None)
    return root / "report"


def scipy_paired(diffs: list[float]) -> tuple[float, float, float]:
    d = np.asarray(diffs)
    low, high = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
    return d.mean(), low, high


def expected(metric: str, n: int) -> tuple[float, float, float, int]:
    diffs = []
    for k in KEYS:
        a, s = ARCFACE_EER[n, k], SOFTMAX_EER[n, k]
        if metric == "EER":
            diffs.append(a - s)
        elif metric == "TAR@FAR=1e-3":
            diffs.append((0.5 - a) - (0.5 - s))
        elif metric == "TAR@FAR=1e-4":
            if k[1] != 2:
                diffs.append((0.3 - a) - (0.3 - s))
        else:
            diffs.append(RANK1["arcface", n, k] - RANK1["softmax", n, k])
    return (*scipy_paired(diffs), len(diffs))


def test_scaling_csv_matches_scipy_paired_t_interval(report):
    with open(report / "identity_scaling.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["train_identities", "head", "metric", "mean", "low", "high", "n"]
    assert {r["head"] for r in rows} == {"arcface"}  # softmax is the reference, not a row
    seen = set()
    for r in rows:
        n, metric = int(r["train_identities"]), r["metric"]
        mean, low, high, count = expected(metric, n)
        assert int(r["n"]) == count
        assert float(r["mean"]) == pytest.approx(mean, abs=1e-12)
        assert float(r["low"]) == pytest.approx(low, abs=1e-9)
        assert float(r["high"]) == pytest.approx(high, abs=1e-9)
        seen.add((n, metric))
    metrics = ("EER", "TAR@FAR=1e-3", "TAR@FAR=1e-4", "rank-1, distractors")
    assert seen == {(n, m) for n in NS for m in metrics}


def test_summary_names_the_n_where_the_interval_excludes_zero(report):
    text = (report / "report.md").read_text()
    assert "### Where the margin helps" in text
    summary = text.split("## 5.")[1]
    line = next(s for s in summary.splitlines() if "arcface minus softmax" in s)
    eer = line.split("EER: ")[1].split(";")[0]
    mean30, low30, high30, _ = expected("EER", 30)
    assert high30 < 0 and f"N=30 better ({mean30:+.3f}" in eer  # lower EER is better
    _, low10, high10, _ = expected("EER", 10)
    assert low10 < 0 < high10 and "not shown at N = 10" in line
    assert (report / "identity_scaling.png").read_bytes()[:8] == PNG


def test_a_head_setting_has_one_label_at_every_n(tmp_path):
    # N=10 holds arcface at two margins, N=30 only one of them: it must still read as that margin
    runs = [("softmax", None, n) for n in NS] + [("arcface", 0.25, n) for n in NS]
    runs.append(("arcface", 0.5, 10))
    for loss, margin, n in runs:
        for fold, seed in KEYS:
            run = payload(loss, n, fold, seed, SOFTMAX_EER[n, (fold, seed)] - 0.01)
            if margin is not None:
                run["config"]["loss"]["margin"] = margin
            if n == 30:  # runs from after malloc_keep existed: speed only, never part of a label
                run["config"]["malloc_keep"] = True
            folder = tmp_path / f"{loss}{margin}_n{n}_f{fold}_s{seed}"
            folder.mkdir()
            (folder / "results.json").write_text(json.dumps(run))
    from marginface.report.runs import collect

    rows = {
        group.protocol["data"]["train_identities"]: sorted(group.rows())
        for group in collect(tmp_path).groups
    }
    assert rows == {
        10: ["arcface (loss.margin=0.25)", "arcface (loss.margin=0.5)", "softmax"],
        30: ["arcface (loss.margin=0.25)", "softmax"],
    }
    build_report(tmp_path, tmp_path / "report", None, False, None, log=None)
    with open(tmp_path / "report" / "identity_scaling.csv") as f:
        heads = {(int(r["train_identities"]), r["head"]) for r in csv.DictReader(f)}
    assert heads == {
        (10, "arcface (loss.margin=0.25)"),
        (10, "arcface (loss.margin=0.5)"),
        (30, "arcface (loss.margin=0.25)"),
    }
