"""Evaluate a checkpoint on unseen identities: `python scripts/evaluate.py ckpt_path=PATH [data=... fold=...]`."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    from marginface.evaluation.evaluate import evaluate

    evaluate(cfg)


if __name__ == "__main__":
    main()
