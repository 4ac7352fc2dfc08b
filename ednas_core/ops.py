"""The seven candidate operations of the convolutional search space (DARTS definitions).

Every convolution is ReLU-Conv-BN; a separable convolution is two depthwise-separable stacks; a dilated
convolution is one depthwise-separable stack with dilation 2. `skip_connect` on a stride-2 edge is a
factorized reduce. In the weight-sharing search network (affine=False) pooling is followed by a BN.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

CNN_OPS: tuple[str, ...] = (
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class DilConv(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int, affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride=stride, padding=padding, dilation=dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class SepConv(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True):
        super().__init__(
            DilConv(c_in, c_in, kernel, stride, padding, dilation=1, affine=affine),
            DilConv(c_in, c_out, kernel, 1, padding, dilation=1, affine=affine),
        )


class FactorizedReduce(nn.Module):
    """Halves the resolution with two offset stride-2 1x1 convolutions, concatenated."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = nn.functional.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


def _pool(kind: str, stride: int, channels: int, bn_after: bool) -> nn.Module:
    pool: nn.Module
    if kind == "max":
        pool = nn.MaxPool2d(3, stride=stride, padding=1)
    else:
        pool = nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    return nn.Sequential(pool, nn.BatchNorm2d(channels, affine=False)) if bn_after else pool


OpFactory = Callable[[int, int, bool], nn.Module]

# name -> factory(channels, stride, affine). affine=False marks the weight-sharing search network, where
# pooling gets a BN after it (as in DARTS's MixedOp) so that all candidate outputs share one scale.
CNN_OP_FACTORIES: dict[str, OpFactory] = {
    "max_pool_3x3": lambda c, stride, affine: _pool("max", stride, c, bn_after=not affine),
    "avg_pool_3x3": lambda c, stride, affine: _pool("avg", stride, c, bn_after=not affine),
    "skip_connect": lambda c, stride, affine: nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine),
    "sep_conv_3x3": lambda c, stride, affine: SepConv(c, c, 3, stride, 1, affine),
    "sep_conv_5x5": lambda c, stride, affine: SepConv(c, c, 5, stride, 2, affine),
    "dil_conv_3x3": lambda c, stride, affine: DilConv(c, c, 3, stride, 2, 2, affine),
    "dil_conv_5x5": lambda c, stride, affine: DilConv(c, c, 5, stride, 4, 2, affine),
}
assert tuple(CNN_OP_FACTORIES) == CNN_OPS


def make_cnn_op(name: str, channels: int, stride: int, affine: bool) -> nn.Module:
    """Builds candidate operation `name` for `channels` channels; stride 2 on reduction edges from the inputs."""
    try:
        factory = CNN_OP_FACTORIES[name]
    except KeyError:
        raise ValueError(f"unknown operation {name!r}; known: {', '.join(CNN_OPS)}") from None
    return factory(channels, stride, affine)
