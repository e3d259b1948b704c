"""The report builder on a hand-made multirun: numbers against scipy, broken runs listed, groups apart, figures written."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from marginface.report.build import build_report
from marginface.report.runs import collect

PNG = b"\x89PNG\r\n\x1a\n"
ORL = {
    "_target_": "marginface.data.FaceDataModule",
    "num_folds": 4,
    "image_size": [56, 48],
    "dataset": {"_target_": "marginface.data.orl.load_orl", "root": None},
}
SYNTHETIC = {
    "_target_": "marginface.data.FaceDataModule",
    "num_folds": 6,
    "image_size": [28, 24],
    "dataset": {"_target_": "marginface.data.synthetic.make_synthetic", "num_identities": 1200},
}

# hand-made figures per (fold, seed): arcface's AUC is softmax's + 0.05 (+-0.002, an effect),
# its closed-set accuracy differs by +-0.01 alternately (no effect: the mean difference is 0)
KEYS = [(0, 0), (0, 1), (1, 0), (1, 1)]
SOFTMAX_AUC = [0.90, 0.92, 0.88, 0.91]
ARCFACE_AUC = [0.951, 0.969, 0.932, 0.959]
SOFTMAX_ACC = [0.95, 0.97, 0.96, 0.94]
ARCFACE_ACC = [0.96, 0.96, 0.97, 0.93]
MSE_ACC = [0.50, 0.55, 0.45, 0.52]


def results(loss, fold, seed, data, auc, acc, criterion="ce", eer=0.1):
    return {
        "loss": loss,
        "seed": seed,
        "fold": fold,
        "config": {
            "data": {**data, "fold": fold, "seed": seed, "batch_size": 32},
            "eval": {"flip": True, "max_pairs": None, "artifacts": True},
            "loss": {"_target_": f"marginface.heads.{loss}"},
            "criterion": criterion,
            "trainer": {"max_epochs": 5, "enable_progress_bar": False},
            "paths": {"output_dir": f"/somewhere/{loss}{fold}{seed}"},
            "fold": fold,
            "seed": seed,
        },
        "head": {"parameters": 30 * 128, "bytes": 4 * 30 * 128},
        "closed_set": {"accuracy": acc},
        "open_set": {
            "verification": {
                "auc": auc,
                "eer": eer,
                "accuracy_10fold": 0.9,
                "accuracy_10fold_std": 0.01,
                "tar@far=1e-1": 0.9,
                "tar@far=1e-2": 0.8,
                "tar@far=1e-3": None,
                "tar@far=1e-4": None,
            },
            "identification": {
                "rank1": 0.9,
                "rank5": 0.95,
                "dir@fpir=1e-1": 0.7,
                "dir@fpir=1e-2": None,
            },
            "retrieval": {"precision@1": 0.9, "map@r": 0.6},
            "angles": {"genuine_mean_deg": 40.0, "impostor_mean_deg": 80.0},
        },
        "timing": {"train_s": 60.0 + fold, "eval_s": 1.0, "images_per_s": 100.0},
    }


def write_run(folder: Path, payload: dict, extras: bool = True) -> Path:
    (folder / ".hydra").mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(payload))
    if extras:
        rng = np.random.default_rng(payload["fold"] * 10 + payload["seed"])
        issame = rng.random(400) < 0.3
        scores = np.clip(rng.normal(0.2 + 0.5 * issame, 0.15), -1, 1).astype(np.float32)
        np.savez(folder / "scores.npz", scores=scores, issame=issame)
        (folder / "csv").mkdir()
        lines = ["epoch,open_set/eer,step,train/accuracy,train/loss_epoch,val/accuracy"]
        for e in range(3):
            lines += [
                f"{e},{0.3 - 0.05 * e},{e},,,{0.5 + 0.1 * e}",
                f"{e},,{e},{0.4 + 0.1 * e},{2.0 - 0.5 * e},",
            ]
        (folder / "csv" / "metrics.csv").write_text("\n".join(lines) + "\n")
        hist = [0] * 20
        hist[-1] = 5
        conf = {
            "n": 5,
            "max_prob_mean": 0.95,
            "max_prob_over_0.9": 0.8,
            "entropy_mean_nats": 0.1,
            "entropy_share_mean": 0.05,
            "max_prob_hist": hist,
            "entropy_share_hist": hist[::-1],
        }
        diag = {
            "confidence": {
                "closed_set": conf,
                "open_set": {**conf, "max_prob_mean": 0.8 + 0.01 * payload["seed"]},
            },
            "kl_identity": {"n": 10, "kl_mean": 0.01, "max_abs_gap": 1e-16},
            "angles": {
                "closed_set": {
                    "w_ex_deg": 30.0,
                    "w_inter_deg": 70.0,
                    "intra_deg": 20.0,
                    "inter_deg": 60.0,
                },
                "open_set": {"intra_deg": 35.0, "inter_deg": 50.0},
            },
        }
        (folder / "diagnostics.json").write_text(json.dumps(diag))
    return folder


@pytest.fixture(scope="module")
def fake_multirun(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("multirun")
    job = 0
    for k, (fold, seed) in enumerate(KEYS):
        for loss, auc, acc, criterion in (
            ("softmax", SOFTMAX_AUC[k], SOFTMAX_ACC[k], "ce"),
            ("arcface", ARCFACE_AUC[k], ARCFACE_ACC[k], "ce"),
            ("softmax", SOFTMAX_AUC[k], MSE_ACC[k], "mse"),
        ):
            name = f"{job}_criterion={criterion},fold={fold},loss={loss},seed={seed}"
            write_run(root / "orl" / name, results(loss, fold, seed, ORL, auc, acc, criterion))
            job += 1
        # the same heads on synthetic data: very different numbers that must never mix with ORL's
        for loss in ("softmax", "arcface"):
            write_run(
                root / "synthetic" / f"{loss}{fold}{seed}",
                results(loss, fold, seed, SYNTHETIC, 0.5, 0.1),
                extras=False,
            )
    # a failed run, a corrupt results.json, one without the schema, and an older rerun
    failed = root / "orl" / "99_fold=3,loss=arcface,seed=0"
    (failed / ".hydra").mkdir(parents=True)
    (failed / "train.log").write_text("[INFO] - start\nRuntimeError: the loss is NaN\n")
    crashed = root / "orl" / "96_fold=3,loss=softmax,seed=0"
    (crashed / ".hydra").mkdir(parents=True)
    (crashed / "error.txt").write_text("FloatingPointError: NaN embeddings\n\ntraceback...\n")
    corrupt = root / "orl" / "98_corrupt"
    (corrupt / ".hydra").mkdir(parents=True)
    (corrupt / "results.json").write_text('{"loss": "arcface", "fold": ')
    (root / "orl" / "97_schema").mkdir()
    (root / "orl" / "97_schema" / "results.json").write_text('{"loss": "arcface"}')
    old = write_run(
        root / "orl" / "old_rerun", results("arcface", 0, 0, ORL, 0.1, 0.1), extras=False
    )
    os.utime(old / "results.json", (1_000_000, 1_000_000))
    return root


@pytest.fixture(scope="module")
def report(fake_multirun, tmp_path_factory):
    from marginface.experiments import scaling

    heads = scaling.head_configs(names=["softmax", "arcface"])
    data = scaling.measure(
        heads,
        classes=(10, 100, 1000),
        dim=8,
        batch=4,
        repeats=1,
        warmup=0,
        max_bytes=40_000,
        log=None,
    )
    out = tmp_path_factory.mktemp("report")
    return build_report(fake_multirun, out, scaling_data=data, log=None)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def cell(rows, group_word, row, metric):
    found = [
        r for r in rows if group_word in r["group"] and r["row"] == row and r["metric"] == metric
    ]
    assert len(found) == 1, (group_word, row, metric, found)
    return found[0]


def t_interval(values):
    values = np.asarray(values, dtype=float)
    return stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))


def test_means_and_intervals_match_scipy(report):
    rows = read_csv(report.parent / "comparison.csv")
    got = cell(rows, "ORL", "arcface", "AUC")
    lo, hi = t_interval(ARCFACE_AUC)
    assert int(got["n"]) == 4
    assert float(got["mean"]) == pytest.approx(np.mean(ARCFACE_AUC), abs=1e-12)
    assert (float(got["ci95_lo"]), float(got["ci95_hi"])) == pytest.approx((lo, hi), abs=1e-12)
    # unmeasurable figures (null in results.json) are counted as missing, not as zero
    assert cell(rows, "ORL", "arcface", "TAR@FAR=1e-3")["n"] == "0"
    # the two softmax recipes (ce / mse) are separate rows, never averaged together
    ce = cell(rows, "ORL", "softmax (criterion=ce)", "closed-set accuracy")
    mse = cell(rows, "ORL", "softmax (criterion=mse)", "closed-set accuracy")
    assert float(ce["mean"]) == pytest.approx(np.mean(SOFTMAX_ACC))
    assert float(mse["mean"]) == pytest.approx(np.mean(MSE_ACC))


def assert_paired_auc(rows, row, diff):
    """The ORL `row`'s AUC difference in a paired CSV: 4 pairs, shown, mean and interval of `diff`."""
    auc = cell(rows, "ORL", row, "AUC")
    lo, hi = t_interval(diff)
    assert int(auc["n_pairs"]) == 4 and auc["shown"] == "True"
    assert float(auc["mean_diff"]) == pytest.approx(diff.mean(), abs=1e-12)
    assert (float(auc["ci95_lo"]), float(auc["ci95_hi"])) == pytest.approx((lo, hi), abs=1e-12)


