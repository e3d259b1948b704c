"""What one trained model says beyond results.json: softmax confidence, the KL identity, angle statistics.

`write_diagnostics` runs at the end of training (marginface.pipeline.train) and writes diagnostics.json beside
results.json; the report reads it when present. `target_logit_gradient` is the analytic side of the
cross-entropy checks and needs no model.

- confidence: max class probability and entropy of softmax(head(x)) (no margin) on held-out images of
  training identities (closed set) and on images of identities never trained on (open set). A
  classifier has no "none of these" answer: whatever it gives unseen faces is a guess.
- KL identity: with p = softmax(logits of an image) and q = softmax(logits of its mirror image),
  KL(p||q) computed directly and as CE(p, q) - H(p); the largest gap between the two is stored.
- angles (degrees, as ArcFace Table 6): between each closed-set feature and its class weight
  ("W-EX"; the nearest sub-centre for a sub-center head, through head.cosine), the minimum angle
  between class weights ("W-inter"; between different classes' sub-centres), between features and their class
  centre ("intra") and the minimum angle between class centres ("inter"); intra/inter also on the
  open set, where the "classes" are identities the model never saw.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from marginface.inference.embed import raw_embeddings
from marginface.io import write_json

#: histogram bins of max probability and of entropy / log(C), both on [0, 1]
BINS = 20


def _degrees(cos: torch.Tensor) -> torch.Tensor:
    return torch.rad2deg(torch.acos(cos.clamp(-1.0, 1.0)))


def _min_offdiagonal_angle(directions: torch.Tensor) -> float | None:
    """Mean over rows of the smallest angle to any other row (unit rows)."""
    if len(directions) < 2:
        return None
    cos = directions @ directions.T
    cos.fill_diagonal_(-1.0)
    return float(_degrees(cos.max(dim=1).values).mean())


def centre_angles(features: torch.Tensor, labels: torch.Tensor) -> dict[str, float | None]:
    """intra: mean angle between unit features and their class's mean direction; inter: mean min angle between those."""
    if len(features) == 0:
        return {"intra_deg": None, "inter_deg": None}
    unit = F.normalize(features, dim=1)
    classes, index = torch.unique(labels, return_inverse=True)
    centres = torch.zeros(len(classes), unit.shape[1], dtype=unit.dtype).index_add_(0, index, unit)
    centres = F.normalize(centres, dim=1)
    intra = _degrees((unit * centres[index]).sum(1)).mean()
    return {"intra_deg": float(intra), "inter_deg": _min_offdiagonal_angle(centres)}


#: rows of a (rows, D) input passed to head.cosine at once: bounds the (rows, C) cosine block
_COSINE_ROWS = 1024


@torch.no_grad()
def _class_cosines(head: nn.Module, x: torch.Tensor, pick) -> torch.Tensor:
    """pick(rows, head.cosine(x[rows])) over blocks of rows of x, concatenated (float64, CPU)."""
    weight = head.weight
    out = []
    for start in range(0, len(x), _COSINE_ROWS):
        rows = torch.arange(start, min(start + _COSINE_ROWS, len(x)))
        cos = head.cosine(x[rows].to(device=weight.device, dtype=weight.dtype)).double().cpu()
        out.append(pick(rows, cos))
    return torch.cat(out)


def weight_angles(
    features: torch.Tensor, labels: torch.Tensor, head: nn.Module
) -> dict[str, float | None]:
    """W-EX: mean angle between features and their class; W-inter: mean over classes of the
    smallest angle between the class's weight rows and another class's.

    Both go through `head.cosine`, the head's own class cosine: for a sub-center head the largest
    over the class's sub-centres (the nearest one), for the others the plain cosine with W_j.
    Heads with K rows per class (sub-center) store them class-major (row c K + k is of class c),
    so W-inter of a class is its sub-centres' nearest other class, its own sub-centres left out.
    """
    weight = head.weight.detach()
    classes = head.num_classes
    per_class = len(weight) // classes
    out: dict[str, float | None] = {"w_inter_deg": None, "w_ex_deg": None}
    if classes >= 2:
        owner = torch.arange(len(weight)) // per_class

        def nearest_other(rows: torch.Tensor, cos: torch.Tensor) -> torch.Tensor:
            cos[torch.arange(len(rows)), owner[rows]] = -1.0  # the row's own class left out
            return cos.max(dim=1).values

        nearest = _class_cosines(head, weight, nearest_other).view(classes, per_class)
        out["w_inter_deg"] = float(_degrees(nearest.max(dim=1).values).mean())
    if len(features):
        labels = labels.long().cpu()
        own = _class_cosines(
            head, features, lambda rows, cos: cos[torch.arange(len(rows)), labels[rows]]
        )
        out["w_ex_deg"] = float(_degrees(own).mean())
    return out


