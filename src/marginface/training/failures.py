"""A run that raises leaves its traceback in `<run dir>/error.txt` (docs/reliability.md)."""

from __future__ import annotations

import functools
import logging
import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from marginface.io import atomic_write_bytes

log = logging.getLogger(__name__)

ERROR_FILE = "error.txt"


def _overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)


def _summary(error: BaseException) -> str:
    first = str(error).strip().splitlines()[:1]
    return f"{type(error).__name__}: {first[0]}" if first else type(error).__name__


def write_failure(run_dir: str | os.PathLike, error: BaseException) -> Path:
    """Write `<run_dir>/error.txt`: a one-line summary, the overrides, then the traceback."""
    lines = [
        _summary(error),
        "",
        f"time: {time.strftime('%Y-%m-%d %H:%M:%S')}",
        f"overrides: {' '.join(_overrides()) or '(none)'}",
        "",
        *traceback.format_exception(error),
    ]
    text = "\n".join(line.rstrip("\n") for line in lines) + "\n"
    return atomic_write_bytes(Path(run_dir) / ERROR_FILE, text.encode())


def records_failure(function: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate `train(cfg)`: an exception leaves `<cfg.paths.output_dir>/error.txt`, then propagates.

    Propagating is right for multiruns too: Hydra's launcher stores each job's exception and runs
    the remaining jobs (the sweep exits non-zero at the end; Optuna counts the trial as failed).
    A stale error.txt from an earlier attempt is removed when the run starts again.
    """

    @functools.wraps(function)
    def wrapper(cfg: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            run_dir: Path | None = Path(str(cfg.paths.output_dir))
        except Exception:  # noqa: BLE001 - no run dir known: nothing to record into
            run_dir = None
        if run_dir is not None:
            (run_dir / ERROR_FILE).unlink(missing_ok=True)
        try:
            return function(cfg, *args, **kwargs)
        except BaseException as error:
            if run_dir is not None and not isinstance(error, GeneratorExit):
                try:
                    path = write_failure(run_dir, error)
                except OSError as unwritable:  # a full disk must not hide the original error
                    log.error("run failed: %s (no error.txt: %s)", _summary(error), unwritable)
                else:
                    log.error("run failed: %s (traceback in %s)", _summary(error), path)
            raise

    return wrapper
