"""Open-set evaluation: embed unseen identities, score them with FAISS-backed metrics, write results and figures.

`evaluate_embeddings` is shared by training (run at the end of `train`) and `scripts/evaluate.py`
(`evaluate(cfg)`: a checkpoint, an ensemble of checkpoints, or the eigenfaces baseline, on any data
set and fold).
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from marginface.data.transforms import to_float
from marginface.evaluation.protocols import pairs_fingerprint, protocol_pairs, search_factory
from marginface.heads.head import Head
from marginface.inference.checkpoint import INPUT_KEYS, checkpoint_input, load_model
from marginface.inference.embed import (
    embedding_batches,
    embeddings_and_norms,
    extract_embeddings,
)
from marginface.results import ensemble_head
from marginface.training.failures import records_failure

log = logging.getLogger(__name__)


def apply_wccn(
    cfg: DictConfig,
    backbone: nn.Module,
    dm: Any,
    embeddings: np.ndarray,
    device: Any = "cpu",
    ckpt: dict | None = None,
    train: np.ndarray | None = None,
) -> tuple[np.ndarray, Any]:
    """With `eval.wccn`: (whitened embeddings, the Whitening); else (embeddings, None).

    The whitening a checkpoint carries (a run trained with eval.wccn=true) is used as stored; otherwise
    it is fit on the embeddings of `dm`'s training identities (`train`, when the caller has them).
    """
    from marginface.whitening import fit_wccn, stored_whitening

    if not cfg.eval.get("wccn", False):
        return embeddings, None
    whitening = stored_whitening(ckpt) if ckpt is not None else None
    if whitening is not None:
        log.info("eval.wccn=true: whitening with the WCCN stored in the checkpoint")
    elif dm.num_classes == 0:
        raise ValueError(
            "eval.wccn=true with data.split=unseen needs a checkpoint trained with eval.wccn=true "
            "(it stores its whitening): no identity here is a training identity to fit one on; "
            "drop eval.wccn or evaluate such a checkpoint"
        )
    else:
        images, labels = dm.training_identities()
        if train is None:
            train = extract_embeddings(backbone, images, flip=cfg.eval.flip, device=device)
        whitening = fit_wccn(train, labels.numpy(), float(cfg.eval.get("wccn_shrinkage", 0.01)))
    return whitening(embeddings), whitening


def whiten_and_cohort(
    cfg: DictConfig,
    backbone: nn.Module,
    dm: Any,
    embeddings: np.ndarray,
    device: Any = "cpu",
    ckpt: dict | None = None,
) -> tuple[np.ndarray, Any, np.ndarray | None]:
    """(embeddings, whitening, cohort): `apply_wccn`'s pair, and the S-norm cohort of
    `eval.score_norm` (None without it): the embeddings of `dm`'s training identities, whitened as
    the open set is. The training identities are embedded once for both.
    """
    train = None
    if cfg.eval.get("score_norm"):
        if dm.num_classes == 0:
            raise ValueError(
                f"eval.score_norm={cfg.eval.score_norm} normalises against a cohort of training "
                "identities, and data.split=unseen has none; use data.split=folds or random, or "
                "drop eval.score_norm"
            )
        images, _ = dm.training_identities()
        train = extract_embeddings(backbone, images, flip=cfg.eval.flip, device=device)
    embeddings, whitening = apply_wccn(cfg, backbone, dm, embeddings, device, ckpt, train)
    cohort = train if train is None or whitening is None else whitening(train)
    return embeddings, whitening, cohort


@torch.no_grad()
def closed_set_accuracy(
    backbone: nn.Module,
    head: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int | None = None,
    device: torch.device | str = "cpu",
) -> float | None:
    """Share of held-out images of training identities whose argmax head logit (no margin) is their class."""
    if len(labels) == 0:
        return None
    was_training = head.training
    head.eval()
    correct = 0
    with torch.no_grad():
        for rows, e in embedding_batches(backbone, images, batch_size, device=device):
            correct += int((head(e).argmax(1).cpu() == labels[rows]).sum())
    head.train(was_training)
    return correct / len(labels)


def checkpoint_summary(ckpt: dict, ckpt_path: str | Path) -> dict:
    """What the report needs to tell trained models apart: path, head, training data, seed, fold."""
    train = ckpt["marginface_config"]
    data = train.get("data") or {}
    return {
        "path": str(ckpt_path),
        "loss": ckpt.get("loss_name", "unknown"),
        "seed": train.get("seed"),
        "fold": train.get("fold"),
        "num_classes": ckpt.get("num_classes"),
        "data": {k: v for k, v in data.items() if k not in ("augment", "num_workers")},
    }


def warn_single_image_identities(labels: np.ndarray) -> None:
    """One warning naming how many identities have a single image: impostor pairs only, no genuine."""
    _, counts = np.unique(labels, return_counts=True)
    single = int((counts == 1).sum())
    if single:
        warnings.warn(
            f"{single} of {len(counts)} open-set identities have a single image: they take part "
            "in impostor pairs only (no genuine pair) and as non-mated identification probes",
            stacklevel=2,
        )


def distractor_images(data_cfg: DictConfig, ev: DictConfig | dict, dm: Any) -> torch.Tensor | None:
    """uint8 images of `eval.distractors` never-trained identities at `dm`'s size (None for 0).

    From `eval.distractor_root` (one image per sub-folder) when set, else from the data set's own
    generator beyond its identities (data/distractors.py).
    """
    from marginface.data.distractors import folder_distractors, generated_distractors
    from marginface.data.transforms import match_channels, resize_uint8

    count = int(ev.get("distractors") or 0)
    if count <= 0:
        return None
    if ev.get("distractor_root"):
        return folder_distractors(ev["distractor_root"], count, dm.channels, dm.image_size)
    images = generated_distractors(instantiate(data_cfg.dataset), dm.data.num_identities, count)
    return match_channels(resize_uint8(images, dm.image_size), dm.channels)


def distractor_embeddings(
    cfg: DictConfig,
    backbone: nn.Module,
    dm: Any,
    whitening: Any = None,
    device: Any = "cpu",
    images: torch.Tensor | None = None,
) -> np.ndarray | None:
    """Embeddings of the distractors (None without `eval.distractors`), whitened as the open set is.

    `images`: the distractor images when already drawn (an ensemble embeds them once per member).
    """
    if images is None:
        images = distractor_images(cfg.data, cfg.get("eval", {}) or {}, dm)
    if images is None:
        return None
    embeddings = extract_embeddings(backbone, images, flip=cfg.eval.flip, device=device)
    return embeddings if whitening is None else whitening(embeddings)


def evaluate_distractors(
    embeddings: np.ndarray, labels: np.ndarray, distractors: np.ndarray, cfg: DictConfig
) -> dict:
    """The "identification_distractors" block: identification with the distractors in the gallery."""
    from marginface.metrics.identification import identification_metrics
    from marginface.metrics.openset import check_embeddings

    embeddings, labels = check_embeddings(embeddings, labels)
    distractors = np.asarray(distractors, dtype=np.float32)
    distractors = distractors / np.linalg.norm(distractors, axis=1, keepdims=True).clip(min=1e-12)
    block = identification_metrics(
        embeddings,
        labels,
        search_factory(cfg.get("search"))(),
        seed=int(cfg.get("seed", 0)),
        distractors=distractors,
    )
    return {"distractors": len(distractors), **block}


def evaluate_embeddings(
    embeddings: np.ndarray,
    labels: np.ndarray,
    cfg: DictConfig,
    run_dir: Path | None,
    paths: list[str] | None = None,
    record: dict | None = None,
    distractors: np.ndarray | None = None,
    norms: np.ndarray | None = None,
    cohort: np.ndarray | None = None,
) -> dict:
    """The results.json "open_set" block for these embeddings; scores.npz, roc.csv and figures into `run_dir`.

    `paths` (the file of each embedded image) is what a pairs file in `eval.pairs` refers to;
    `record`, when given, receives the pairs' count and fingerprint (`pairs_fingerprint`).
    With `distractors` (embeddings of never-trained identities), identification is also scored with
    them in the gallery: the block's "identification_distractors". `norms` (each image's embedding
    norm before normalising and whitening, `embeddings_and_norms`) is the quality that the
    block's "quality" curve rejects on; None (a baseline without one): that block is null.
    `cohort` (embeddings of identities that are impostors to every image here, embedded and
    whitened as `embeddings` are; `whiten_and_cohort`) is what `eval.score_norm` normalises against.
    """
    from marginface.metrics.openset import open_set_metrics

    ev = cfg.get("eval", {}) or {}
    seed = int(cfg.get("seed", 0))
    cohort_stats = score_norm_statistics(ev, embeddings, cohort)
    pairs, folds = protocol_pairs(ev.get("pairs"), labels, paths, ev.get("max_pairs"), seed)
    block, scores, issame, cosines = open_set_metrics(
        embeddings,
        labels,
        search_factory(cfg.get("search")),
        seed=seed,
        max_pairs=ev.get("max_pairs"),
        pairs=pairs,
        folds=folds,
        quality=norms,
        cohort_stats=cohort_stats,
    )
    if record is not None:
        record.update(count=len(pairs[0]), sha1=pairs_fingerprint(labels, *pairs))
    if run_dir is not None and ev.get("artifacts", True):
        from marginface.evaluation.plots import write_open_set_artifacts

        write_open_set_artifacts(
            run_dir,
            scores,
            issame,
            pairs=pairs,
            norms=norms,
            quality=block["quality"],
            cosines=None if cohort_stats is None else cosines,
        )
    if distractors is not None:
        block["identification_distractors"] = evaluate_distractors(
            embeddings, labels, distractors, cfg
        )
    return block


def score_norm_statistics(
    ev: DictConfig | dict, embeddings: np.ndarray, cohort: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """Each image's (mean, std) against the cohort for `eval.score_norm`; None without it."""
    from marginface.training.schemas import score_norm_problems

    if not ev.get("score_norm"):
        return None
    problems = score_norm_problems(dict(ev))
    if problems:
        raise ValueError("; ".join(problems))
    if cohort is None:
        raise ValueError(
            "eval.score_norm=snorm needs a cohort (the training identities' embeddings); this "
            "evaluation has none: it is supported for trained runs, model=checkpoint and "
            "model=ensemble on data with training identities"
        )
    from marginface.metrics.score_norm import cohort_statistics

    top_k = ev.get("score_norm_top_k")
    return cohort_statistics(embeddings, cohort, None if top_k is None else int(top_k))


