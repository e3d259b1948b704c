"""Tell FAISS's bundled OpenBLAS which kernels this CPU runs, before FAISS is loaded.

The faiss-cpu wheel ships its own OpenBLAS (0.3.15), which picks its GEMM kernels from the CPU's
family and model numbers. It does not know CPUs newer than itself: on a 2-core Intel Xeon of family
6 model 207 (AVX-512, under KVM) it fell back to its generic "Prescott" (SSE3) kernels, and exact
search ran at 13% of the fp32 matmul peak instead of the 83% measured on an AVX2 machine
(docs/benchmarks.md, machine D). OpenBLAS reads OPENBLAS_CORETYPE once, when the library loads, so
the kernel family must be in the environment before the first `import faiss`; the package's
__init__ calls `choose_openblas_coretype()` for that, after loading numpy, whose own OpenBLAS keeps
the kernels it picks itself. A value already set (by the user, or by a machine that needs a
particular one) is left alone, as is a process that loaded FAISS already.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: the flags OpenBLAS's SkylakeX kernels use (AVX-512 foundation, byte/word, vector length, dword)
AVX512 = frozenset({"avx512f", "avx512bw", "avx512vl", "avx512dq"})


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The flags of the first processor in /proc/cpuinfo (empty where there is none)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:  # not Linux
            return frozenset()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def coretype_for(flags: frozenset[str]) -> str | None:
    """OpenBLAS's kernel family for a CPU with these flags: SkylakeX, Haswell, or None (its own choice)."""
    if flags >= AVX512:
        return "SkylakeX"
    if flags >= {"avx2", "fma"}:
        return "Haswell"
    return None


def choose_openblas_coretype(environ=os.environ, flags: frozenset[str] | None = None) -> str | None:
    """Set OPENBLAS_CORETYPE from the CPU's flags when it is unset and FAISS is not loaded yet.

    Returns the value set, or None when nothing was changed.
    """
    if "OPENBLAS_CORETYPE" in environ or "faiss" in sys.modules or sys.platform != "linux":
        return None
    # numpy's own (newer) OpenBLAS loads first and keeps its own choice: only FAISS's is told
    import numpy  # noqa: F401

    core = coretype_for(cpu_flags() if flags is None else flags)
    if core is not None:
        environ["OPENBLAS_CORETYPE"] = core
    return core
