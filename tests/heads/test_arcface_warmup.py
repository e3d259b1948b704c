import math

import pytest
import torch

from marginface.heads import ArcFaceHead


def target_logit(head, angle_deg):
    x = torch.tensor(
        [[math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))]],
        dtype=torch.float64,
    )
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=head.weight.dtype))
    return head(x.to(head.weight.dtype), torch.tensor([0]))[0, 0].item()


@pytest.mark.parametrize("step, expected_margin", [(0, 0.0), (50, 0.25), (100, 0.5), (1000, 0.5)])
def test_margin_ramps_linearly_over_the_warmup_steps(step, expected_margin):
    head = ArcFaceHead(2, 2, scale=10.0, margin=0.5, warmup_steps=100).double()
    head.anneal(step)
    assert head.margin == pytest.approx(expected_margin)
    assert head.log_values() == {"margin": pytest.approx(expected_margin)}
    # the target logit at 30 degrees is s * cos(30 deg + margin), by hand
    assert target_logit(head, 30.0) == pytest.approx(
        10.0 * math.cos(math.radians(30.0) + expected_margin)
    )


def test_without_warmup_the_margin_is_fixed_and_nothing_is_logged():
    head = ArcFaceHead(2, 2, margin=0.4)
    head.anneal(0)
    assert head.margin == 0.4 and head.log_values() == {}


def test_negative_warmup_is_rejected():
    with pytest.raises(ValueError, match="warmup_steps"):
        ArcFaceHead(2, 2, warmup_steps=-1)
