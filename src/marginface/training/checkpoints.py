"""Checkpoint files of a run: atomic writes, where a resume starts, adding keys to saved checkpoints.

- `AtomicCheckpointIO`: a checkpoint file is the old one or the new one, never a truncated one.
- `resume_path`: `ckpt_path=last` is `<run dir>/checkpoints/last.ckpt` (docs/reliability.md).
- `keep_logged_curves`: the metrics.csv of the epochs before a resume survive it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from marginface.io import PARTIAL_SUFFIX, atomic_file

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
LAST = "last.ckpt"


def remove_partials(folder: str | os.PathLike) -> list[Path]:
    """Delete temporary files left in `folder` by writes that a kill interrupted; returns them."""
    folder = Path(folder)
    stale = sorted(folder.glob(f".*{PARTIAL_SUFFIX}")) if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        log.info("removed %d unfinished checkpoint write(s) in %s", len(stale), folder)
    return stale


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch.save checkpointing, written through `atomic_file` (local paths).

    Pass as `Trainer(plugins=[AtomicCheckpointIO()])`; every save (ModelCheckpoint's best.ckpt,
    EpochCheckpoint's last.ckpt, trainer.save_checkpoint) then goes through it. Remote URLs
    (s3://, ...) fall back to Lightning's own writer.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        if storage_options is not None or "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        with atomic_file(path) as file:
            torch.save(checkpoint, file)


def add_to_checkpoints(paths: list[str | os.PathLike], key: str, value: Any) -> list[Path]:
    """Add `key: value` to each checkpoint in `paths`, rewritten through AtomicCheckpointIO."""
    io = AtomicCheckpointIO()
    paths = [Path(p) for p in paths]
    for path in paths:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        checkpoint[key] = value
        io.save_checkpoint(checkpoint, path)
    return paths


# -- resuming -----------------------------------------------------------------------------------
def resume_path(ckpt_path: str | os.PathLike | None, run_dir: str | os.PathLike) -> str | None:
    """The checkpoint `trainer.fit` resumes from: `ckpt_path=last` is `<run_dir>/checkpoints/last.ckpt`.

    "last" without such a file (a job of a resumed multirun that never got to its first epoch end)
    starts from scratch with a warning; unfinished writes left by a kill are removed. Any other
    value is a path, which must exist.
    """
    if ckpt_path is None or str(ckpt_path) == "":
        return None
    folder = Path(run_dir) / CHECKPOINT_DIR
    if str(ckpt_path) == "last":
        remove_partials(folder)
        last = folder / LAST
        if last.is_file():
            log.info("resuming from %s", last)
            keep_logged_curves(run_dir)
            return str(last)
        log.warning(
            "ckpt_path=last but %s does not exist: training from scratch (to resume a killed run, "
            "pass its folder: hydra.run.dir=<run dir>; see docs/reliability.md)",
            last,
        )
        return None
    path = Path(ckpt_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"ckpt_path={ckpt_path}: no such checkpoint (runs keep theirs in <run dir>/"
            f"{CHECKPOINT_DIR}/{LAST}; ckpt_path=last resumes the run in hydra.run.dir)"
        )
    return str(path)


def keep_logged_curves(run_dir: str | os.PathLike) -> list[Path]:
    """Rename each metrics.csv under `run_dir` to metrics.before-resume-<k>.csv; returns the new names.

    Lightning's CSVLogger deletes an existing metrics.csv when it starts in the same folder, which
    would lose the curves of the epochs before a resume.
    """
    kept = []
    for path in sorted(Path(run_dir).rglob("metrics.csv")):
        k = 1
        while (target := path.with_name(f"metrics.before-resume-{k}.csv")).exists():
            k += 1
        path.rename(target)
        kept.append(target)
    return kept
