"""Face data sets, identity-disjoint splits and the DataModule."""

from marginface.data.base import DataError, FaceSet, LazyFaceSet, VerificationSet
from marginface.data.datamodule import FaceDataModule
from marginface.data.orl import load_orl
from marginface.data.synthetic import make_synthetic
from marginface.data.synthfaces import make_synthfaces

__all__ = [
    "DataError",
    "FaceDataModule",
    "FaceSet",
    "LazyFaceSet",
    "VerificationSet",
    "load_orl",
    "make_synthfaces",
    "make_synthetic",
]
