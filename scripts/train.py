"""Train one run (or a -m multirun): `python scripts/train.py loss=arcface seed=1 fold=2`."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from marginface.pipeline import train

    results = train(cfg)
    return results["open_set"]["verification"]["eer"]  # the value an hparams sweeper minimises


if __name__ == "__main__":
    main()
