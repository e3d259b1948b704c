"""Sub-center ArcFace's drop step: list the training images far from their class's dominant sub-centre.

Deng et al. (ECCV 2020, https://doi.org/10.1007/978-3-030-58621-8_43) train with K sub-centres per
class, so that noisy images gather around non-dominant sub-centres; they then drop every image
farther than 75 degrees from its class's dominant sub-centre as a likely wrong label and retrain.
`subcenter_drop` does the listing for a trained checkpoint; what to do with the list (drop the
images, relabel them, retrain) is left to the user.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from marginface.data.base import FaceSet, LazyFaceSet
from marginface.heads.subcenter_arcface import DROP_DEGREES, SubCenterArcFaceHead
from marginface.inference.checkpoint import load_model
from marginface.inference.embed import extract_embeddings
from marginface.io import atomic_write_bytes

#: the CSV's name in the output folder, and its columns
CSV_NAME = "subcenter_drop.csv"
COLUMNS = ("index", "path", "identity", "class", "held_out", "subcentre", "angle_deg")


def subcenter_drop(
    ckpt_path: str | Path,
    out_dir: str | Path,
    max_angle: float = DROP_DEGREES,
    overrides: list[str] | None = None,
    device: torch.device | str = "cpu",
) -> dict:
    """Write <out_dir>/subcenter_drop.csv: the training identities' images beyond `max_angle`.

    The data are the checkpoint's own training data, rebuilt from the config it stores
    (`overrides`, dot-list entries such as "data.dataset.root=/new/place", change it, e.g. for a
    data set that moved); every image of the training identities is scored, those trained on and
    the held-out ones (`held_out` column). Each image is embedded alone (no mirror image, eval mode);
    its angle in degrees to its class's dominant sub-centre (the one nearest to most of the class's
    images) is `SubCenterArcFaceHead.subcenter_angles`. Rows: index (in the data set), path (empty
    where the set has no files), identity (its name), class (the head's row block), held_out,
    subcentre (the dominant one's index), angle_deg; largest angle first. Returns a summary
    {"csv", "images", "listed", "max_angle"}.
    """
    if not 0.0 <= float(max_angle) <= 180.0:
        raise ValueError(f"max_angle must be an angle in degrees in [0, 180], got {max_angle}")
    backbone, head, ckpt = load_model(ckpt_path)
    if not isinstance(head, SubCenterArcFaceHead):
        raise ValueError(
            f"the checkpoint {ckpt_path} has a {type(head).__name__} head "
            f"(loss={ckpt.get('loss_name', 'unknown')}); the drop step needs a sub-center head: "
            "train with loss=subcenter_arcface (docs/heads.md)"
        )
    config = OmegaConf.create(ckpt["marginface_config"])
    if overrides:
        config = OmegaConf.merge(config, OmegaConf.from_dotlist(list(overrides)))
    dm = instantiate(config.data)
    dm.setup()
    if dm.num_classes != head.num_classes:
        raise ValueError(
            f"the data rebuilt from {ckpt_path}'s config has {dm.num_classes} training identities, "
            f"its head {head.num_classes} classes: the data set changed since training; point "
            "the overrides (data.dataset.root=..., fold=...) at the data it was trained on"
        )
    index = torch.cat([dm.train_index, dm.val_index])
    images, labels = dm.training_identities()
    backbone, head = backbone.to(device), head.to(device)
    embeddings = extract_embeddings(backbone, images, flip=False, device=device)
    angles, dominant = head.subcenter_angles(
        torch.from_numpy(embeddings).to(device), labels.to(device)
    )
    angles, dominant = angles.double().cpu().numpy(), dominant.cpu().numpy()
    rows = []
    for k in np.argsort(-angles, kind="stable"):
        if angles[k] <= max_angle:
            break
        i = int(index[k])
        rows.append(
            {
                "index": i,
                "path": _path(dm.data, i) or "",
                "identity": dm.data.identities[int(dm.data.labels[i])],
                "class": int(labels[k]),
                "held_out": k >= len(dm.train_index),
                "subcentre": int(dominant[k]),
                "angle_deg": f"{angles[k]:.4f}",
            }
        )
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path = atomic_write_bytes(Path(out_dir) / CSV_NAME, text.getvalue().encode())
    return {"csv": str(path), "images": len(angles), "listed": len(rows), "max_angle": max_angle}


def _path(data: FaceSet | LazyFaceSet, i: int) -> str | None:
    """The file image `i` came from, for in-memory and lazy sets alike (None without files)."""
    if isinstance(data, FaceSet):
        return None if data.paths is None else data.paths[i]
    return data.path(i)
