"""augment_batch against a plain per-image DARTS-style reference (pad+crop, flip, x/255, normalize, cutout)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ednas_core.data.augment import augment_batch, draw_augmentation

MEAN = torch.tensor([0.4914, 0.4822, 0.4465])
STD = torch.tensor([0.2470, 0.2435, 0.2616])


def _images(b: int = 6, c: int = 3, h: int = 10, w: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (b, c, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _normalize(images: torch.Tensor) -> torch.Tensor:
    return (images.float() / 255 - MEAN.view(1, -1, 1, 1)) / STD.view(1, -1, 1, 1)


def _reference_one(image: torch.Tensor, dy: int, dx: int, flip: bool, cy: int, cx: int, pad: int, cutout: int):
    """One image, the torchvision/DARTS way: RandomCrop(padding), RandomHorizontalFlip, ToTensor, Normalize, Cutout."""
    _, h, w = image.shape
    x = F.pad(image.float(), (pad, pad, pad, pad))[:, dy : dy + h, dx : dx + w]
    if flip:
        x = x.flip(2)
    x = (x / 255 - MEAN.view(-1, 1, 1)) / STD.view(-1, 1, 1)
    if cutout:
        y1, y2 = max(cy - cutout // 2, 0), min(cy + cutout // 2, h)
        x1, x2 = max(cx - cutout // 2, 0), min(cx + cutout // 2, w)
        x[:, y1:y2, x1:x2] = 0.0
    return x


def test_centre_crop_without_flip_or_cutout_is_plain_normalization() -> None:
    images, pad = _images(), 4
    offsets = torch.full((images.shape[0], 2), pad, dtype=torch.int64)
    out = augment_batch(images, MEAN, STD, crop_offsets=offsets, flips=None, cutout_centers=None, pad=pad)
    assert out.dtype == torch.float32 and out.shape == images.shape
    assert torch.allclose(out, _normalize(images), atol=1e-6)
    plain = augment_batch(images, MEAN, STD, crop_offsets=None, flips=None, cutout_centers=None)
    assert torch.allclose(plain, _normalize(images), atol=1e-6)


def test_zero_offset_shifts_by_pad_with_zero_padding() -> None:
    images, pad = _images(), 3
    offsets = torch.zeros(images.shape[0], 2, dtype=torch.int64)
    out = augment_batch(images, MEAN, STD, crop_offsets=offsets, flips=None, cutout_centers=None, pad=pad)
    normalized_zero = (-MEAN / STD).view(1, -1, 1, 1)
    assert torch.allclose(out[:, :, :pad, :], normalized_zero.expand(6, 3, pad, 12), atol=1e-6)
    assert torch.allclose(out[:, :, :, :pad], normalized_zero.expand(6, 3, 10, pad), atol=1e-6)
    assert torch.allclose(out[:, :, pad:, pad:], _normalize(images)[:, :, :-pad, :-pad], atol=1e-6)


def test_flip_equals_torch_flip() -> None:
    images = _images()
    flips = torch.tensor([True, False, True, True, False, False])
    out = augment_batch(images, MEAN, STD, crop_offsets=None, flips=flips, cutout_centers=None)
    expected = torch.where(flips.view(-1, 1, 1, 1), _normalize(images).flip(3), _normalize(images))
    assert torch.allclose(out, expected, atol=1e-6)


def test_cutout_zeroes_the_clipped_square() -> None:
    images = torch.full((4, 3, 10, 12), 7, dtype=torch.uint8)  # no normalized pixel is zero before cutout
    centers = torch.tensor([[5, 6], [0, 0], [9, 11], [1, 10]])
    size = 6
    out = augment_batch(images, MEAN, STD, crop_offsets=None, flips=None, cutout_centers=centers, cutout=size)
    areas = [6 * 6, 3 * 3, 4 * 4, 4 * 5]  # rows/cols [c-3, c+3) clipped to 10x12
    assert (out == 0).sum(dim=(1, 2, 3)).tolist() == [a * 3 for a in areas]
    assert (out[1, :, :3, :3] == 0).all() and (out[2, :, 6:, 8:] == 0).all() and (out[3, :, :4, 7:] == 0).all()
    untouched = augment_batch(images, MEAN, STD, crop_offsets=None, flips=None, cutout_centers=centers, cutout=0)
    assert (untouched != 0).all()


def test_batch_equals_per_image_reference() -> None:
    images, pad, size = _images(b=16), 4, 5
    draws = draw_augmentation(16, 10, 12, pad, torch.Generator().manual_seed(3))
    assert draws["flips"].any() and not draws["flips"].all()
    out = augment_batch(images, MEAN, STD, **draws, pad=pad, cutout=size)
    for i in range(16):
        (dy, dx), (cy, cx) = draws["crop_offsets"][i].tolist(), draws["cutout_centers"][i].tolist()
        expected = _reference_one(images[i], dy, dx, bool(draws["flips"][i]), cy, cx, pad, size)
        assert torch.allclose(out[i], expected, atol=1e-6), i


def test_draws_are_in_range_and_reproducible() -> None:
    a = draw_augmentation(500, 10, 12, 4, torch.Generator().manual_seed(1))
    b = draw_augmentation(500, 10, 12, 4, torch.Generator().manual_seed(1))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["crop_offsets"].min() == 0 and a["crop_offsets"].max() == 8 and a["crop_offsets"].dtype == torch.int64
    assert a["flips"].dtype == torch.bool
    assert a["cutout_centers"][:, 0].max() == 9 and a["cutout_centers"][:, 1].max() == 11


def test_no_host_sync(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading a tensor's value on the host (item, tolist, bool, int, float, index) would stall a GPU pipeline."""
    images, pad = _images(b=8), 4
    draws = draw_augmentation(8, 10, 12, pad, torch.Generator().manual_seed(0))

    def forbidden(*args, **kwargs):
        raise AssertionError("host sync")

    for name in ("item", "tolist", "__bool__", "__int__", "__float__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, forbidden)
    out = augment_batch(images, MEAN, STD, **draws, pad=pad, cutout=4)
    monkeypatch.undo()
    assert out.shape == images.shape
