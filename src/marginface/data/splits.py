"""Identity-disjoint splits: which identities train and which are open-set; held-out images for closed-set validation.

`split_identities` dispatches on `data.split`: "folds" (k identity folds), "random" (seeded random
splits, any number of them) or "unseen" (every identity open-set: evaluating a trained model).
"""

from __future__ import annotations

import numpy as np
import torch

from marginface.data.base import DataError


def identity_folds(
    num_identities: int, num_folds: int, fold: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(train identities, open-set identities) for `fold` of `num_folds`, from a permutation fixed by `seed`.

    Every identity is open-set in exactly one fold; fold sizes differ by at most one.
    """
    if num_folds < 2:
        raise DataError(
            f"num_folds must be >= 2 (one fold is held out as open set), got {num_folds}"
        )
    if not 0 <= fold < num_folds:
        raise DataError(f"fold must be in [0, {num_folds}), got {fold}")
    if num_identities < 2 * num_folds:
        raise DataError(
            f"{num_identities} identities cannot make {num_folds} folds with at least 2 open-set "
            "identities each; lower data.num_folds or use a larger data set"
        )
    order = torch.randperm(num_identities, generator=torch.Generator().manual_seed(seed))
    open_ids = order[fold::num_folds].sort().values
    mask = torch.ones(num_identities, dtype=torch.bool)
    mask[open_ids] = False
    return torch.nonzero(mask).flatten(), open_ids


def random_split(
    num_identities: int, num_open: int, index: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(train identities, open-set identities) of the `index`-th random split: `num_open` identities
    drawn without replacement by a generator seeded with (seed, index).

    Different splits are drawn independently, so they overlap: an identity can be open-set in many.
    """
    if index < 0:
        raise DataError(
            f"fold must be >= 0 with data.split=random (the split's number), got {index}"
        )
    if num_open < 2:
        raise DataError(
            f"data.num_open={num_open}: a random split needs at least 2 open-set (unseen) identities"
        )
    if num_identities - num_open < 1:
        raise DataError(
            f"data.num_open={num_open} of {num_identities} identities leaves "
            f"{num_identities - num_open} to train on; lower data.num_open (at most "
            f"{num_identities - 1}) or use data.split=unseen to evaluate on every identity"
        )
    order = np.random.default_rng([int(seed), int(index)]).permutation(num_identities)
    open_ids = torch.from_numpy(np.sort(order[:num_open])).long()
    mask = torch.ones(num_identities, dtype=torch.bool)
    mask[open_ids] = False
    return torch.nonzero(mask).flatten(), open_ids


SPLITS = ("folds", "random", "unseen")


def split_identities(
    split: str,
    num_identities: int,
    fold: int = 0,
    num_folds: int = 4,
    num_open: int = 10,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(train identities, open-set identities) for `data.split` (see the module docstring)."""
    if split == "folds":
        return identity_folds(num_identities, num_folds, fold, seed)
    if split == "random":
        return random_split(num_identities, num_open, fold, seed)
    if split == "unseen":
        if num_identities < 2:
            raise DataError(
                f"data.split=unseen needs at least 2 identities to compare, got {num_identities}"
            )
        return torch.empty(0, dtype=torch.long), torch.arange(num_identities)
    raise DataError(f"data.split={split!r}: expected one of {', '.join(SPLITS)} (data/README.md)")


def holdout_per_identity(
    labels: torch.Tensor, per_identity: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, held-out indices): `per_identity` random images of every identity held out.

    An identity keeps at least one training image: it holds out min(per_identity, count - 1).
    """
    gen = torch.Generator().manual_seed(seed)
    train, held = [torch.empty(0, dtype=torch.long)], [torch.empty(0, dtype=torch.long)]
    for identity in torch.unique(labels):
        index = torch.nonzero(labels == identity).flatten()
        index = index[torch.randperm(len(index), generator=gen)]
        k = max(0, min(per_identity, len(index) - 1))
        held.append(index[:k])
        train.append(index[k:])
    return torch.cat(train).sort().values, torch.cat(held).sort().values


def nested_identities(train_ids: torch.Tensor, count: int | None, seed: int = 0) -> torch.Tensor:
    """The first `count` of `train_ids` in a permutation fixed by `seed` (sorted); all when None.

    Nested: for one seed, the subset of 100 lies inside the subset of 300, so a scaling study adds
    identities to a run instead of drawing new ones.
    """
    if count is None:
        return train_ids
    if not 2 <= count <= len(train_ids):
        raise DataError(
            f"data.train_identities={count}: this split has {len(train_ids)} training identities, "
            f"so it must lie in [2, {len(train_ids)}] (or null for all); use a larger data set "
            "or fewer open-set identities (data/README.md)"
        )
    # an offset seed: the subset's order is not the fold permutation's order again
    order = torch.randperm(len(train_ids), generator=torch.Generator().manual_seed(seed + 1))
    return train_ids[order[:count]].sort().values
