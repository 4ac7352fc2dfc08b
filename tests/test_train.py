"""Training a genotype from scratch: learning happens, schedules follow the paper, resume is exact."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch._dynamo.testing import CompileCounter

from helpers import StopAfter, cpu_runtime, tiny_eval_config
from ednas_core.genotypes import PAPER_GENOTYPES
from ednas_core.schedules import cosine_lr
from ednas_core.train import GenotypeTrainer, TrainCallback


def trainer(dataset, tmp_path, name="t.pt", callbacks=(), **overrides):
    return GenotypeTrainer(PAPER_GENOTYPES["paper-cifar10"], dataset, tiny_eval_config(**overrides), cpu_runtime(),
                           tmp_path / name, callbacks)


def test_training_learns_and_reports_test_error(pattern_dataset, tmp_path):
    result = trainer(pattern_dataset, tmp_path, epochs=4, lr=0.05).run()
    losses = [h.metrics["train_loss"] for h in result.history]
    assert losses[-1] < losses[0]
    assert result.test_acc > 0.5  # 4 classes: chance is 0.25
    assert result.test_error == pytest.approx(100 * (1 - result.test_acc))
    assert result.params == sum(p.numel() for n, p in result.model.named_parameters()
                                if not n.startswith("auxiliary_head"))


def test_schedules_follow_the_paper(pattern_dataset, tmp_path):
    result = trainer(pattern_dataset, tmp_path, epochs=3, lr=0.025, drop_path=0.2).run()
    lrs = [h.metrics["lr"] for h in result.history]
    assert lrs == [pytest.approx(cosine_lr(0.025, 0.0, e, 3)) for e in range(3)]
    assert [h.metrics["drop_path_prob"] for h in result.history] == pytest.approx([0.0, 0.2 / 3, 0.4 / 3])


def test_resumed_training_equals_uninterrupted(pattern_dataset, tmp_path):
    full = trainer(pattern_dataset, tmp_path, "full.pt", epochs=3).run()
    with pytest.raises(StopAfter.Killed):
        trainer(pattern_dataset, tmp_path, "k.pt", [StopAfter(0)], epochs=3).run()
    resumed = trainer(pattern_dataset, tmp_path, "k.pt", epochs=3).run()
    for (name, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name
    assert full.test_acc == resumed.test_acc


def test_genotype_of_another_space_is_refused(pattern_dataset):
    with pytest.raises(ValueError, match="CNN genotype"):
        GenotypeTrainer(PAPER_GENOTYPES["paper-ptb"], pattern_dataset, tiny_eval_config(), cpu_runtime())


class FrameCounts(TrainCallback):
    def __init__(self, counter):
        self.counter, self.after_epoch = counter, []

    def on_epoch_end(self, report):
        self.after_epoch.append(self.counter.frame_count)


@pytest.mark.slow
def test_compiled_training_stops_compiling_after_the_second_epoch_and_matches_eager(pattern_dataset, tmp_path):
    """drop_path_prob changes every epoch; it lives in a device buffer, so the compiled forward is reused: one
    graph per (train without drop-path at epoch 0, train with it, eval), none per epoch."""
    torch._dynamo.reset()
    counter = CompileCounter()  # runs the captured graphs as traced, so results can be compared with eager
    runtime = dataclasses.replace(cpu_runtime(), compile=True, compile_backend=counter)
    frames = FrameCounts(counter)
    config = tiny_eval_config(epochs=5, drop_path=0.3)
    compiled = GenotypeTrainer(PAPER_GENOTYPES["paper-cifar10"], pattern_dataset, config, runtime,
                               tmp_path / "c.pt", [frames]).run()
    eager = GenotypeTrainer(PAPER_GENOTYPES["paper-cifar10"], pattern_dataset, config, cpu_runtime(),
                            tmp_path / "e.pt").run()
    assert frames.after_epoch[1] <= 4 and len(set(frames.after_epoch[1:])) == 1
    for c, e in zip(compiled.history, eager.history):
        assert c.metrics["train_loss"] == pytest.approx(e.metrics["train_loss"], rel=1e-4)
    assert compiled.test_acc == pytest.approx(eager.test_acc, abs=1 / 128)
    assert not any(k.startswith("_orig_mod") for k in compiled.model.state_dict())  # checkpoints stay plain
