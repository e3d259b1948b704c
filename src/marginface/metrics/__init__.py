"""Open-set metrics as pure functions on numpy arrays; a search object is passed in, never built here.

verification: ROC, AUC, EER, TAR@FAR, k-fold accuracy on pair scores. pairs: which pairs, their
cosines. identification: rank-k and DIR@FPIR on a gallery/probe split. retrieval: leave-one-out
precision@1 and mAP@R. openset: all of them as the "open_set" block of results.json.
"""

from marginface.metrics.identification import (
    GalleryProbeSplit,
    identification_metrics,
    split_gallery_probes,
)
from marginface.metrics.openset import check_embeddings, open_set_metrics
from marginface.metrics.pairs import (
    all_pairs,
    genuine_pairs,
    pair_scores,
    pairs_for,
    sampled_pairs,
)
from marginface.metrics.retrieval import retrieval_metrics
from marginface.metrics.verification import (
    DEFAULT_FARS,
    accuracy_kfold,
    auc,
    eer,
    rate_key,
    roc,
    tar_at_far,
    threshold_at_far,
    verification_metrics,
)

__all__ = [
    "DEFAULT_FARS",
    "GalleryProbeSplit",
    "accuracy_kfold",
    "all_pairs",
    "auc",
    "check_embeddings",
    "eer",
    "genuine_pairs",
    "identification_metrics",
    "open_set_metrics",
    "pair_scores",
    "pairs_for",
    "rate_key",
    "retrieval_metrics",
    "roc",
    "sampled_pairs",
    "split_gallery_probes",
    "tar_at_far",
    "threshold_at_far",
    "verification_metrics",
]
