"""What a run was made from: git commit (and whether the tree was dirty), packages, command line, config.

`record_run` writes `provenance.json` into the run dir at the start of a run (so a crashed run still
says what it was) and hands the resolved config and the commit to the run's loggers as
hyper-parameters, where MLflow and TensorBoard show them beside the curves.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from marginface.io import write_json

PACKAGES = (
    "marginface",
    "torch",
    "torchvision",
    "lightning",
    "hydra-core",
    "omegaconf",
    "faiss-cpu",
    "numpy",
    "pillow",
)


def _git(args: Sequence[str], cwd: Path) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
    )
    return done.stdout.strip()


def git_state(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Commit and dirty flag of the git work tree holding `path` (default: this package's source).

    Values are None, with the reason in "note", where there is no git or no repository (an
    installed wheel). `dirty` counts changes to tracked files only.
    """
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        commit = _git(["rev-parse", "HEAD"], where)
        dirty = bool(_git(["status", "--porcelain", "--untracked-files=no"], where))
    except FileNotFoundError:
        return {"commit": None, "dirty": None, "note": "git is not installed"}
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        detail = getattr(err, "stderr", "") or str(err)
        return {
            "commit": None,
            "dirty": None,
            "note": f"no git commit for {where}: {detail.strip()}",
        }
    return {"commit": commit, "dirty": dirty}


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution (None when not installed)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def provenance(cfg: DictConfig | dict | None = None) -> dict[str, Any]:
    """The provenance record: time, command line, git state, Python, packages and the resolved config."""
    config = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    return {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": [sys.executable, *sys.argv],
        "cwd": os.getcwd(),
        "git": git_state(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "config": config,
    }


def record_run(cfg: DictConfig, run_dir: str | os.PathLike, loggers: Sequence[Any] = ()) -> dict:
    """Write `run_dir/provenance.json` and log config + git state as hyper-parameters; returns the record."""
    record = provenance(cfg)
    write_json(Path(run_dir) / "provenance.json", record)
    params = {
        "git_commit": record["git"]["commit"],
        "git_dirty": record["git"]["dirty"],
        **(record["config"] or {}),
    }
    for logger in loggers:
        logger.log_hyperparams(params)
    return record