def test_paired_differences_match_scipy(report):
    rows = read_csv(report.parent / "paired.csv")
    assert_paired_auc(rows, "arcface", np.subtract(ARCFACE_AUC, SOFTMAX_AUC))
    acc = cell(rows, "ORL", "arcface", "closed-set accuracy")
    assert float(acc["mean_diff"]) == pytest.approx(0.0, abs=1e-12) and acc["shown"] == "False"
    text = report.read_text()
    assert "not shown on this data" in text
    summary = text.split("## 5.")[1].split("## Runs not used")[0]
    arcface = next(line for line in summary.splitlines() if "arcface vs softmax" in line)
    assert "(4 paired runs): better on AUC" in arcface
    assert "closed-set accuracy" in arcface.split("not shown on this data:")[1]
    assert "TAR@FAR=1e-3" in arcface.split("too few measured pairs")[1]


def test_every_head_is_also_paired_against_arcface(report):
    rows = read_csv(report.parent / "paired_arcface.csv")
    assert_paired_auc(rows, "softmax (criterion=ce)", np.subtract(SOFTMAX_AUC, ARCFACE_AUC))
    assert not [r for r in rows if r["row"] == "arcface"]  # the reference is not paired with itself
    text = report.read_text()
    assert "**Paired against arcface**" in text
    summary = text.split("## 5.")[1].split("## Runs not used")[0]
    line = next(x for x in summary.splitlines() if "softmax (criterion=ce) vs arcface" in x)
    assert "better on nothing shown; worse on AUC" in line


