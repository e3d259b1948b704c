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


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a training checkpoint, with an error that says what is wrong when it cannot be used."""
    path = Path(str(path)).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint not found: {path} (runs keep theirs in <run dir>/checkpoints/last.ckpt)"
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means the same thing to the user
        raise ValueError(
            f"checkpoint {path} could not be read ({type(err).__name__}: {err}); is it truncated?"
        ) from err
    if "state_dict" not in ckpt or "marginface_config" not in ckpt:
        raise ValueError(
            f"{path} is not a marginface training checkpoint (no state_dict / marginface_config)"
        )
    return ckpt


def init_backbone(backbone: torch.nn.Module, path: str | os.PathLike) -> None:
    """Load the backbone weights of the training checkpoint at `path` into `backbone` (fine-tuning).

    Every parameter and buffer must be there with the same shape: a checkpoint of another
    architecture is refused with the keys and shapes that differ, before any training.
    """
    ckpt = load_checkpoint(path)
    prefix = "backbone."
    theirs = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    mine = backbone.state_dict()
    missing = sorted(set(mine) - set(theirs))
    extra = sorted(set(theirs) - set(mine))
    shapes = [
        f"{k}: {tuple(theirs[k].shape)} in the checkpoint, {tuple(v.shape)} here"
        for k, v in mine.items()
        if k in theirs and theirs[k].shape != v.shape
    ]
    if missing or extra or shapes:
        stored = ckpt["marginface_config"].get("backbone", {})
        details = shapes[:5] + [f"missing: {', '.join(missing[:5])}"] * bool(missing)
        details += [f"unexpected: {', '.join(extra[:5])}"] * bool(extra)
        raise ValueError(
            f"init_from={path}: its backbone ({stored}) does not match this run's backbone; "
            + "; ".join(details)
            + ". Use the checkpoint's backbone settings (and data.channels) for the fine-tuning run"
        )
    backbone.load_state_dict(theirs)
