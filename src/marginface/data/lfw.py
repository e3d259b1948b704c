"""Labeled Faces in the Wild from a local copy in the standard layout: see data/README.md (section LFW).

Layout: `root/pairs.txt` and an image folder `root/<images>/<Name>/<Name>_0001.jpg` (250x250 JPEG),
where <images> is the first of LFW_IMAGE_DIRS present (lfw, lfw-deepfunneled, lfw_funneled, ...),
or `root` itself when it holds the person folders. pairs.txt is also looked for inside <images>.

Default crop: the central 150x150 of the 250x250 image (where the face sits in every variant:
the original "unaligned" images are centred on the Viola-Jones detection, the funneled and
deep-funneled ones are aligned), then resized to `size`. For tighter crops of deep-funneled images,
e.g. crop=(120, 100); for the whole image, crop=None.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from marginface.data.base import DataError, FaceSet, VerificationSet
from marginface.data.folder import load_folder
from marginface.data.images import check_channels, decode_stack, require_path

LFW_IMAGE_DIRS = ("lfw", "lfw-deepfunneled", "lfw_deepfunneled", "lfw_funneled", "lfw-funneled")
LFW_FILENAME = "{name}/{name}_{num:04d}.jpg"
LFW_CROP = (150, 150)

_MATCHED_FORM = "'name n1 n2' (a matched pair: two images of one person)"
_MISMATCHED_FORM = "'name1 n1 name2 n2' (a mismatched pair: images of two people)"


@dataclass
class PairsFile:
    """The pairs of a pairs.txt-style protocol file, in file order.

    Each pair is (name1, num1, name2, num2) with name1 == name2 for matched pairs; `folds` holds the
    fold of each pair (from the header), or None for a file without a header; `line_numbers` the
    line of the file each pair was read from (for error messages).
    """

    pairs: list[tuple[str, int, str, int]]
    issame: list[bool]
    folds: list[int] | None
    num_folds: int
    pairs_per_class: int | None
    line_numbers: list[int] | None = None


def _header(tokens: list[str]) -> tuple[int, int] | None:
    """(folds, pairs per class) from "10 300" or "1100" (LFW's View 1 files: one fold), else None."""
    if len(tokens) in (1, 2) and all(token.isdigit() for token in tokens):
        numbers = [int(token) for token in tokens]
        return (numbers[0], numbers[1]) if len(numbers) == 2 else (1, numbers[0])
    return None


def _image_number(token: str, path: Path, line_number: int, line: str) -> int:
    if not token.isdigit() or int(token) < 1:
        raise DataError(
            f"{path}, line {line_number}: image number {token!r} is not a positive integer in "
            f"{line!r}; expected {_MATCHED_FORM} or {_MISMATCHED_FORM}"
        )
    return int(token)


def read_pairs_file(path: str | os.PathLike) -> PairsFile:
    """Parse a pairs file in LFW's format (LFW's own, or any other set written in it).

    With a header line "F N" (or "N": one fold), the file holds F folds, each of N matched lines
    "name n1 n2" followed by N mismatched lines "name1 n1 name2 n2"; the counts and the order are
    checked. Without a header, each line is either form and there are no folds. Fields are separated
    by tabs or spaces; blank lines are ignored. Anything else is a DataError naming the line.
    """
    path = require_path(path, "pairs", "LFW", directory=False)
    with open(path, encoding="utf-8") as file:
        lines = [(number, line.strip()) for number, line in enumerate(file, start=1)]
    lines = [(number, line) for number, line in lines if line]
    if not lines:
        raise DataError(f"{path} is empty; expected a pairs file ({_MATCHED_FORM} lines)")
    header = _header(lines[0][1].split())
    body = lines[1:] if header else lines
    if header:
        num_folds, per_class = header
        expected = 2 * num_folds * per_class
        if len(body) != expected:
            raise DataError(
                f"{path}: header line {lines[0][1]!r} announces {num_folds} folds x {per_class} "
                f"matched + {per_class} mismatched pairs = {expected} lines, found {len(body)}"
            )
    pairs, issame, folds, line_numbers = [], [], [], []
    for position, (number, line) in enumerate(body):
        tokens = line.split()
        if header:
            fold, within = divmod(position, 2 * per_class)
            want_same = within < per_class
            if len(tokens) != (3 if want_same else 4):
                raise DataError(
                    f"{path}, line {number}: expected {_MATCHED_FORM if want_same else _MISMATCHED_FORM} "
                    f"(fold {fold + 1}, pair {within + 1} of {2 * per_class}), got {line!r}"
                )
            folds.append(fold)
        elif len(tokens) not in (3, 4):
            raise DataError(
                f"{path}, line {number}: expected {_MATCHED_FORM} or {_MISMATCHED_FORM}, got {line!r}"
            )
        if len(tokens) == 3:
            (name1, first, second), name2 = tokens, tokens[0]
        else:
            name1, first, name2, second = tokens
        num1, num2 = (_image_number(t, path, number, line) for t in (first, second))
        pairs.append((name1, num1, name2, num2))
        issame.append(len(tokens) == 3)
        line_numbers.append(number)
    return PairsFile(
        pairs=pairs,
        issame=issame,
        folds=folds if header else None,
        num_folds=header[0] if header else 1,
        pairs_per_class=header[1] if header else None,
        line_numbers=line_numbers,
    )


def load_pairs(
    image_root: str | os.PathLike,
    pairs_file: str | os.PathLike,
    filename: str = LFW_FILENAME,
    channels: int = 3,
    size: Sequence[int] | None = (112, 112),
    crop: Sequence[int] | None = LFW_CROP,
    name: str = "",
) -> VerificationSet:
    """A VerificationSet from a pairs file in LFW's format and images named by `filename`.

    `filename` is a format string with {name} and {num} (LFW: "{name}/{name}_{num:04d}.jpg"),
    relative to `image_root`. Every image is decoded once, however many pairs use it. A missing or
    unreadable image is a DataError (a verification protocol is not run with pairs left out).
    """
    check_channels(channels)
    image_root = require_path(image_root, "pairs image", "LFW")
    parsed = read_pairs_file(pairs_file)
    index: dict[tuple[str, int], int] = {}
    for name1, num1, name2, num2 in parsed.pairs:
        index.setdefault((name1, num1), len(index))
        index.setdefault((name2, num2), len(index))
    paths = [image_root / filename.format(name=person, num=num) for person, num in index]
    for (person, num), path in zip(index, paths, strict=True):
        if not path.is_file():
            raise DataError(
                f"{pairs_file} refers to {person} image {num}, but {path} does not exist "
                f"(images are looked up as {image_root}/{filename})"
            )
    pairs = torch.tensor(
        [[index[(n1, k1)], index[(n2, k2)]] for n1, k1, n2, k2 in parsed.pairs], dtype=torch.long
    )
    return VerificationSet(
        images=decode_stack(paths, channels, size, crop, [str(p) for p in paths], str(image_root)),
        pairs=pairs.reshape(-1, 2),
        issame=torch.tensor(parsed.issame, dtype=torch.bool),
        folds=torch.tensor(parsed.folds, dtype=torch.long) if parsed.folds is not None else None,
        name=name or Path(pairs_file).stem,
    )


def find_lfw_images(root: str | os.PathLike) -> Path:
    """The folder of person folders inside an LFW copy at `root` (see the module docstring)."""
    root = require_path(root, "LFW", "LFW")
    for candidate in LFW_IMAGE_DIRS:
        if (root / candidate).is_dir():
            return root / candidate
    if any(path.is_dir() and path.name != "__MACOSX" for path in root.iterdir()):
        return root
    raise DataError(
        f"no LFW images under {root}: expected one of {', '.join(LFW_IMAGE_DIRS)}/<Name>/<Name>_0001.jpg "
        "or the person folders directly in it (see data/README.md, section LFW)"
    )


def load_lfw_people(
    root: str | os.PathLike,
    min_images: int = 10,
    channels: int = 3,
    size: Sequence[int] | None = (112, 112),
    crop: Sequence[int] | None = LFW_CROP,
    on_error: str = "skip",
    on_mismatch: str = "keep",
) -> FaceSet:
    """LFW people with at least `min_images` images each, for training or identification.

    LFW is long-tailed (5,749 people, most with a single image), so identities with fewer than
    `min_images` images are dropped. Crop and size as in the module docstring.
    """
    return load_folder(
        find_lfw_images(root),
        channels=channels,
        size=size,
        crop=crop,
        min_images=min_images,
        on_error=on_error,
        on_mismatch=on_mismatch,
    )


def load_lfw_pairs(
    root: str | os.PathLike,
    pairs_file: str | os.PathLike = "pairs.txt",
    channels: int = 3,
    size: Sequence[int] | None = (112, 112),
    crop: Sequence[int] | None = LFW_CROP,
) -> VerificationSet:
    """LFW's verification protocol (View 2: 10 folds x 300 matched + 300 mismatched pairs).

    `pairs_file` is taken relative to `root`, then to the image folder (absolute paths as they are);
    folds come from the file. pairsDevTrain.txt / pairsDevTest.txt (View 1) give one fold.
    """
    images = find_lfw_images(root)
    pairs_path = Path(pairs_file)
    if not pairs_path.is_absolute():
        candidates = [Path(root).expanduser() / pairs_path, images / pairs_path]
        pairs_path = next((path for path in candidates if path.is_file()), candidates[0])
    return load_pairs(images, pairs_path, LFW_FILENAME, channels, size, crop, name="lfw")