def test_groups_with_different_data_are_kept_apart(fake_multirun, report):
    collection = collect(fake_multirun)
    titles = [g.title for g in collection.groups]
    assert (
        len(titles) == 2
        and any("ORL" in t for t in titles)
        and any("SYNTHETIC" in t for t in titles)
    )
    rows = read_csv(report.parent / "comparison.csv")
    synthetic = cell(rows, "SYNTHETIC", "softmax", "AUC")
    assert float(synthetic["mean"]) == pytest.approx(0.5) and synthetic["n"] == "4"
    assert float(cell(rows, "ORL", "softmax (criterion=ce)", "AUC")["mean"]) == pytest.approx(
        np.mean(SOFTMAX_AUC)
    )


def test_broken_and_superseded_runs_are_listed_and_skipped(fake_multirun, report):
    collection = collect(fake_multirun)
    problems = {p.path.name: p.reason for p in collection.problems}
    assert (
        "started (.hydra present) but wrote no results.json"
        in problems["99_fold=3,loss=arcface,seed=0"]
    )
    assert "RuntimeError: the loss is NaN" in problems["99_fold=3,loss=arcface,seed=0"]
    assert (
        "error.txt: FloatingPointError: NaN embeddings" in problems["96_fold=3,loss=softmax,seed=0"]
    )
    assert "does not parse" in problems["98_corrupt"]
    assert "lacks" in problems["97_schema"]
    assert [p.path.name for p in collection.superseded] == ["old_rerun"]
    text = report.read_text().split("## Runs not used")[1]
    for name in ("99_fold=3,loss=arcface,seed=0", "98_corrupt", "97_schema", "old_rerun"):
        assert name in text


