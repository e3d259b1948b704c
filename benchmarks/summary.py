"""The one-table summary of `make bench`: each benchmark script adds its headline figures to a JSON file.

A figure is (what, measured, target, met): `target` is the issue's target in words ("" when there is
none) and `met` True/False, or None when there is nothing to check. run_all.py prints them together.
"""

from __future__ import annotations

import json
from pathlib import Path


def add(path: str | None, figures: list[tuple[str, str, str, bool | None]]) -> None:
    """Append `figures` to the summary file at `path` (nothing when path is None)."""
    if not path:
        return
    file = Path(path)
    rows = json.loads(file.read_text()) if file.exists() else []
    rows += [list(f) for f in figures]
    file.write_text(json.dumps(rows, indent=1))


def table(path: str) -> str:
    """The summary as a markdown table."""
    rows = json.loads(Path(path).read_text())
    width = max(len(r[0]) for r in rows)
    lines = [
        f"| {'what':<{width}} | measured | target | met |",
        f"|{'-' * (width + 2)}|---|---|---|",
    ]
    for what, measured, target, met in rows:
        mark = {True: "yes", False: "NO", None: ""}[met]
        lines.append(f"| {what:<{width}} | {measured} | {target} | {mark} |")
    return "\n".join(lines)
