"""Open-set identification for deployment: enroll known faces into a FAISS index, identify new ones.

`enroll` embeds a folder with one sub-folder per identity into an exact cosine index (a FAISS file)
and writes beside it a sidecar JSON (`<index>.json`) with the identity of every row, the
embedding size and the hash of the model that made them. `identify` embeds query images with the
same model and answers, for each, the nearest enrolled identity and its cosine score, or "unknown"
when the score is not above the threshold. The threshold is given, or calibrated as the score
that a target share of impostor pairs of an evaluation run (its scores.npz) exceeds.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import faiss
import numpy as np

from marginface.data.base import DataError
from marginface.data.images import IMAGE_EXTENSIONS, check_on_error, decode_image, warn_skipped
from marginface.inference.embedder import Embedder
from marginface.io import atomic_write_bytes, write_json
from marginface.metrics.verification import threshold_at_far
from marginface.search.base import as_unit_rows, faiss_threads

log = logging.getLogger(__name__)

UNKNOWN = "unknown"
SIDECAR_FORMAT = "marginface-gallery/1"


class GalleryError(ValueError):
    """A gallery index that cannot be used with this model, or whose files disagree."""


def sidecar_path(index_path: str | os.PathLike) -> Path:
    """Where the labels and model hash of an index file live: `<index>.json`."""
    return Path(f"{index_path}.json")


def _is_image(entry: os.DirEntry) -> bool:
    return (
        not entry.name.startswith(".")
        and entry.name.lower().endswith(IMAGE_EXTENSIONS)
        and entry.is_file()
    )


def list_gallery(root: str | os.PathLike) -> list[tuple[str, Path]]:
    """(identity, image path) for every image in `root/<identity>/`, sorted; errors name what is missing."""
    root = Path(root).expanduser()
    layout = f"expected {root}/<identity>/<image> with {'/'.join(IMAGE_EXTENSIONS)} files"
    if not root.is_dir():
        raise DataError(f"gallery folder not found: {root}; {layout}")
    with os.scandir(root) as entries:
        entries = sorted(entries, key=lambda e: e.name)
    folders = [e for e in entries if not e.name.startswith(".") and e.is_dir()]
    loose = [e.name for e in entries if _is_image(e)]
    found, empty = [], []
    for folder in folders:
        with os.scandir(folder.path) as inside:
            images = sorted(e.name for e in inside if _is_image(e))
        if not images:
            empty.append(folder.name)
        found += [(folder.name, Path(folder.path) / name) for name in images]
    if not found:
        if loose:
            raise DataError(
                f"gallery folder {root} holds {len(loose)} image(s) (e.g. {loose[0]}) but no identity "
                f"sub-folders with images; {layout}, one sub-folder per person"
            )
        what = (
            f"{len(folders)} sub-folder(s), none holding images" if folders else "nothing to enroll"
        )
        raise DataError(f"gallery folder {root} is empty ({what}); {layout}")
    if empty:
        log.warning(
            "gallery %s: %d identity folder(s) hold no images and are left out: %s",
            root,
            len(empty),
            ", ".join(empty[:10]),
        )
    if loose:
        log.warning(
            "gallery %s: %d image(s) directly in the folder belong to no identity and are left out",
            root,
            len(loose),
        )
    return found


def _readable_only(
    items: list[tuple[str, Path]], channels: int, crop: tuple[int, int] | None, where: str
) -> list[tuple[str, Path]]:
    """The items whose image decodes; the others are left out with one warning (on_error="skip")."""
    kept, skipped = [], []
    for identity, path in items:
        try:
            decode_image(path, channels=channels, crop=crop)  # as Embedder.load_images will
        except DataError as error:
            skipped.append((str(path), str(error.__cause__ or error)))
            continue
        kept.append((identity, path))
    warn_skipped(skipped, where)
    if not kept:
        raise DataError(f"none of the {len(items)} images in {where} could be read")
    return kept


def enroll(
    embedder: Embedder,
    gallery_dir: str | os.PathLike,
    out: str | os.PathLike,
    on_error: str = "raise",
) -> dict:
    """Embed every image of `gallery_dir` into the index file `out` (+ its sidecar); returns the sidecar.

    An unreadable image raises a DataError naming it (on_error="raise"), or is left out with one
    warning (on_error="skip").
    """
    check_on_error(on_error)
    gallery_dir = Path(gallery_dir).expanduser()
    items = list_gallery(gallery_dir)
    if on_error == "skip":
        items = _readable_only(items, embedder.channels, embedder.crop, str(gallery_dir))
    paths = [path for _, path in items]
    embeddings, _ = embedder.embed_files(paths)
    vectors = as_unit_rows(embeddings, "gallery embeddings")
    with faiss_threads(None):
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(vectors)
    identities = [identity for identity, _ in items]
    meta = {
        "format": SIDECAR_FORMAT,
        "model_hash": embedder.model_hash,
        "embedding_dim": embedder.embedding_dim,
        "image_size": list(embedder.image_size),
        "channels": embedder.channels,
        "crop": list(embedder.crop) if embedder.crop is not None else None,
        "flip": embedder.flip,
        "checkpoint": str(embedder.source),
        "gallery_dir": str(gallery_dir),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "num_identities": len(set(identities)),
        "labels": identities,
        "files": [str(path.relative_to(gallery_dir)) for path in paths],
    }
    out = Path(out).expanduser()
    atomic_write_bytes(out, faiss.serialize_index(index).tobytes())
    write_json(sidecar_path(out), meta)
    log.info("enrolled %d images of %d identities into %s", len(paths), meta["num_identities"], out)
    return meta


@dataclass
class Gallery:
    """An enrolled index and its sidecar (labels: the identity of every row)."""

    index: faiss.Index
    labels: list[str]
    meta: dict
    path: Path

    @property
    def flip(self) -> bool:
        return bool(self.meta.get("flip", True))


def load_gallery(index_path: str | os.PathLike, embedder: Embedder) -> Gallery:
    """Read an index and its sidecar, checking that `embedder` is the model that filled it."""
    index_path = Path(index_path).expanduser()
    side = sidecar_path(index_path)
    for path, what in (
        (index_path, "gallery index"),
        (side, "gallery sidecar (labels and model hash)"),
    ):
        if not path.is_file():
            raise FileNotFoundError(
                f"{what} not found: {path}; make it with scripts/enroll.py (out={index_path})"
            )
    try:
        meta = json.loads(side.read_text())
    except (OSError, ValueError) as err:
        raise GalleryError(f"cannot read the gallery sidecar {side}: {err}") from err
    if meta.get("format") != SIDECAR_FORMAT:
        raise GalleryError(
            f"{side} is not a marginface gallery sidecar (format {meta.get('format')!r}, expected {SIDECAR_FORMAT!r})"
        )
    try:
        index = faiss.read_index(str(index_path))
    except RuntimeError as err:
        raise GalleryError(f"{index_path} is not a FAISS index file ({err}); enroll again") from err
    redo = f"enroll the gallery again with this checkpoint (scripts/enroll.py ckpt_path={embedder.source})"
    if index.d != embedder.embedding_dim or meta["embedding_dim"] != embedder.embedding_dim:
        raise GalleryError(
            f"gallery {index_path} holds {index.d}-d embeddings but checkpoint {embedder.source} makes "
            f"{embedder.embedding_dim}-d ones: the index was made with another model "
            f"({meta.get('checkpoint')}); {redo}"
        )
    if meta["model_hash"] != embedder.model_hash:
        raise GalleryError(
            f"gallery {index_path} was enrolled with another model: its model hash is "
            f"{meta['model_hash'][:12]}... (checkpoint {meta.get('checkpoint')}), checkpoint "
            f"{embedder.source} hashes to {embedder.model_hash[:12]}...; scores across models mean nothing; {redo}"
        )
    if index.ntotal != len(meta["labels"]):
        raise GalleryError(
            f"gallery {index_path} holds {index.ntotal} vectors but its sidecar {side} lists "
            f"{len(meta['labels'])} labels: the two files do not belong together; enroll again"
        )
    return Gallery(index=index, labels=list(meta["labels"]), meta=meta, path=index_path)


def load_impostor_scores(scores: str | os.PathLike, whitened: bool = False) -> np.ndarray:
    """Impostor pair scores of an evaluation run: `scores.npz` (scores, issame) or the run dir holding it.

    `whitened`: whether the embedder that will use the threshold applies a WCCN whitening; the run's
    scores must have been computed the same way (its results.json says, under config.eval.wccn).
    """
    path = Path(scores).expanduser()
    if path.is_dir():
        path = path / "scores.npz"
    if not path.is_file():
        raise FileNotFoundError(
            f"scores file not found: {path}; train and evaluate runs write <run dir>/scores.npz "
            "(eval.artifacts=true)"
        )
    results = path.parent / "results.json"
    if results.is_file():
        eval_cfg = (json.loads(results.read_text()).get("config") or {}).get("eval") or {}
        if eval_cfg.get("score_norm"):
            raise ValueError(
                f"{path} holds S-normalised scores (eval.score_norm={eval_cfg['score_norm']} in "
                f"{results}), not cosines: a threshold on them means nothing to a gallery search; "
                "calibrate on a run evaluated without eval.score_norm, or give threshold=<cosine>"
            )
        if bool(eval_cfg.get("wccn")) != whitened:
            run, model = ("whitened", "raw") if not whitened else ("raw", "whitened")
            raise ValueError(
                f"{path} holds {run} scores (eval.wccn={bool(eval_cfg.get('wccn'))} in {results}) but "
                f"this model compares {model} embeddings: calibrate on a run of this checkpoint "
                "evaluated the same way, or give threshold=<cosine>"
            )
    with np.load(path) as data:
        if "scores" not in data or "issame" not in data:
            raise ValueError(
                f"{path} has arrays {sorted(data.files)}; expected 'scores' and 'issame' (a run's scores.npz)"
            )
        impostors = np.asarray(data["scores"])[~np.asarray(data["issame"], dtype=bool)]
    if len(impostors) == 0:
        raise ValueError(f"{path} holds no impostor pairs: a FAR cannot be calibrated from it")
    return impostors


def threshold_for_far(scores: str | os.PathLike, far: float, whitened: bool = False) -> float:
    """The lowest score threshold that at most a share `far` of the run's impostor pairs exceed."""
    impostors = load_impostor_scores(scores, whitened)
    threshold = threshold_at_far(impostors, float(far))
    if threshold is None:
        raise ValueError(
            f"far={far} cannot be measured from {len(impostors)} impostor pairs in {scores}: it needs "
            f"at least {math.ceil(1 / far)} pairs; choose far >= {1 / len(impostors):.1g} or evaluate "
            "on more identities"
        )
    log.info(
        "threshold %.4f: %.2g of %d impostor pairs in %s score above it (1:1 pairs; against a gallery "
        "of N identities an unknown face gets N chances, so expect up to N times more false accepts)",
        threshold,
        far,
        len(impostors),
        scores,
    )
    return threshold


