"""The results.json schema: what one run writes into its run dir and the report reads (docs/metrics.md).

Every figure a run cannot measure is null, never a made-up number; a whole block is null where the
protocol gives it no data (a fixed pairs protocol has no identification or retrieval).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: the top-level keys, in the order they are written
TOP_LEVEL_KEYS = ("loss", "seed", "fold", "config", "head", "closed_set", "open_set", "timing")
#: "head": the classification matrix's cost (null for head-free baselines)
HEAD_KEYS = ("parameters", "bytes")
#: "closed_set": held-out images of the training identities
CLOSED_SET_KEYS = ("accuracy",)
#: "open_set": identities never trained on, block by block, each block's keys in order
OPEN_SET_KEYS = {
    "verification": (
        "auc",
        "eer",
        "accuracy_10fold",
        "accuracy_10fold_std",
        "tar@far=1e-1",
        "tar@far=1e-2",
        "tar@far=1e-3",
        "tar@far=1e-4",
    ),
    "identification": ("rank1", "rank5", "dir@fpir=1e-1", "dir@fpir=1e-2"),
    "retrieval": ("precision@1", "map@r"),
    "angles": ("genuine_mean_deg", "impostor_mean_deg"),
    # error versus reject on the embedding norm: "reject", "fnmr" and "genuine_pairs" are lists,
    # one entry per rejected share (metrics/quality.py); null for a baseline without a norm
    "quality": ("far", "threshold", "reject", "fnmr", "genuine_pairs"),
}
#: "timing": seconds of training and evaluation, training throughput (null where not run)
TIMING_KEYS = ("train_s", "eval_s", "images_per_s")


def ensemble_head(members: Sequence[Mapping[str, Any]]) -> str:
    """The head of an ensemble (`model=ensemble`): its members' heads ("loss" of each member's
    checkpoint block), sorted, without repeats, joined by "+" ("arcface", "arcface+softmax")."""
    return "+".join(sorted({str(m.get("loss", "unknown")) for m in members}))


def schema_problems(results: Mapping[str, Any]) -> list[str]:
    """What in `results` departs from the schema (missing or unknown keys); empty when it conforms."""
    problems = _keys("results", results, TOP_LEVEL_KEYS)
    nested = {"head": HEAD_KEYS, "closed_set": CLOSED_SET_KEYS, "timing": TIMING_KEYS}
    for name, keys in nested.items():
        if results.get(name) is not None:
            problems += _keys(name, results[name], keys)
    open_set = results.get("open_set")
    if open_set is not None:
        problems += _keys("open_set", open_set, tuple(OPEN_SET_KEYS))
        for block, keys in OPEN_SET_KEYS.items():
            if open_set.get(block) is not None:
                problems += _keys(f"open_set.{block}", open_set[block], keys)
    return problems


def _keys(where: str, node: Any, expected: tuple[str, ...]) -> list[str]:
    if not isinstance(node, Mapping):
        return [f"{where} must be a mapping with keys {list(expected)}, got {type(node).__name__}"]
    missing = [k for k in expected if k not in node]
    unknown = [k for k in node if k not in expected]
    found = [f"{where} lacks {missing}"] if missing else []
    return found + ([f"{where} has unknown keys {unknown}"] if unknown else [])
