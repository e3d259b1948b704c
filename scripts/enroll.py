"""Enroll a folder of identities into a FAISS gallery: `python scripts/enroll.py ckpt_path=PATH gallery_dir=DIR`."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="../conf", config_name="enroll")
def main(cfg: DictConfig) -> None:
    from marginface.inference.gallery import run_enroll

    run_enroll(
        cfg.ckpt_path,
        cfg.gallery_dir,
        cfg.out,
        flip=cfg.flip,
        on_error=cfg.on_error,
        crop=cfg.get("crop"),
    )


if __name__ == "__main__":
    main()
