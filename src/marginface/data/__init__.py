"""Face data sets, identity-disjoint splits and the DataModule."""

from marginface.data.base import DataError, FaceSet, LazyFaceSet, VerificationSet
from marginface.data.datamodule import FaceDataModule
from marginface.data.orl import load_orl
from marginface.data.synthetic import make_synthetic

__all__ = [
    "DataError",
    "FaceDataModule",
    "FaceSet",
    "LazyFaceSet",
    "VerificationSet",
    "load_orl",
    "make_synthetic",
]
