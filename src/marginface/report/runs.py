"""Find the runs under a folder, set aside the broken ones, and sort the rest into comparable groups.

A group is one data set and protocol: the resolved config's `data` block without what only the run
or the training loop chooses (fold, seed, batch sizes, workers, augmentation), plus the `eval` block
without `artifacts`. Runs of different groups are never averaged together. Inside a group a row is a
head (the `loss=` choice) plus whatever config values differ between that head's runs (a margin
sweep, `criterion=mse`, another epoch count), so different recipes are never averaged either.

Trained checkpoints evaluated on a set of unseen identities (`scripts/evaluate.py ckpt_path=...
data.split=unseen`, results.json with a "checkpoint" block) form groups of their own, one row per
checkpoint (its head, training data and seed): they are never averaged with in-domain runs.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

#: a folder holding this file (and everything below it) is skipped: the toy models live there
SKIP_MARKER = ".marginface-skip"

#: data keys that a run or the training recipe picks, not the data set or the protocol
_NOT_PROTOCOL = ("fold", "seed", "batch_size", "eval_batch_size", "num_workers", "augment")

#: flattened config keys that never make two runs different recipes
_COSMETIC = re.compile(
    r"^(fold|seed|data\.fold|data\.seed|paths\..*|hydra\..*|logger\..*|callbacks\..*|threads|malloc_keep|"
    r"ckpt_path|eval\.artifacts|data\.num_workers|data\.eval_batch_size|"
    r"trainer\.(enable_progress_bar|enable_model_summary|log_every_n_steps|default_root_dir))$"
)

#: the usual order of rows; anything else follows alphabetically
HEAD_ORDER = (
    "softmax",
    "lsoftmax",
    "sphereface",
    "amsoftmax",
    "cosface",
    "arcface",
    "combined",
    "subcenter_arcface",
    "curricularface",
    "magface",
    "adaface",
    "elasticface",
    "elasticface_cos",
    "adacos",
    "eigenfaces",
)

_REQUIRED = (("loss",), ("fold",), ("seed",), ("config", "data"), ("open_set", "verification"))


@dataclass
class Run:
    """One usable run: its folder, its results.json and where it sits in the report."""

    path: Path
    results: dict[str, Any]
    row: str = ""
    context: str = ""

    @property
    def loss(self) -> str:
        return str(self.results["loss"])

    @property
    def key(self) -> tuple[int, int]:
        """(fold, seed): what pairs a margin-head run with its softmax run."""
        return int(self.results["fold"]), int(self.results["seed"])

    @property
    def config(self) -> dict[str, Any]:
        return self.results["config"]

    @property
    def criterion(self) -> str:
        return str(self.config.get("criterion", "ce"))

    @cached_property
    def head_overridden(self) -> bool:
        """Whether the run's command line set any `loss.*` value (Hydra's .hydra/overrides.yaml).

        Hydra's prefixes count too: `+loss.x=` (add) and `++loss.x=` (add or override) change the
        head as `loss.x=` does; `~loss.x` (delete) does as well. `loss=NAME` picks the head itself.

        False when it ran its head as conf/loss configures it, or when the folder keeps no
        overrides.yaml (nothing says otherwise). Read once per run: the report asks per reference.
        """
        try:
            lines = (self.path / ".hydra" / "overrides.yaml").read_text().splitlines()
        except OSError:
            return False
        return any(line.lstrip("- '\"").lstrip("+~").startswith("loss.") for line in lines)

    def get(self, *keys: str) -> Any:
        """results[k0][k1]...; None when any level is missing or null."""
        value: Any = self.results
        for k in keys:
            if not isinstance(value, dict) or value.get(k) is None:
                return None
            value = value[k]
        return value


@dataclass
class Problem:
    """A run folder the report could not use, and why."""

    path: Path
    reason: str


@dataclass
class Group:
    """Runs on one data set and protocol."""

    key: str
    slug: str
    title: str
    synthetic: bool
    protocol: dict[str, Any]
    runs: list[Run] = field(default_factory=list)
    checkpoints: bool = False  # trained checkpoints on one unseen set: a row per checkpoint

    @property
    def short(self) -> str:
        """A title short enough for a figure: the data set's name and the group's slug."""
        name = "SYNTHETIC" if self.synthetic else self.title.split(",")[0]
        return f"{name} ({self.slug})"

    def rows(self) -> dict[str, list[Run]]:
        """Row label -> runs, rows in HEAD_ORDER then alphabetical."""
        rows: dict[str, list[Run]] = defaultdict(list)
        for run in self.runs:
            rows[run.row].append(run)
        return dict(sorted(rows.items(), key=lambda item: row_sort_key(item[1][0].loss, item[0])))


@dataclass
class Collection:
    """Everything found under a folder: usable runs in groups, and the problems."""

    groups: list[Group]
    problems: list[Problem]
    superseded: list[Problem]

    @property
    def runs(self) -> list[Run]:
        return [r for g in self.groups for r in g.runs]


def row_sort_key(loss: str, label: str) -> tuple[int, str]:
    return (HEAD_ORDER.index(loss) if loss in HEAD_ORDER else len(HEAD_ORDER), label)


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """{"a.b": leaf} for nested dicts; lists stay leaves (JSON text, so they compare and hash)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    leaf = json.dumps(value, sort_keys=True) if isinstance(value, list) else value
    return {prefix[:-1]: leaf}


