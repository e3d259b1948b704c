"""Tables of the benchmarks, and the one-table summary of `make bench` (each script adds its headline
figures to a JSON file).

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


def markdown(header: list[str], rows: list[tuple]) -> str:
    """A markdown table, the first column padded to its widest cell."""
    width = max(len(str(r[0])) for r in [header, *rows])
    lines = [
        "| " + " | ".join([f"{header[0]:<{width}}", *header[1:]]) + " |",
        f"|{'-' * (width + 2)}|" + "---|" * (len(header) - 1),
    ]
    for row in rows:
        lines.append("| " + " | ".join([f"{row[0]:<{width}}", *map(str, row[1:])]) + " |")
    return "\n".join(lines)


def table(path: str) -> str:
    """The summary as a markdown table."""
    rows = json.loads(Path(path).read_text())
    marks = {True: "yes", False: "NO", None: ""}
    rows = [(what, measured, target, marks[met]) for what, measured, target, met in rows]
    return markdown(["what", "measured", "target", "met"], rows)
