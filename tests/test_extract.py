"""extract_embeddings: the same embeddings whatever the batch size and memory layout."""

import numpy as np
import torch

from marginface.backbones import SmallFaceNet
from marginface.data.transforms import to_float
from marginface.inference.embed import extract_embeddings, uses_channels_last


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