def protocol_of(config: dict[str, Any]) -> dict[str, Any]:
    """The data set and protocol of a run: what must match before two runs may be averaged.

    An eval key set to null is left out, as if absent: a run from before a key existed (say
    eval.score_norm) and one with the key at its null default share a protocol.
    """
    data = {k: v for k, v in (config.get("data") or {}).items() if k not in _NOT_PROTOCOL}
    ev = {k: v for k, v in (config.get("eval") or {}).items() if k != "artifacts" and v is not None}
    return {"data": data, "eval": ev}


def without_n(protocol: dict[str, Any]) -> dict[str, Any]:
    """The protocol without data.train_identities: what the groups of one identity-scaling study share."""
    return {
        **protocol,
        "data": {k: v for k, v in protocol["data"].items() if k != "train_identities"},
    }


def _recipe(config: dict[str, Any]) -> dict[str, Any]:
    """Flattened config keys that make a recipe, without the protocol ones (those define the group).

    A key set to null is left out, as if absent (see protocol_of): runs from before a key existed
    are the same recipe as runs with it at its null default.
    """
    protocol_keys = set(flatten(protocol_of(config)["data"], "data."))
    return {
        k: v
        for k, v in flatten(config).items()
        if not _COSMETIC.match(k) and k not in protocol_keys and v is not None
    }


# generated data sets (loader name -> title): every title and figure of them says SYNTHETIC
_SYNTHETIC = {
    "make_synthetic": "SYNTHETIC identities (generated images, not faces)",
    "make_synthfaces": "SYNTHETIC faces (parametric renders, not real faces)",
}


def describe(protocol: dict[str, Any]) -> tuple[str, bool]:
    """(a human title, whether the data are synthetic) for a protocol."""
    data = protocol["data"]
    dataset = data.get("dataset") or {}
    target = str(dataset.get("_target_", data.get("_target_", "unknown")))
    loader = target.rsplit(".", 1)[-1]
    synthetic = loader in _SYNTHETIC
    split = data.get("split", "folds")
    folds = data.get("num_folds") if split == "folds" else None
    size = data.get("image_size")
    if loader == "load_orl":
        name, identities = "ORL faces", 40
    elif synthetic:
        name, identities = _SYNTHETIC[loader], dataset.get("num_identities")
    else:
        root = dataset.get("root") or dataset.get("path_rec") or dataset.get("path") or ""
        name, identities = f"{loader} {root}".strip(), None
    parts = [name]
    if identities and folds:
        parts.append(
            f"{identities} identities in {folds} identity folds (~{identities // folds} open-set each)"
        )
    elif folds:
        parts.append(f"{folds} identity folds")
    elif split == "unseen":
        parts.append("every identity unseen")
    elif split == "random":
        parts.append(f"random splits of {data.get('num_open')} unseen identities (overlapping)")
    if data.get("train_identities"):
        parts.append(f"trained on {data['train_identities']:,} of them")
    if size:
        parts.append(f"{size[0]}x{size[1]} px")
    if (protocol.get("eval") or {}).get("distractors"):
        parts.append(f"{protocol['eval']['distractors']:,} distractors")
    return ", ".join(parts), synthetic


