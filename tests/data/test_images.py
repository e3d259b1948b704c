from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF

from marginface.data.base import DataError
from marginface.data.images import decode_image


def _gradient(height: int, width: int) -> np.ndarray:
    rows, cols = np.mgrid[0:height, 0:width]
    return ((rows * 7 + cols * 3) % 256).astype(np.uint8)


def test_lfw_default_crop_is_the_central_150x150_of_250x250(encode_image):
    array = _gradient(250, 250)
    image = decode_image(encode_image(array), channels=1, crop=(150, 150))
    np.testing.assert_array_equal(image[0].numpy(), array[50:200, 50:200])


@pytest.mark.parametrize("crop", [(101, 80), (112, 91), (7, 8)])
def test_crop_offsets_round_as_torchvision_center_crop(crop, encode_image):
    array = _gradient(112, 92)
    expected = TF.center_crop(torch.from_numpy(array)[None], list(crop))
    assert torch.equal(decode_image(encode_image(array), channels=1, crop=crop), expected)


def test_grayscale_becomes_three_equal_rgb_channels_and_resize_sets_the_shape(
    tmp_path: Path, encode_image
):
    path = tmp_path / "face.png"
    path.write_bytes(encode_image(np.full((112, 92), 77, np.uint8)))
    image = decode_image(path, channels=3, size=(56, 48))
    assert image.dtype == torch.uint8 and image.shape == (3, 56, 48)
    assert bool((image == 77).all())  # a flat image stays flat under any interpolation


def test_unreadable_bytes_and_missing_files_name_the_source(tmp_path: Path):
    with pytest.raises(DataError, match="cannot read image lfw.bin \\(image 3\\)"):
        decode_image(b"\x00garbage", name="lfw.bin (image 3)")
    with pytest.raises(DataError, match="missing.jpg"):
        decode_image(tmp_path / "missing.jpg")


def test_crop_larger_than_the_image_is_an_error(encode_image):
    with pytest.raises(DataError, match="crop \\(150, 150\\) is larger"):
        decode_image(encode_image(_gradient(112, 92)), crop=(150, 150))


def test_bad_arguments_are_rejected(encode_image):
    with pytest.raises(ValueError, match="channels"):
        decode_image(encode_image(_gradient(4, 4)), channels=2)
    with pytest.raises(ValueError, match="size"):
        decode_image(encode_image(_gradient(4, 4)), size=(0, 3))
