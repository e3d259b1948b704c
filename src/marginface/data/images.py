"""Image decoding shared by the on-disk readers (folder, LFW, insightface .bin and .rec)."""

from __future__ import annotations

import io
import os
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from marginface.data.base import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".pgm", ".ppm", ".bmp", ".tif", ".tiff", ".webp")
ON_ERROR_CHOICES = ("skip", "raise")
ON_MISMATCH_CHOICES = ("keep", "skip", "raise")

# PIL raises these for missing, truncated or non-image files; SyntaxError comes from some plugins.
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def as_pair(value: int | Sequence[int] | None, what: str) -> tuple[int, int] | None:
    """(H, W) from an int, a pair (list, tuple or Hydra ListConfig) or None; positive ints only."""
    if value is None:
        return None
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(int(v) == v and int(v) > 0 for v in pair):
        raise ValueError(f"{what} must be (H, W) with two positive ints, got {value!r}")
    return int(pair[0]), int(pair[1])


def check_channels(channels: int) -> int:
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
    return channels


def check_on_error(on_error: str) -> str:
    if on_error not in ON_ERROR_CHOICES:
        raise ValueError(f"on_error must be one of {ON_ERROR_CHOICES}, got {on_error!r}")
    return on_error


def check_on_mismatch(on_mismatch: str) -> str:
    if on_mismatch not in ON_MISMATCH_CHOICES:
        raise ValueError(f"on_mismatch must be one of {ON_MISMATCH_CHOICES}, got {on_mismatch!r}")
    return on_mismatch


# modes PIL decodes to one intensity band (plus alpha); the rest (RGB, RGBA, CMYK, P, ...) are colour
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


def image_format(source: str | os.PathLike) -> tuple[str, tuple[int, int]]:
    """("grayscale" or "colour", (H, W)) of a readable image file, from its header alone."""
    with Image.open(source) as image:
        return ("grayscale" if image.mode in _GRAY_MODES else "colour"), (image.height, image.width)


def screen_formats(
    sources: Sequence[str | os.PathLike], on_mismatch: str, where: str, shown: int = 5
) -> list[int]:
    """Indices of the images to keep after comparing each file's native size and colour with the rest.

    The most common size and the most common colour kind are "the format" of the set; the others
    are counted and reported in one warning (on_mismatch="keep": they are resized / converted like
    every image, "skip": left out), or stop the reading (on_mismatch="raise") with a DataError.
    """
    check_on_mismatch(on_mismatch)
    formats = [image_format(source) for source in sources]
    if not formats:
        return []
    kind = Counter(f[0] for f in formats).most_common(1)[0][0]
    size = Counter(f[1] for f in formats).most_common(1)[0][0]
    odd = [i for i, (k, hw) in enumerate(formats) if k != kind or hw != size]
    if not odd:
        return list(range(len(formats)))
    other_size = sum(formats[i][1] != size for i in odd)
    other_kind = sum(formats[i][0] != kind for i in odd)
    listed = "\n".join(
        f"  {sources[i]}: {formats[i][1][0]}x{formats[i][1][1]} {formats[i][0]}"
        for i in odd[:shown]
    )
    more = f"\n  ... and {len(odd) - shown} more" if len(odd) > shown else ""
    message = (
        f"{len(odd)} of {len(formats)} images in {where} are unlike the rest ({size[0]}x{size[1]} "
        f"{kind}): {other_size} of another size, {other_kind} not {kind}"
    )
    if on_mismatch == "raise":
        raise DataError(
            f"{message} (on_mismatch='raise'; 'keep' resizes and converts them, 'skip' leaves them "
            f"out):\n{listed}{more}"
        )
    action = (
        "left out (on_mismatch='skip')"
        if on_mismatch == "skip"
        else "kept, resized and converted like the rest (on_mismatch='keep'; 'skip' leaves them out, "
        "'raise' stops)"
    )
    warnings.warn(f"{message}; {action}:\n{listed}{more}", stacklevel=3)
    if on_mismatch == "skip":
        left_out = set(odd)
        return [i for i in range(len(formats)) if i not in left_out]
    return list(range(len(formats)))


