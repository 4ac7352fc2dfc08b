"""Regression for the authors' hard-coded seed: runtime.seed must reach (a) the train/policy split, (b) the
child's batch order and (c) every epoch's sampled architectures, and the same seed must repeat all three.
Observed on real searches (the loop of ednas_core/search.py as the search stage builds it, tasks.make_search)
over images that carry their own index in two pixels, by recording what each child call received."""

from __future__ import annotations

import torch

from helpers import cpu_runtime, tiny_search_config
from ednas_core.config import DataConfig
from ednas_core.data import ImageDataset
from ednas_core.tasks import make_search

N = 160
EPOCHS = 2


def indexed_dataset(n: int = N) -> ImageDataset:
    """Image i holds i in the first two pixels of channel 0 (low byte, high byte); mean 0, std 1, so the
    loader's float images are the uint8 values / 255 and the index can be read back."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 8, 8), generator=g, dtype=torch.uint8)
    ids = torch.arange(n)
    images[:, 0, 0, 0] = (ids % 256).to(torch.uint8)
    images[:, 0, 0, 1] = (ids // 256).to(torch.uint8)
    labels = torch.randint(0, 4, (n,), generator=g)
    test = images[:16].clone()
    return ImageDataset(images, labels, test, labels[:16].clone(), classes=[f"c{k}" for k in range(4)],
                        mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def image_ids(images: torch.Tensor) -> list[int]:
    pixels = (images[:, 0, 0, :2].float() * 255.0).round().long()
    return (pixels[:, 0] + 256 * pixels[:, 1]).tolist()


def record(seed: int) -> dict:
    """One search of EPOCHS epochs; per epoch the image ids of every child batch and of every reward batch, and
    the architectures of the child steps and of the rewards, in order."""
    config = tiny_search_config(epochs=EPOCHS, batch_size=16, policy_batch_size=8, augment=False)  # ids intact
    search = make_search("digits", indexed_dataset(), config, DataConfig(train_portion=0.75), cpu_runtime(seed),
                         None, (), {})
    child = search.child
    log = {"train": [], "policy": [], "train_arch": [], "policy_arch": []}
    start_epoch, train_step, reward = child.start_epoch, child.train_step, child.reward

    def on_start(epoch):
        for value in log.values():
            value.append([])
        return start_epoch(epoch)

    def on_train(arch, batch):
        log["train"][-1].append(image_ids(batch[0]))
        log["train_arch"][-1].append(search.space.arch_key(arch))
        return train_step(arch, batch)

    def on_reward(arch, batch):
        log["policy"][-1].append(image_ids(batch[0]))
        log["policy_arch"][-1].append(search.space.arch_key(arch))
        return reward(arch, batch)

    child.start_epoch, child.train_step, child.reward = on_start, on_train, on_reward
    search.run()
    assert len(log["train"]) == EPOCHS and all(len(e) == 8 for e in log["train"])      # 120 images / 16
    assert all(len(e) == 5 for e in log["policy"])                                     # 40 images / 8
    return log


def flat(batches: list[list[int]]) -> list[int]:
    return [i for batch in batches for i in batch]


def relative_order(log: dict, key: str) -> list[int]:
    """Where each image of epoch 1's order stood in epoch 0's: the loader's own shuffle from one epoch to the
    next, independent of which images the split gave it (a loader with a fixed seed repeats it)."""
    first, second = flat(log[key][0]), flat(log[key][1])
    position = {i: k for k, i in enumerate(first)}
    return [position[i] for i in second]


def test_runtime_seed_reaches_split_batch_order_and_sampled_architectures():
    a, b, again = record(1), record(2), record(1)

    # the same seed repeats the split, the batch order and every sampled architecture exactly
    assert again == a

    for log in (a, b):  # the split: disjoint halves covering the dataset, the same in every epoch
        train, policy = set(flat(log["train"][0])), set(flat(log["policy"][0]))
        assert len(train) == 120 and len(policy) == 40 and not train & policy and train | policy == set(range(N))
        assert all(set(flat(e)) == train for e in log["train"]) and all(set(flat(e)) == policy for e in log["policy"])

    # (a) another seed, another split
    assert set(flat(a["train"][0])) != set(flat(b["train"][0])), "the train/policy split ignores runtime.seed"

    # (b) another seed, another batch order (also from one epoch to the next, seen apart from the split), for
    # the child's batches and the reward batches alike
    for key in ("train", "policy"):
        assert a[key][0] != a[key][1], f"the {key} batch order repeats from epoch to epoch"
        assert relative_order(a, key) != relative_order(b, key), f"the {key} batch order ignores runtime.seed"

    # (c) another seed, other architectures in every epoch, for the child steps and the rewards alike; and
    # within a run, every epoch samples new ones (collisions are ~impossible among ~1e18 architectures)
    for key in ("train_arch", "policy_arch"):
        for epoch in range(EPOCHS):
            same = sum(x == y for x, y in zip(a[key][epoch], b[key][epoch]))
            assert same == 0, f"{key} epoch {epoch}: {same} of {len(a[key][epoch])} sampled architectures " \
                              "are the same under another runtime.seed"
        for log in (a, b):
            same = sum(x == y for x, y in zip(log[key][0], log[key][1]))
            assert same == 0, f"{key}: {same} architectures of epoch 0 repeat in epoch 1"
