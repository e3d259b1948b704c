"""The in-memory face set every loader returns, and the error raised for bad data."""

from __future__ import annotations

from dataclasses import dataclass

import torch


class DataError(ValueError):
    """A data set is missing, malformed or too small; the message says what and where to look."""


@dataclass
class FaceSet:
    """Images of identities, decoded once and held as uint8.

    images: (N, C, H, W) uint8; labels: (N,) int64 in [0, len(identities)); identities: one name per label;
    paths: the file of each image where it came from one (folders), which pairs files refer to.
    """

    images: torch.Tensor
    labels: torch.Tensor
    identities: list[str]
    paths: list[str] | None = None

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise DataError(
                f"FaceSet.images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}"
            )
        if self.labels.dim() != 1 or len(self.labels) != len(self.images):
            raise DataError(
                f"FaceSet.labels must be (N,) with N={len(self.images)}, got {tuple(self.labels.shape)}"
            )
        if self.paths is not None and len(self.paths) != len(self.labels):
            raise DataError(
                f"FaceSet.paths must name the {len(self.labels)} images, got {len(self.paths)}"
            )
        self.labels = self.labels.long()
        if len(self.labels) and (
            self.labels.min() < 0 or self.labels.max() >= len(self.identities)
        ):
            raise DataError(
                f"FaceSet.labels must lie in [0, {len(self.identities)}), "
                f"got [{int(self.labels.min())}, {int(self.labels.max())}]"
            )

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_identities(self) -> int:
        return len(self.identities)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def subset(self, index: torch.Tensor) -> FaceSet:
        """The images at `index`, labels kept as they are (identity names shared)."""
        paths = None if self.paths is None else [self.paths[int(i)] for i in index]
        return FaceSet(self.images[index], self.labels[index], self.identities, paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]


class LazyFaceSet:
    """Protocol for data sets too large for memory (folder at scale, RecordIO).

    Subclasses set `labels` ((N,) int64 tensor) and `identities` (names), and implement
    `__getitem__(i) -> uint8 tensor (C, H, W)` that decodes one image on demand (picklable, so
    DataLoader workers can call it).
    """

    labels: torch.Tensor
    identities: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_identities(self) -> int:
        return len(self.identities)

    def __getitem__(self, index: int) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def path(self, index: int) -> str | None:
        """The file image `index` is read from, or None for sets not stored one file an image."""
        return None


@dataclass
class VerificationSet:
    """A fixed verification protocol: images plus pairs of indices into them and whether each pair is genuine.

    images: (N, C, H, W) uint8; pairs: (P, 2) int64 indices into images; issame: (P,) bool;
    folds: (P,) int64 fold id per pair (the LFW 10-fold protocol) or None.
    """

    images: torch.Tensor
    pairs: torch.Tensor
    issame: torch.Tensor
    folds: torch.Tensor | None = None
    name: str = ""