def _slug(protocol: dict[str, Any], key: str) -> str:
    loader = str((protocol["data"].get("dataset") or {}).get("_target_", "data")).rsplit(".", 1)[-1]
    name = {"load_orl": "orl", "make_synthetic": "synthetic", "make_synthfaces": "synthfaces"}.get(
        loader, loader.replace("load_", "")
    )
    return f"{name}-{hashlib.sha1(key.encode()).hexdigest()[:6]}"


def _why_it_stopped(folder: Path) -> str:
    """The first line of error.txt (written by a failing train()), else the log's last line."""
    error = folder / "error.txt"
    if error.is_file():
        first = next(
            (ln.strip() for ln in error.read_text(errors="replace").splitlines() if ln.strip()), ""
        )
        if first:
            return f"error.txt: {first[:200]}"
    for log in sorted(folder.glob("*.log")):
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        if lines:
            return f"last log line: {lines[-1][:200]}"
    return ""


def _skipped(path: Path, root: Path) -> bool:
    folder = path if path.is_dir() else path.parent
    while True:
        if (folder / SKIP_MARKER).exists():
            return True
        if folder == root or folder.parent == folder:
            return False
        folder = folder.parent


def _read(path: Path) -> tuple[dict[str, Any] | None, str]:
    try:
        results = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return None, f"results.json does not parse ({type(err).__name__}: {err})"
    if not isinstance(results, dict):
        return None, "results.json is not a JSON object"
    missing = []
    for keys in _REQUIRED:
        value: Any = results
        for k in keys:
            value = value.get(k) if isinstance(value, dict) else None
        if value is None:
            missing.append(".".join(keys))
    if missing:
        return (
            None,
            f"results.json lacks {', '.join(missing)} (not the results.json schema, docs/metrics.md)",
        )
    return results, ""


def collect(root: str | Path) -> Collection:
    """Read every results.json under `root` (recursively) and list the run folders that have none."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"no such folder: {root}; pass a Hydra multirun folder (multirun/<name>/<date>) or any "
            "folder above run folders that hold results.json"
        )
    problems: list[Problem] = []
    runs: list[Run] = []
    for path in sorted(root.rglob("results.json")):
        if any(part.startswith(".") for part in path.relative_to(root).parts) or _skipped(
            path, root
        ):
            continue
        results, reason = _read(path)
        if results is None:
            problems.append(Problem(path.parent, reason))
        else:
            runs.append(Run(path.parent, results))
    for hydra_dir in sorted(root.rglob(".hydra")):
        folder = hydra_dir.parent
        if (
            hydra_dir.is_dir()
            and not (folder / "results.json").exists()
            and not _skipped(folder, root)
        ):
            why = _why_it_stopped(folder)
            reason = "started (.hydra present) but wrote no results.json: failed, killed or still running"
            problems.append(Problem(folder, reason + (f"; {why}" if why else "")))
    groups, superseded = _group(runs)
    return Collection(groups, sorted(problems, key=lambda p: str(p.path)), superseded)


def _group(runs: list[Run]) -> tuple[list[Group], list[Problem]]:
    by_key: dict[str, Group] = {}
    for run in runs:
        protocol = protocol_of(run.config)
        of_checkpoints = is_checkpoint_run(run)
        key = json.dumps({"checkpoints": protocol} if of_checkpoints else protocol, sort_keys=True)
        if key not in by_key:
            title, synthetic = describe(protocol)
            if of_checkpoints:
                title = f"trained checkpoints on {title}"
            group = Group(key, _slug(protocol, key), title, synthetic, protocol)
            group.checkpoints = of_checkpoints
            by_key[key] = group
        by_key[key].runs.append(run)
    # groups that differ only in data.train_identities (an identity-scaling study) are labelled
    # together, so that one head setting reads the same at every N even where an N lacks the
    # setting it differs from
    studies: dict[str, list[Group]] = defaultdict(list)
    for group in by_key.values():
        if group.checkpoints:
            _label_checkpoint_rows(group)
        else:
            studies[json.dumps(without_n(group.protocol), sort_keys=True, default=str)].append(
                group
            )
    for together in studies.values():
        _label_rows([run for group in together for run in group.runs])
    superseded: list[Problem] = []
    for group in by_key.values():
        group.runs, dropped = _drop_reruns(group.runs)
        superseded += dropped
    groups = sorted(by_key.values(), key=lambda g: (g.synthetic, g.title, g.slug))
    return groups, superseded


def is_checkpoint_run(run: Run) -> bool:
    """A trained checkpoint evaluated on a set of unseen identities (data.split=unseen)."""
    return bool(run.get("checkpoint")) and (run.config.get("data") or {}).get("split") == "unseen"


def checkpoint_label(run: Run) -> str:
    """A checkpoint's row: its head, the data it was trained on (with the fold) and its seed."""
    ckpt = run.results["checkpoint"]
    trained_on = describe({"data": ckpt.get("data") or {}})[0].split(",")[0].split(" (")[0]
    return f"{ckpt.get('loss')}, trained on {trained_on} fold {ckpt.get('fold')}, seed {ckpt.get('seed')}"