def decode_image(
    data: bytes | bytearray | memoryview | str | os.PathLike,
    channels: int = 3,
    size: Sequence[int] | None = None,
    crop: Sequence[int] | None = None,
    name: str | None = None,
) -> torch.Tensor:
    """Decode an encoded image (bytes or a file) into a uint8 (C, H, W) tensor.

    `crop` (H, W) takes the centre of the image first (offsets rounded as torchvision's center_crop
    does), then `size` (H, W) resizes bilinearly (with PIL's antialiasing). `channels` 1 gives
    grayscale ("L"), 3 gives RGB. `name` labels bytes in error messages (paths name themselves).
    Raises DataError naming the file for anything PIL cannot read, or a crop larger than the image.
    """
    check_channels(channels)
    size_hw, crop_hw = as_pair(size, "size"), as_pair(crop, "crop")
    is_bytes = isinstance(data, bytes | bytearray | memoryview)
    label = name or ("<image bytes>" if is_bytes else str(data))
    try:
        with Image.open(io.BytesIO(data) if is_bytes else Path(data)) as opened:
            opened.load()
            image = opened.convert("L" if channels == 1 else "RGB")
    except _DECODE_ERRORS as error:
        raise DataError(f"cannot read image {label}: {error}") from error
    if crop_hw is not None:
        height, width = crop_hw
        if height > image.height or width > image.width:
            raise DataError(
                f"crop {crop_hw} is larger than image {label} of size {(image.height, image.width)}; "
                "pass a smaller crop or crop=None"
            )
        top = int(round((image.height - height) / 2.0))
        left = int(round((image.width - width) / 2.0))
        image = image.crop((left, top, left + width, top + height))
    if size_hw is not None and (image.height, image.width) != size_hw:
        image = image.resize((size_hw[1], size_hw[0]), Image.Resampling.BILINEAR)
    array = np.array(image, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def warn_skipped(skipped: Sequence[tuple[str, str]], where: str, shown: int = 5) -> None:
    """One warning for all unreadable images skipped while reading `where`: the count and the first few."""
    if not skipped:
        return
    lines = "\n".join(f"  {path}: {reason}" for path, reason in skipped[:shown])
    more = f"\n  ... and {len(skipped) - shown} more" if len(skipped) > shown else ""
    warnings.warn(
        f"skipped {len(skipped)} unreadable image(s) in {where} (on_error='skip'; "
        f"pass on_error='raise' to stop instead):\n{lines}{more}",
        stacklevel=3,
    )


def require_path(path: str | os.PathLike, what: str, section: str, directory: bool = True) -> Path:
    """`path` as a Path if it exists (a folder when `directory`), else a DataError pointing to data/README.md."""
    if path is None or str(path) in ("", "???"):
        raise DataError(
            f"no path given for the {what}; set it (see data/README.md, section '{section}')"
        )
    resolved = Path(path).expanduser()
    exists = resolved.is_dir() if directory else resolved.is_file()
    if not exists:
        kind = "folder" if directory else "file"
        raise DataError(
            f"{what} {kind} not found: {resolved}; see data/README.md (section '{section}') "
            "for where to get it and the expected layout"
        )
    return resolved


def stack_images(images: Sequence[torch.Tensor], names: Sequence[str], where: str) -> torch.Tensor:
    """Stack (C, H, W) images, or a DataError naming two files of different sizes."""
    first = images[0].shape
    for image, name in zip(images, names, strict=True):
        if image.shape != first:
            raise DataError(
                f"images in {where} differ in size: {tuple(first)} for {names[0]} and "
                f"{tuple(image.shape)} for {name}; pass size=(H, W) to resize them"
            )
    return torch.stack(list(images))


def decode_stack(
    sources: Sequence[bytes | str | os.PathLike],
    channels: int,
    size: Sequence[int] | None,
    crop: Sequence[int] | None,
    names: Sequence[str],
    where: str,
) -> torch.Tensor:
    """Decode every source into one preallocated (N, C, H, W) uint8 tensor (no list-then-stack copy)."""
    out: torch.Tensor | None = None
    for i, (source, name) in enumerate(zip(sources, names, strict=True)):
        image = decode_image(source, channels, size, crop, name=name)
        if out is None:
            out = torch.empty((len(sources), *image.shape), dtype=torch.uint8)
        elif image.shape != out.shape[1:]:
            raise DataError(
                f"images in {where} differ in size: {tuple(out.shape[1:])} for {names[0]} and "
                f"{tuple(image.shape)} for {name}; pass size=(H, W) to resize them"
            )
        out[i] = image
    if out is None:
        raise DataError(f"no images to decode in {where}")
    return out
