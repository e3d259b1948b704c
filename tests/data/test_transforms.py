import torch

from marginface.data.transforms import augment, match_channels, resize_uint8, to_float


def test_to_float_maps_0_255_to_minus1_1():
    x = torch.tensor([0, 255, 51], dtype=torch.uint8).view(1, 1, 1, 3)
    torch.testing.assert_close(to_float(x).flatten(), torch.tensor([-1.0, 1.0, 51 / 127.5 - 1]))


def test_resize_keeps_a_constant_image_constant():
    x = torch.full((2, 1, 112, 92), 77, dtype=torch.uint8)
    y = resize_uint8(x, (56, 48))
    assert y.shape == (2, 1, 56, 48) and y.dtype == torch.uint8 and bool((y == 77).all())


def test_rgb_to_gray_uses_bt601_weights():
    x = torch.tensor([200, 100, 50], dtype=torch.uint8).view(1, 3, 1, 1)
    expected = round(0.299 * 200 + 0.587 * 100 + 0.114 * 50)
    assert int(match_channels(x, 1)) == expected
    assert match_channels(match_channels(x, 1), 3).shape == (1, 3, 1, 1)


def test_shift_moves_the_image_by_at_most_shift_pixels():
    x = torch.zeros(64, 1, 20, 20)
    x[:, :, 10, 10] = 1.0
    y = augment(x, flip=False, shift=2, generator=torch.Generator().manual_seed(0))
    rows, cols = torch.nonzero(y[:, 0] == 1.0, as_tuple=True)[1:]
    assert len(rows) == 64  # the bright pixel survives in every image
    assert rows.sub(10).abs().max() <= 2 and cols.sub(10).abs().max() <= 2
    assert len(set(zip(rows.tolist(), cols.tolist(), strict=True))) > 5  # and it actually moves


def test_flip_mirrors_about_half_the_batch():
    x = torch.arange(6.0).view(1, 1, 1, 6).repeat(200, 1, 1, 1)
    y = augment(x, flip=True, generator=torch.Generator().manual_seed(0))
    mirrored = (y == x.flip(-1)).all(dim=(1, 2, 3))
    unchanged = (y == x).all(dim=(1, 2, 3))
    assert bool((mirrored | unchanged).all()) and 70 < int(mirrored.sum()) < 130


def test_warp_with_zero_rotation_and_zoom_is_the_identity():
    x = torch.rand(4, 1, 12, 10) * 2 - 1
    y = augment(x, flip=False, rotate=1e-6, scale=1e-6, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(y, x, atol=1e-4, rtol=0)


def test_rotation_by_at_most_ten_degrees_keeps_the_centre_pixel():
    x = torch.full((16, 1, 21, 21), -1.0)
    x[:, :, 10, 10] = 1.0  # the centre is the fixed point of a rotation/zoom about the centre
    y = augment(x, flip=False, rotate=10.0, scale=0.1, generator=torch.Generator().manual_seed(1))
    assert bool((y[:, 0, 10, 10] > 0.5).all())


def test_erase_blanks_one_rectangle_to_mid_grey():
    x = torch.ones(32, 1, 16, 16)
    y = augment(x, flip=False, erase=1.0, generator=torch.Generator().manual_seed(2))
    blanked = (y == 0.0).sum(dim=(1, 2, 3))
    assert bool((blanked >= 1).all()) and bool((blanked <= 8 * 8).all())
    rows = (y[:, 0] == 0.0).any(dim=2).sum(1)
    cols = (y[:, 0] == 0.0).any(dim=1).sum(1)
    assert torch.equal(rows * cols, blanked)  # a rectangle: rows x columns of it
