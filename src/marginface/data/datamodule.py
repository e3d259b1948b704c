"""The LightningDataModule: a face set, an identity-disjoint split, and loaders for train / closed-set / open-set."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from marginface.data.base import DataError, FaceSet, LazyFaceSet
from marginface.data.samplers import EpochShuffleSampler
from marginface.data.splits import holdout_per_identity, nested_identities, split_identities
from marginface.data.transforms import augment, match_channels, resize_uint8, to_float

#: names of the validation loaders (FaceDataModule.val_loader_names)
CLOSED_SET = "closed_set"  # held-out images of the training identities: closed-set accuracy
OPEN_SET = "open_set"  # images of identities never trained on: scored by embedding similarity


class _Indexed(Dataset):
    """(uint8 image, label) pairs of `source` at `indices`, relabelled through `label_map`."""

    def __init__(
        self,
        source: FaceSet | LazyFaceSet,
        indices: torch.Tensor,
        label_map: torch.Tensor,
        image_size: tuple[int, int],
        channels: int,
    ) -> None:
        self.source, self.indices, self.label_map = source, indices, label_map
        self.image_size, self.channels = image_size, channels

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        j = int(self.indices[i])
        image = self.source[j]
        if not isinstance(self.source, FaceSet):  # lazy sets decode at native size: fit them here
            image = match_channels(resize_uint8(image[None], self.image_size), self.channels)[0]
        return image, self.label_map[self.source.labels[j]]


class FaceDataModule(L.LightningDataModule):
    """Identity-disjoint face data: an open set of unseen identities, the rest train.

    `split` chooses the open set (data/README.md): "folds" (`fold` of `num_folds` identity folds),
    "random" (the `fold`-th seeded random split of `num_open` identities) or "unseen" (every
    identity; nothing to train on, num_classes 0: evaluating a trained model on a new set).

    Of each training identity, `val_per_identity` images are held out for closed-set validation.
    `train_identities` N trains on a nested subset of N of them (splits.nested_identities); the
    open set stays the same, and the other training identities are left unused.
    In-memory sets are resized and channel-matched once at set-up; batches stay uint8 until they
    reach the device, where they are normalised (and augmented in training) as whole batches.
    """

    def __init__(
        self,
        dataset: FaceSet | LazyFaceSet | Callable[[], FaceSet | LazyFaceSet],
        fold: int = 0,
        num_folds: int = 4,
        split_seed: int = 0,
        split: Literal["folds", "random", "unseen"] = "folds",
        num_open: int = 10,
        val_per_identity: int = 2,
        image_size: tuple[int, int] = (56, 48),
        channels: int = 1,
        batch_size: int = 64,
        eval_batch_size: int = 256,
        num_workers: int = 0,
        augment: Mapping[str, Any] | None = None,
        seed: int = 0,
        train_identities: int | None = None,
    ) -> None:
        super().__init__()
        self._dataset_source = dataset
        self.fold, self.num_folds, self.split_seed = int(fold), int(num_folds), int(split_seed)
        self.split, self.num_open = str(split), int(num_open)
        self.val_per_identity = int(val_per_identity)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.channels = int(channels)
        self.batch_size, self.eval_batch_size = int(batch_size), int(eval_batch_size)
        self.num_workers = int(num_workers)
        self.augment_args = dict(augment or {})
        self.seed = int(seed)
        self.train_identities = None if train_identities is None else int(train_identities)
        self.data: FaceSet | LazyFaceSet | None = None

    # -- set-up -----------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.data is not None:
            return
        data = self._dataset_source() if callable(self._dataset_source) else self._dataset_source
        if isinstance(data, FaceSet):  # decode/resize once, keep one copy
            data = FaceSet(
                match_channels(resize_uint8(data.images, self.image_size), self.channels),
                data.labels,
                data.identities,
                data.paths,
            )
        self.data = data
        # drop the data set as given (e.g. ORL at its native 112x92): only the resized copy is used,
        # so the original can be freed and no data set stays in memory twice (bench_scale.py checks)
        if not callable(self._dataset_source):
            self._dataset_source = None
        self.train_ids, self.open_ids = split_identities(
            self.split,
            data.num_identities,
            self.fold,
            self.num_folds,
            self.num_open,
            self.split_seed,
        )
        self.train_ids = nested_identities(self.train_ids, self.train_identities, self.split_seed)
        labels = data.labels
        in_train = torch.isin(labels, self.train_ids)
        train_pool = torch.nonzero(in_train).flatten()
        fit_local, val_local = holdout_per_identity(
            labels[train_pool], self.val_per_identity, self.split_seed
        )
        self.train_index, self.val_index = train_pool[fit_local], train_pool[val_local]
        self.open_index = torch.nonzero(torch.isin(labels, self.open_ids)).flatten()
        if len(self.open_index) < 2:
            raise DataError(
                f"fold {self.fold} leaves {len(self.open_index)} open-set images; need at least 2"
            )
        # training identities become classes 0..C-1; open-set ones keep distinct ids after them
        self.label_map = torch.full((data.num_identities,), -1, dtype=torch.long)
        self.label_map[self.train_ids] = torch.arange(len(self.train_ids))
        self.label_map[self.open_ids] = len(self.train_ids) + torch.arange(len(self.open_ids))

    @property
    def num_classes(self) -> int:
        """Number of training identities: the rows of the classification matrix."""
        self._require_setup()
        return len(self.train_ids)

    def _require_setup(self) -> None:
        if self.data is None:
            raise RuntimeError("FaceDataModule.setup() must run before its splits are used")

    def _subset(self, index: torch.Tensor) -> _Indexed:
        self._require_setup()
        return _Indexed(self.data, index, self.label_map, self.image_size, self.channels)

    def open_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(uint8 images, labels) of every open-set image, for embedding and scoring (in-memory sets)."""
        return self._stack(self.open_index)

    def open_set_paths(self) -> list[str] | None:
        """The file of every open-set image, in open_set() order; None where the set has no files."""
        self._require_setup()
        if isinstance(self.data, FaceSet):
            paths = self.data.paths
            return None if paths is None else [paths[int(i)] for i in self.open_index]
        paths = [self.data.path(int(i)) for i in self.open_index]
        return None if None in paths else paths

    def training_identities(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(uint8 images, class labels) of every image of the training identities (train + held out)."""
        return self._stack(torch.cat([self.train_index, self.val_index]))

    def closed_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(uint8 images, class labels) of the held-out images of training identities."""
        return self._stack(self.val_index)

    def _stack(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        subset = self._subset(index)
        pairs = [subset[i] for i in range(len(subset))]
        if not pairs:
            return torch.empty(0, self.channels, *self.image_size, dtype=torch.uint8), torch.empty(
                0, dtype=torch.long
            )
        return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])

    # -- loaders ----------------------------------------------------------------------------
    def _loader(self, index: torch.Tensor, shuffle: bool, batch_size: int) -> DataLoader:
        # the order of an epoch depends on (seed, epoch) only: a resumed run replays it exactly;
        # the loader's own generator keeps its worker seeds off the global RNG augmentation draws from
        sampler = EpochShuffleSampler(len(index), self.seed) if shuffle else None
        gen = torch.Generator().manual_seed(self.seed) if shuffle else None
        return DataLoader(
            self._subset(index),
            batch_size=batch_size,
            sampler=sampler,
            generator=gen,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_index, True, self.batch_size)

    @property
    def val_loader_names(self) -> tuple[str, ...]:
        """What each loader of val_dataloader() holds, in order: CLOSED_SET (if any images are held
        out of the training identities), then OPEN_SET."""
        self._require_setup()
        return (CLOSED_SET, OPEN_SET) if len(self.val_index) else (OPEN_SET,)

    def val_dataloader(self) -> list[DataLoader]:
        """Held-out images of training identities and open-set images, as `val_loader_names` says."""
        index = {CLOSED_SET: self.val_index, OPEN_SET: self.open_index}
        return [
            self._loader(index[name], False, self.eval_batch_size) for name in self.val_loader_names
        ]

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        images, labels = batch
        images = to_float(images)
        if self.trainer is not None and self.trainer.training and self.augment_args:
            images = augment(images, **self.augment_args)
        return images, labels