def head_size(head: Head | None) -> dict[str, int] | None:
    """Parameter count and bytes of the classification head (None for head-free baselines)."""
    # Head.head_size counts them (a sharded head: all ranks' blocks together)
    return None if head is None else dict(head.head_size())


def build_results(
    cfg: DictConfig,
    loss: str,
    head: Head | None,
    closed: float | None,
    open_set: dict,
    timing: dict[str, Any],
) -> dict:
    """Assemble one run's results.json (schema: marginface.results, docs/metrics.md)."""
    return {
        "loss": loss,
        "seed": int(cfg.get("seed", 0)),
        "fold": int(cfg.get("fold", 0)),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "head": head_size(head),
        "closed_set": {"accuracy": closed},
        "open_set": open_set,
        "timing": timing,
    }


def eigenfaces_embeddings(
    dm, n_components: int = 100, whiten: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Eigenfaces baseline: PCA fitted on the training identities' images, applied to the open-set images."""
    from marginface.baselines.eigenfaces import Eigenfaces

    train_images = (
        dm.data.images[dm.train_index]
        if hasattr(dm.data, "images")
        else dm._stack(dm.train_index)[0]
    )
    model = Eigenfaces(n_components=min(n_components, len(train_images) - 1), whiten=whiten)
    model.fit(to_float(train_images).flatten(1).numpy())
    images, labels = dm.open_set()
    features = model.transform(to_float(images).flatten(1).numpy())
    features = features / np.linalg.norm(features, axis=1, keepdims=True).clip(min=1e-12)
    return features.astype(np.float32), labels.numpy()


def load_ensemble(cfg: DictConfig) -> list[tuple[nn.Module, dict, str]]:
    """`model=ensemble`: (backbone, checkpoint, path) of each of `model.ckpt_paths`, cfg.data set to
    their common input. Fewer than two paths, or members trained on different inputs, is a ValueError."""
    paths = [str(p) for p in (cfg.model.get("ckpt_paths") or [])]
    if len(paths) < 2:
        raise ValueError(
            f"model=ensemble needs at least 2 checkpoints in model.ckpt_paths, got {paths}: "
            "pass model.ckpt_paths=[A.ckpt,B.ckpt,...] (one checkpoint: model=checkpoint ckpt_path=A.ckpt)"
        )
    members = []
    for path in paths:
        backbone, _, ckpt = load_model(path)
        members.append((backbone, ckpt, path))
    wanted = fit_input_to_checkpoint(cfg, members[0][1], paths[0])
    first = {k: wanted[k] for k in ("image_size", "channels")}
    for _, ckpt, path in members[1:]:
        other = {k: checkpoint_input(ckpt, {}, path)[k] for k in first}
        if other != first:
            raise ValueError(
                f"model=ensemble: the members must share their input, but {path} was trained on "
                f"{other} and {paths[0]} on {first}; ensemble checkpoints of one input size and "
                "channel count"
            )
    return members


def ensemble_embeddings(
    cfg: DictConfig, members: list[tuple[nn.Module, dict, str]], dm: Any, images: torch.Tensor
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(open-set embeddings, distractor embeddings or None, S-norm cohort or None) of an ensemble.

    Each member's unit embedding (whitened first with `eval.wccn`, each member by its own WCCN) is
    concatenated and divided by sqrt(K), so the rows stay unit and a pair's cosine is the mean of the
    K members' cosines (docs/metrics.md).
    """
    distractor_input = distractor_images(cfg.data, cfg.get("eval", {}) or {}, dm)
    parts, distractor_parts, cohort_parts = [], [], []
    for backbone, ckpt, _ in members:
        embeddings = extract_embeddings(backbone, images, flip=cfg.eval.flip)
        embeddings, whitening, cohort = whiten_and_cohort(cfg, backbone, dm, embeddings, ckpt=ckpt)
        parts.append(embeddings)
        if cohort is not None:
            cohort_parts.append(cohort)
        if distractor_input is not None:
            distractor_parts.append(
                distractor_embeddings(cfg, backbone, dm, whitening, images=distractor_input)
            )
    scale = np.float32(1.0 / np.sqrt(len(members)))
    joined = np.concatenate(parts, axis=1) * scale
    distractors = np.concatenate(distractor_parts, axis=1) * scale if distractor_parts else None
    cohort = np.concatenate(cohort_parts, axis=1) * scale if cohort_parts else None
    return joined, distractors, cohort


def command_line_keys() -> set[str]:
    """The keys this Hydra run was given as overrides (`data.image_size=[56,48]` -> "data.image_size")."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return set()
    return {o.split("=", 1)[0].lstrip("+~") for o in HydraConfig.get().overrides.task}


def fit_input_to_checkpoint(cfg: DictConfig, ckpt: dict, ckpt_path: str | Path) -> dict[str, Any]:
    """Set cfg.data's image size, channels and crop to the checkpoint's (unless given on the command
    line) before the data is built, so images are decoded straight to the network's input."""
    given = command_line_keys()
    has_crop = OmegaConf.select(cfg, "data.dataset") is not None and "crop" in cfg.data.dataset
    values = {
        key: OmegaConf.select(cfg, path)
        for key, path in INPUT_KEYS.items()
        if path in given and (key != "crop" or has_crop)
    }
    wanted = checkpoint_input(ckpt, values, ckpt_path)
    for key, path in INPUT_KEYS.items():
        if key != "crop" or has_crop:
            OmegaConf.update(cfg, path, wanted[key], merge=False)
    return wanted


def keep_every_identity(cfg: DictConfig) -> None:
    """data.split=unseen trains on nothing, so no identity needs images to spare: min_images 1
    (unless given), and identities with one image are scored as impostors (with a warning)."""
    dataset = cfg.data.get("dataset")
    given = "data.dataset.min_images" in command_line_keys()
    if dataset is not None and "min_images" in dataset and not given:
        dataset.min_images = 1


def _fmt(value: float | None) -> str:
    return "n/m" if value is None else f"{value:.4f}"


def quiet_libraries() -> None:
    """Hide faiss's loader and Lightning's start-up INFO lines, as training does: noise to users."""
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)


def evaluate_verification_protocol(cfg: DictConfig, run_dir: Path) -> dict:
    """A fixed pairs protocol (insightface .bin, LFW pairs.txt): verification figures only.

    Identification and retrieval need identity labels, which such sets do not carry: they are null.
    """
    from marginface.data.transforms import match_channels, resize_uint8
    from marginface.metrics.openset import quality_block
    from marginface.metrics.pairs import pair_scores
    from marginface.metrics.verification import verification_metrics

    if cfg.model.kind != "checkpoint":
        raise ValueError(
            "a verification protocol (data.verification) is evaluated from a checkpoint: set ckpt_path=..."
        )
    start = time.perf_counter()
    backbone, head, ckpt = load_model(cfg.ckpt_path)
    wanted = checkpoint_input(ckpt, {}, cfg.ckpt_path)
    size, channels = tuple(wanted["image_size"]), int(wanted["channels"])
    vset = instantiate(cfg.data.verification)
    images = match_channels(resize_uint8(vset.images, size), channels)
    embeddings, norms = embeddings_and_norms(backbone, images, flip=cfg.eval.flip)
    if cfg.eval.get("wccn", False):
        from marginface.whitening import stored_whitening

        whitening = stored_whitening(ckpt)
        if whitening is None:
            raise ValueError(
                "eval.wccn=true on a pairs protocol needs a checkpoint trained with eval.wccn=true: "
                "the protocol has no labelled training identities to fit the whitening on"
            )
        embeddings = whitening(embeddings)
    pairs = vset.pairs.numpy()
    scores = pair_scores(embeddings, pairs[:, 0], pairs[:, 1])
    issame = vset.issame.numpy().astype(bool)
    folds = None if vset.folds is None else vset.folds.numpy()
    angles = np.degrees(np.arccos(np.clip(scores, -1.0, 1.0)))
    block = {
        "verification": verification_metrics(scores, issame, folds=folds),
        "identification": None,
        "retrieval": None,
        "angles": {
            "genuine_mean_deg": float(angles[issame].mean()) if issame.any() else None,
            "impostor_mean_deg": float(angles[~issame].mean()) if (~issame).any() else None,
        },
        "quality": quality_block(scores, issame, pairs[:, 0], pairs[:, 1], norms),
    }
    if cfg.eval.get("artifacts", True):
        from marginface.evaluation.plots import write_open_set_artifacts

        write_open_set_artifacts(
            run_dir,
            scores,
            issame,
            pairs=(pairs[:, 0], pairs[:, 1]),
            norms=norms,
            quality=block["quality"],
        )
    timing = {"train_s": None, "eval_s": time.perf_counter() - start, "images_per_s": None}
    return build_results(cfg, ckpt.get("loss_name", "unknown"), head, None, block, timing)


@records_failure  # a bad input leaves <run dir>/error.txt (whole, atomically) and nothing else
def evaluate(cfg: DictConfig) -> dict:
    """Evaluate a checkpoint (or `model=eigenfaces`) on the open-set identities of `data` / `fold`."""
    from hydra.core.hydra_config import HydraConfig

    from marginface.io import write_json

    run_dir = (
        Path(cfg.paths.output_dir)
        if cfg.get("paths")
        else Path(HydraConfig.get().runtime.output_dir)
    )
    kind = cfg.model.kind
    start = time.perf_counter()
    quiet_libraries()
    head, loss_name, closed, distractors, norms, cohort = None, kind, None, None, None, None
    if cfg.eval.get("distractors") and cfg.data.get("verification") is not None:
        raise ValueError(
            f"eval.distractors={cfg.eval.distractors} needs an identification gallery, but "
            "data.verification is a pair-list protocol (verification only); use a data set of "
            "identities (data=orl, synthetic, folder, ...) or eval.distractors=0"
        )
    if cfg.eval.get("distractors") and kind not in ("checkpoint", "ensemble"):
        raise ValueError(
            f"eval.distractors={cfg.eval.distractors} is supported for model=checkpoint and "
            f"model=ensemble, not model.kind={kind!r}"
        )
    from marginface.training.schemas import score_norm_problems

    problems = score_norm_problems(OmegaConf.to_container(cfg.eval, resolve=True))
    if problems:
        raise ValueError("; ".join(problems))
    if cfg.eval.get("score_norm") and kind not in ("checkpoint", "ensemble"):
        raise ValueError(
            f"eval.score_norm={cfg.eval.score_norm} is supported for model=checkpoint and "
            f"model=ensemble, not model.kind={kind!r}"
        )
    if cfg.eval.get("score_norm") and cfg.data.get("verification") is not None:
        raise ValueError(
            f"eval.score_norm={cfg.eval.score_norm} normalises against a cohort of training "
            "identities, but data.verification is a pair-list protocol with no labelled identities; "
            "drop eval.score_norm"
        )
    if cfg.data.get("verification") is not None:
        results = evaluate_verification_protocol(cfg, run_dir)
        write_json(run_dir / "results.json", results)
        return results
    if kind not in ("checkpoint", "ensemble", "eigenfaces"):
        raise ValueError(
            f"model.kind must be 'checkpoint', 'ensemble' or 'eigenfaces', got {kind!r}"
        )
    if kind == "checkpoint":  # first: the checkpoint decides how the images are decoded
        backbone, head, ckpt = load_model(cfg.ckpt_path)
        fit_input_to_checkpoint(cfg, ckpt, cfg.ckpt_path)
        loss_name = ckpt.get("loss_name", "unknown")
    elif kind == "ensemble":
        members = load_ensemble(cfg)
        summaries = [checkpoint_summary(ckpt, path) for _, ckpt, path in members]
        loss_name = f"ensemble({ensemble_head(summaries)})"
    if cfg.data.get("split") == "unseen":
        keep_every_identity(cfg)
    dm = instantiate(cfg.data)
    dm.setup()
    labels = dm.data.labels[dm.open_index].numpy()
    warn_single_image_identities(labels)
    if kind == "eigenfaces":
        if dm.num_classes == 0:
            raise ValueError(
                "model=eigenfaces fits its PCA on training identities and data.split=unseen has "
                "none; use data.split=folds or random"
            )
        embeddings, labels = eigenfaces_embeddings(dm, cfg.model.n_components, cfg.model.whiten)
    elif kind == "ensemble":  # no closed set (each member has its own head), no norm quality
        images, labels_t = dm.open_set()
        labels = labels_t.numpy()
        embeddings, distractors, cohort = ensemble_embeddings(cfg, members, dm, images)
    else:
        images, labels_t = dm.open_set()
        labels = labels_t.numpy()
        embeddings, norms = embeddings_and_norms(backbone, images, flip=cfg.eval.flip)
        embeddings, whitening, cohort = whiten_and_cohort(cfg, backbone, dm, embeddings, ckpt=ckpt)
        distractors = distractor_embeddings(cfg, backbone, dm, whitening)
        if dm.num_classes and dm.num_classes == ckpt["num_classes"]:
            closed = closed_set_accuracy(backbone, head, *dm.closed_set())
    pairs: dict[str, Any] = {}
    block = evaluate_embeddings(
        embeddings,
        labels,
        cfg,
        run_dir,
        dm.open_set_paths(),
        pairs,
        distractors=distractors,
        norms=norms,
        cohort=cohort,
    )
    eval_s = time.perf_counter() - start
    results = build_results(
        cfg,
        loss_name,
        head,
        closed,
        block,
        {"train_s": None, "eval_s": eval_s, "images_per_s": None},
    )
    if kind == "checkpoint":  # the report's cross-checkpoint table reads these (docs/report.md)
        results["checkpoint"] = checkpoint_summary(ckpt, cfg.ckpt_path)
        results["pairs"] = pairs
    if kind == "ensemble":
        results["ensemble"] = summaries
        results["pairs"] = pairs
    write_json(run_dir / "results.json", results)
    verification = block["verification"]
    log.info(
        "%d identities, %d images, %s pairs: EER %s  AUC %s  TAR@FAR=1e-3 %s  -> %s",
        len(np.unique(labels)),
        len(labels),
        pairs.get("count", "?"),
        *(_fmt(verification.get(k)) for k in ("eer", "auc", "tar@far=1e-3")),
        run_dir / "results.json",
    )
    return results
