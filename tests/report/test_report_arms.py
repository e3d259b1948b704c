"""Arms compared run by run (scripts/compare_runs.py) on hand-made results.json, against scipy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from marginface.report.arms import arms_figure, arms_markdown, compare_arms

ROOT = Path(__file__).resolve().parents[2]
KEYS = [(fold, seed) for fold in range(4) for seed in range(3)]
RNG = np.random.default_rng(3)
SCRATCH = {k: 0.09 + 0.02 * RNG.random() for k in KEYS}
TUNED = {k: SCRATCH[k] - 0.05 + 0.004 * RNG.standard_normal() for k in KEYS}  # an effect
NOISE = {k: SCRATCH[k] + 0.01 * RNG.standard_normal() for k in KEYS}  # no effect


def write_arm(root: Path, eers: dict, skip: tuple = ()) -> Path:
    for (fold, seed), eer in eers.items():
        if (fold, seed) in skip:
            continue
        run = root / f"{fold}_{seed}"
        run.mkdir(parents=True)
        results = {
            "loss": "arcface",
            "seed": seed,
            "fold": fold,
            "config": {"data": {"num_folds": 4, "fold": fold}, "eval": {}, "criterion": "ce"},
            "closed_set": {"accuracy": 0.9},
            "open_set": {"verification": {"eer": eer, "auc": 0.95}},
        }
        (run / "results.json").write_text(json.dumps(results))
    return root


def scipy_interval(a: dict, b: dict) -> tuple[float, float, float]:
    keys = sorted(set(a) & set(b))
    d = np.array([a[k] - b[k] for k in keys])
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    return d.mean(), d.mean() - half, d.mean() + half


def test_paired_difference_equals_scipy_and_unpaired_runs_are_left_out(tmp_path):
    scratch = write_arm(tmp_path / "scratch", SCRATCH, skip=[(3, 2)])
    tuned = write_arm(tmp_path / "tuned", TUNED)
    noise = write_arm(tmp_path / "noise", NOISE)
    ref, arms = compare_arms(scratch, [tuned, noise])
    assert len(ref) == 11
    eer = {a.path.name: next(r for r in a.rows if r.metric.name == "EER") for a in arms}
    for name, values in (("tuned", TUNED), ("noise", NOISE)):
        row = eer[name]
        mean, lo, hi = scipy_interval(values, {k: v for k, v in SCRATCH.items() if k != (3, 2)})
        assert row.pairs == 11
        assert row.difference.mean == pytest.approx(mean, abs=1e-12)
        assert (row.difference.lo, row.difference.hi) == pytest.approx((lo, hi), abs=1e-12)
        assert row.arm.n == 12 and row.reference.n == 11
    assert arms[0].unpaired == 1  # (3, 2) has no partner
    assert eer["tuned"].difference.hi < 0  # lower EER, interval excludes zero
    text = arms_markdown(scratch, arms)
    tuned_eer = next(
        line for line in text.splitlines() if line.startswith("| EER") and "better" in line
    )
    assert "arm better" in tuned_eer
    # TAR figures are absent from these results: no pairs, said so
    assert "fewer than 2 pairs" in text


def test_an_ensemble_of_one_head_pairs_with_that_heads_runs(tmp_path):
    scratch = write_arm(tmp_path / "scratch", SCRATCH)
    joined = write_arm(tmp_path / "ensemble", TUNED)
    for path in joined.glob("*/results.json"):
        results = json.loads(path.read_text())
        results["loss"] = "ensemble(arcface)"
        results["ensemble"] = [
            {"path": "a.ckpt", "loss": "arcface"},
            {"path": "b.ckpt", "loss": "arcface"},
        ]
        path.write_text(json.dumps(results))
    _, (arm,) = compare_arms(scratch, [joined])
    row = next(r for r in arm.rows if r.metric.name == "EER")
    mean, lo, hi = scipy_interval(TUNED, SCRATCH)
    assert row.pairs == 12 and arm.unpaired == 0
    assert (row.difference.mean, row.difference.lo, row.difference.hi) == pytest.approx(
        (mean, lo, hi), abs=1e-12
    )
    # members of two heads pair only with runs of that combination: none here
    mixed = json.loads(next(joined.glob("*/results.json")).read_text())
    mixed["ensemble"][1]["loss"] = "softmax"
    other = tmp_path / "mixed" / "run"
    other.mkdir(parents=True)
    (other / "results.json").write_text(json.dumps(mixed))
    _, (arm,) = compare_arms(scratch, [tmp_path / "mixed"])
    assert arm.unpaired == 1


def test_an_empty_arm_is_a_clear_error(tmp_path):
    arm = write_arm(tmp_path / "a", {(0, 0): 0.1})
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no results.json"):
        compare_arms(tmp_path / "empty", [arm])


def test_two_runs_with_one_pair_key_in_an_arm_is_a_clear_error(tmp_path):
    # two recipes of the same head, fold and seed in one arm folder (a rerun of the same recipe
    # supersedes the older run instead): which pairs with the reference run is ambiguous, so the
    # error names both runs
    write_arm(tmp_path / "arm" / "first", {(0, 0): 0.1, (1, 0): 0.2})
    write_arm(tmp_path / "arm" / "second", {(1, 0): 0.3})
    second = tmp_path / "arm" / "second" / "1_0" / "results.json"
    results = json.loads(second.read_text())
    results["config"]["optimizer"] = {"lr": 0.01}  # another recipe: another report row
    second.write_text(json.dumps(results))
    ref = write_arm(tmp_path / "ref", {(0, 0): 0.1, (1, 0): 0.2})
    with pytest.raises(ValueError, match="same head, fold, seed") as error:
        compare_arms(ref, [tmp_path / "arm"])
    message = str(error.value)
    assert str(tmp_path / "arm" / "first" / "1_0") in message
    assert str(tmp_path / "arm" / "second" / "1_0") in message


def test_the_script_prints_the_tables(tmp_path):
    scratch = write_arm(tmp_path / "scratch", SCRATCH)
    tuned = write_arm(tmp_path / "tuned", TUNED)
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "compare_runs.py"),
            str(scratch),
            str(tuned),
            "--out",
            str(tmp_path / "arms.md"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "arm - reference (95%)" in out.stdout
    assert (tmp_path / "arms.md").read_text().strip() == out.stdout.strip()
    bad = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "compare_runs.py"),
            str(tmp_path / "nope"),
            str(tuned),
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "no such folder" in bad.stderr


def test_the_forest_plot_draws_the_paired_intervals(tmp_path):
    scratch = write_arm(tmp_path / "scratch", SCRATCH)
    tuned = write_arm(tmp_path / "tuned", TUNED)
    noise = write_arm(tmp_path / "noise", NOISE)
    single = write_arm(tmp_path / "single", {(0, 0): 0.05})  # one pair: no interval, not drawn
    _, arms = compare_arms(scratch, [tuned, noise, single])
    path = tmp_path / "fig" / "arms.png"
    drawn = arms_figure(scratch, arms, path, labels=["pretrained", "noise", "one"])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = drawn["EER"]
    assert [r[0] for r in rows] == ["pretrained", "noise"]
    for (_label, mean, lo, hi, pairs), values in zip(rows, (TUNED, NOISE), strict=True):
        assert (mean, lo, hi) == pytest.approx(scipy_interval(values, SCRATCH), abs=1e-12)
        assert pairs == 12
    with pytest.raises(ValueError, match="2 labels for 3 arms"):
        arms_figure(scratch, arms, path, labels=["a", "b"])
    with pytest.raises(ValueError, match=r"unknown metric\(s\) \['EEER'\]"):
        arms_figure(scratch, arms, path, metrics=["EEER"])


def test_the_script_draws_the_plot_and_checks_its_labels(tmp_path):
    scratch = write_arm(tmp_path / "scratch", SCRATCH)
    tuned = write_arm(tmp_path / "tuned", TUNED)
    script = [sys.executable, str(ROOT / "scripts" / "compare_runs.py"), str(scratch), str(tuned)]
    plot = tmp_path / "arms.png"
    out = subprocess.run(
        [*script, "--plot", str(plot), "--plot-metrics", "EER", "rank-1", "--labels", "tuned"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert plot.exists() and f"plot: {plot}" in out.stdout
    bad = subprocess.run(
        [*script, "--plot", str(plot), "--labels", "a", "b"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "2 --labels for 1 arms" in bad.stderr
