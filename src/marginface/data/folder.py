"""Face images in one sub-folder per identity (CASIA-WebFace, VGGFace2, your own): see data/README.md.

Layout: `root/<identity>/<image>` with the image files directly inside each identity folder; names
starting with "." are ignored, and so are files at the top level and files with other extensions than
IMAGE_EXTENSIONS. Identities are sorted by folder name; label i is the i-th kept identity.

`load_folder` decodes everything once into a FaceSet (small sets: ORL-sized to a few thousand images).
`FolderDataset` lists the tree once, caches the listing in an index file and decodes on demand
(CASIA-WebFace, VGGFace2: hundreds of thousands to millions of files).

Index cache rule (FolderDataset): the index (default `root/.marginface_index.tsv`, or `index_path`,
which belongs to one root) is reused when it exists, has the expected header, and neither `root`
nor any identity folder was modified after it (directory mtimes: adding, removing or renaming a
file touches its folder, adding an identity touches `root`). Otherwise the tree is listed again and
the index rewritten. Editing an image in place does not touch its folder and needs no new index
(the index holds names only). Changes made while the tree is being listed can be missed: delete
the index file to force a new listing. If the index cannot be written (read-only data), a warning
says so and the listing is kept in memory only; pass `index_path` to put it somewhere writable.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from marginface.data.base import DataError, FaceSet, LazyFaceSet
from marginface.data.images import (
    IMAGE_EXTENSIONS,
    as_pair,
    check_channels,
    check_on_error,
    check_on_mismatch,
    decode_image,
    require_path,
    screen_formats,
    stack_images,
    warn_skipped,
)

log = logging.getLogger(__name__)

INDEX_NAME = ".marginface_index.tsv"
PROGRESS_FROM = 2000  # images: smaller folders decode in a few seconds, without a bar
INDEX_HEADER = "# marginface folder index v1: identity<TAB>file, one image a line"

Listing = list[tuple[str, str]]  # (identity folder name, file name inside it), sorted


def _visible(name: str) -> bool:
    return not name.startswith(".")


def _identity_dirs(root: Path) -> list[os.DirEntry]:
    with os.scandir(root) as entries:
        dirs = [entry for entry in entries if _visible(entry.name) and entry.is_dir()]
    return sorted(dirs, key=lambda entry: entry.name)


def scan_tree(root: str | os.PathLike) -> Listing:
    """List every image as (identity, file name), both sorted; the slow step the index file caches."""
    listing: Listing = []
    for identity in _identity_dirs(Path(root)):
        with os.scandir(identity.path) as entries:
            names = sorted(
                entry.name
                for entry in entries
                if _visible(entry.name)
                and entry.name.lower().endswith(IMAGE_EXTENSIONS)
                and entry.is_file()
            )
        for name in names:
            if "\t" in name or "\n" in name or "\t" in identity.name:
                raise DataError(
                    f"cannot index {os.path.join(identity.path, name)}: tabs and newlines are not "
                    "allowed in identity or file names"
                )
            listing.append((identity.name, name))
    return listing


def _index_is_fresh(root: Path, index_path: Path) -> bool:
    try:
        index_mtime = index_path.stat().st_mtime_ns
    except FileNotFoundError:
        return False
    return _newest_mtime(root) <= index_mtime


def _read_index(index_path: Path) -> Listing | None:
    """The listing in an index file, or None when it is not one of ours (then it is rebuilt)."""
    try:
        return _parse_index(index_path)
    except (OSError, UnicodeDecodeError):
        return None


def _parse_index(index_path: Path) -> Listing | None:
    with open(index_path, encoding="utf-8") as file:
        if file.readline().rstrip("\n") != INDEX_HEADER:
            return None
        listing = []
        for line in file:
            identity, sep, name = line.rstrip("\n").partition("\t")
            if not sep or not name:
                return None
            listing.append((identity, name))
    return listing


def _newest_mtime(root: Path) -> int:
    return max(
        [root.stat().st_mtime_ns] + [entry.stat().st_mtime_ns for entry in _identity_dirs(root)]
    )


def _write_index(index_path: Path, listing: Listing, newest: int) -> None:
    tmp_path = index_path.with_name(f"{index_path.name}.tmp{os.getpid()}")
    try:
        with open(tmp_path, "w", encoding="utf-8") as file:
            file.write(INDEX_HEADER + "\n")
            file.writelines(f"{identity}\t{name}\n" for identity, name in listing)
        os.replace(tmp_path, index_path)  # atomic: other processes see the old index or the new one
        # Renaming into root touches root's mtime: stamp the index after that, and no older than
        # the newest folder (clock skew on network file systems would otherwise rebuild forever).
        stamp = max(time.time_ns(), newest)
        os.utime(index_path, ns=(stamp, stamp))
    except OSError as error:
        tmp_path.unlink(missing_ok=True)
        warnings.warn(
            f"cannot write the folder index {index_path} ({error}); the listing is kept in memory "
            "only and redone next time (pass index_path=... to cache it somewhere writable)",
            stacklevel=3,
        )


def load_listing(
    root: str | os.PathLike, index_path: str | os.PathLike | None = None
) -> tuple[Listing, bool]:
    """The listing of `root`, from its index file when fresh; returns (listing, whether it was rebuilt)."""
    root = Path(root)
    index = Path(index_path) if index_path is not None else root / INDEX_NAME
    if _index_is_fresh(root, index):
        listing = _read_index(index)
        if listing is not None:
            return listing, False
    log.info("listing %s (index %s missing or older than the folders)", root, index)
    newest = _newest_mtime(root)
    listing = scan_tree(root)
    _write_index(index, listing, newest)
    return listing, True


def select_identities(
    identities: Sequence[str], min_images: int, where: str
) -> tuple[list[str], np.ndarray]:
    """Keep identities with at least `min_images` items; returns (kept names, label per item or -1)."""
    if not identities:
        raise DataError(
            f"no images found in {where}; expected one sub-folder per identity holding "
            f"{'/'.join(IMAGE_EXTENSIONS)} files (see data/README.md)"
        )
    names, inverse, counts = np.unique(
        np.asarray(identities, dtype=object).astype(str), return_inverse=True, return_counts=True
    )
    keep = counts >= min_images
    if keep.sum() < 2:
        raise DataError(
            f"{where}: {int(keep.sum())} identities with at least min_images={min_images} images "
            f"(of {len(names)} identities, {len(identities)} images); need at least 2 "
            "(lower min_images or add identities; see data/README.md)"
        )
    if not keep.all():
        log.info(
            "%s: dropped %d of %d identities with fewer than %d images",
            where,
            int((~keep).sum()),
            len(names),
            min_images,
        )
    new_label = np.full(len(names), -1, dtype=np.int64)
    new_label[keep] = np.arange(int(keep.sum()))
    return [str(name) for name in names[keep]], new_label[inverse]


def decode_files(
    paths: Sequence[Path],
    identities: Sequence[str],
    channels: int,
    size: Sequence[int] | None,
    crop: Sequence[int] | None,
    on_error: str,
    where: str,
) -> tuple[list[torch.Tensor], list[str], list[Path]]:
    """Decode files; unreadable ones raise (on_error='raise') or are left out with one warning."""
    check_on_error(on_error)
    images, kept_identities, kept_paths, skipped = [], [], [], []
    # a bar for folders that take more than a few seconds to decode
    bar = tqdm(
        zip(paths, identities, strict=True),
        total=len(paths),
        desc="decoding",
        unit="img",
        disable=len(paths) < PROGRESS_FROM,
        leave=False,
    )
    for path, identity in bar:
        try:
            images.append(decode_image(path, channels, size, crop))
        except DataError as error:
            if on_error == "raise":
                raise
            skipped.append((str(path), str(error.__cause__ or error)))
            continue
        kept_identities.append(identity)
        kept_paths.append(path)
    warn_skipped(skipped, where)
    return images, kept_identities, kept_paths


def _warn_empty_identities(root: Path, listing: Listing) -> None:
    listed = {identity for identity, _ in listing}
    empty = [entry.name for entry in _identity_dirs(root) if entry.name not in listed]
    if empty:
        warnings.warn(
            f"{len(empty)} identity folder(s) in {root} hold no images and are left out: "
            f"{', '.join(empty[:5])}{' ...' if len(empty) > 5 else ''}",
            stacklevel=3,
        )


def load_folder(
    root: str | os.PathLike,
    channels: int = 1,
    size: Sequence[int] | None = None,
    crop: Sequence[int] | None = None,
    min_images: int = 1,
    on_error: str = "skip",
    on_mismatch: str = "keep",
) -> FaceSet:
    """Decode a one-folder-per-identity tree into memory (small sets); see the module docstring.

    Identities with fewer than `min_images` readable images are dropped; fewer than 2 left is a
    DataError. Unreadable images are skipped with one warning (count and first paths), or raise a
    DataError naming the file with on_error="raise". Images whose native size or colour differs
    from most of the set are counted in one warning and kept (on_mismatch="keep"), left out
    ("skip") or refused ("raise"); identity folders without images are counted in a warning.
    """
    check_channels(channels)
    check_on_error(on_error)
    check_on_mismatch(on_mismatch)
    root = require_path(root, "face folder", "folder")
    listing = scan_tree(root)
    _warn_empty_identities(root, listing)
    paths = [root / identity / name for identity, name in listing]
    images, identities, kept_paths = decode_files(
        paths, [identity for identity, _ in listing], channels, size, crop, on_error, str(root)
    )
    if listing and not images:
        raise DataError(
            f"none of the {len(listing)} images in {root} could be read (see the warning)"
        )
    kept = screen_formats(kept_paths, on_mismatch, str(root))
    images, identities = [images[i] for i in kept], [identities[i] for i in kept]
    kept_paths = [kept_paths[i] for i in kept]
    names, labels = select_identities(identities, min_images, str(root))
    keep = np.flatnonzero(labels >= 0)
    return FaceSet(
        images=stack_images(
            [images[i] for i in keep], [str(kept_paths[i]) for i in keep], str(root)
        ),
        labels=torch.from_numpy(labels[keep]),
        identities=names,
        paths=[str(kept_paths[i]) for i in keep],
    )


class FolderDataset(LazyFaceSet):
    """A one-folder-per-identity tree decoded lazily, image by image (CASIA-WebFace, VGGFace2).

    The listing is cached in `index_path` (default `root/.marginface_index.tsv`; rule in the module
    docstring). `index_built` says whether this instance listed the tree. Identities with fewer than
    `min_images` listed files are dropped. An unreadable image raises a DataError with
    on_error="raise"; with on_error="skip" the next readable image of the same identity is returned
    instead, and `skipped` records (path, reason); counts are per process (each DataLoader worker
    keeps its own) and warned about at the 1st, 10th, 100th, ... skip.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        channels: int = 3,
        size: Sequence[int] | None = None,
        crop: Sequence[int] | None = None,
        min_images: int = 1,
        on_error: str = "skip",
        index_path: str | os.PathLike | None = None,
    ) -> None:
        self.channels = check_channels(channels)
        self.size, self.crop = as_pair(size, "size"), as_pair(crop, "crop")
        self.on_error = check_on_error(on_error)
        root_path = require_path(root, "face folder", "folder")
        self.root = str(root_path)
        self.index_path = str(index_path if index_path is not None else root_path / INDEX_NAME)
        listing, self.index_built = load_listing(root_path, self.index_path)
        names, labels = select_identities(
            [identity for identity, _ in listing], min_images, self.root
        )
        keep = np.flatnonzero(labels >= 0)
        # Fixed-width bytes, not a list of str: no per-item Python objects for forked workers to copy.
        self.files = np.array(
            [f"{listing[i][0]}/{listing[i][1]}".encode() for i in keep], dtype=np.bytes_
        )
        self.labels = torch.from_numpy(labels[keep])
        self.identities = names
        # Labels are contiguous runs (the listing is sorted by identity): run bounds per label.
        self._bounds = np.searchsorted(labels[keep], np.arange(len(names) + 1))
        self.skipped: list[tuple[str, str]] = []

    def path(self, index: int) -> str:
        return os.path.join(self.root, self.files[index].decode())

    def __getitem__(self, index: int) -> torch.Tensor:
        index = int(index)
        label = int(self.labels[index])
        start, stop = int(self._bounds[label]), int(self._bounds[label + 1])
        # On failure, walk the identity's other images in order, wrapping round to its first.
        for candidate in itertools.chain(range(index, stop), range(start, index)):
            try:
                return decode_image(self.path(candidate), self.channels, self.size, self.crop)
            except DataError as error:
                if self.on_error == "raise":
                    raise
                self.skipped.append((self.path(candidate), str(error.__cause__ or error)))
                if math.log10(len(self.skipped)).is_integer():
                    warn_skipped(self.skipped, self.root)
        raise DataError(
            f"every image of identity {self.identities[label]!r} in {self.root} is unreadable "
            f"(first: {self.path(start)})"
        )
