"""keep_freed_memory: large tensors come from malloc's heap (reused), not from fresh mmaps."""

from __future__ import annotations

import subprocess
import sys

import pytest

from marginface.allocator import keep_freed_memory

# in a fresh process: where a 100 MB tensor lands, read from /proc/self/maps
PROBE = """
import sys
import torch
from marginface.allocator import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
tensor = torch.empty(25_000_000)  # 100 MB, above glibc's largest mmap threshold (32 MiB)
address = tensor.data_ptr()
for line in open("/proc/self/maps"):
    span, *rest = line.split()
    low, high = (int(x, 16) for x in span.split("-"))
    if low <= address < high:
        print(applied, rest[-1] if len(rest) == 5 else "anonymous")
"""


def where_a_large_tensor_lands(mode: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def glibc() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    out = subprocess.run(["ldd", "--version"], capture_output=True, text=True)
    return "GNU" in out.stdout or "GLIBC" in out.stdout.upper()


needs_glibc = pytest.mark.skipif(not glibc(), reason="glibc's mallopt and /proc: Linux with glibc")


@needs_glibc
def test_large_tensors_come_from_the_heap_only_once_kept():
    # glibc's default: a fresh anonymous mapping, returned to the kernel on free
    assert where_a_large_tensor_lands("default") == "None anonymous"
    # kept: inside the [heap] mapping, where freed blocks stay for the next allocation
    assert where_a_large_tensor_lands("keep") == "True [heap]"


@needs_glibc
def test_a_second_call_reports_applied_again():
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True
