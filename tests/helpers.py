"""Config composition for tests: the way Hydra composes a run, forced small and CPU-only."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

CONF = Path(__file__).resolve().parents[1] / "conf"

TINY = [
    "data=synthetic",
    "data.dataset.num_identities=8",
    "data.dataset.images_per_identity=4",
    "data.num_folds=2",
    "data.val_per_identity=1",
    "data.batch_size=8",
    "data.image_size=[28,24]",
    "backbone.widths=[4,8,8,16]",
    "backbone.embedding_dim=16",
    "trainer.max_epochs=1",
    "trainer.check_val_every_n_epoch=1",
    "trainer.enable_progress_bar=false",
]


def compose_config(name: str, overrides: list[str], output_dir: Path) -> DictConfig:
    """Compose `conf/<name>.yaml` with overrides, with the Hydra runtime set as a real run would."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=name, overrides=overrides, return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        del cfg["hydra"]
    return cfg
