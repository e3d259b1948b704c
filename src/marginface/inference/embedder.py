"""A trained embedding network rebuilt from its checkpoint, fed image files the way training fed it.

Shared by the deployment tools (scripts/export.py, scripts/enroll.py, scripts/identify.py): the
backbone alone (the head is only for training), the input size and channels it was trained on,
a hash that identifies its weights, and the same preprocessing and flip TTA as the evaluation.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from PIL import Image
from torch import nn

from marginface.data.images import as_pair, decode_image
from marginface.data.transforms import resize_uint8
from marginface.inference.checkpoint import backbone_from_checkpoint, checkpoint_input
from marginface.inference.embed import extract_embeddings
from marginface.training.checkpoints import load_checkpoint
from marginface.whitening import CHECKPOINT_KEY, Whitening, stored_whitening

log = logging.getLogger(__name__)

# Larger differences between an image's aspect ratio (W/H) and the model's input are worth a note:
# the face is stretched on the way in.
_ASPECT_TOLERANCE = 0.1


def state_dict_hash(state: dict[str, torch.Tensor]) -> str:
    """sha256 of a state_dict: names, dtypes, shapes and values, in name order (device-independent)."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()  # 0-d tensors too (BatchNorm counters)
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@dataclass
class Embedder:
    """A backbone plus what its inputs must look like; `model_hash` names its weights."""

    backbone: nn.Module
    image_size: tuple[int, int]
    channels: int
    flip: bool
    model_hash: str
    source: str = "<in memory>"
    crop: tuple[int, int] | None = (
        None  # centre crop (H, W) before resizing, as the training data had
    )
    whitening: Whitening | None = None  # WCCN of a run trained with eval.wccn=true

    @property
    def embedding_dim(self) -> int:
        return int(self.backbone.embedding_dim)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        flip: bool | None = None,
        crop: Sequence[int] | None = None,
        image_size: Sequence[int] | None = None,
        channels: int | None = None,
    ) -> Embedder:
        """Rebuild the backbone of a training checkpoint; `flip` None keeps the run's eval.flip.

        Input size, channels and crop are the checkpoint's; a given crop replaces its crop (loose
        crops of a new folder), a given size or channels must agree with it (evaluate.checkpoint_input).
        """
        ckpt = load_checkpoint(path)
        cfg = OmegaConf.create(ckpt["marginface_config"])
        backbone = backbone_from_checkpoint(ckpt, path)
        backbone.eval()
        if flip is None:
            flip = bool(OmegaConf.select(cfg, "eval.flip", default=True))
        given = {"crop": crop, "image_size": image_size, "channels": channels}
        wanted = checkpoint_input(ckpt, {k: v for k, v in given.items() if v is not None}, path)
        state = dict(backbone.state_dict())
        whitening = stored_whitening(ckpt)
        if whitening is not None:  # the whitening is part of the model: it enters the hash
            state.update(
                {f"{CHECKPOINT_KEY}.{k}": torch.from_numpy(v) for k, v in whitening.state().items()}
            )
        return cls(
            backbone=backbone,
            image_size=(int(wanted["image_size"][0]), int(wanted["image_size"][1])),
            channels=int(wanted["channels"]),
            flip=bool(flip),
            model_hash=state_dict_hash(state),
            source=str(path),
            crop=as_pair(wanted["crop"], "crop"),
            whitening=whitening,
        )

    def load_images(self, paths: Sequence[str | os.PathLike]) -> tuple[torch.Tensor, list[str]]:
        """uint8 (N, C, H, W) images at the model's size and channels, and one note per image.

        Decoded at their own size (centre-cropped first where the training data was), then
        resized as the DataModule resizes ORL and lazily read folders (antialiased bilinear).
        A note ("" when none) says when an image was resized from another aspect ratio
        (stretched) or converted between colour and grayscale.
        """
        if not paths:
            raise ValueError("no images given to embed")
        out = torch.empty((len(paths), self.channels, *self.image_size), dtype=torch.uint8)
        notes = []
        for i, path in enumerate(paths):
            image = decode_image(path, channels=self.channels, crop=self.crop)
            notes.append(self._note(path, tuple(image.shape[1:])))
            out[i] = resize_uint8(image[None], self.image_size)[0]
        return out, notes

    def _note(self, path: str | os.PathLike, size: tuple[int, int]) -> str:
        parts = []
        height, width = self.image_size
        aspect, expected = size[1] / size[0], width / height
        if abs(aspect / expected - 1) > _ASPECT_TOLERANCE:
            parts.append(
                f"resized from {size[0]}x{size[1]} to {height}x{width} (HxW): aspect ratio "
                f"{aspect:.2f} instead of {expected:.2f}, the face is stretched"
            )
        elif size[0] < height or size[1] < width:
            parts.append(f"upscaled from {size[0]}x{size[1]} to {height}x{width} (HxW): blurrier")
        with Image.open(path) as opened:  # reads the header only
            colour = opened.mode == "P" or len([b for b in opened.getbands() if b != "A"]) >= 3
        if colour and self.channels == 1:
            parts.append("colour image converted to grayscale (the model was trained on grayscale)")
        elif not colour and self.channels == 3:
            parts.append("grayscale image repeated to RGB (the model was trained on colour)")
        return "; ".join(parts)

    def embed(self, images: torch.Tensor, flip: bool | None = None) -> np.ndarray:
        """L2-normalised float32 embeddings (N, D) of uint8 images at the model's size."""
        flip = self.flip if flip is None else flip
        embeddings = extract_embeddings(self.backbone, images, flip=flip, progress=False)
        return embeddings if self.whitening is None else self.whitening(embeddings)

    def embed_files(
        self, paths: Sequence[str | os.PathLike], flip: bool | None = None
    ) -> tuple[np.ndarray, list[str]]:
        """Embeddings of image files and their preprocessing notes, noted images logged once."""
        images, notes = self.load_images(paths)
        summarise_notes(paths, notes)
        return self.embed(images, flip), notes


def summarise_notes(
    paths: Sequence[str | os.PathLike], notes: Sequence[str], shown: int = 3
) -> None:
    """One warning for all images whose preprocessing deserves a note: the count and the first few."""
    noted = [(Path(path), note) for path, note in zip(paths, notes, strict=True) if note]
    if not noted:
        return
    lines = "\n".join(f"  {path}: {note}" for path, note in noted[:shown])
    more = f"\n  ... and {len(noted) - shown} more" if len(noted) > shown else ""
    log.warning(
        "%d of %d image(s) did not match the model's input:\n%s%s",
        len(noted),
        len(paths),
        lines,
        more,
    )
