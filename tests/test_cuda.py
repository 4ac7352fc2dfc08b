"""On a CUDA device (skipped elsewhere; `make gpu-check` makes a missing GPU an error): the search and the
evaluation run with every CUDA switch on (bf16 autocast, channels_last, fused SGD, torch.compile), and
`deterministic: true` repeats a training run bit for bit."""

from __future__ import annotations

import math

import pytest
import torch

from helpers import make_pattern_dataset, make_runtime, tiny_eval_config, tiny_search_config
from ednas_core.child_cnn import cnn_search
from ednas_core.config import DataConfig
from ednas_core.genotypes import PAPER_GENOTYPES
from ednas_core.train import GenotypeTrainer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")

DATA = make_pattern_dataset(n_train=256, n_test=128)


def test_every_cuda_switch_is_on_by_default_and_the_search_runs():
    rt = make_runtime("cuda")
    assert rt.amp and rt.channels_last and rt.fused_optimizer and torch.backends.cudnn.benchmark
    search = cnn_search(DATA, tiny_search_config(epochs=2), DataConfig(), rt, checkpoint_path=None)
    assert search.child.optimizer.defaults["fused"]
    history = search.run().history
    assert all(math.isfinite(h.metrics["child_loss"]) and 0 <= h.metrics["reward"] <= 1 for h in history)


def test_compiled_training_learns_on_cuda(tmp_path):
    rt = make_runtime("cuda", compile=True)
    result = GenotypeTrainer(PAPER_GENOTYPES["paper-cifar10"], DATA, tiny_eval_config(epochs=4, lr=0.05), rt,
                             tmp_path / "c.pt").run()
    losses = [h.metrics["train_loss"] for h in result.history]
    assert losses[-1] < losses[0] and result.test_acc > 0.5
    assert next(result.model.parameters()).is_cuda


def test_deterministic_mode_repeats_a_training_run_bit_for_bit(tmp_path):
    def run(name):
        rt = make_runtime("cuda", deterministic=True)
        return GenotypeTrainer(PAPER_GENOTYPES["paper-cifar10"], DATA, tiny_eval_config(epochs=2), rt,
                               tmp_path / name).run()

    a, b = run("a.pt"), run("b.pt")
    for (name, x), (_, y) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(x, y), name
