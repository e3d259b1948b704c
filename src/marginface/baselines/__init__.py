"""Baselines without training a network, scored by the same open-set metrics."""

from marginface.baselines.eigenfaces import Eigenfaces

__all__ = ["Eigenfaces"]
