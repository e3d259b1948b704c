import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from marginface.data import folder
from marginface.data.base import DataError, FaceSet
from marginface.data.folder import INDEX_NAME, FolderDataset, load_folder

IDS = ["s1", "s2", "s3", "s4", "s5"]


def test_load_folder_round_trips_labels_and_png_pixels(face_folder, orl_faces):
    faces = load_folder(face_folder)
    assert isinstance(faces, FaceSet)
    assert faces.identities == IDS
    assert faces.labels.tolist() == [label for label in range(5) for _ in range(4)]
    assert faces.images.shape == (20, 1, 112, 92)
    for i in range(20):
        expected = orl_faces[IDS[i // 4]][i % 4]
        np.testing.assert_array_equal(faces.images[i, 0].numpy(), expected)


def test_load_folder_jpeg_is_close_to_the_source_and_resizes(make_folder, orl_faces):
    faces = load_folder(make_folder("jpeg", fmt="JPEG"), channels=3)
    assert faces.images.shape == (20, 3, 112, 92)
    decoded = faces.images[5, 0].float()
    error = (decoded - torch.from_numpy(orl_faces["s2"][1]).float()).abs()
    assert error.mean() < 3.0 and error.max() < 40  # JPEG quality 90
    assert (
        decoded - torch.from_numpy(orl_faces["s2"][2]).float()
    ).abs().mean() > 10  # not any face
    assert torch.equal(faces.images[:, 0], faces.images[:, 2])  # gray source: R == G == B
    small = load_folder(make_folder("jpeg", fmt="JPEG"), size=(56, 46), crop=(100, 92))
    assert small.images.shape == (20, 1, 56, 46)


def test_min_images_drops_small_identities(make_folder):
    faces = load_folder(make_folder(counts={"s2": 1, "s4": 2}), min_images=3)
    assert faces.identities == ["s1", "s3", "s5"]
    assert np.bincount(faces.labels.numpy()).tolist() == [4, 4, 4]


def test_corrupt_images_are_counted_warned_and_skipped(corrupt_folder):
    with pytest.warns(UserWarning, match="skipped 2 unreadable image") as caught:
        faces = load_folder(corrupt_folder.root)
    message = str(caught[0].message)
    assert all(str(path) in message for path in corrupt_folder.bad)
    assert len(faces) == 20 and faces.identities == IDS


def test_corrupt_image_raises_naming_the_file_with_on_error_raise(corrupt_folder):
    with pytest.raises(DataError, match=r"0\.jpg|5\.jpg"):
        load_folder(corrupt_folder.root, on_error="raise")


def test_missing_root_names_the_path_and_the_readme(tmp_path: Path):
    with pytest.raises(DataError, match=f"{tmp_path / 'nowhere'}.*data/README.md"):
        load_folder(tmp_path / "nowhere")
    with pytest.raises(DataError, match="no path given"):
        load_folder("???")


def test_too_few_identities_or_no_images_are_errors(tmp_path: Path, make_folder):
    root = make_folder()
    for identity in IDS[1:]:
        shutil.rmtree(root / identity)
    with pytest.raises(DataError, match="1 identities with at least min_images=1.*need at least 2"):
        load_folder(root)
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="no images found"):
        load_folder(tmp_path / "empty")
    with pytest.raises(DataError, match="0 identities with at least min_images=9"):
        load_folder(make_folder("other"), min_images=9)


def test_images_of_different_sizes_need_a_size(face_folder, encode_image):
    (face_folder / "s1" / "9.png").write_bytes(encode_image(np.zeros((50, 40), np.uint8)))
    with pytest.raises(DataError, match="differ in size.*pass size"):
        load_folder(face_folder)
    assert load_folder(face_folder, size=(50, 40)).images.shape == (21, 1, 50, 40)


# -- FolderDataset (lazy) -----------------------------------------------------------------
def test_folder_dataset_matches_load_folder(face_folder):
    eager = load_folder(face_folder, channels=3, size=(56, 46))
    lazy = FolderDataset(face_folder, channels=3, size=(56, 46))
    assert lazy.identities == eager.identities
    assert torch.equal(lazy.labels, eager.labels)
    assert len(lazy) == 20 and lazy.num_identities == 5
    for i in (0, 7, 19):
        assert torch.equal(lazy[i], eager.images[i])


@pytest.fixture
def count_scans(monkeypatch):
    calls = []
    original = folder.scan_tree

    def counting(root):
        calls.append(root)
        return original(root)

    monkeypatch.setattr(folder, "scan_tree", counting)
    return calls


def test_index_is_written_then_reused_without_listing_again(face_folder, count_scans):
    first = FolderDataset(face_folder)
    index = face_folder / INDEX_NAME
    assert first.index_built and index.is_file() and len(count_scans) == 1
    second = FolderDataset(face_folder)
    assert not second.index_built and len(count_scans) == 1
    assert second.files.tolist() == first.files.tolist()
    assert index.read_text().splitlines()[1] == "s1\t1.png"


def _touch_later(path: Path, than: Path) -> None:
    later = than.stat().st_mtime_ns + 2_000_000_000
    os.utime(path, ns=(later, later))


def test_index_is_rebuilt_when_a_folder_changed_after_it(face_folder, count_scans, encode_image):
    FolderDataset(face_folder)
    (face_folder / "s3" / "5.png").write_bytes(encode_image(np.zeros((112, 92), np.uint8)))
    _touch_later(face_folder / "s3", than=face_folder / INDEX_NAME)
    rebuilt = FolderDataset(face_folder)
    assert rebuilt.index_built and len(count_scans) == 2 and len(rebuilt) == 21
    assert not FolderDataset(face_folder).index_built  # fresh again

    shutil.copytree(face_folder / "s1", face_folder / "s6")
    _touch_later(face_folder, than=face_folder / INDEX_NAME)
    assert FolderDataset(face_folder).identities[-1] == "s6"


def test_index_path_can_live_elsewhere_and_min_images_filters(make_folder, tmp_path):
    root = make_folder(counts={"s5": 1})
    dataset = FolderDataset(root, min_images=2, index_path=tmp_path / "casia.tsv")
    assert (tmp_path / "casia.tsv").is_file() and not (root / INDEX_NAME).exists()
    assert dataset.identities == IDS[:4] and len(dataset) == 16


def test_folder_dataset_pickles_for_workers(face_folder):
    dataset = FolderDataset(face_folder, size=(28, 23))
    clone = pickle.loads(pickle.dumps(dataset))
    assert torch.equal(clone[3], dataset[3]) and torch.equal(clone.labels, dataset.labels)


def test_lazy_corrupt_image_is_replaced_by_the_same_identity_or_raises(corrupt_folder):
    dataset = FolderDataset(corrupt_folder.root, channels=1)
    bad = [dataset.path(i) for i in range(len(dataset))].index(str(corrupt_folder.bad[0]))
    with pytest.warns(UserWarning, match="skipped 1 unreadable image"):
        image = dataset[bad]
    assert torch.equal(image, dataset[bad - 4])  # s2/5.jpg wraps round to s2/1.png
    assert dataset.skipped[0][0] == str(corrupt_folder.bad[0])
    strict = FolderDataset(corrupt_folder.root, on_error="raise")
    with pytest.raises(DataError, match="5.jpg"):
        strict[bad]