def _label_checkpoint_rows(group: Group) -> None:
    """One row per checkpoint; two checkpoints that read the same get their paths appended."""
    labels = {id(run): checkpoint_label(run) for run in group.runs}
    paths = defaultdict(set)
    for run in group.runs:
        paths[labels[id(run)]].add(str(run.results["checkpoint"].get("path")))
    for run in group.runs:
        label = labels[id(run)]
        run.row = (
            label if len(paths[label]) == 1 else f"{label} ({run.results['checkpoint']['path']})"
        )
        run.context = run.row  # never paired by fold and seed: paired on the same pairs instead


def _label_rows(runs: list[Run]) -> None:
    """Row = loss name + the recipe values that differ between that loss's runs (one group's, or
    those of the groups of one identity-scaling study)."""
    recipes = {id(run): _recipe(run.config) for run in runs}
    by_loss: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_loss[run.loss].append(run)
    for loss, same_loss in by_loss.items():
        keys = sorted({k for r in same_loss for k in recipes[id(r)]})
        varying = [
            k for k in keys if len({json.dumps(recipes[id(r)].get(k)) for r in same_loss}) > 1
        ]
        for run in same_loss:
            recipe = recipes[id(run)]
            extra = ", ".join(f"{k}={recipe.get(k)}" for k in varying)
            run.row = f"{loss} ({extra})" if extra else loss
    for run in runs:
        # what must match for a paired comparison: the recipe without the head and the criterion
        context = {
            k: v
            for k, v in recipes[id(run)].items()
            if not k.startswith("loss.") and k not in ("loss", "criterion")
        }
        run.context = json.dumps(context, sort_keys=True, default=str)


def _drop_reruns(runs: list[Run]) -> tuple[list[Run], list[Problem]]:
    """Keep the newest results.json of each (row, fold, seed); report the older ones."""
    newest: dict[tuple[str, tuple[int, int]], Run] = {}
    dropped: list[Problem] = []
    for run in sorted(runs, key=lambda r: (r.path / "results.json").stat().st_mtime):
        slot = (run.row, run.key)
        if slot in newest:
            old = newest[slot]
            dropped.append(
                Problem(
                    old.path, f"superseded by the newer run {run.path} (same head, fold and seed)"
                )
            )
        newest[slot] = run
    kept = set(map(id, newest.values()))
    return [r for r in runs if id(r) in kept], dropped
