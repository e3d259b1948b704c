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


def machine() -> str:
    """One header line naming the machine: CPU model, its vector flags, cores, torch, load average."""
    import os
    import platform

    import torch

    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    vector = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())  # other users slow every timing down
    return (
        f"CPU: {model} ({', '.join(vector) or 'no AVX2'}), {os.cpu_count()} cores visible, "
        f"torch {torch.__version__}, load average {load}"
    )
