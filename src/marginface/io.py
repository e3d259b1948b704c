"""Atomic file writes: a crash at any moment leaves the old file or the new one, never a truncated one."""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

PARTIAL_SUFFIX = ".partial"  # unfinished atomic writes; never matched by Lightning's "*.ckpt" globs


def _fsync_dir(folder: Path) -> None:
    """Make a rename inside `folder` durable (where the OS lets a folder be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _file_mode() -> int:
    """The mode open() would give a new file: 0o666 less the process umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[IO[bytes]]:
    """A binary file that replaces `path` only when the block ends without an exception.

    The data streams to a hidden temporary file beside `path` (`.<name>.<random>.partial`), is
    fsynced, then renamed over `path`: a crash at any moment leaves the old file or the new one.
    Streams, so a checkpoint is never held twice in memory.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=PARTIAL_SUFFIX, dir=path.parent)
    try:
        os.chmod(tmp, _file_mode())  # mkstemp makes it owner-only; a checkpoint is an ordinary file
        with os.fdopen(fd, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` through `atomic_file`."""
    with atomic_file(path) as file:
        file.write(data)
    return Path(path)


def json_safe(value: Any) -> Any:
    """Replace NaN/Inf by None (unmeasurable is null, never a made-up number) and numpy scalars by Python ones."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: str | Path, payload: Any) -> Path:
    """Atomically write `payload` as indented JSON with NaN/Inf turned into null."""
    text = json.dumps(json_safe(payload), indent=2, allow_nan=False)
    return atomic_write_bytes(path, (text + "\n").encode())
