"""The ImageNet evaluation network (DARTS NetworkImageNet; EDNAS_SPEC.md s.6, s.7): the paper's 4.7M parameters at
the mobile setting, the stems' 56x56 and 28x28, the first cell reducing s0, aux logits only in training, drop-path."""

import pytest
import torch
from torch import nn

from ednas_core.genotypes import load_genotype
from ednas_core.models.cnn import count_parameters
from ednas_core.models.imagenet import AuxiliaryHeadImageNet, ImageNetEvalNetwork
from ednas_core.ops import FactorizedReduce

IMAGENET = load_genotype("paper-imagenet")


@pytest.fixture(scope="module")
def mobile() -> ImageNetEvalNetwork:
    torch.manual_seed(0)
    return ImageNetEvalNetwork(IMAGENET)  # C=48, 14 cells, 1000 classes


def _small(genotype=IMAGENET, **kw) -> ImageNetEvalNetwork:
    torch.manual_seed(0)
    return ImageNetEvalNetwork(genotype, **{"init_channels": 8, "layers": 5, "num_classes": 1000, **kw})


def test_paper_imagenet_parameter_count_at_the_mobile_setting(mobile):
    n = count_parameters(mobile)
    assert 4.7e6 <= n <= 5.2e6, f"paper-imagenet at C=48, 14 cells: {n} parameters (the paper: 4.7M)"
    with_aux = count_parameters(mobile, exclude_auxiliary=False)
    assert with_aux - n == sum(p.numel() for p in mobile.auxiliary_head.parameters()) > 0
    assert count_parameters(ImageNetEvalNetwork(IMAGENET, auxiliary=False)) == n


def test_first_cell_reduces_the_stride_4_stem(mobile):
    assert isinstance(mobile.cells[0].preprocess0, FactorizedReduce)
    assert not isinstance(mobile.cells[1].preprocess0, FactorizedReduce)  # cell 0 keeps 28x28
    assert [i for i, cell in enumerate(mobile.cells) if cell.reduction] == [4, 9]
    assert mobile.aux_index == 9


def test_forward_224_gives_1000_way_logits_and_aux_only_in_training(mobile):
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        s0 = mobile.stem0(x)
        s1 = mobile.stem1(s0)
        assert s0.shape[-2:] == (56, 56) and s1.shape[-2:] == (28, 28)
        assert s0.shape[1] == s1.shape[1] == 48

        mobile.train()
        sizes = {}
        hook = mobile.auxiliary_head.register_forward_pre_hook(lambda m, args: sizes.update(aux=args[0].shape))
        logits, aux = mobile(x)
        hook.remove()
        assert logits.shape == (2, 1000) and aux is not None and aux.shape == (2, 1000)
        assert sizes["aux"][-2:] == (7, 7)  # the cell at 2/3 reduces 14x14 to the 7x7 DARTS's head fits exactly

        mobile.eval()
        logits, aux = mobile(x)
        assert logits.shape == (2, 1000) and aux is None and torch.isfinite(logits).all()


def test_imagenet_aux_head_has_no_batchnorm_after_the_768_conv():
    head = AuxiliaryHeadImageNet(64, 10)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in head.features) == 1
    assert head(torch.randn(2, 64, 7, 7)).shape == (2, 10)
    assert head(torch.randn(2, 64, 9, 9)).shape == (2, 10)  # other sizes resampled to 7x7


def test_trains_with_label_smoothing_and_the_aux_loss():
    net = _small(num_classes=10).train()
    logits, aux = net(torch.randn(2, 3, 64, 64))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    labels = torch.tensor([3, 7])
    (loss_fn(logits, labels) + 0.4 * loss_fn(aux, labels)).backward()
    assert all(p.grad is not None for p in net.parameters())


def test_drop_path_randomises_training_and_is_off_at_zero():
    net = _small(num_classes=10).train()
    x = torch.randn(2, 3, 64, 64)

    def run(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        return net(x)[0]

    net.drop_path_prob = 0.3
    assert not torch.allclose(run(1), run(2))
    assert torch.equal(run(1), run(1))
    net.drop_path_prob = 0.0
    assert torch.equal(run(1), run(2))
    with pytest.raises(ValueError, match="drop_path_prob"):
        net.drop_path_prob = 1.0


def test_paper_cifar10_genotype_builds_and_runs():
    net = _small(load_genotype("paper-cifar10")).train()
    logits, aux = net(torch.randn(2, 3, 224, 224))
    assert logits.shape == aux.shape == (2, 1000)


def test_rejects_an_rnn_genotype():
    with pytest.raises(ValueError, match="ImageNetEvalNetwork needs a CNN genotype"):
        ImageNetEvalNetwork(load_genotype("paper-ptb"), 8, 5)
