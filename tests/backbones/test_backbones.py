import pytest
import torch

from marginface.backbones import IResNet, SmallFaceNet


@pytest.mark.parametrize("pooling", ["flatten", "avg"])
@pytest.mark.parametrize("embedding_dim", [2, 3, 128])
@pytest.mark.parametrize("size", [(56, 48), (112, 92), (30, 30)])
def test_small_net_maps_images_to_embeddings(embedding_dim, size, pooling):
    net = SmallFaceNet(1, size, widths=(8, 8, 16, 16), embedding_dim=embedding_dim, pooling=pooling)
    out = net(torch.randn(4, 1, *size))
    assert out.shape == (4, embedding_dim) and torch.isfinite(out).all()


def test_small_net_backward_reaches_every_parameter():
    net = SmallFaceNet(widths=(8, 8, 16, 16), embedding_dim=4)
    net(torch.randn(3, 1, 56, 48)).pow(2).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_iresnet18_shape_and_parameter_count():
    net = IResNet(18, in_channels=3, input_size=(112, 112), embedding_dim=512).eval()
    assert net(torch.randn(1, 3, 112, 112)).shape == (1, 512)
    # conv stem 3*64*9 is tiny; the embedding FC (512*7*7 -> 512) alone holds 12.85M weights
    fc = net.output.fc
    assert fc.in_features == 512 * 7 * 7 and fc.weight.numel() == 512 * 49 * 512


def test_iresnet_rejects_unknown_depth():
    with pytest.raises(ValueError, match="num_layers"):
        IResNet(19)


def test_average_pooling_makes_the_embedding_layer_size_free():
    # 256 channels pooled to 1x1: the FC has 256 inputs whatever the image size
    for size in [(56, 48), (112, 92)]:
        assert SmallFaceNet(input_size=size, pooling="avg").output.fc.in_features == 256
    assert SmallFaceNet(input_size=(56, 48)).output.fc.in_features == 256 * 4 * 3
    with pytest.raises(ValueError, match="pooling"):
        SmallFaceNet(pooling="max")
