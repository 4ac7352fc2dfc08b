"""The seven candidate operations (EDNAS_SPEC.md s.1): shapes, search-net pooling BN, factorized reduce."""

import pytest
import torch
from torch import nn

from ednas_core.ops import CNN_OPS, DilConv, FactorizedReduce, SepConv, make_cnn_op


def test_op_list_is_the_papers_seven():
    assert CNN_OPS == ("max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
                       "dil_conv_3x3", "dil_conv_5x5")


@pytest.mark.parametrize("name", CNN_OPS)
@pytest.mark.parametrize("affine", [True, False], ids=["eval", "search"])
@pytest.mark.parametrize("size", [8, 16])
def test_shapes_at_stride_1_and_2(name, affine, size):
    x = torch.randn(2, 4, size, size)
    assert make_cnn_op(name, 4, 1, affine)(x).shape == (2, 4, size, size)
    assert make_cnn_op(name, 4, 2, affine)(x).shape == (2, 4, size // 2, size // 2)


@pytest.mark.parametrize("name", ["max_pool_3x3", "avg_pool_3x3"])
@pytest.mark.parametrize("stride", [1, 2])
def test_search_net_pooling_is_followed_by_non_affine_bn(name, stride):
    op = make_cnn_op(name, 4, stride, affine=False)
    assert isinstance(op, nn.Sequential) and len(op) == 2
    pool_type = nn.MaxPool2d if name.startswith("max") else nn.AvgPool2d
    assert isinstance(op[0], pool_type)
    assert isinstance(op[1], nn.BatchNorm2d) and not op[1].affine and op[1].num_features == 4
    # eval network: bare pooling, no BN
    plain = make_cnn_op(name, 4, stride, affine=True)
    assert isinstance(plain, pool_type)


def test_skip_connect_is_identity_at_stride_1_and_factorized_reduce_at_stride_2():
    x = torch.randn(2, 4, 8, 8)
    op = make_cnn_op("skip_connect", 4, 1, affine=False)
    assert isinstance(op, nn.Identity)
    assert torch.equal(op(x), x)
    for affine in (True, False):
        reduce = make_cnn_op("skip_connect", 4, 2, affine=affine)
        assert isinstance(reduce, FactorizedReduce)
        assert reduce.bn.affine == affine
        assert reduce(x).shape == (2, 4, 4, 4)


def test_factorized_reduce_needs_even_channels():
    with pytest.raises(ValueError, match="even"):
        FactorizedReduce(4, 5)


def test_conv_ops_are_relu_conv_bn_with_darts_structure():
    sep = make_cnn_op("sep_conv_5x5", 4, 2, affine=False)
    assert isinstance(sep, SepConv) and len(sep) == 2  # two depthwise-separable stacks
    first, second = sep
    assert isinstance(first[0], nn.ReLU)
    assert first[1].stride == (2, 2) and first[1].kernel_size == (5, 5) and first[1].groups == 4
    assert second[1].stride == (1, 1)
    assert not first[3].affine
    dil = make_cnn_op("dil_conv_3x3", 4, 1, affine=True)
    assert isinstance(dil, DilConv)
    assert dil[1].dilation == (2, 2) and dil[1].kernel_size == (3, 3) and dil[3].affine


def test_unknown_op_lists_known_ops():
    with pytest.raises(ValueError) as err:
        make_cnn_op("none", 4, 1, affine=True)
    assert "'none'" in str(err.value)
    for name in CNN_OPS:
        assert name in str(err.value)
