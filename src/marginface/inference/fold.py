"""BatchNorm folded into the convolution before it: the same function in eval mode, one layer fewer.

In eval mode a BatchNorm2d is a per-channel affine map y = (x - mean) / sqrt(var + eps) * w + b of
fixed numbers, so a Conv2d followed by it is one Conv2d whose weight rows are scaled and whose bias
is shifted (torch.nn.utils.fusion.fuse_conv_bn_eval). Serving only: training needs the BN itself,
and the evaluation that writes results.json runs the model as trained, so that its numbers stay
bit-identical; folding changes embeddings by float rounding only (about 1e-7 in float32).
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def foldable(conv: nn.Module, bn: nn.Module) -> bool:
    """Whether `bn` can be folded into `conv` exactly: a plain Conv2d then a plain BatchNorm2d of its
    output channels with running statistics (exact types: a subclass may compute something else)."""
    return (
        type(conv) is nn.Conv2d
        and type(bn) is nn.BatchNorm2d
        and bn.num_features == conv.out_channels
        and bn.running_mean is not None
        and bn.running_var is not None
    )


def conv_batchnorm_pairs(module: nn.Module) -> list[tuple[nn.Sequential, str, str]]:
    """(sequential, conv's name, BN's name) of each foldable Conv2d -> BatchNorm2d pair in `module`."""
    pairs = []
    for seq in module.modules():
        if isinstance(seq, nn.Sequential):
            names = list(seq._modules)
            pairs += [
                (seq, a, b)
                for a, b in zip(names, names[1:], strict=False)
                if foldable(seq._modules[a], seq._modules[b])
            ]
    return pairs


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """A deep copy of `module` in eval mode, each Conv2d directly followed by a BatchNorm2d inside an
    nn.Sequential replaced by one Conv2d with the BN folded in, and the BN by nn.Identity.

    BNs that do not follow a conv (IResNet's pre-activation BN, the BatchNorm1d of the embedding)
    stay as they are. The weights keep their memory format (channels_last stays channels_last), so
    `embed.uses_channels_last` reads the copy as the original. `module` itself is not modified.
    """
    folded = copy.deepcopy(module).eval()
    # the pairs never overlap (a pair starts at a conv, ends at a BN): found first, then replaced
    for seq, conv_name, bn_name in conv_batchnorm_pairs(folded):
        conv = seq._modules[conv_name]
        fused = fuse_conv_bn_eval(conv, seq._modules[bn_name])
        if conv.weight.is_contiguous(memory_format=torch.channels_last):
            fused.weight.data = fused.weight.data.contiguous(memory_format=torch.channels_last)
        seq._modules[conv_name] = fused
        seq._modules[bn_name] = nn.Identity()
    return folded
