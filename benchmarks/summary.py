"""Tables of the benchmarks, and the one-table summary of `make bench` (each script adds its headline
figures to a JSON file).

A figure is (what, measured, target, met): `target` is the issue's target in words ("" when there is
none) and `met` True/False, or None when there is nothing to check. run_all.py prints them together.
"""

from __future__ import annotations

import json
import os
import platform
import re
from pathlib import Path

from marginface.allocator import applied as allocator_applied
from marginface.allocator import keep_freed_memory
from marginface.blas import cpu_flags

#: the CPU flags that decide which kernels torch and FAISS run
FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def add(path: str | None, figures: list[tuple[str, str, str, bool | None]]) -> None:
    """Append `figures` to the summary file at `path` (nothing when path is None)."""
    if not path:
        return
    file = Path(path)
    rows = json.loads(file.read_text()) if file.exists() else []
    # met may be a numpy bool, which json cannot write
    rows += [[*f[:3], None if f[3] is None else bool(f[3])] for f in figures]
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


def cpu_model_and_flags() -> tuple[str, list[str]]:
    """The CPU's model name and which of FLAGS it reports (Linux /proc/cpuinfo)."""
    model = platform.processor() or platform.machine()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return model, []
    if found := re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE):
        model = found.group(1).strip()
    flags = cpu_flags(text)  # the package's reader: the one that picks FAISS's BLAS kernels
    return model, [f for f in FLAGS if f in flags]


def native_bf16(flags: list[str] | None = None) -> bool:
    """Whether the CPU computes bf16 in hardware (avx512_bf16 or amx_bf16).

    Without either, oneDNN emulates bf16 and autocast is many times slower than fp32 (2026-12-02,
    an AVX2 Zen 3: a training step 14x slower), so the bf16 rows are skipped unless asked for.
    """
    if flags is None:
        flags = cpu_model_and_flags()[1]
    return "avx512_bf16" in flags or "amx_bf16" in flags


def bf16_wanted(choice: str) -> bool:
    """The scripts' `--bf16 auto|on|off`: auto measures bf16 only where native_bf16()."""
    return {"on": True, "off": False, "auto": native_bf16()}[choice]


def bf16_skipped(choice: str) -> str:
    """The note of a bf16 row that bf16_wanted(choice) left out: asked for, or the CPU's."""
    if choice == "off":
        return "--bf16 off"
    return "no avx512_bf16 or amx_bf16 on this CPU: bf16 is emulated (--bf16 on measures it)"


def add_bf16_option(parser, rows: str) -> None:
    """The `--bf16 auto|on|off` option of a script whose `rows` measure bf16 autocast."""
    parser.add_argument(
        "--bf16",
        choices=("auto", "on", "off"),
        default="auto",
        help=f"{rows} (auto: only where the CPU has avx512_bf16 or amx_bf16)",
    )


def add_malloc_keep_option(parser) -> None:
    """`--malloc-keep on|off`: freed memory kept in the process, as training does by default."""
    parser.add_argument(
        "--malloc-keep",
        choices=("on", "off"),
        default="on",
        help="glibc keeps freed memory for the next tensors, as training's default malloc_keep: "
        "true does (src/marginface/allocator.py); off: glibc's own behaviour",
    )


def apply_malloc_keep(choice: str) -> None:
    """Apply `--malloc-keep`; header() then says whether it took effect."""
    if choice == "on":
        keep_freed_memory()


def library_versions() -> str:
    """torch, its BLAS (MKL) and oneDNN versions, the kernels it picked; FAISS's build if present."""
    import torch

    config = torch.__config__.show()
    blas = re.search(r"BLAS_INFO=(\w+)", config)
    mkl = re.search(r"Math Kernel Library Version (\S+)", config)
    onednn = re.search(r"MKL-DNN (v[\d.]+)", config)
    parts = [
        f"torch {torch.__version__}",
        f"BLAS {blas.group(1) if blas else '?'} {mkl.group(1) if mkl else ''}".rstrip(),
        f"oneDNN {onednn.group(1) if onednn else '?'}",
        f"kernels {torch.backends.cpu.get_cpu_capability()}",
    ]
    try:
        import faiss

        parts.append(f"faiss {faiss.__version__} ({faiss.get_compile_options().strip()})")
    except ImportError:
        pass
    return ", ".join(parts)


def header() -> str:
    """One line naming the machine: CPU model, flags, cores, torch threads, libraries, load."""
    import torch

    model, flags = cpu_model_and_flags()
    return (
        f"# {model}; flags: {' '.join(flags) or 'none of ' + ' '.join(FLAGS)}; "
        f"{os.cpu_count()} cores, {torch.get_num_threads()} torch threads; {library_versions()}; "
        f"malloc_keep {'on' if allocator_applied() else 'off'}; "
        f"load average {os.getloadavg()[0]:.1f}"
    )


def matmul_peak(n: int = 2048, repeats: int = 10) -> float:
    """Best fp32 GFLOP/s of an n x n x n torch.matmul with torch's current threads."""
    import time

    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9
