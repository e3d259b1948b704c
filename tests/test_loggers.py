"""Logger configs (csv, tensorboard, mlflow) instantiate and write a metric that reads back; provenance.json."""

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from hydra.utils import instantiate

from marginface.provenance import git_state, record_run

LOGGERS = ["csv", "tensorboard", "mlflow"]


def read_back(logger, name: str, run_dir: Path) -> list[tuple[int, float]]:
    """(step, value) of metric `name` as the logger's own storage holds it."""
    if logger.__class__.__name__ == "CSVLogger":
        import csv

        with open(Path(logger.log_dir) / "metrics.csv") as file:
            return [
                (int(row["step"]), float(row[name])) for row in csv.DictReader(file) if row[name]
            ]
    if logger.__class__.__name__ == "TensorBoardLogger":
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        events = EventAccumulator(logger.log_dir)
        events.Reload()
        return [(e.step, e.value) for e in events.Scalars(name)]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(logger._tracking_uri)
    return [(m.step, m.value) for m in client.get_metric_history(logger.run_id, name)]


@pytest.mark.parametrize("name", LOGGERS)
def test_logger_config_instantiates_and_writes_under_the_run_dir(tiny_train_cfg, name):
    cfg = tiny_train_cfg(f"logger={name}")
    run_dir = Path(cfg.paths.output_dir)
    logger = instantiate(cfg.logger)
    logger.log_metrics({"open_set/eer": 0.25}, step=3)
    logger.log_metrics({"open_set/eer": 0.125}, step=7)
    logger.save()
    logger.finalize("success")
    assert read_back(logger, "open_set/eer", run_dir) == [(3, 0.25), (7, 0.125)]
    written = [p for p in run_dir.rglob("*") if p.is_file()]
    assert written, f"{name} wrote nothing under {run_dir}"


def test_record_run_writes_provenance_and_hands_config_to_loggers(tiny_train_cfg):
    cfg = tiny_train_cfg("loss=sphereface", "seed=5")
    run_dir = Path(cfg.paths.output_dir)
    logger = instantiate(cfg.logger)
    record_run(cfg, run_dir, [logger])
    logger.save()
    record = json.loads((run_dir / "provenance.json").read_text())
    assert record["config"]["seed"] == 5
    assert record["config"]["loss"]["_target_"].endswith("SphereFaceHead")
    assert record["packages"]["torch"] and record["command"]
    repo = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        )
        expected = head.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        expected = None
    assert record["git"]["commit"] == expected
    hparams = yaml.safe_load((Path(logger.log_dir) / "hparams.yaml").read_text())
    assert hparams["git_commit"] == expected and hparams["seed"] == 5


def test_git_state_outside_a_repository_says_why(tmp_path):
    state = git_state(tmp_path)
    assert state["commit"] is None and state["dirty"] is None
    assert "note" in state