def resolve_threshold(
    threshold: float | None = None,
    far: float | None = None,
    scores: str | os.PathLike | None = None,
    whitened: bool = False,
) -> float:
    """A threshold given directly, or calibrated from `far` and a run's `scores`: exactly one of the two."""
    if threshold is not None and far is not None:
        raise ValueError(f"give threshold ({threshold}) or far ({far}), not both")
    if threshold is not None:
        return float(threshold)
    if far is None:
        raise ValueError(
            "no threshold: give threshold=<cosine> or far=<rate> with scores=<run dir>/scores.npz"
        )
    if scores is None:
        raise ValueError(
            f"far={far} needs scores=<run dir>/scores.npz of an evaluation run of this model"
        )
    return threshold_for_far(scores, far, whitened)


def list_queries(
    images: Sequence[str | os.PathLike] = (), query_dir: str | os.PathLike | None = None
) -> list[Path]:
    """Query files: `images` as given, then every image under `query_dir` (recursively, sorted)."""
    paths = [Path(p).expanduser() for p in images or ()]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"query image(s) not found: {', '.join(missing[:5])}")
    if query_dir is not None:
        root = Path(query_dir).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"query folder not found: {root}")
        found = sorted(
            p
            for p in root.rglob("*")
            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
        )
        if not found:
            raise DataError(f"no {'/'.join(IMAGE_EXTENSIONS)} images under query folder {root}")
        paths += found
    if not paths:
        raise ValueError("no queries: give images=[a.png,b.png] and/or query_dir=<folder>")
    return paths


