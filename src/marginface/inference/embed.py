"""THE embedding function: uint8 images -> backbone features, in batches, in the backbone's memory format.

`embedding_batches` is the one loop that runs a backbone over images; everything that embeds images
goes through it: `raw_embeddings` (the features as they are: diagnostics, toy plots, closed-set
logits), `embeddings_and_norms` / `extract_embeddings` (unit rows, flip TTA: every evaluation,
the gallery, the embedder).
"""

from __future__ import annotations

from collections.abc import Iterator
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


@torch.no_grad()
def embedding_batches(
    backbone: nn.Module,
    images: torch.Tensor,
    batch_size: int | None = None,
    flip: bool = False,
    device: torch.device | str = "cpu",
    progress: bool | None = None,
) -> Iterator[tuple[slice, torch.Tensor]]:
    """(rows, float32 features of images[rows]) batch by batch, the backbone in eval mode meanwhile.

    Features are the backbone's output as is (not normalised), on `device`. With `flip`, the feature
    of the image plus that of its mirror image. `batch_size` None: `default_eval_batch(device)`.
    Inputs follow the backbone's memory format (NHWC when its weights are channels_last). The
    backbone's train/eval mode is restored when the iteration ends or is abandoned.
    """
    batch_size = batch_size or default_eval_batch(device)
    layout = torch.channels_last if uses_channels_last(backbone) else torch.contiguous_format
    was_training = backbone.training
    backbone.eval()
    starts = range(0, len(images), batch_size)
    show = len(images) > 20 * batch_size if progress is None else progress
    try:
        for start in tqdm(starts, desc="embedding", unit="batch", disable=not show, leave=False):
            rows = slice(start, min(start + batch_size, len(images)))
            x = to_float(images[rows].to(device)).contiguous(memory_format=layout)
            e = backbone(x).float()
            if flip:
                e = e + backbone(x.flip(-1).contiguous(memory_format=layout)).float()
            yield rows, e
    finally:
        backbone.train(was_training)


def raw_embeddings(backbone: nn.Module, images: torch.Tensor, **options: Any) -> torch.Tensor:
    """(N, D) float32 CPU tensor of the backbone's features, not normalised; options as `embedding_batches`."""
    out = [e.cpu() for _, e in embedding_batches(backbone, images, **options)]
    return torch.cat(out) if out else torch.zeros(0, 0)


def extract_embeddings(backbone: nn.Module, images: torch.Tensor, **options: Any) -> np.ndarray:
    """L2-normalised float32 embeddings of uint8 images; with `flip`, of image + mirror image summed.

    `options`: batch_size, flip, device, progress, as `embeddings_and_norms`.
    """
    return embeddings_and_norms(backbone, images, **options)[0]


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
    The arguments are `embedding_batches`'s.
    """
    out, norms = [], []
    for _, e in embedding_batches(backbone, images, batch_size, flip, device, progress):
        out.append(torch.nn.functional.normalize(e, dim=1).cpu())
        norms.append(torch.linalg.vector_norm(e, dim=1).cpu())
    embeddings = torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)
    if not np.isfinite(embeddings).all():
        raise FloatingPointError(
            "the backbone produced NaN/Inf embeddings: the training diverged (try a lower optimizer.lr "
            "or a smaller loss.scale) or the checkpoint is corrupt"
        )
    return embeddings, (torch.cat(norms).numpy() if norms else np.zeros(0, np.float32))
