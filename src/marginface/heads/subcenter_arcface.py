"""Sub-center ArcFace: K centres per class, the nearest one carries the ArcFace margin."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from marginface.heads.arcface import ArcFaceHead
from marginface.heads.base import ClassLinear, check_int


class SubCenterArcFaceHead(ArcFaceHead):
    """ArcFace on cos(theta_j) = max_k cos(x, W_{j,k}) over each class's K sub-centres.

    Sub-center ArcFace (Deng et al., ECCV 2020: "Sub-center ArcFace: Boosting Face Recognition
    by Large-scale Noisy Web Faces"), https://doi.org/10.1007/978-3-030-58621-8_43.
    `weight` has shape (num_classes * subcenters, embedding_dim), rows class-major: row c*K + k is
    sub-centre k of class c (as pytorch-metric-learning's SubCenterArcFaceLoss). The class cosine is
    the largest of its K sub-centre cosines, for the target and the other logits alike; the target
    then gets ArcFaceHead's margin (`scale` s, `margin` m in radians, the same treatment past
    pi - m). Logits are (B, num_classes). subcenters=1 is ArcFaceHead, bit for bit.
    `subcenter_angles` lists how far each sample lies from its class's dominant sub-centre: the
    paper drops samples beyond 75 degrees as label noise.

    Not shardable: the max pools rows that ShardedHead would split over the ranks.
    """

    shardable = False

    def __init__(
        self,
        embedding_dim: int,
        num_classes: int,
        scale: float = 64.0,
        margin: float = 0.5,
        subcenters: int = 3,
    ) -> None:
        subcenters = check_int("subcenters", subcenters, 1)
        super().__init__(embedding_dim, num_classes, scale, margin)
        self.subcenters = subcenters
        if subcenters > 1:
            self.weight = nn.Parameter(torch.empty(self.num_classes * subcenters, embedding_dim))
            self.reset_parameters()

    def _pooled(self, projected: torch.Tensor, labels: torch.Tensor | None):
        """Class logits (B, C) pooled over sub-centres; with labels, also the (B, 1) targets."""
        k = self.subcenters
        if labels is None:
            index = torch.zeros(len(projected), 0, dtype=torch.long, device=projected.device)
        else:
            index = labels.long().unsqueeze(1) * k
            if k > 1:
                # the label's nearest sub-centre, found on the (B, K, D) rows alone: ClassLinear
                # then hands back its target entry with the cheap B-row gradient, and no gather
                # from the pooled logits is kept (their in-place margin update would break it)
                with torch.no_grad():
                    rows = F.normalize(self.weight.view(self.num_classes, k, -1)[labels], dim=2)
                    near = torch.einsum("bkd,bd->bk", rows, projected.to(rows.dtype)).argmax(1)
                index = index + near.unsqueeze(1)
        logits, target, _ = ClassLinear.apply(projected, self.weight, index, True)
        if k > 1:
            # max with indices: its backward scatters into the rows it picked, one pass
            logits = logits.view(len(projected), self.num_classes, k).max(dim=2).values
        return logits, target

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        self.check_inputs(embeddings, labels)
        logits, target = self._pooled(self.project(embeddings), labels)
        if labels is None:
            return logits
        # target_correction reads no weight norm for a cosine head: a placeholder stands for it
        correction = self.target_correction(target, target.new_ones(()), embeddings)
        return logits.scatter_add_(1, labels.long().unsqueeze(1), correction.to(logits.dtype))

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        """cos(theta_j) of each class: the largest over its sub-centres, (B, num_classes)."""
        self.check_inputs(embeddings, None)
        return self._pooled(F.normalize(embeddings, dim=1), None)[0].clamp(-1.0, 1.0)

    @torch.no_grad()
    def subcenter_angles(
        self, embeddings: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per sample: the angle in degrees to its class's dominant sub-centre, and that centre.

        The dominant sub-centre of a class is the one nearest to most of the class's samples in
        this batch (pass all of a class's samples at once); returns (angle_degrees (B,), dominant
        index (B,)). Angles above DROP_DEGREES (75) are the paper's noisy-label candidates.
        """
        self.check_inputs(embeddings, labels)
        k, labels = self.subcenters, labels.long()
        weight = F.normalize(self.weight.detach().view(self.num_classes, k, -1), dim=2)[labels]
        cos = torch.einsum("bkd,bd->bk", weight, F.normalize(embeddings, dim=1).to(weight.dtype))
        votes = torch.zeros(self.num_classes, k, dtype=torch.long, device=cos.device)
        votes.index_put_((labels, cos.argmax(dim=1)), torch.ones_like(labels), accumulate=True)
        dominant = votes.argmax(dim=1)[labels]
        chosen = cos.gather(1, dominant.unsqueeze(1)).squeeze(1).clamp(-1.0, 1.0)
        return torch.rad2deg(torch.acos(chosen)), dominant

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, subcenters={self.subcenters}"


#: the paper's threshold for a sample too far from its class's dominant sub-centre (label noise)
DROP_DEGREES = 75.0
