"""The step loops never read the device on the host: SGD steps of the search child (CNN and RNN), of the CNN
evaluation network and of the recurrent one, batches from the device loader included. The policy reward is
the one read a policy step needs (REINFORCE updates the host-side policy with it). On CUDA this runs under
torch.cuda.set_sync_debug_mode; on CPU every Tensor-to-Python read is recorded instead (helpers.host_reads)."""

from __future__ import annotations

import pytest
import torch

from helpers import DEVICES, host_reads, make_pattern_dataset, make_runtime, tiny_eval_config, tiny_search_config
from ednas_core.child_cnn import ImageChild
from ednas_core.child_rnn import TextChild
from ednas_core.config import DataConfig, RNNEvaluateConfig, RNNSearchConfig
from ednas_core.data.ptb import bptt_batches, make_synthetic_corpus
from ednas_core.genotypes import PAPER_GENOTYPES
from ednas_core.strategies.ednas import PolicyVectors
from ednas_core.spaces import CNN_SPACE, RNN_SPACE
from ednas_core.train import GenotypeTrainer
from ednas_core.train_rnn import RNNTrainer

DATA = make_pattern_dataset(n_train=160, n_test=64)
CORPUS = make_synthetic_corpus(40, 800, 240, 240, seed=0)


def cnn_arch():
    return PolicyVectors(CNN_SPACE).sample(torch.Generator().manual_seed(3))


@pytest.mark.parametrize("device", DEVICES)
def test_search_child_steps_and_device_loader_read_nothing(device):
    rt = make_runtime(device)
    child = ImageChild.build(DATA, tiny_search_config(batch_size=16), DataConfig(), rt)
    arch = cnn_arch()
    child.start_epoch(0)
    child.train_step(arch, next(iter(child.train_batches(0))))  # warm-up: cuDNN autotuning, allocator
    with host_reads(rt.device) as reads:
        steps = 0
        for batch in child.train_batches(1):  # the epoch plan, augmentation and every step
            child.train_step(arch, batch)
            steps += 1
    assert steps == 8 and reads == []


@pytest.mark.parametrize("device", DEVICES)
def test_a_policy_reward_is_one_read(device):
    rt = make_runtime(device)
    child = ImageChild.build(DATA, tiny_search_config(policy_batch_size=16), DataConfig(), rt)
    batch, arch = next(iter(child.policy_batches(0))), cnn_arch()
    child.reward(arch, batch)
    with host_reads(rt.device) as reads:
        reward = child.reward(arch, batch)
    assert 0.0 <= reward <= 1.0 and len(reads) == 1


@pytest.mark.parametrize("device", DEVICES)
def test_evaluation_training_steps_read_nothing(device):
    rt = make_runtime(device)
    trainer = GenotypeTrainer(PAPER_GENOTYPES["paper-cifar10"], DATA, tiny_eval_config(batch_size=16, drop_path=0.2),
                              rt)
    trainer.model.train()
    trainer.model.drop_path_prob = 0.1  # drop-path, auxiliary head and cutout all on
    images, labels = next(iter(trainer.train_loader.epoch(0)))
    trainer.train_step(images, labels)
    with host_reads(rt.device) as reads:
        for images, labels in trainer.train_loader.epoch(1):
            trainer.train_step(images, labels)
    assert reads == []
    assert trainer.sums.seen == 16 + 160 and float(trainer.sums.loss) > 0  # warm-up + epoch, on the device


def rnn_search_config() -> RNNSearchConfig:
    return RNNSearchConfig(batch_size=8, policy_batch_size=8, bptt=10, emb=12, hidden=12)


@pytest.mark.parametrize("device", DEVICES)
def test_recurrent_search_child_steps_read_nothing_and_a_reward_is_one_read(device):
    rt = make_runtime(device)
    child = TextChild.build(CORPUS, rnn_search_config(), rt)
    arch = PolicyVectors(RNN_SPACE).sample(torch.Generator().manual_seed(3))
    child.start_epoch(0)
    batches = child.train_batches(0)
    child.train_step(arch, next(batches))
    with host_reads(rt.device) as reads:
        for batch in batches:
            child.train_step(arch, batch)
    assert reads == []
    window = next(iter(child.policy_batches(0)))
    with host_reads(rt.device) as reads:
        child.reward(arch, window)
    assert len(reads) == 1


@pytest.mark.parametrize("device", DEVICES)
def test_recurrent_evaluation_steps_read_nothing(device):
    rt = make_runtime(device)
    config = RNNEvaluateConfig(epochs=2, batch_size=8, eval_batch_size=8, bptt=10, emb=12, hidden=12)
    trainer = RNNTrainer(PAPER_GENOTYPES["paper-ptb"], CORPUS, config, rt)
    trainer.model.train()
    hidden = trainer.model.init_hidden(8)
    windows = list(bptt_batches(trainer.train_data, config.bptt, seed=5))
    hidden = trainer.train_step(*windows[0], hidden)
    with host_reads(rt.device) as reads:
        for x, y in windows[1:]:
            hidden = trainer.train_step(x, y, hidden)
    assert reads == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_averaging_steps_read_nothing_on_cuda():
    """After the ASGD switch: capturable ASGD keeps its step counters on the device (the default reads one per
    parameter per step). On CPU the counters are host tensors, so there is nothing to check there."""
    rt = make_runtime("cuda")
    config = RNNEvaluateConfig(epochs=2, batch_size=8, eval_batch_size=8, bptt=10, emb=12, hidden=12)
    trainer = RNNTrainer(PAPER_GENOTYPES["paper-ptb"], CORPUS, config, rt)
    trainer._switch_to_asgd()
    trainer.model.train()
    hidden = trainer.model.init_hidden(8)
    windows = list(bptt_batches(trainer.train_data, config.bptt))
    hidden = trainer.train_step(*windows[0], hidden)
    with host_reads(rt.device) as reads:
        for x, y in windows[1:]:
            hidden = trainer.train_step(x, y, hidden)
    assert reads == []


def test_the_cpu_recorder_sees_a_read_and_restores_tensor_methods():
    x = torch.ones(3)
    with host_reads(torch.device("cpu")) as reads:
        y = x * 2
        if y.sum() > 0:  # __bool__
            value = y[0].item()
    assert reads == ["Tensor.__bool__", "Tensor.item"] and value == 2.0
    with host_reads(torch.device("cpu")) as reads:
        pass
    assert reads == [] and torch.Tensor.item is torch._C.TensorBase.item


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_a_whole_search_epoch_on_cuda_syncs_once_per_policy_step_plus_a_constant():
    """Twice the child steps, the same number of syncs: the child phase adds none. The rest are the rewards
    and a few per-epoch reads (metrics, phase timing)."""
    from ednas_core.child_cnn import cnn_search

    counts = []
    for n_train in (160, 320):
        data = make_pattern_dataset(n_train=n_train, n_test=64)
        portion = 1 - 32 / n_train  # 32 policy images whatever the size: 2 policy steps of 16
        search = cnn_search(data, tiny_search_config(epochs=2, batch_size=16, policy_batch_size=16),
                            DataConfig(train_portion=portion), make_runtime("cuda"), checkpoint_path=None)
        search.run_epoch(0)  # warm-up
        with host_reads(torch.device("cuda")) as reads:
            search.run_epoch(1)
        counts.append(len(reads))
    assert counts[0] == counts[1] <= 2 + 8
