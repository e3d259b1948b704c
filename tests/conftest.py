"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from helpers import TINY, compose_config


@pytest.fixture
def tiny_train_cfg(tmp_path: Path):
    """A factory: the train config on a tiny synthetic set, plus any overrides."""

    def make(*overrides: str) -> DictConfig:
        return compose_config("train", [*TINY, *overrides], tmp_path)

    yield make
    GlobalHydra.instance().clear()
