"""The results.json schema (marginface.results): what conforms, and what each departure is called."""

from __future__ import annotations

from marginface.results import OPEN_SET_KEYS, TOP_LEVEL_KEYS, schema_problems


def conforming() -> dict:
    return {
        "loss": "arcface",
        "seed": 0,
        "fold": 0,
        "config": {},
        "head": {"parameters": 10, "bytes": 40},
        "closed_set": {"accuracy": None},
        "open_set": {block: dict.fromkeys(keys, 0.5) for block, keys in OPEN_SET_KEYS.items()},
        "timing": {"train_s": 1.0, "eval_s": 1.0, "images_per_s": None},
    }


def test_a_run_as_written_conforms():
    results = conforming()
    assert list(results) == list(TOP_LEVEL_KEYS) and schema_problems(results) == []
    # a fixed pairs protocol: no identification or retrieval; a baseline: no head
    results["open_set"]["identification"] = results["open_set"]["retrieval"] = None
    results["head"] = None
    assert schema_problems(results) == []


def test_each_departure_is_named():
    results = conforming()
    del results["timing"]
    results["open_set"]["verification"]["tar@far=1e-5"] = 0.1
    del results["open_set"]["retrieval"]["map@r"]
    results["head"] = 3
    assert schema_problems(results) == [
        "results lacks ['timing']",
        "head must be a mapping with keys ['parameters', 'bytes'], got int",
        "open_set.verification has unknown keys ['tar@far=1e-5']",
        "open_set.retrieval lacks ['map@r']",
    ]
