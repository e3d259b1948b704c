"""The one embedding loop (embedding_batches) and its users: same features whatever the batch, flip, layout."""

import numpy as np
import torch

from marginface.backbones import SmallFaceNet
from marginface.data.transforms import to_float
from marginface.inference.embed import (
    embedding_batches,
    extract_embeddings,
    raw_embeddings,
    uses_channels_last,
)


def test_embeddings_do_not_depend_on_batch_size_or_layout():
    torch.manual_seed(0)
    net = SmallFaceNet(embedding_dim=16, widths=(4, 8, 8, 8)).eval()
    images = torch.randint(0, 256, (37, 1, 56, 48), dtype=torch.uint8)
    with torch.no_grad():  # reference: one batch, by hand, image + mirror
        x = to_float(images)
        expected = torch.nn.functional.normalize(net(x) + net(x.flip(-1)), dim=1).numpy()
    assert not uses_channels_last(net)
    for batch_size in (1, 8, 32, 256):
        got = extract_embeddings(net, images, batch_size=batch_size, progress=False)
        np.testing.assert_allclose(got, expected, atol=1e-5)
    net.to(memory_format=torch.channels_last)
    assert uses_channels_last(net)
    got = extract_embeddings(net, images, progress=False)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)


def _hand_features(net, images, flip):
    """One forward over all images at once, NCHW, by hand: the reference for the batched loop."""
    with torch.no_grad():
        x = to_float(images)
        out = net(x)
        return out + net(x.flip(-1)) if flip else out


def test_raw_embeddings_equal_a_hand_loop_for_any_batch_flip_and_layout():
    torch.manual_seed(1)
    net = SmallFaceNet(embedding_dim=8, widths=(4, 8, 8, 8), in_channels=3)
    images = torch.randint(0, 256, (21, 3, 56, 48), dtype=torch.uint8)  # 3 channels: layouts differ
    for flip in (False, True):
        expected = _hand_features(net.eval(), images, flip).numpy()
        assert not np.allclose(np.linalg.norm(expected, axis=1), 1.0)  # raw: not normalised
        for layout in (torch.contiguous_format, torch.channels_last):
            net.to(memory_format=layout).train()
            for batch_size in (1, 5, 21, 64):
                got = raw_embeddings(net, images, batch_size=batch_size, flip=flip, progress=False)
                assert got.dtype == torch.float32 and got.shape == expected.shape
                np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-5)
                assert net.training  # the caller's mode is restored
            unit = extract_embeddings(net, images, batch_size=4, flip=flip, progress=False)
            np.testing.assert_allclose(
                unit, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-5
            )


def test_embedding_batches_cover_every_row_once_and_restore_mode_when_abandoned():
    net = SmallFaceNet(embedding_dim=4, widths=(4, 4, 4, 4)).train()
    images = torch.zeros(10, 1, 56, 48, dtype=torch.uint8)
    rows = [r for r, _ in embedding_batches(net, images, batch_size=4, progress=False)]
    assert [(r.start, r.stop) for r in rows] == [(0, 4), (4, 8), (8, 10)]
    batches = embedding_batches(net, images, batch_size=4, progress=False)
    next(batches)
    assert not net.training  # eval mode while embedding (BN running statistics, no dropout)
    batches.close()
    assert net.training
    assert raw_embeddings(net, images[:0]).shape == (0, 0)


def test_closed_set_accuracy_is_the_argmax_of_the_hand_logits():
    from marginface.evaluation.evaluate import closed_set_accuracy
    from marginface.heads import SoftmaxHead

    torch.manual_seed(2)
    net = SmallFaceNet(embedding_dim=8, widths=(4, 8, 8, 8)).to(memory_format=torch.channels_last)
    head = SoftmaxHead(8, 5)
    images = torch.randint(0, 256, (30, 1, 56, 48), dtype=torch.uint8)
    with torch.no_grad():
        predicted = head(_hand_features(net.eval(), images, flip=False)).argmax(1)
    labels = predicted.clone()
    labels[:7] = (labels[:7] + 1) % 5  # 7 of 30 wrong by construction
    assert closed_set_accuracy(net, head, images, labels, batch_size=4) == 23 / 30
    assert closed_set_accuracy(net, head, images[:0], labels[:0]) is None
