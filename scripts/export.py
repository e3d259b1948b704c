"""Export a checkpoint's embedding network: `python scripts/export.py ckpt_path=PATH format=onnx|torchscript`."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
def main(cfg: DictConfig) -> None:
    from marginface.inference.export import run_export

    run_export(
        cfg.ckpt_path,
        cfg.format,
        out=cfg.out,
        flip=cfg.flip,
        parity_images=list(cfg.parity.images) if cfg.parity.images else None,
        parity_count=cfg.parity.count,
        atol=cfg.parity.atol,
        dynamo=cfg.dynamo,
    )


if __name__ == "__main__":
    main()