def confidence(logits: torch.Tensor) -> dict[str, Any]:
    """Mean max probability and entropy (nats, and as a share of log C), with histograms on [0, 1]."""
    if len(logits) == 0:
        return {"n": 0}
    log_p = logits.double().log_softmax(dim=1)
    p = log_p.exp()
    max_p = p.max(dim=1).values
    entropy = -(p * log_p).sum(1)
    share = (
        entropy / math.log(logits.shape[1]) if logits.shape[1] > 1 else torch.zeros_like(entropy)
    )
    edges = np.linspace(0.0, 1.0, BINS + 1)
    return {
        "n": len(logits),
        "max_prob_mean": float(max_p.mean()),
        "max_prob_over_0.9": float((max_p > 0.9).double().mean()),
        "entropy_mean_nats": float(entropy.mean()),
        "entropy_share_mean": float(share.mean()),
        "max_prob_hist": np.histogram(max_p.numpy(), edges)[0].tolist(),
        "entropy_share_hist": np.histogram(share.clamp(0, 1).numpy(), edges)[0].tolist(),
    }


def kl_identity(logits_p: torch.Tensor, logits_q: torch.Tensor) -> dict[str, float | None]:
    """KL(p||q) directly and as CE(p, q) - H(p), row by row in float64; the largest gap and the mean KL."""
    if len(logits_p) == 0:
        return {"n": 0, "kl_mean": None, "max_abs_gap": None}
    log_p, log_q = logits_p.double().log_softmax(1), logits_q.double().log_softmax(1)
    p = log_p.exp()
    kl = (p * (log_p - log_q)).sum(1)
    cross_entropy = -(p * log_q).sum(1)
    entropy = -(p * log_p).sum(1)
    return {
        "n": len(kl),
        "kl_mean": float(kl.mean()),
        "cross_entropy_mean": float(cross_entropy.mean()),
        "entropy_mean": float(entropy.mean()),
        "max_abs_gap": float((kl - (cross_entropy - entropy)).abs().max()),
    }


def softmax_diagnostics(
    backbone: nn.Module,
    head: nn.Module,
    closed_images: torch.Tensor,
    closed_labels: torch.Tensor,
    open_images: torch.Tensor,
    open_labels: torch.Tensor,
    batch_size: int | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """The diagnostics.json payload for a trained backbone + head (uint8 images, class labels)."""
    modes = backbone.training, head.training
    backbone.eval(), head.eval()
    try:

        def features(images: torch.Tensor) -> torch.Tensor:
            return raw_embeddings(backbone, images, batch_size=batch_size, device=device).double()

        closed, opened = features(closed_images), features(open_images)
        both = torch.cat([closed_images, open_images]) if len(open_images) else closed_images
        mirrored = features(both.flip(-1))

        def logits(features: torch.Tensor) -> torch.Tensor:
            if len(features) == 0:
                return torch.zeros(0, head.num_classes, dtype=torch.float64)
            with torch.no_grad():
                return head(features.float().to(device)).double().cpu()

        closed_logits, open_logits = logits(closed), logits(opened)
        result = {
            "confidence": {
                "closed_set": confidence(closed_logits),
                "open_set": confidence(open_logits),
            },
            "kl_identity": kl_identity(torch.cat([closed_logits, open_logits]), logits(mirrored)),
            "angles": {
                "closed_set": {
                    **weight_angles(closed, closed_labels.cpu(), head),
                    **centre_angles(closed, closed_labels.cpu()),
                },
                "open_set": centre_angles(opened, open_labels.cpu()),
            },
        }
    finally:
        backbone.train(modes[0]), head.train(modes[1])
    return result


def write_diagnostics(
    run_dir: str | Path,
    backbone,
    head,
    closed_images,
    closed_labels,
    open_images,
    open_labels,
    device="cpu",
) -> Path:
    """softmax_diagnostics(...) into run_dir/diagnostics.json."""
    payload = softmax_diagnostics(
        backbone, head, closed_images, closed_labels, open_images, open_labels, device=device
    )
    return write_json(Path(run_dir) / "diagnostics.json", payload)
