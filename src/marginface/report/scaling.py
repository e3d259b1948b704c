"""head_scaling.json, the measurements of weakness 1 (marginface.experiments.scaling): read and written here."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from marginface.io import write_json


def save(data: Mapping[str, Any], path: str | Path) -> Path:
    return write_json(path, data)


def load(path: str | Path) -> dict[str, Any]:
    data = json.loads(Path(path).read_text())
    if "rows" not in data or "dim" not in data:
        raise ValueError(
            f"{path} is not a head-scaling file (written by benchmarks/bench_head_scaling.py --json)"
        )
    return data
