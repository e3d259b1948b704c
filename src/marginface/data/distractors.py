"""Distractor identities for a large identification gallery (MegaFace-style): one image each, never trained on.

Two sources: a generator's identities beyond the data set's own (`generated_distractors`: the same
population, so look-alike families carry on), or one image of each sub-folder of a folder of faces
(`folder_distractors`). See data/README.md, section "Distractors".
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from marginface.data.base import DataError, FaceSet
from marginface.data.folder import decode_files, scan_tree
from marginface.data.images import require_path


def generated_distractors(
    make: Callable[..., FaceSet], num_identities: int, count: int
) -> torch.Tensor:
    """(count, C, H, W) uint8: one image of each of identities num_identities .. num_identities+count-1.

    `make` is the data set's generator with its other arguments bound (a functools.partial, as
    `data.dataset` builds it). It must take `num_identities` and `images_per_identity` and draw
    identity k independently of how many identities are asked for, so that the distractors are
    new identities and not re-draws of the data set's own.
    """
    params = inspect.signature(make).parameters
    if not {"num_identities", "images_per_identity"} <= set(params):
        raise DataError(
            f"eval.distractors needs a generated data set (num_identities, images_per_identity) or "
            f"eval.distractor_root=PATH; {getattr(make, 'func', make)} takes neither (data/README.md)"
        )
    faces = make(num_identities=num_identities + count, images_per_identity=1)
    keep = faces.labels >= num_identities
    return faces.images[keep]


def folder_distractors(
    root: str | Path,
    count: int,
    channels: int,
    size: Sequence[int],
    crop: Sequence[int] | None = None,
) -> torch.Tensor:
    """(count, C, H, W) uint8: the first image of each of the first `count` sub-folders of `root` (sorted)."""
    root = require_path(root, "distractor", "Distractors")
    listing = scan_tree(root)
    first: dict[str, str] = {}
    for identity, name in listing:
        first.setdefault(identity, name)
    if len(first) < count:
        raise DataError(
            f"eval.distractors={count} but {root} holds {len(first)} identity folders with images; "
            f"set eval.distractors <= {len(first)} or add folders (data/README.md, 'Distractors')"
        )
    identities = sorted(first)[:count]
    paths = [root / identity / first[identity] for identity in identities]
    images, _, _ = decode_files(paths, identities, channels, size, crop, "raise", str(root))
    return torch.stack(images)
