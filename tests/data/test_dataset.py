"""ednas_core.data.dataset: the search's train/policy split refuses data.train_portion values that leave a part
empty or smaller than one batch, with one line naming the key, the sizes and the range that works."""

from __future__ import annotations

import random

import pytest

from ednas_core.data.dataset import check_search_split, split_indices, split_sizes
from ednas_core.knobs import ConfigError


def message(*args) -> str:
    with pytest.raises(ConfigError) as err:
        check_search_split(*args)
    assert "\n" not in str(err.value)
    return str(err.value)


@pytest.mark.parametrize("portion, sizes", [(0.0003, "0 for the weights and 1497 for the policy"),
                                            (0.9999, "1497 for the weights and 0 for the policy")])
def test_empty_part_is_refused_by_the_split_itself(portion, sizes):
    """0.0003 trained the weights on 0 images (child_loss 0); 0.9999 left no policy batch."""
    with pytest.raises(ConfigError) as err:
        split_indices(1497, portion, seed=0)
    assert str(err.value) == (f"data.train_portion: got {portion}, which splits 1497 training images into {sizes}; "
                              "each part needs at least one image: use a value from 0.00067 to 0.99933")


def test_split_at_the_edges_of_the_given_range_works():
    assert [t.numel() for t in split_indices(1497, 0.00067, seed=0)] == [1, 1496]
    assert [t.numel() for t in split_indices(1497, 0.99933, seed=0)] == [1496, 1]


def test_portions_0_and_1_still_ask_for_an_empty_part():
    assert split_indices(10, 1.0, seed=0)[1].numel() == 0
    assert split_indices(10, 0.0, seed=0)[0].numel() == 0


@pytest.mark.parametrize("portion, sizes", [(0.0003, "0 for the weights and 1497 for the policy"),
                                            (0.99, "1482 for the weights and 15 for the policy"),
                                            (0.01, "15 for the weights and 1482 for the policy")])
def test_part_smaller_than_one_batch_is_refused_with_the_task_keys(portion, sizes):
    assert message(1497, portion, 64, 64, "digits.") == (
        f"data.train_portion: got {portion}, which splits 1497 training images into {sizes}; each part needs at "
        "least one batch (digits.search.batch_size 64, digits.search.policy_batch_size 64): "
        "use a value from 0.043 to 0.957")


def test_cifar10_keys_have_no_prefix():
    assert message(50000, 0.0003, 128, 256).endswith(
        "(search.batch_size 128, search.policy_batch_size 256): use a value from 0.0026 to 0.9948")


def test_batches_larger_than_the_data_cannot_be_split():
    assert message(100, 0.5, 64, 64, "digits.") == (
        "data.train_portion: no value splits 100 training images into two parts that each have at least one batch "
        "(digits.search.batch_size 64, digits.search.policy_batch_size 64); lower the batch sizes or use more "
        "training images")


def test_valid_split_returns_its_sizes():
    assert check_search_split(1497, 0.8, 64, 64) == (1198, 299) == split_sizes(1497, 0.8)
    assert check_search_split(128, 0.5, 64, 64) == (64, 64)  # exactly one batch each


def test_the_range_in_the_message_always_works():
    rng = random.Random(0)
    for _ in range(2000):
        n = rng.randint(2, 2_000_000)
        batch = rng.randint(1, n - 1)
        policy_batch = rng.randint(1, n - batch)
        text = message(n, 1e-12, batch, policy_batch)  # no image for the weights
        lo, hi = (float(v) for v in text.rsplit("use a value from ", 1)[1].split(" to "))
        assert 0 < lo <= hi < 1
        for portion in (lo, hi):
            assert check_search_split(n, portion, batch, policy_batch)