@dataclass
class Answer:
    """One query's answer: `identity` is the nearest enrolled one when its score passes, else "unknown"."""

    query: str
    identity: str
    score: float
    nearest: str
    note: str = ""


def identify(
    embedder: Embedder, gallery: Gallery, queries: Sequence[str | os.PathLike], threshold: float
) -> list[Answer]:
    """Answer each query with the nearest enrolled identity if its cosine score is above `threshold`."""
    embeddings, notes = embedder.embed_files(queries, flip=gallery.flip)
    with faiss_threads(None):
        scores, rows = gallery.index.search(as_unit_rows(embeddings, "query embeddings"), 1)
    answers = []
    for query, score, row, note in zip(queries, scores[:, 0], rows[:, 0], notes, strict=True):
        nearest = gallery.labels[int(row)]
        known = float(score) > threshold
        answers.append(
            Answer(str(query), nearest if known else UNKNOWN, float(score), nearest, note)
        )
    return answers


def write_answers(answers: Sequence[Answer], path: str | os.PathLike) -> Path:
    """The answers as CSV: query, identity, score, nearest, note."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=["query", "identity", "score", "nearest", "note"])
        writer.writeheader()
        writer.writerows(asdict(a) for a in answers)
    return path


def format_answers(answers: Sequence[Answer], threshold: float) -> str:
    """A plain-text table of the answers with a closing count."""
    width = max(len(a.query) for a in answers)
    lines = [f"{'query':<{width}}  {'identity':<16} {'score':>7}  nearest"]
    for a in answers:
        lines.append(f"{a.query:<{width}}  {a.identity:<16} {a.score:7.4f}  {a.nearest}")
    known = sum(a.identity != UNKNOWN for a in answers)
    lines.append(
        f"{len(answers)} queries: {known} identified, {len(answers) - known} unknown (threshold {threshold:.4f})"
    )
    return "\n".join(lines)


def run_enroll(
    ckpt_path: str,
    gallery_dir: str,
    out: str,
    flip: bool | None = None,
    on_error: str = "raise",
    crop: Sequence[int] | None = None,
) -> dict:
    """scripts/enroll.py: load the checkpoint, enroll the folder (crop None: the checkpoint's)."""
    embedder = Embedder.from_checkpoint(ckpt_path, flip=flip, crop=crop)
    return enroll(embedder, gallery_dir, out, on_error=on_error)


def run_identify(
    ckpt_path: str,
    index: str,
    images: Sequence[str] = (),
    query_dir: str | None = None,
    threshold: float | None = None,
    far: float | None = None,
    scores: str | None = None,
    out: str | None = None,
    crop: Sequence[int] | None = None,
) -> list[Answer]:
    """scripts/identify.py: load model and gallery, answer the queries, print them and write a CSV.

    `crop` None: the crop the gallery was enrolled with (its sidecar), else the checkpoint's.
    """
    embedder = Embedder.from_checkpoint(ckpt_path, crop=crop)
    threshold = resolve_threshold(threshold, far, scores, whitened=embedder.whitening is not None)
    queries = list_queries(images, query_dir)
    gallery = load_gallery(index, embedder)
    if crop is None and gallery.meta.get("crop") is not None:
        embedder.crop = (int(gallery.meta["crop"][0]), int(gallery.meta["crop"][1]))
    answers = identify(embedder, gallery, queries, threshold)
    print(format_answers(answers, threshold))
    if out:
        log.info("answers written to %s", write_answers(answers, out))
    return answers


__all__ = [
    "UNKNOWN",
    "Answer",
    "Gallery",
    "GalleryError",
    "enroll",
    "identify",
    "list_gallery",
    "list_queries",
    "load_gallery",
    "resolve_threshold",
    "sidecar_path",
    "threshold_for_far",
]