def test_every_figure_is_written(report):
    text = report.read_text()
    linked = [
        line.split("](")[1].rstrip(")") for line in text.splitlines() if line.startswith("![")
    ]
    names = {Path(p).name for p in linked}
    for suffix in (
        "_closed_vs_open.png",
        "_angles.png",
        "_angle_stats.png",
        "_ce_vs_mse.png",
        "_confidence.png",
    ):
        assert any(n.startswith("orl-") and n.endswith(suffix) for n in names), suffix
    assert {"head_scaling.png", "ce_vs_mse_gradient.png"} <= names
    for p in linked:
        assert (report.parent / p).read_bytes()[:8] == PNG, p


def test_a_margin_sweep_gives_one_row_per_margin_each_paired_with_softmax(tmp_path):
    from marginface.report.aggregate import paired_table

    for fold in (0, 1):
        write_run(tmp_path / f"s{fold}", results("softmax", fold, 0, ORL, 0.90, 0.9), extras=False)
        for margin in (0.1, 0.5):
            payload = results("arcface", fold, 0, ORL, 0.90 + margin / 10, 0.9)
            payload["config"]["loss"]["margin"] = margin
            write_run(tmp_path / f"a{fold}{margin}", payload, extras=False)
    (group,) = collect(tmp_path).groups
    assert list(group.rows()) == [
        "softmax",
        "arcface (loss.margin=0.1)",
        "arcface (loss.margin=0.5)",
    ]
    paired = paired_table(group)
    auc = {row: next(p for p in items if p.metric.name == "AUC") for row, items in paired.items()}
    assert auc["arcface (loss.margin=0.5)"].interval.mean == pytest.approx(0.05)
    assert auc["arcface (loss.margin=0.1)"].pairs == [(0, 0), (1, 0)]


def test_with_the_reference_head_in_several_settings_one_row_is_the_partner(tmp_path):
    from marginface.report.aggregate import baseline_row, paired_table

    # arcface at margin 0.5 as configured (no loss.* override) and at 0.1 (an override), and
    # curricularface; per fold AUCs chosen so that each pairing gives a known difference
    auc = {"arc0.5": [0.90, 0.94], "arc0.1": [0.93, 0.95], "curricularface": [0.80, 0.86]}
    for fold in (0, 1):
        for name, values in auc.items():
            loss = "curricularface" if name == "curricularface" else "arcface"
            payload = results(loss, fold, 0, ORL, values[fold], 0.9)
            overrides = [f"loss={loss}"]
            if name.startswith("arc"):
                payload["config"]["loss"]["margin"] = float(name[3:])
                if name == "arc0.1":
                    overrides.append("loss.margin=0.1")
            folder = write_run(tmp_path / f"{name}{fold}", payload, extras=False)
            (folder / ".hydra" / "overrides.yaml").write_text(
                "".join(f"- {o}\n" for o in overrides)
            )
    (group,) = collect(tmp_path).groups
    assert baseline_row(group, "arcface") == "arcface (loss.margin=0.5)"
    assert baseline_row(group, "softmax") is None
    paired = paired_table(group, reference="arcface")
    assert set(paired) == {"arcface (loss.margin=0.1)", "curricularface"}
    got = {row: next(p for p in items if p.metric.name == "AUC") for row, items in paired.items()}
    for row, name in (
        ("arcface (loss.margin=0.1)", "arc0.1"),
        ("curricularface", "curricularface"),
    ):
        diff = np.subtract(auc[name], auc["arc0.5"])
        assert got[row].interval.mean == pytest.approx(diff.mean(), abs=1e-12)
        lo, hi = t_interval(diff)
        assert (got[row].interval.lo, got[row].interval.hi) == pytest.approx((lo, hi), abs=1e-12)
    # every setting overridden: the row with the most runs is the partner
    (tmp_path / "arc0.50" / ".hydra" / "overrides.yaml").write_text("- loss.margin=0.5\n")
    write_run(tmp_path / "arc0.1extra", results("arcface", 2, 0, ORL, 0.9, 0.9), extras=False)
    extra = tmp_path / "arc0.1extra"
    payload = json.loads((extra / "results.json").read_text())
    payload["config"]["loss"]["margin"] = 0.1
    (extra / "results.json").write_text(json.dumps(payload))
    (extra / ".hydra" / "overrides.yaml").write_text("- loss.margin=0.1\n")
    (group,) = collect(tmp_path).groups
    assert baseline_row(group, "arcface") == "arcface (loss.margin=0.1)"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ("- loss=arcface\n- seed=1\n", False),
        ("- loss=arcface\n- loss.margin=0.25\n", True),
        ("- '+loss.margin=0.25'\n", True),
        ("- ++loss.scale=64\n", True),
        ("- ~loss.margin\n", True),
        ("- data.loss_weight=2\n- +trainer.losses=1\n", False),
        (None, False),
    ],
)
def test_head_overridden_reads_hydra_prefixes(tmp_path, overrides, expected):
    folder = write_run(tmp_path / "run", results("arcface", 0, 0, ORL, 0.9, 0.9))
    if overrides is not None:
        (folder / ".hydra").mkdir(exist_ok=True)
        (folder / ".hydra" / "overrides.yaml").write_text(overrides)
    else:
        (folder / ".hydra" / "overrides.yaml").unlink(missing_ok=True)
    (run,) = collect(tmp_path).runs
    assert run.head_overridden is expected


