"""DeviceLoader coverage, (seed, epoch) reproducibility, memory format; split_indices properties."""

from __future__ import annotations

import pytest
import torch

from ednas_core.data import DataError, DeviceLoader, ImageDataset, split_indices

MEAN = (0.5, 0.4, 0.3)
STD = (0.2, 0.25, 0.3)
N = 37


@pytest.fixture
def data() -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose pixels differ per index, labels equal to the index (so a batch reveals which indices it holds)."""
    images = torch.randint(0, 256, (N, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    return images, torch.arange(N)


def _batches(loader: DeviceLoader, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return list(loader.epoch(epoch))


def test_every_index_once_per_epoch_and_images_match_labels(data) -> None:
    images, labels = data
    loader = DeviceLoader(images, labels, 8, MEAN, STD, seed=1)
    batches = _batches(loader, 0)
    assert len(loader) == len(batches) == 5
    assert [y.shape[0] for _, y in batches] == [8, 8, 8, 8, 5]
    assert loader.num_samples == N
    seen = torch.cat([y for _, y in batches])
    assert sorted(seen.tolist()) == list(range(N)) and seen.tolist() != list(range(N))
    x = torch.cat([x for x, _ in batches])
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    assert x.dtype == torch.float32
    assert torch.allclose(x, (images[seen].float() / 255 - mean) / std, atol=1e-6)


def test_drop_last_and_no_shuffle(data) -> None:
    images, labels = data
    loader = DeviceLoader(images, labels, 8, MEAN, STD, seed=1, shuffle=False, drop_last=True)
    batches = _batches(loader, 3)
    assert len(loader) == len(batches) == 4
    assert loader.num_samples == 32
    assert torch.equal(torch.cat([y for _, y in batches]), torch.arange(32))


def test_same_seed_and_epoch_give_identical_augmented_batches(data) -> None:
    images, labels = data

    def make(seed: int) -> DeviceLoader:
        return DeviceLoader(images, labels, 10, MEAN, STD, seed=seed, augment=True, cutout=4)

    uninterrupted = [_batches(make(7), e) for e in range(3)]
    resumed = _batches(make(7), 2)  # a fresh loader that starts at epoch 2, as after a restart
    for (xa, ya), (xb, yb) in zip(uninterrupted[2], resumed, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    order = [torch.cat([y for _, y in epoch]) for epoch in uninterrupted]
    assert not torch.equal(order[0], order[1]) and not torch.equal(order[1], order[2])
    other_seed = torch.cat([y for _, y in _batches(make(8), 0)])
    assert not torch.equal(order[0], other_seed)


def test_augmentation_changes_images_but_not_alignment(data) -> None:
    images, labels = data
    plain = DeviceLoader(images, labels, N, MEAN, STD, seed=3)
    augmented = DeviceLoader(images, labels, N, MEAN, STD, seed=3, augment=True, cutout=4)
    (xp, yp), = _batches(plain, 0)
    (xa, ya), = _batches(augmented, 0)
    assert torch.equal(yp, ya)  # augmentation draws come after the permutation on the same generator
    assert not torch.allclose(xp, xa)
    assert ((xa == 0).sum(dim=(1, 2, 3)) >= 3).all()  # every image got a (possibly clipped) cutout square


def test_channels_last(data) -> None:
    images, labels = data
    x, _ = next(iter(DeviceLoader(images, labels, 8, MEAN, STD, seed=0, channels_last=True).epoch(0)))
    assert x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    x, _ = next(iter(DeviceLoader(images, labels, 8, MEAN, STD, seed=0).epoch(0)))
    assert x.is_contiguous()


def test_epoch_reads_no_tensor_values_on_the_host(data, monkeypatch: pytest.MonkeyPatch) -> None:
    images, labels = data
    loader = DeviceLoader(images, labels, 8, MEAN, STD, seed=0, augment=True, cutout=4)

    def forbidden(*args, **kwargs):
        raise AssertionError("host sync")

    for name in ("item", "tolist", "__bool__", "__int__", "__float__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, forbidden)
    batches = _batches(loader, 0)
    monkeypatch.undo()
    assert len(batches) == 5


def test_rejects_mismatched_labels(data) -> None:
    images, labels = data
    with pytest.raises(ValueError, match="labels must be"):
        DeviceLoader(images, labels[:-1], 8, MEAN, STD, seed=0)


def test_split_indices() -> None:
    train, valid = split_indices(1000, 0.5, seed=4)
    assert train.numel() == 500 and valid.numel() == 500
    assert sorted(torch.cat([train, valid]).tolist()) == list(range(1000))
    again_train, again_valid = split_indices(1000, 0.5, seed=4)
    assert torch.equal(train, again_train) and torch.equal(valid, again_valid)
    assert not torch.equal(train, split_indices(1000, 0.5, seed=5)[0])
    assert split_indices(10, 0.26, seed=0)[0].numel() == 3
    assert split_indices(10, 1.0, seed=0)[1].numel() == 0
    with pytest.raises(ValueError):
        split_indices(10, 1.5, seed=0)


def test_image_dataset_stats_and_validation() -> None:
    train = torch.zeros(4, 2, 5, 5, dtype=torch.uint8)
    train[:2] = 255
    test = torch.zeros(2, 2, 5, 5, dtype=torch.uint8)
    labels = torch.tensor([0, 1, 0, 1])
    data = ImageDataset(train, labels, test, torch.tensor([1, 0]), ["a", "b"])
    assert data.mean == pytest.approx((0.5, 0.5)) and data.std == pytest.approx((0.5, 0.5))
    assert (data.num_classes, data.in_channels, data.image_size) == (2, 2, 5)
    with pytest.raises(DataError, match="labels must lie in 0..1"):
        ImageDataset(train, torch.tensor([0, 1, 2, 1]), test, torch.tensor([1, 0]), ["a", "b"])
