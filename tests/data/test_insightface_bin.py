import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from marginface.data.base import DataError, VerificationSet
from marginface.data.insightface_bin import load_bin, read_bin, write_bin


def test_bin_round_trips_png_pixels_pairs_and_folds(bin_fixture):
    data = load_bin(bin_fixture.path, channels=1, size=None)
    assert isinstance(data, VerificationSet) and data.name == "tiny"
    assert data.images.shape == (24, 1, 112, 92)
    for i, array in enumerate(bin_fixture.arrays):
        np.testing.assert_array_equal(data.images[i, 0].numpy(), array)
    assert data.pairs.tolist() == [[2 * k, 2 * k + 1] for k in range(12)]
    assert data.issame.tolist() == bin_fixture.issame
    # 12 pairs in 10 contiguous folds: the first two folds hold the two extra pairs
    assert data.folds.tolist() == [0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9]


def test_bin_defaults_to_112x112_rgb(bin_fixture):
    data = load_bin(bin_fixture.path)
    assert data.images.shape == (24, 3, 112, 112)


def test_bin_with_jpeg_images_within_tolerance(tmp_path: Path, bin_fixture, encode_image):
    path = tmp_path / "jpeg.bin"
    write_bin(
        path, [encode_image(a, "JPEG", quality=95) for a in bin_fixture.arrays], bin_fixture.issame
    )
    data = load_bin(path, channels=1, size=None)
    source = torch.from_numpy(bin_fixture.arrays[7]).float()
    assert (data.images[7, 0].float() - source).abs().mean() < 2.0


def _python2_pickle(bins: list[bytes], issame: list[bool]) -> bytes:
    """What Python 2's pickle (protocol 2) writes for (list of str, list of bool)."""
    strings = b"".join(b"T" + struct.pack("<I", len(b)) + b for b in bins)  # BINSTRING
    bools = b"".join(b"\x88" if s else b"\x89" for s in issame)  # NEWTRUE / NEWFALSE
    return b"\x80\x02(" + strings + b"l(" + bools + b"l\x86."  # MARK .. LIST, TUPLE2, STOP


def test_python2_pickles_with_str_images_are_read(tmp_path: Path, bin_fixture, encode_image):
    images = [encode_image(a) for a in bin_fixture.arrays]
    payload = _python2_pickle(images, bin_fixture.issame)
    with pytest.raises(UnicodeDecodeError):
        pickle.loads(payload)  # the default encoding cannot read it: encoding="bytes" is needed
    path = tmp_path / "py2.bin"
    path.write_bytes(payload)
    assert read_bin(path) == (images, bin_fixture.issame)


@pytest.mark.parametrize("protocol", [0, 2])
def test_python3_low_protocol_pickles_of_bytes_are_read(tmp_path: Path, bin_fixture, protocol):
    path = tmp_path / "old.bin"
    write_bin(path, [b"\x89PNG\xff\x00" * 3] * 2, [True], protocol=protocol)
    assert read_bin(path) == ([b"\x89PNG\xff\x00" * 3] * 2, [True])


class _Payload:
    """Would create `marker` when unpickled by an unrestricted unpickler."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def test_a_pickle_that_would_run_code_is_refused_without_running_it(tmp_path: Path):
    marker = tmp_path / "ran"
    payload = pickle.dumps(([b"a", b"b"], [_Payload(marker)]))
    pickle.loads(payload)
    assert marker.exists()  # the fixture really is dangerous
    marker.unlink()
    path = tmp_path / "evil.bin"
    path.write_bytes(payload)
    with pytest.raises(DataError, match="builtins.exec.*refused for safety"):
        load_bin(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "reference"),
    [(os.system, r"(posix|nt|os)\.system"), (np.array([True]), "numpy")],
)
def test_any_global_reference_is_refused(tmp_path: Path, content, reference):
    path = tmp_path / "global.bin"
    path.write_bytes(pickle.dumps(([b"a", b"b"], content)))
    with pytest.raises(DataError, match=f"global.bin refers to {reference}"):
        read_bin(path)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (([b"a", b"b", b"c"], [True]), "3 images for 1 pairs"),
        (([b"a", "b"], [True]), "list of encoded images"),
        (([b"a", b"b"], ["yes"]), "list of bools"),
        ({"bins": []}, "holds a dict"),
    ],
)
def test_wrong_structures_are_errors(tmp_path: Path, content, says):
    path = tmp_path / "odd.bin"
    path.write_bytes(pickle.dumps(content))
    with pytest.raises(DataError, match=says):
        read_bin(path)


def test_damaged_files_are_errors(tmp_path: Path, bin_fixture):
    path = tmp_path / "cut.bin"
    path.write_bytes(bin_fixture.path.read_bytes()[:500])
    with pytest.raises(DataError, match="cut.bin is not a readable pickle"):
        load_bin(path)
    with pytest.raises(DataError, match="data/README.md"):
        load_bin(tmp_path / "absent.bin")
    path.write_bytes(pickle.dumps(([b"not an image", b"x"], [False])))
    with pytest.raises(DataError, match=r"cut.bin \(image 0\)"):
        load_bin(path)
