import math

import pytest
import torch
import torch.nn.functional as F

from marginface.training.module import classification_loss


def test_mse_criterion_is_squared_error_between_softmax_and_one_hot():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    labels = torch.tensor([0, 2])
    e = [math.exp(2.0), 1.0, math.exp(-1.0)]
    p0 = [v / sum(e) for v in e]
    by_hand = ((p0[0] - 1) ** 2 + p0[1] ** 2 + p0[2] ** 2 + (1 / 3) ** 2 * 2 + (1 / 3 - 1) ** 2) / 2
    assert classification_loss(logits, labels, "mse").item() == pytest.approx(by_hand, rel=1e-6)


def test_ce_criterion_is_cross_entropy():
    logits, labels = torch.randn(5, 4), torch.tensor([0, 1, 2, 3, 0])
    assert torch.allclose(
        classification_loss(logits, labels, "ce"), F.cross_entropy(logits, labels)
    )


def test_mse_gradient_vanishes_for_a_confidently_wrong_prediction_but_ce_does_not():
    # target class 0 with logit far below the others: softmax saturates at p_0 ~ 0
    logits = torch.tensor([[-12.0, 6.0, 0.0]], requires_grad=True)
    for criterion, bound in [("mse", 1e-6), ("ce", 0.9)]:
        logits.grad = None
        classification_loss(logits, torch.tensor([0]), criterion).backward()
        g0 = abs(logits.grad[0, 0].item())
        assert (g0 < bound) if criterion == "mse" else (g0 > bound)


def test_unknown_criterion_is_named():
    with pytest.raises(ValueError, match="ce.*mse"):
        classification_loss(torch.zeros(1, 2), torch.tensor([0]), "hinge")


def test_channels_last_changes_the_layout_not_the_numbers():
    import copy

    from marginface.backbones import SmallFaceNet
    from marginface.heads import ArcFaceHead
    from marginface.training.module import FaceModule

    torch.manual_seed(0)
    net = SmallFaceNet(
        in_channels=3, input_size=(28, 24), widths=(8, 8, 16, 16), embedding_dim=8
    ).eval()
    head = ArcFaceHead(8, 5)
    plain = FaceModule(copy.deepcopy(net), copy.deepcopy(head), optimizer=torch.optim.SGD)
    nhwc = FaceModule(
        copy.deepcopy(net), copy.deepcopy(head), optimizer=torch.optim.SGD, channels_last=True
    )
    assert nhwc.backbone.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(4, 3, 28, 24)
    with torch.no_grad():
        torch.testing.assert_close(nhwc(nhwc._layout(x)), plain(x), atol=1e-5, rtol=1e-4)


@pytest.mark.slow  # the first torch.compile on a clean machine takes tens of seconds
def test_compiled_training_forward_matches_eager_and_keeps_checkpoint_keys():
    import copy

    from marginface.backbones import SmallFaceNet
    from marginface.heads import ArcFaceHead
    from marginface.training.module import FaceModule

    torch.manual_seed(0)
    net = SmallFaceNet(input_size=(28, 24), widths=(4, 8, 8, 8), embedding_dim=8)
    head = ArcFaceHead(8, 5)
    eager = FaceModule(copy.deepcopy(net), copy.deepcopy(head), optimizer=torch.optim.SGD)
    compiled = FaceModule(
        copy.deepcopy(net), copy.deepcopy(head), optimizer=torch.optim.SGD, compile=True
    )
    x = torch.randn(6, 1, 28, 24)
    torch.testing.assert_close(
        compiled._train_backbone(x), eager._train_backbone(x), atol=1e-4, rtol=1e-4
    )
    assert compiled._compiled_backbone is not None
    assert compiled.state_dict().keys() == eager.state_dict().keys()  # no "_orig_mod." entries
