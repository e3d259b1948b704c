"""THE embedding function: uint8 images -> unit-row embeddings (batches, memory format, flip TTA)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from marginface.data.transforms import to_float


def uses_channels_last(module: nn.Module) -> bool:
    """Whether the module's convolution weights are stored NHWC (FaceModule(channels_last=True))."""
    # the first 4-D weight whose two layouts differ (with 1 input channel they coincide)
    for p in module.parameters():
        if p.dim() == 4:
            nhwc, nchw = p.is_contiguous(memory_format=torch.channels_last), p.is_contiguous()
            if nhwc != nchw:
                return nhwc
    return False


def default_eval_batch(device: torch.device | str) -> int:
    """32 on the CPU, where small batches keep the activations in cache (about 3x the throughput of
    256 for the default backbone, benchmarks/bench_scale.py); 256 on an accelerator."""
    return 32 if torch.device(device).type == "cpu" else 256


def extract_embeddings(backbone: nn.Module, images: torch.Tensor, **options: Any) -> np.ndarray:
    """L2-normalised float32 embeddings of uint8 images; with `flip`, of image + mirror image summed.

    `options`: batch_size, flip, device, progress, as `embeddings_and_norms`.
    """
    return embeddings_and_norms(backbone, images, **options)[0]


@torch.no_grad()
def embeddings_and_norms(
    backbone: nn.Module,
    images: torch.Tensor,
    batch_size: int | None = None,
    flip: bool = True,
    device: torch.device | str = "cpu",
    progress: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(unit-row float32 embeddings of uint8 images, each image's L2 norm before normalising).

    With `flip`, the embedding is that of image + mirror image summed, and the norm is the summed
    embedding's: the quality measure of the results' "open_set.quality" (docs/metrics.md).
    `batch_size` None: `default_eval_batch(device)`.
    Inputs follow the backbone's memory format (NHWC when its weights are channels_last).
    """
    batch_size = batch_size or default_eval_batch(device)
    layout = torch.channels_last if uses_channels_last(backbone) else torch.contiguous_format
    was_training = backbone.training
    backbone.eval()
    out, norms = [], []
    batches = range(0, len(images), batch_size)
    show = len(images) > 20 * batch_size if progress is None else progress
    for start in tqdm(batches, desc="embedding", unit="batch", disable=not show, leave=False):
        x = to_float(images[start : start + batch_size].to(device))
        x = x.contiguous(memory_format=layout)
        e = backbone(x).float()
        if flip:
            e = e + backbone(x.flip(-1).contiguous(memory_format=layout)).float()
        out.append(torch.nn.functional.normalize(e, dim=1).cpu())
        norms.append(torch.linalg.vector_norm(e, dim=1).cpu())
    backbone.train(was_training)
    embeddings = torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)
    if not np.isfinite(embeddings).all():
        raise FloatingPointError(
            "the backbone produced NaN/Inf embeddings: the training diverged (try a lower optimizer.lr "
            "or a smaller loss.scale) or the checkpoint is corrupt"
        )
    return embeddings, (torch.cat(norms).numpy() if norms else np.zeros(0, np.float32))
