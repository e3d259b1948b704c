"""BatchNorm folded into the preceding conv: the same embeddings, no conv-BN pair left, original intact."""

import numpy as np
import pytest
import torch
from torch import nn

from marginface.backbones import IResNet, SmallFaceNet
from marginface.inference.embed import extract_embeddings, uses_channels_last
from marginface.inference.fold import conv_batchnorm_pairs, fold_batchnorm

SHAPES = {"small": (1, 28, 24), "iresnet": (3, 16, 16)}


def trained_stats(name: str, dtype: torch.dtype = torch.float32) -> nn.Module:
    """A tiny backbone whose BNs hold non-trivial statistics and affine parameters, in eval mode."""
    torch.manual_seed(0)
    if name == "small":
        net = SmallFaceNet(1, SHAPES["small"][1:], (4, 8, 8, 16), embedding_dim=8)
    else:
        net = IResNet(18, 3, SHAPES["iresnet"][1:], embedding_dim=8, widths=(4, 8, 8, 8))
    net = net.to(dtype)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
                m.momentum = 0.5
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
        net.train()
        for _ in range(3):  # running statistics of real forwards, away from (0, 1)
            net(torch.randn(16, *SHAPES[name], dtype=dtype) * 2 + 0.5)
    return net.eval()


@pytest.mark.parametrize("name", ["small", "iresnet"])
@pytest.mark.parametrize(("dtype", "atol"), [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_folded_model_computes_the_same(name, dtype, atol):
    net = trained_stats(name, dtype)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert len(conv_batchnorm_pairs(net)) > 0
    folded = fold_batchnorm(net)
    assert not folded.training and len(conv_batchnorm_pairs(folded)) == 0
    x = torch.randn(8, *SHAPES[name], dtype=dtype)
    with torch.no_grad():
        expected, got = net(x), folded(x)
    assert expected.abs().max() > 0.1  # not a vacuous comparison
    torch.testing.assert_close(got, expected, atol=atol, rtol=0)
    # the input is untouched: same weights and statistics, still its own modules
    after = net.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert len(conv_batchnorm_pairs(net)) > 0


def test_only_bns_after_a_conv_are_folded():
    net = trained_stats("iresnet")
    folded = fold_batchnorm(net)
    bns = [m for m in folded.modules() if isinstance(m, nn.BatchNorm2d)]
    # per block, the pre-activation BN; and the output's BN (after the PReLU, before the FC)
    blocks = sum(len(stage) for stage in net.stages)
    assert len(bns) == blocks + 1
    assert isinstance(folded.output.features, nn.BatchNorm1d)
    body = folded.stages[0][0].body
    assert isinstance(body[0], nn.BatchNorm2d) and isinstance(body[2], nn.Identity)
    assert body[1].bias is not None and net.stages[0][0].body[1].bias is None


def test_channels_last_weights_stay_channels_last():
    net = trained_stats("iresnet").to(memory_format=torch.channels_last)
    folded = fold_batchnorm(net)
    assert uses_channels_last(folded)
    convs = [m for m in folded.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)


@pytest.mark.parametrize("name", ["small", "iresnet"])
def test_extracted_embeddings_equal(name):
    net = trained_stats(name)
    images = torch.randint(0, 256, (10, *SHAPES[name]), dtype=torch.uint8)
    expected = extract_embeddings(net, images, batch_size=4)
    got = extract_embeddings(fold_batchnorm(net), images, batch_size=4)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
