"""The speed options of docs/benchmarks.md train and evaluate end to end (tiny data)."""

from __future__ import annotations

import math

import pytest

from marginface.pipeline import train


@pytest.mark.parametrize(
    "overrides",
    [["trainer=cpu_bf16"], ["trainer.precision=bf16-mixed", "channels_last=false"]],
    ids=["cpu_bf16", "bf16_nchw"],
)
def test_bf16_mixed_trains_and_evaluates(tiny_train_cfg, overrides):
    cfg = tiny_train_cfg("loss=arcface", *overrides)
    assert cfg.trainer.precision == "bf16-mixed" and cfg.trainer.accelerator == "cpu"
    results = train(cfg)
    eer = results["open_set"]["verification"]["eer"]
    assert math.isfinite(eer) and 0.0 <= eer <= 1.0
    assert math.isfinite(results["closed_set"]["accuracy"])
