"""The open-set protocols: which pairs are scored (all, sampled, a pairs file) and their fingerprint."""

from __future__ import annotations

import functools
import hashlib

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig


def search_factory(search_cfg: DictConfig | dict | None):
    """A zero-argument callable that builds a fresh search index from the `search` config group."""
    if search_cfg is None:
        from marginface.search import FlatSearch

        return FlatSearch
    return functools.partial(instantiate, search_cfg)


PAIRS_CHOICES = ("all", "sampled", "<a pairs file>")


def protocol_pairs(
    pairs: str | None, labels: np.ndarray, paths: list[str] | None, max_pairs: int | None, seed: int
) -> tuple[tuple[np.ndarray, np.ndarray] | None, np.ndarray | None]:
    """(pairs (i, j), fold per pair or None) for `eval.pairs`.

    "all": every pair (or a sample when eval.max_pairs is smaller); "sampled": eval.max_pairs pairs
    drawn by seed; anything else: a pairs file in LFW's format naming images of the folder.
    """
    from marginface.data.pairs_protocol import resolve_pairs
    from marginface.metrics.pairs import pairs_for, sampled_pairs

    if pairs in (None, "all"):
        i, j, _ = pairs_for(labels, max_pairs, seed)
        return (i, j), None
    if pairs == "sampled":
        if not max_pairs:
            raise ValueError("eval.pairs=sampled draws eval.max_pairs pairs: set eval.max_pairs=N")
        i, j, _ = sampled_pairs(labels, int(max_pairs), seed)
        return (i, j), None
    if paths is None:
        raise ValueError(
            f"eval.pairs={pairs}: a pairs file names image files, and this data set has none "
            f"(use data=folder or data=lfw); eval.pairs is one of {', '.join(PAIRS_CHOICES)}"
        )
    i, j, folds = resolve_pairs(pairs, paths)
    return (i, j), folds


def pairs_fingerprint(labels: np.ndarray, i: np.ndarray, j: np.ndarray) -> str:
    """sha1 of the scored pairs and the labels they index: equal when two runs scored the same pairs
    of the same images (in the same order), so their scores can be compared pair by pair."""
    digest = hashlib.sha1()
    for array in (np.unique(labels, return_inverse=True)[1], i, j):
        digest.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
    return digest.hexdigest()
