"""Keep the memory of freed tensors in the process (glibc), so that the next ones reuse it.

glibc's malloc serves every allocation above its mmap threshold (at most 32 MiB) with a fresh mmap
and returns it to the kernel on free. A CPU training step allocates and frees such buffers every
step (a (B, C) logit matrix of a large head is 100 MB at B=256, C=100,000), and each new one is
faulted in and zeroed page by page by the kernel before PyTorch writes it: on the 2-core AVX-512
machine D of docs/benchmarks.md (2 cores, avx2 avx512f) that was 17-30% of a large head's step and
13% of the default training step. `keep_freed_memory()` tells malloc to take large blocks from its heap too
(M_MMAP_MAX = 0) and to keep freed memory at the top of the heap (M_TRIM_THRESHOLD = 2 GiB), so
later allocations of the same sizes find pages already mapped. The cost: the process's resident
memory stays near its peak after a free instead of shrinking (the peak itself does not change),
as with PyTorch's caching allocator on a GPU. Off with `malloc_keep=false`.

Nothing changes where the C library is not glibc (musl, macOS, Windows): the call reports False.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

#: mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
#: freed memory kept at the top of the heap before malloc returns any of it (bytes, a C int)
TRIM_THRESHOLD = 2**31 - 1

_applied = False


def applied() -> bool:
    """Whether keep_freed_memory() took effect in this process."""
    return _applied


def keep_freed_memory() -> bool:
    """Set glibc's malloc to reuse freed large blocks; whether it was applied (or already was)."""
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return False
    # glibc only (musl has mallopt as a stub): gnu_get_libc_version is glibc's own symbol
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success
    _applied = mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    return _applied
