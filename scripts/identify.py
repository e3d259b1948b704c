"""Identify faces against an enrolled gallery: `python scripts/identify.py ckpt_path=PATH index=gallery.faiss query_dir=DIR threshold=0.4`."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="../conf", config_name="identify")
def main(cfg: DictConfig) -> None:
    from marginface.inference.gallery import run_identify

    run_identify(
        cfg.ckpt_path,
        cfg.index,
        images=list(cfg.images or []),
        query_dir=cfg.query_dir,
        threshold=cfg.threshold,
        far=cfg.far,
        scores=cfg.scores,
        out=cfg.out,
        crop=cfg.get("crop"),
    )


if __name__ == "__main__":
    main()
