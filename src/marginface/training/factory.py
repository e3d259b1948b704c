"""The one way from a config to the objects of a run: the head, the model, the data."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from marginface.heads.base import MarginHead
from marginface.heads.sharded import ShardedHead
from marginface.training.checkpoints import init_backbone
from marginface.training.module import FaceModule


def build_head(
    loss_cfg: Any,
    embedding_dim: int,
    num_classes: int,
    head_cfg: Any = None,
    device: torch.device | str | None = None,
) -> MarginHead | ShardedHead:
    """The `loss` config's head; wrapped in a ShardedHead when `head_cfg` asks for sharding or sampling.

    head_cfg: None or a mapping with `sharded` (bool) and `sample_rate` (in (0, 1]). A sharded head
    is built on the meta device, so that the whole matrix is never allocated: each rank allocates
    its block in setup_shard(). `device` (e.g. "meta" to count parameters without memory) is where
    an unsharded head is built; None: torch's default device.
    """
    options = dict(head_cfg or {})
    sharded = options.pop("sharded", False)
    sample_rate = options.pop("sample_rate", 1.0)
    if options:
        raise ValueError(
            f"unknown head options {sorted(options)}; the head group takes sharded and sample_rate "
            "(docs/distributed.md)"
        )
    if sharded:
        placement = torch.device("meta")
    else:
        placement = nullcontext() if device is None else torch.device(device)
    with placement:
        head = instantiate(loss_cfg, embedding_dim=embedding_dim, num_classes=num_classes)
    if not sharded and sample_rate == 1.0:
        return head
    return ShardedHead(head, sample_rate=sample_rate, sharded=sharded)


def build_module(cfg: DictConfig, num_classes: int) -> FaceModule:
    """The FaceModule of the config: `backbone`, the head of `loss` + `head`, optimizer, scheduler."""
    backbone = instantiate(cfg.backbone)
    if cfg.get("init_from"):
        init_backbone(backbone, cfg.init_from)  # fine-tuning: backbone from a run, head new
    head = build_head(cfg.loss, backbone.embedding_dim, num_classes, cfg.get("head"))
    scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    return FaceModule(
        backbone,
        head,
        optimizer=instantiate(cfg.optimizer),
        scheduler=scheduler,
        criterion=cfg.get("criterion", "ce"),
        channels_last=bool(cfg.get("channels_last", False)),
        compile=bool(cfg.get("compile", False)),
        frozen=tuple(cfg.get("freeze") or ()),
    )


def build(cfg: DictConfig) -> tuple[Any, FaceModule]:
    """(datamodule, module) from the config, the datamodule already set up."""
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    return datamodule, build_module(cfg, datamodule.num_classes)


def loss_name(cfg: DictConfig) -> str:
    """The `loss=` choice of this run (from Hydra when it runs the job, else from the head's class)."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        choice = HydraConfig.get().runtime.choices.get("loss")
        if choice:
            return str(choice)
    target = str(cfg.loss.get("_target_", "unknown")).rsplit(".", 1)[-1]
    return target.removesuffix("Head").lower()
