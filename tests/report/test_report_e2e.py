"""End to end (slow): a quick-style Hydra multirun on tiny synthetic data, then the report; the toy models."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import TINY
from marginface.report.build import build_report
from marginface.report.runs import collect

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"


def multirun(sweep_dir: Path, *overrides: str) -> None:
    tiny = [o for o in TINY if not o.startswith("trainer.max_epochs")]
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        "-m",
        "experiment=ablation_quick",
        *tiny,
        "trainer.max_epochs=2",
        f"hydra.sweep.dir={sweep_dir}",
        "hydra.sweep.subdir=${hydra.job.num}",  # all the tiny overrides would make too long a name
        *overrides,
    ]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_quick_style_multirun_then_report(tmp_path):
    root = tmp_path / "multirun"
    multirun(root / "heads", "seed=0")  # 3 heads x 2 folds
    multirun(root / "mse", "seed=0", "loss=softmax", "criterion=mse")  # the CE vs MSE check
    runs = sorted(root.rglob("results.json"))
    assert len(runs) == 8
    for path in runs:
        assert (path.parent / "diagnostics.json").is_file()
    (root / "heads" / "9_killed" / ".hydra").mkdir(parents=True)

    report = build_report(root, tmp_path / "report", measure=False, log=None)
    text = report.read_text()
    for row in ("softmax (criterion=ce)", "softmax (criterion=mse)", "amsoftmax", "arcface"):
        assert f"| {row} | 2 | 2 x 1 |" in text, row
    assert "Paired against softmax" in text and "9_killed" in text.split("## Runs not used")[1]
    rows = (tmp_path / "report" / "comparison.csv").read_text()
    assert "SYNTHETIC" in rows
    for line in text.splitlines():
        if line.startswith("!["):
            assert (report.parent / line.split("](")[1].rstrip(")")).read_bytes()[:8] == PNG
    assert "_ce_vs_mse.png" in text and "_confidence.png" in text and "_angles.png" in text


@pytest.mark.slow
def test_toy_models_train_and_draw(tmp_path):
    code = (
        "import sys\n"
        "from marginface.experiments.toy import train_toy\n"
        "from marginface.report.toy import toy_figures\n"
        "runs = train_toy(sys.argv[1], heads=('softmax', 'arcface'), overrides=['trainer.max_epochs=2'], log=None)\n"
        "toy_figures(runs, sys.argv[1])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "toy")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("toy_2d.png", "toy_3d.png"):
        assert (tmp_path / "toy" / name).read_bytes()[:8] == PNG
    results = json.loads((tmp_path / "toy" / "d2" / "arcface" / "results.json").read_text())
    assert results["head"]["parameters"] == 8 * 2  # 8 trained identities x 2-D
    # toy runs are marked: a report over a folder that holds them leaves them out of the tables
    assert collect(tmp_path).runs == []


@pytest.mark.slow
def test_identity_scaling_quick_end_to_end(tmp_path):
    """experiment=identity_scaling_quick shrunk to tiny synthetic data: 3 N x 3 heads x 2 seeds."""
    root = tmp_path / "multirun"
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        "-m",
        "experiment=identity_scaling_quick",
        "data=synthetic",
        "data.dataset.num_identities=36",
        "data.dataset.images_per_identity=4",
        "data.num_folds=6",  # 6 open-set identities, 30 to train on
        "data.val_per_identity=1",
        "data.train_identities=4,10,30",
        "eval.distractors=12",
        "backbone.widths=[4,8,8,16]",
        "backbone.embedding_dim=16",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        f"hydra.sweep.dir={root}",
        "hydra.sweep.subdir=${hydra.job.num}",
    ]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = sorted(root.rglob("results.json"))
    assert len(runs) == 18
    n_of = {}
    for path in runs:
        results = json.loads(path.read_text())
        assert results["open_set"]["identification_distractors"]["distractors"] == 12
        n_of[path] = results["config"]["data"]["train_identities"]
        assert results["head"]["parameters"] == n_of[path] * 16  # N classes x 16-d, no bias
    build_report(root, tmp_path / "report", measure=False, log=None)
    with open(tmp_path / "report" / "identity_scaling.csv") as f:
        lines = f.read().splitlines()
    assert lines[0] == "train_identities,head,metric,mean,low,high,n"
    body = [line.split(",") for line in lines[1:]]
    assert {(r[0], r[1]) for r in body} == {
        (n, h) for n in ("4", "10", "30") for h in ("amsoftmax", "arcface")
    }
    # 2 seeds paired at each N (TAR at 1e-3 / 1e-4 is unmeasurable on so few impostor pairs)
    assert all(r[-1] == "2" for r in body if r[2] in ("EER", "rank-1, distractors"))
    assert (tmp_path / "report" / "identity_scaling.png").read_bytes()[:8] == PNG
