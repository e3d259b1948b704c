"""hparams_search=arcface_optuna: the search config, and a two-trial Optuna sweep on tiny synthetic data."""

import json
import subprocess
import sys

import pytest
import yaml
from hydra.core.global_hydra import GlobalHydra

from helpers import CONF, TINY, compose_config

REPO = CONF.parent


def test_search_runs_on_a_validation_fold_and_minimises(tmp_path):
    cfg = compose_config("train", ["hparams_search=arcface_optuna"], tmp_path)
    GlobalHydra.instance().clear()
    assert cfg.fold == 3  # never fold 0-2, where the chosen setting is reported
    assert cfg.loss._target_.endswith("ArcFaceHead")
    text = (CONF / "hparams_search" / "arcface_optuna.yaml").read_text()
    search = yaml.safe_load(text)["hydra"]["sweeper"]
    assert search["direction"] == "minimize"
    assert set(search["params"]) == {"loss.margin", "loss.scale", "optimizer.lr"}
    assert "folds 0-2" in text  # the comment telling where the final test happens


@pytest.mark.slow
def test_two_trial_sweep_on_synthetic_data(tmp_path):
    sweep_dir = tmp_path / "sweep"
    command = [
        sys.executable,
        "scripts/train.py",
        "hparams_search=arcface_optuna",
        "hydra.sweeper.n_trials=2",
        f"hydra.sweep.dir={sweep_dir}",
        *TINY,
        "fold=1",  # the tiny set has 2 folds; the search's own fold=3 needs the default 4
        "eval.artifacts=false",
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    trials = []
    for trial in ("0", "1"):
        results = json.loads((sweep_dir / trial / "results.json").read_text())
        assert results["fold"] == 1 and results["loss"] == "arcface"
        trials.append(results)
    # the sweeper minimised what each trial returned: the open-set EER of its results.json
    assert best["best_value"] == pytest.approx(
        min(r["open_set"]["verification"]["eer"] for r in trials)
    )
    winner = min(trials, key=lambda r: r["open_set"]["verification"]["eer"])["config"]
    assert best["best_params"]["loss.margin"] == pytest.approx(winner["loss"]["margin"])
    assert best["best_params"]["loss.scale"] == pytest.approx(winner["loss"]["scale"])
    assert best["best_params"]["optimizer.lr"] == pytest.approx(winner["optimizer"]["lr"])
    assert 0.1 <= winner["loss"]["margin"] <= 0.7 and 0.01 <= winner["optimizer"]["lr"] <= 0.3
