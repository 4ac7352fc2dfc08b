"""The ImageNet evaluation schedule (lr 0.1, x0.97 per epoch, 5 warm-up epochs), linear lr/batch scaling, and
top-k errors computed on the device."""

import pytest
import torch

from ednas_core.metrics import topk_correct, topk_errors
from ednas_core.schedules import exponential_lr_with_warmup, linear_scaled_batch

EXPECTED = {  # base 0.1: 0.1 * 0.97**epoch, times (epoch + 1) / 5 in the first five epochs
    0: 0.1 * 1 / 5,
    1: 0.1 * 0.97 * 2 / 5,
    2: 0.1 * 0.9409 * 3 / 5,
    3: 0.1 * 0.912673 * 4 / 5,
    4: 0.1 * 0.88529281,
    5: 0.1 * 0.8587340257,
    6: 0.1 * 0.832972004929,
    20: 0.1 * 0.5437943429267473,
}


@pytest.mark.parametrize("epoch", sorted(EXPECTED))
def test_exponential_lr_with_warmup_values(epoch):
    assert exponential_lr_with_warmup(0.1, epoch) == pytest.approx(EXPECTED[epoch], rel=1e-12)


def test_warmup_rises_then_decays_and_can_be_off():
    lrs = [exponential_lr_with_warmup(0.1, e) for e in range(10)]
    assert lrs[:5] == sorted(lrs[:5]) and lrs[4:] == sorted(lrs[4:], reverse=True)
    assert exponential_lr_with_warmup(0.1, 0, warmup_epochs=0) == 0.1
    assert exponential_lr_with_warmup(0.1, 3, gamma=0.5, warmup_epochs=0) == 0.1 * 0.125
    with pytest.raises(ValueError, match="warmup_epochs"):
        exponential_lr_with_warmup(0.1, 0, warmup_epochs=-1)


def test_linear_scaled_batch():
    assert linear_scaled_batch(200, 0.1, 1) == (200, 0.1)
    batch, lr = linear_scaled_batch(128, 0.1, 8)
    assert batch == 1024 and lr == pytest.approx(0.8)
    with pytest.raises(ValueError, match="world_size"):
        linear_scaled_batch(128, 0.1, 0)
    with pytest.raises(ValueError, match="batch"):
        linear_scaled_batch(0, 0.1, 2)


def test_topk_errors_on_hand_made_logits():
    logits = torch.tensor([
        [9.0, 1.0, 2.0, 3.0, 4.0, 5.0, 0.0],  # target 0: top-1
        [0.0, 9.0, 8.0, 7.0, 6.0, 5.0, 4.0],  # target 3: rank 3, in the top 5
        [0.0, 9.0, 8.0, 7.0, 6.0, 5.0, 4.0],  # target 6: rank 6, outside the top 5
        [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],  # target 6: top-1
    ])
    targets = torch.tensor([0, 3, 6, 6])
    errors = topk_errors(logits, targets)
    assert set(errors) == {1, 5} and all(isinstance(e, torch.Tensor) and e.dim() == 0 for e in errors.values())
    assert errors[1].item() == pytest.approx(50.0) and errors[5].item() == pytest.approx(25.0)
    assert {k: v.item() for k, v in topk_correct(logits, targets, ks=(1, 2, 7)).items()} == {1: 2, 2: 2, 7: 4}
    assert topk_errors(logits, targets, ks=(7,))[7].item() == 0.0


def test_topk_rejects_k_beyond_the_classes_and_bad_shapes():
    with pytest.raises(ValueError, match="every k in 1..3"):
        topk_errors(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="logits"):
        topk_errors(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long), ks=(1,))
