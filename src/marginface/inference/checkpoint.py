"""A trained model rebuilt from its checkpoint: the backbone, the head, the input it was trained on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from marginface.training.checkpoints import load_checkpoint

#: the keys of the input a network expects, where a data config holds them
INPUT_KEYS = {
    "image_size": "data.image_size",
    "channels": "data.channels",
    "crop": "data.dataset.crop",
}


def _load_part(module: nn.Module, state: dict, prefix: str, ckpt_path: str | Path) -> None:
    try:
        module.load_state_dict(
            {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        )
    except RuntimeError as err:
        raise ValueError(f"checkpoint {ckpt_path} does not match its own config: {err}") from err


def backbone_from_checkpoint(ckpt: dict, ckpt_path: str | Path) -> nn.Module:
    """The embedding network of a loaded checkpoint (no head: inference needs none)."""
    backbone = instantiate(OmegaConf.create(ckpt["marginface_config"]).backbone)
    _load_part(backbone, ckpt["state_dict"], "backbone.", ckpt_path)
    return backbone


def load_model(ckpt_path: str | Path) -> tuple[nn.Module, nn.Module, dict]:
    """(backbone, head, checkpoint dict) rebuilt from the config stored in a training checkpoint."""
    ckpt = load_checkpoint(ckpt_path)
    backbone = backbone_from_checkpoint(ckpt, ckpt_path)
    from marginface.training.factory import build_head

    loss_cfg = OmegaConf.create(ckpt["marginface_config"]).loss
    head = build_head(loss_cfg, backbone.embedding_dim, ckpt["num_classes"])
    _load_part(head, ckpt["state_dict"], "head.", ckpt_path)
    return backbone, head, ckpt


def checkpoint_input(ckpt: dict, given: dict[str, Any], ckpt_path: str | Path) -> dict[str, Any]:
    """The input of a checkpoint's network: image_size, channels and crop from its training config,
    each replaced by a `given` value; a given size or channels that contradicts it is a ValueError.

    Normalisation is not a choice: every backbone takes uint8 / 127.5 - 1 (`to_float`).
    """
    trained = OmegaConf.create(ckpt["marginface_config"])
    stored = {
        key: OmegaConf.select(trained, path, default=None) for key, path in INPUT_KEYS.items()
    }
    stored = {k: (list(v) if OmegaConf.is_list(v) else v) for k, v in stored.items()}
    out = {}
    for key, value in stored.items():
        if key in given:
            mine = given[key]
            mine = list(mine) if OmegaConf.is_list(mine) or isinstance(mine, tuple) else mine
            if key != "crop" and value is not None and mine != value:
                raise ValueError(
                    f"the checkpoint {ckpt_path} was trained on {stored['channels']}x"
                    f"{tuple(stored['image_size'])} images but {INPUT_KEYS[key]}={mine} was given; "
                    f"leave {INPUT_KEYS[key]} out (the checkpoint's input is used) or set it to {value}"
                )
            out[key] = mine
        elif value is None and key != "crop":
            raise ValueError(
                f"the checkpoint {ckpt_path} does not record its input ({INPUT_KEYS[key]} missing "
                "from its config): pass data.image_size=[H,W] and data.channels=1|3 as it was trained"
            )
        else:
            out[key] = value
    return out
