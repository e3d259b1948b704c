"""Batched, device-side preprocessing of uint8 faces: resize, channel match, normalise and augment."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def resize_uint8(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a (N, C, H, W) uint8 batch with antialiasing; returns uint8 (no copy if already that size)."""
    size = (int(size[0]), int(size[1]))
    if tuple(images.shape[-2:]) == size:
        return images
    out = F.interpolate(
        images.float(), size=size, mode="bilinear", antialias=True, align_corners=False
    )
    return out.round().clamp(0, 255).to(torch.uint8)


def match_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Convert between grayscale and RGB (luma weights of ITU-R BT.601) so every backbone sees `channels`."""
    have = images.shape[1]
    if have == channels:
        return images
    if have == 3 and channels == 1:
        weights = torch.tensor([0.299, 0.587, 0.114], device=images.device).view(1, 3, 1, 1)
        return (
            (images.float() * weights).sum(1, keepdim=True).round().clamp(0, 255).to(images.dtype)
        )
    if have == 1 and channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    raise ValueError(f"cannot convert images with {have} channels to {channels}; expected 1 or 3")


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1], the input range of every backbone."""
    return images.float().div_(127.5).sub_(1.0)


def augment(
    images: torch.Tensor,
    flip: bool = True,
    shift: int = 0,
    brightness: float = 0.0,
    contrast: float = 0.0,
    rotate: float = 0.0,
    scale: float = 0.0,
    erase: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Augmentations suited to aligned faces on a float [-1, 1] batch: mirror, small shifts, photometric jitter.

    shift: largest translation in pixels (edges replicated); brightness/contrast: largest relative change;
    rotate: largest in-plane rotation in degrees and scale: largest relative zoom (one bilinear warp, edges
    replicated); erase: probability of blanking one random rectangle of up to a quarter of the image.
    """
    n = images.shape[0]
    dev = images.device

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator).to(dev)

    if flip:
        mirror = uniform(n) < 0.5
        images = torch.where(mirror.view(n, 1, 1, 1), images.flip(-1), images)
    if shift > 0:
        h, w = images.shape[-2:]
        padded = F.pad(images, (shift, shift, shift, shift), mode="replicate")
        offsets = (uniform(n, 2) * (2 * shift + 1)).long().clamp_(max=2 * shift)
        rows = (offsets[:, 0, None] + torch.arange(h, device=dev)).view(n, 1, h, 1)
        cols = (offsets[:, 1, None] + torch.arange(w, device=dev)).view(n, 1, 1, w)
        c = images.shape[1]
        padded = padded.gather(2, rows.expand(n, c, h, padded.shape[-1]))
        images = padded.gather(3, cols.expand(n, c, h, w))
    if rotate > 0 or scale > 0:
        angle = torch.deg2rad(rotate * (2 * uniform(n) - 1))
        zoom = 1 + scale * (2 * uniform(n) - 1)
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        zero = torch.zeros_like(cos)
        theta = torch.stack(
            [torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1
        )
        grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
        images = F.grid_sample(
            images, grid, mode="bilinear", padding_mode="border", align_corners=False
        )
    if erase > 0:
        h, w = images.shape[-2:]
        hit = uniform(n) < erase
        eh = (uniform(n) * h / 2).long() + 1
        ew = (uniform(n) * w / 2).long() + 1
        top = (uniform(n) * (h - eh + 1)).long()
        left = (uniform(n) * (w - ew + 1)).long()
        rows = torch.arange(h, device=dev).view(1, h, 1)
        cols = torch.arange(w, device=dev).view(1, 1, w)
        box = (rows >= top.view(n, 1, 1)) & (rows < (top + eh).view(n, 1, 1))
        box = box & (cols >= left.view(n, 1, 1)) & (cols < (left + ew).view(n, 1, 1))
        images = images.masked_fill((box & hit.view(n, 1, 1)).unsqueeze(1), 0.0)
    if brightness > 0 or contrast > 0:
        gain = 1 + contrast * (2 * uniform(n, 1, 1, 1) - 1)
        bias = brightness * (2 * uniform(n, 1, 1, 1) - 1)
        mean = images.mean(dim=(1, 2, 3), keepdim=True)
        images = ((images - mean) * gain + mean + bias).clamp_(-1, 1)
    return images
