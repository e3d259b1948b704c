"""Artifacts of one run's open-set pairs: files exist, hold what they say, and use no pyplot."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest

from marginface.evaluation.plots import plot_quality, plot_roc, thin_roc, write_open_set_artifacts
from marginface.metrics.quality import error_versus_reject
from marginface.metrics.verification import roc

PNG = b"\x89PNG\r\n\x1a\n"


def pairs(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    issame = rng.random(n) < 0.2
    scores = np.clip(rng.normal(0.1 + 0.5 * issame, 0.2), -1, 1).astype(np.float32)
    return scores, issame


def test_write_open_set_artifacts(tmp_path):
    scores, issame = pairs(n=1500)
    paths = write_open_set_artifacts(tmp_path / "run", scores, issame)
    names = [p.name for p in paths]
    assert names == ["scores.npz", "roc.csv", "roc.png", "scores.png", "angles.png"]
    for p in paths[2:]:
        assert p.read_bytes()[:8] == PNG
    saved = np.load(paths[0])
    np.testing.assert_array_equal(saved["scores"], scores)
    np.testing.assert_array_equal(saved["issame"], issame)
    with open(paths[1]) as f:
        rows = list(csv.DictReader(f))
    far, tar, thresholds = roc(scores, issame)
    assert len(rows) == len(far)  # 1500 pairs: under the thinning limit
    for k in (0, 1, len(far) // 2, len(far) - 2):
        got = [float(rows[k][name]) for name in ("threshold", "far", "tar")]
        assert got == pytest.approx([thresholds[k], far[k], tar[k]], rel=1e-6)
    last = rows[-1]
    assert (last["threshold"], float(last["far"]), float(last["tar"])) == ("-inf", 1.0, 1.0)


def test_quality_artifacts_pairs_norms_and_quality_png(tmp_path):
    scores, issame = pairs(n=1500)
    rng = np.random.default_rng(4)
    i, j = rng.integers(0, 100, size=(2, len(scores)))
    norms = rng.uniform(1, 30, size=100)
    quality = error_versus_reject(scores, issame, i, j, norms, far=1e-2)
    paths = write_open_set_artifacts(
        tmp_path, scores, issame, pairs=(i, j), norms=norms, quality=quality
    )
    assert [p.name for p in paths][-1] == "quality.png"
    assert paths[-1].read_bytes()[:8] == PNG
    with np.load(paths[0]) as saved:
        assert sorted(saved.files) == ["i", "issame", "j", "norms", "scores"]
        np.testing.assert_array_equal(saved["i"], i)
        np.testing.assert_array_equal(saved["norms"], norms.astype(np.float32))
    # a FAR the pairs cannot measure: every FNMR null, the figure says so and still exists
    blank = error_versus_reject(scores[:50], issame[:50], i[:50], j[:50], norms, far=1e-4)
    assert set(blank["fnmr"]) == {None}
    assert plot_quality(blank, tmp_path / "blank.png").read_bytes()[:8] == PNG


def test_thin_roc_keeps_true_operating_points():
    scores, issame = pairs(n=200_000, seed=1)
    far, tar, _ = roc(scores, issame)
    keep = thin_roc(far, max_points=500)
    assert len(keep) <= 500 and keep[0] == 0 and keep[-1] == len(far) - 1
    assert (np.diff(keep) > 0).all()


def test_plot_roc_accepts_several_curves(tmp_path):
    a, b = pairs(seed=2), pairs(seed=3)
    curves = {"softmax": roc(*a)[:2], "arcface": roc(*b)[:2]}
    assert plot_roc(curves, path=tmp_path / "roc.png").read_bytes()[:8] == PNG
    with pytest.raises(ValueError, match="not both"):
        plot_roc(curves, curves["softmax"][1], tmp_path / "x.png")
    with pytest.raises(ValueError, match="needs a path"):
        plot_roc(*curves["softmax"])


def test_importing_and_plotting_leave_pyplot_alone(tmp_path):
    code = (
        "import sys, numpy as np\n"
        "from marginface.evaluation.plots import plot_angle_hist\n"
        "plot_angle_hist(np.array([0.1, 0.9]), np.array([False, True]), sys.argv[1])\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "a.png")], capture_output=True)
    assert out.returncode == 0, out.stderr.decode()
    assert (tmp_path / "a.png").read_bytes()[:8] == PNG
