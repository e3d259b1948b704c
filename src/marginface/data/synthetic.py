"""Generated identities: any number, any size, deterministic by seed; for tests and scale studies."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from marginface.data.base import DataError, FaceSet


def make_synthetic(
    num_identities: int = 20,
    images_per_identity: int = 10,
    image_size: tuple[int, int] = (56, 48),
    channels: int = 1,
    noise: float = 0.25,
    max_shift: int = 2,
    seed: int = 0,
) -> FaceSet:
    """A FaceSet of smooth random templates, one per identity, each seen with shift, brightness and noise.

    The template is low-resolution noise upsampled to `image_size`, so identities differ in coarse
    structure as faces do; `noise` (std, in units of the [0, 1] intensity range) sets how hard it is.
    """
    if num_identities < 2 or images_per_identity < 1:
        raise DataError(
            f"synthetic data needs num_identities >= 2 and images_per_identity >= 1, "
            f"got {num_identities} and {images_per_identity}"
        )
    h, w = int(image_size[0]), int(image_size[1])
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(num_identities, channels, max(2, h // 8), max(2, w // 8), generator=gen)
    templates = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)
    images = templates.repeat_interleave(images_per_identity, dim=0)
    n = len(images)
    shifts = torch.randint(-max_shift, max_shift + 1, (n, 2), generator=gen)
    images = torch.stack(
        [
            torch.roll(im, shifts=(int(s[0]), int(s[1])), dims=(1, 2))
            for im, s in zip(images, shifts, strict=True)
        ]
    )
    brightness = 1.0 + 0.2 * (torch.rand(n, 1, 1, 1, generator=gen) - 0.5)
    images = images * brightness + noise * torch.randn(images.shape, generator=gen)
    pixels = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    labels = torch.arange(num_identities).repeat_interleave(images_per_identity)
    return FaceSet(pixels, labels, [f"id{k:05d}" for k in range(num_identities)])