def test_angle_histograms_read_cosines_beside_normalised_scores(tmp_path):
    """An eval.score_norm run keeps S-norm scores (not cosines) and its cosines in scores.npz."""
    from marginface.report.build import angle_histograms

    cosines = np.array([0.5, 0.0, -0.5, 1.0], dtype=np.float32)  # 60, 90, 120, 0 degrees
    issame = np.array([True, False, False, True])
    payload = results("arcface", 0, 0, ORL, 0.9, 0.9)
    payload["config"]["eval"] = {"score_norm": "snorm"}
    folder = write_run(tmp_path / "run", payload, extras=False)
    np.savez(folder / "scores.npz", scores=cosines * 7.0, issame=issame, cosines=cosines)
    hist = angle_histograms(collect(tmp_path).runs)
    assert hist["genuine_mean"] == pytest.approx(30.0)  # (60 + 0) / 2
    assert hist["impostor_mean"] == pytest.approx(105.0)  # (90 + 120) / 2


def test_a_null_eval_key_is_the_protocol_of_a_run_without_it():
    from marginface.report.runs import protocol_of

    old = {"data": ORL, "eval": {"flip": True, "wccn": False}}
    new = {"data": ORL, "eval": {"flip": True, "wccn": False, "score_norm": None}}
    normed = {"data": ORL, "eval": {"flip": True, "wccn": False, "score_norm": "snorm"}}
    assert protocol_of(old) == protocol_of(new) != protocol_of(normed)


def test_runs_from_before_a_new_null_key_pair_with_runs_that_have_it(tmp_path):
    """A softmax run without eval.score_norm pairs with ArcFace runs that have it at null."""
    from marginface.report.aggregate import paired_table

    for i, (fold, seed) in enumerate(KEYS):
        write_run(tmp_path / f"s{i}", results("softmax", fold, seed, ORL, SOFTMAX_AUC[i], 0.9))
        payload = results("arcface", fold, seed, ORL, ARCFACE_AUC[i], 0.9)
        payload["config"]["eval"].update(score_norm=None, score_norm_top_k=None)
        payload["config"]["init_from"] = None
        write_run(tmp_path / f"a{i}", payload)
    (group,) = collect(tmp_path).groups
    paired = paired_table(group)
    auc = next(p for p in paired["arcface"] if p.metric.name == "AUC")
    assert auc.interval.n == len(KEYS)
    expected = np.mean(np.array(ARCFACE_AUC) - np.array(SOFTMAX_AUC))
    assert auc.interval.mean == pytest.approx(expected)
