import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from marginface.data.base import DataError, VerificationSet
from marginface.data.lfw import load_lfw_pairs, load_lfw_people, load_pairs, read_pairs_file


def test_pairs_file_parses_folds_matched_then_mismatched(lfw_root):
    parsed = read_pairs_file(lfw_root.root / "pairs.txt")
    assert parsed.num_folds == 2 and parsed.pairs_per_class == 3
    assert parsed.folds == [0] * 6 + [1] * 6
    assert parsed.issame == ([True] * 3 + [False] * 3) * 2
    assert parsed.pairs[0] == ("Ada_Byron", 1, "Ada_Byron", 2)
    assert parsed.pairs[3] == ("Ada_Byron", 1, "Bo_Chen", 2)
    assert parsed.pairs[-1] == ("Ada_Byron", 3, "Ed_Fox", 1)


def test_view1_header_with_one_number_is_one_fold_and_headerless_has_none(tmp_path: Path):
    view1 = tmp_path / "pairsDevTest.txt"
    view1.write_text("1\nA 1 2\nA 1 B 1\n")
    parsed = read_pairs_file(view1)
    assert parsed.folds == [0, 0] and parsed.issame == [True, False]
    bare = tmp_path / "calfw_pairs.txt"
    bare.write_text("A 1 B 2\n\nC 3 4\n")
    parsed = read_pairs_file(bare)
    assert parsed.folds is None and parsed.issame == [False, True]


def test_lfw_pairs_images_follow_the_file_within_jpeg_loss(lfw_root):
    pairs = load_lfw_pairs(lfw_root.root, channels=1, size=None, crop=None)
    assert isinstance(pairs, VerificationSet) and pairs.name == "lfw"
    assert pairs.folds.tolist() == [0] * 6 + [1] * 6
    assert pairs.issame.tolist() == ([True] * 3 + [False] * 3) * 2
    parsed = read_pairs_file(lfw_root.root / "pairs.txt")
    assert len(pairs.images) == len({(n, k) for p in parsed.pairs for n, k in (p[:2], p[2:])})
    for (name1, num1, name2, num2), (i, j) in zip(parsed.pairs, pairs.pairs.tolist(), strict=True):
        for (name, num), index in (((name1, num1), i), ((name2, num2), j)):
            source = torch.from_numpy(lfw_root.sources[(name, num)]).float()
            assert (pairs.images[index, 0].float() - source).abs().mean() < 2.0  # JPEG q95


def test_lfw_crop_then_resize_gives_the_asked_shape(lfw_root):
    pairs = load_lfw_pairs(lfw_root.root, crop=(100, 80), size=(56, 48))
    assert pairs.images.shape == (19, 3, 56, 48)  # 19 distinct images in the 12 pairs


def test_lfw_people_keeps_identities_with_min_images(lfw_root):
    (lfw_root.root / "lfw" / "Ed_Fox" / "Ed_Fox_0004.jpg").unlink()
    people = load_lfw_people(lfw_root.root, min_images=4, channels=1, size=None, crop=None)
    assert people.identities == ["Ada_Byron", "Bo_Chen", "Cy_Dale", "Di_Eve"]
    assert people.images.shape == (16, 1, 112, 92)
    source = torch.from_numpy(lfw_root.sources[("Bo_Chen", 2)]).float()
    assert (people.images[5, 0].float() - source).abs().mean() < 2.0


def test_deep_funneled_folder_name_and_pairs_inside_it_are_found(lfw_root):
    images = lfw_root.root / "lfw"
    shutil.move(lfw_root.root / "pairs.txt", images / "pairs.txt")
    images.rename(lfw_root.root / "lfw-deepfunneled")
    assert len(load_lfw_pairs(lfw_root.root, crop=None).issame) == 12


def test_missing_root_and_missing_image_are_errors(lfw_root, tmp_path: Path):
    with pytest.raises(DataError, match="data/README.md"):
        load_lfw_people(tmp_path / "nope")
    (lfw_root.root / "lfw" / "Cy_Dale" / "Cy_Dale_0004.jpg").unlink()
    with pytest.raises(DataError, match="Cy_Dale image 4.*Cy_Dale_0004.jpg does not exist"):
        load_lfw_pairs(lfw_root.root, crop=None)


MALFORMED = [
    # (pairs.txt text, line number in the error, what the error says)
    ("1\t2\nA\t1\t2\nA\t1\tB\nA 1 B 2\nB 1 C 2\n", 3, "expected 'name n1 n2'"),
    ("1\t2\nA\t1\t2\nB\t1\t2\nA\t1\tB\nB 1 C 2\n", 4, "expected 'name1 n1 name2 n2'"),
    ("1\t1\nA\tone\t2\nA\t1\tB\t2\n", 2, "image number 'one'"),
    ("1\t1\nA\t0\t2\nA\t1\tB\t2\n", 2, "image number '0'"),
    ("A 1 2\nA 1 B 2 C\n", 2, "expected 'name n1 n2' .* or 'name1 n1 name2 n2'"),
]


@pytest.mark.parametrize(("text", "line", "says"), MALFORMED)
def test_malformed_pairs_lines_name_the_file_and_line(tmp_path: Path, text, line, says):
    path = tmp_path / "pairs.txt"
    path.write_text(text)
    with pytest.raises(DataError, match=f"pairs.txt, line {line}: .*{says}"):
        read_pairs_file(path)


def test_pair_count_must_match_the_header(tmp_path: Path):
    path = tmp_path / "pairs.txt"
    path.write_text("10\t300\nA 1 2\nA 1 B 2\n")
    with pytest.raises(DataError, match="10 folds x 300 .* = 6000 lines, found 2"):
        read_pairs_file(path)


def test_generic_loader_takes_any_file_name_pattern(tmp_path: Path, orl_faces, encode_image):
    for identity in ("s1", "s2"):
        (tmp_path / identity).mkdir()
        for k, array in enumerate(orl_faces[identity], start=1):
            (tmp_path / identity / f"{k}.png").write_bytes(encode_image(array))
    (tmp_path / "my_pairs.txt").write_text("s1 1 3\ns2 4 s1 2\n")
    pairs = load_pairs(
        tmp_path, tmp_path / "my_pairs.txt", "{name}/{num}.png", channels=1, size=None, crop=None
    )
    assert pairs.name == "my_pairs" and pairs.folds is None
    np.testing.assert_array_equal(pairs.images[pairs.pairs[1, 0], 0].numpy(), orl_faces["s2"][3])
