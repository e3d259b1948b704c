"""insightface verification sets (.bin: lfw.bin, cfp_fp.bin, agedb_30.bin): see data/README.md.

A .bin file is a pickle of (bins, issame): bins a list of encoded images (JPEG/PNG bytes), issame
a list of bools, with images 2k and 2k+1 forming pair k. Pickles can run code when loaded, so
these are read with an unpickler that refuses every global (class or function reference): plain
pickle opcodes build lists, tuples, bytes, str, ints and bools without one. One reference is
let through, replaced by our own function: `_codecs.encode`, which Python 3 uses to pickle bytes
at protocols 0-2 (we only turn a str back into its latin-1 bytes, as that pickle means). Python 2
pickles (str as bytes) are read with encoding="bytes".
"""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from marginface.data.base import DataError, VerificationSet
from marginface.data.images import check_channels, decode_stack, require_path

NUM_FOLDS = 10


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """What `_codecs.encode(text, "latin1")` means inside a pickle of bytes; nothing else allowed."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode is allowed only as encode(str, 'latin1')")
    return text.encode("latin1")


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that refuses every global; `source` names the file in the error."""

    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        super().__init__(file, encoding="bytes")
        self.source = source

    def find_class(self, module: str, name: str) -> object:
        if (module, name) == ("_codecs", "encode"):
            return _latin1_bytes
        raise DataError(
            f"{self.source} refers to {module}.{name}: a verification .bin must hold only lists of "
            "bytes and bools, so it is refused for safety (nothing in it was run). Re-export it as "
            "(list of image bytes, list of bools), e.g. with marginface.data.insightface_bin.write_bin"
        )

    def persistent_load(self, pid: object) -> object:
        raise DataError(f"{self.source} holds a persistent reference, refused for safety")


def read_bin(path: str | os.PathLike) -> tuple[list[bytes], list[bool]]:
    """(encoded images, issame) from a .bin file, checked: 2 images per pair, bytes and bools only."""
    path = require_path(path, "verification .bin", "insightface .bin", directory=False)
    try:
        with open(path, "rb") as file:
            content = RestrictedUnpickler(file, str(path)).load()
    except DataError:
        raise
    except Exception as error:  # a damaged pickle fails in many ways (EOFError, KeyError, ...)
        raise DataError(
            f"{path} is not a readable pickle of (image bytes, issame): {error}"
        ) from error
    if not (isinstance(content, tuple | list) and len(content) == 2):
        raise DataError(
            f"{path} holds a {type(content).__name__}, expected a pair (list of image bytes, list of bools)"
        )
    bins, issame = content
    if not isinstance(bins, list | tuple) or not all(isinstance(b, bytes) for b in bins):
        raise DataError(f"{path}: the first item must be a list of encoded images (bytes)")
    # bool is an int subclass; Python 2 protocol-0 pickles may spell booleans as the ints 0 and 1.
    if not isinstance(issame, list | tuple) or not all(
        s in (0, 1) and isinstance(s, int) for s in issame
    ):
        raise DataError(f"{path}: the second item must be a list of bools (issame)")
    if len(bins) != 2 * len(issame):
        raise DataError(
            f"{path} holds {len(bins)} images for {len(issame)} pairs; expected 2 images per pair"
        )
    return list(bins), [bool(s) for s in issame]


def contiguous_folds(num_pairs: int, num_folds: int = NUM_FOLDS) -> torch.Tensor:
    """Fold id per pair for `num_folds` contiguous folds, the first num_pairs % num_folds one longer."""
    folds = np.array_split(np.arange(num_pairs), min(num_folds, max(num_pairs, 1)))
    labels = np.concatenate([np.full(len(f), i, dtype=np.int64) for i, f in enumerate(folds)])
    return torch.from_numpy(labels)


def load_bin(
    path: str | os.PathLike,
    channels: int = 3,
    size: Sequence[int] | None = (112, 112),
    crop: Sequence[int] | None = None,
) -> VerificationSet:
    """An insightface verification .bin as a VerificationSet with 10 contiguous folds."""
    check_channels(channels)
    bins, issame = read_bin(path)
    num_pairs = len(issame)
    if num_pairs == 0:
        raise DataError(f"{path} holds no pairs")
    names = [f"{path} (image {i})" for i in range(len(bins))]
    return VerificationSet(
        images=decode_stack(bins, channels, size, crop, names, where=str(path)),
        pairs=torch.arange(2 * num_pairs, dtype=torch.long).reshape(num_pairs, 2),
        issame=torch.tensor(issame, dtype=torch.bool),
        folds=contiguous_folds(num_pairs),
        name=Path(path).stem,
    )


def write_bin(
    path: str | os.PathLike,
    images_bytes: Sequence[bytes],
    issame: Sequence[bool],
    protocol: int = pickle.HIGHEST_PROTOCOL,
) -> None:
    """Write (images_bytes, issame) as insightface does (for test fixtures and re-exports)."""
    if len(images_bytes) != 2 * len(issame):
        raise ValueError(f"need 2 images per pair: {len(images_bytes)} images, {len(issame)} pairs")
    with open(path, "wb") as file:
        pickle.dump(
            ([bytes(b) for b in images_bytes], [bool(s) for s in issame]), file, protocol=protocol
        )
