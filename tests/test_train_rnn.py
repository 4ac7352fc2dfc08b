"""Training a recurrent genotype: the non-monotonic ASGD trigger, averaged-weight evaluation, the final test with
the best validation epoch's weights, exact resume, too-short splits refused, and a tiny search -> derive -> train
run on the synthetic corpus."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from helpers import StopAfter, cpu_runtime
from ednas_core.checkpoint import load_checkpoint
from ednas_core.child_rnn import rnn_search
from ednas_core.config import RNNEvaluateConfig, RNNSearchConfig
from ednas_core.data.ptb import bptt_batches, make_synthetic_corpus
from ednas_core.derive import derive
from ednas_core.epochs import CheckpointMismatch
from ednas_core.genotypes import PAPER_GENOTYPES
from ednas_core.knobs import ConfigError
from ednas_core.train import TrainCallback
from ednas_core.train_rnn import RNNTrainer, switch_to_asgd

CORPUS = make_synthetic_corpus(40, 640, 240, 240, seed=0)  # 8 windows of 8 x 10 tokens per epoch
PTB = PAPER_GENOTYPES["paper-ptb"]


def tiny_eval_config(**overrides) -> RNNEvaluateConfig:
    base = RNNEvaluateConfig(epochs=2, batch_size=8, eval_batch_size=8, bptt=10, emb=12, hidden=12, dropout=0.1,
                             dropouth=0.1, dropoutx=0.1, dropouti=0.1, dropoute=0.05)
    return dataclasses.replace(base, **overrides)


def plant_valid_losses(trainer: RNNTrainer, losses: list[float]) -> None:
    """Epoch k's validation loss becomes losses[k] (the test loss stays real), to force the trigger."""
    real = trainer._mean_loss
    trainer._mean_loss = lambda data: losses[len(trainer.history)] if data is trainer.valid_data else real(data)


def test_paper_defaults():
    c = RNNEvaluateConfig()
    assert (c.epochs, c.batch_size, c.eval_batch_size, c.bptt, c.emb, c.hidden, c.lr, c.weight_decay,
            c.grad_clip, c.nonmono, c.genotype) == (1600, 64, 10, 35, 850, 850, 20.0, 8e-7, 0.25, 5, "derived")
    assert (c.dropout, c.dropouth, c.dropoutx, c.dropouti, c.dropoute) == (0.75, 0.25, 0.75, 0.2, 0.1)


@pytest.mark.parametrize("previous, current, nonmono, expected", [
    ([], 9.0, 5, False),                                  # nothing to compare with
    ([5, 4, 3, 2, 1], 9.0, 5, False),                     # only the last 5: all left out
    ([5, 4, 3, 2, 1, 0.5], 5.1, 5, True),                 # worse than 5, the best of all but the last 5
    ([5, 4, 3, 2, 1, 0.5], 5.0, 5, False),                # equal is not worse
    ([5, 4, 3, 2, 1, 0.5], 4.9, 5, False),
    ([3.0, 2.0, 2.5], 2.6, 1, True),                      # > min(3.0, 2.0)
    ([3.0, 2.0, 2.5], 1.9, 1, False),
])
def test_non_monotonic_trigger(previous, current, nonmono, expected):
    assert switch_to_asgd(previous, current, nonmono) is expected


def test_switches_to_asgd_exactly_when_the_trigger_holds_and_evaluates_averaged_weights():
    trainer = RNNTrainer(PTB, CORPUS, tiny_eval_config(epochs=5, nonmono=1), cpu_runtime())
    plant_valid_losses(trainer, [5.0, 4.0, 4.5, 5.5, 3.0])  # epoch 3: 5.5 > min(5.0, 4.0) -> switch
    kinds = []

    class Kinds(TrainCallback):
        def on_epoch_end(self, report):
            kinds.append(type(trainer.optimizer).__name__)

    trainer.callbacks.append(Kinds())
    result = trainer.run()
    assert kinds == ["SGD", "SGD", "SGD", "ASGD", "ASGD"]
    assert [h.metrics["averaged"] for h in result.history] == [0, 0, 0, 0, 1]
    assert trainer.sgd_valid_losses == [5.0, 4.0, 4.5, 5.5]
    group = trainer.optimizer.param_groups[0]
    assert group["t0"] == 0 and group["lambd"] == 0.0
    # the returned model holds the averaged weights, which give the last epoch's test loss
    assert trainer._mean_loss(trainer.test_data) == pytest.approx(result.history[-1].metrics["test_loss"])


def test_final_test_uses_the_best_validation_epochs_weights():
    """Epoch 2 is best on validation and epoch 3 worse: the final test (and the returned model) must use epoch
    2's weights, as DARTS reloads its best checkpoint before the test; the last epoch's give another loss."""
    trainer = RNNTrainer(PTB, CORPUS, tiny_eval_config(epochs=3), cpu_runtime())
    plant_valid_losses(trainer, [4.0, 3.0, 5.0])
    result = trainer.run()
    assert result.test_epoch == 2 and result.best_valid_ppl == math.exp(3.0)
    epoch_test_losses = [h.metrics["test_loss"] for h in result.history]  # eval_batch_size columns, per epoch
    assert trainer._mean_loss(trainer.test_data) == epoch_test_losses[1] != epoch_test_losses[2]
    assert trainer.best["epoch"] == 1 and trainer.best["model"]["encoder.weight"].device.type == "cpu"
    # the final single-column pass is the one of a run that stopped at epoch 2
    two = RNNTrainer(PTB, CORPUS, tiny_eval_config(epochs=2), cpu_runtime())  # epochs' seeds: (seed, epoch)
    plant_valid_losses(two, [4.0, 3.0])
    assert two.run().test_ppl == result.test_ppl


def test_best_epoch_while_averaging_keeps_the_averaged_weights():
    trainer = RNNTrainer(PTB, CORPUS, tiny_eval_config(epochs=5, nonmono=1), cpu_runtime())
    plant_valid_losses(trainer, [5.0, 4.0, 6.0, 3.5, 4.5])  # ASGD from epoch 4 on; epoch 4 is best
    result = trainer.run()
    assert [h.metrics["averaged"] for h in result.history] == [0, 0, 0, 1, 1] and result.test_epoch == 4
    assert trainer._mean_loss(trainer.test_data) == result.history[3].metrics["test_loss"]


def test_uniform_model_has_perplexity_equal_to_the_vocabulary():
    trainer = RNNTrainer(PTB, CORPUS, tiny_eval_config(), cpu_runtime())
    with torch.no_grad():
        trainer.model.encoder.weight.zero_()
    metrics = trainer.evaluate()
    assert metrics["valid_ppl"] == pytest.approx(40.0, rel=1e-5)
    assert metrics["test_ppl"] == pytest.approx(40.0, rel=1e-5)


def test_resumed_training_equals_uninterrupted_training_across_the_asgd_switch(tmp_path):
    losses = [5.0, 4.0, 6.0, 3.0]  # nonmono=1: switch after epoch 2
    config = tiny_eval_config(epochs=4, nonmono=1)
    full = RNNTrainer(PTB, CORPUS, config, cpu_runtime(), tmp_path / "full.pt")
    plant_valid_losses(full, losses)
    full_result = full.run()
    killed = RNNTrainer(PTB, CORPUS, config, cpu_runtime(), tmp_path / "killed.pt", [StopAfter(2)])
    plant_valid_losses(killed, losses)
    with pytest.raises(StopAfter.Killed):
        killed.run()
    assert load_checkpoint(tmp_path / "killed.pt")["state"]["averaging"]
    resumed = RNNTrainer(PTB, CORPUS, config, cpu_runtime(), tmp_path / "killed.pt")
    plant_valid_losses(resumed, losses)
    result = resumed.run()
    assert isinstance(resumed.optimizer, torch.optim.ASGD)
    for (name, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name
    assert [h.metrics["test_loss"] for h in full_result.history] == [h.metrics["test_loss"] for h in result.history]
    with pytest.raises(CheckpointMismatch, match="other settings"):
        RNNTrainer(PTB, CORPUS, dataclasses.replace(config, lr=10.0), cpu_runtime(), tmp_path / "killed.pt").run()


def test_resumed_training_tests_the_best_epoch_of_before_the_kill(tmp_path):
    """Best epoch 2, killed after epoch 3, epoch 4 worse than epoch 2: the resumed run must still test epoch 2's
    weights, kept in the checkpoint (a fresh start of the bookkeeping would take epoch 4's)."""
    losses, config = [4.0, 3.0, 5.0, 6.0], tiny_eval_config(epochs=4)
    full = RNNTrainer(PTB, CORPUS, config, cpu_runtime())
    plant_valid_losses(full, losses)
    full_result = full.run()
    killed = RNNTrainer(PTB, CORPUS, config, cpu_runtime(), tmp_path / "killed.pt", [StopAfter(2)])
    plant_valid_losses(killed, losses)
    with pytest.raises(StopAfter.Killed):
        killed.run()
    assert load_checkpoint(tmp_path / "killed.pt")["state"]["best"]["epoch"] == 1
    resumed = RNNTrainer(PTB, CORPUS, config, cpu_runtime(), tmp_path / "killed.pt")
    plant_valid_losses(resumed, losses)
    result = resumed.run()
    assert result.test_epoch == full_result.test_epoch == 2 and result.test_ppl == full_result.test_ppl
    for (name, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name


def test_splits_too_short_for_one_window_per_column_name_the_setting():
    with pytest.raises(ConfigError, match=r"^evaluate\.batch_size: 60 columns of the training split .* at most 58$"):
        RNNTrainer(PTB, CORPUS, tiny_eval_config(batch_size=60), cpu_runtime())
    with pytest.raises(ConfigError, match=r"^evaluate\.eval_batch_size: .* validation split .* at most 21$"):
        RNNTrainer(PTB, CORPUS, tiny_eval_config(eval_batch_size=22), cpu_runtime())
    with pytest.raises(ConfigError, match=r"^evaluate\.test_batch_size: .* test split .* at most 21$"):
        RNNTrainer(PTB, CORPUS, tiny_eval_config(test_batch_size=22), cpu_runtime())
    with pytest.raises(ConfigError, match=r"^evaluate\.bptt: the validation split has 240 tokens"):
        RNNTrainer(PTB, CORPUS, tiny_eval_config(bptt=240, batch_size=1), cpu_runtime())


@pytest.mark.slow
def test_search_derive_train_end_to_end():
    corpus = make_synthetic_corpus(40, 2400, 480, 480, seed=1)
    search_config = RNNSearchConfig(epochs=2, batch_size=8, policy_batch_size=8, bptt=10, emb=16, hidden=16,
                                    dropout=0.1, dropouth=0.1, dropoutx=0.1, dropouti=0.1)
    search = rnn_search(corpus, search_config, cpu_runtime(), None)
    search.run()
    batch = next(iter(search.child.policy_batches(0)))
    derived = derive(search.strategy, lambda a: search.child.reward(a, batch, carry=False), 20,
                     torch.Generator().manual_seed(0))
    trainer = RNNTrainer(derived.chosen.genotype, corpus,
                         tiny_eval_config(emb=16, hidden=16, dropoute=0.0), cpu_runtime())
    result = trainer.run()
    valid = [h.metrics["valid_ppl"] for h in result.history]
    assert valid[1] < valid[0] < len(corpus.vocab)
    assert result.valid_ppl == valid[-1] and result.best_valid_ppl == min(valid)
    assert result.params == sum(p.numel() for p in result.model.parameters())


def test_final_test_pass_uses_one_column_and_equals_one_long_sequence():
    """test_batch_size 1 (DARTS): the whole test stream as a single column, the hidden state carried across
    bptt windows, which must equal one forward over the whole stream."""
    trainer = RNNTrainer(PTB, CORPUS, tiny_eval_config(epochs=1, test_batch_size=1), cpu_runtime())
    result = trainer.run()
    assert trainer.final_test_data.shape == (CORPUS.test.numel(), 1)
    model = result.model.eval()
    stream = CORPUS.test.view(-1, 1)
    with torch.no_grad():
        logits, _ = model(stream[:-1], model.init_hidden(1))
        loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]), stream[1:].reshape(-1))
    assert result.test_ppl == pytest.approx(math.exp(loss.item()), rel=1e-4)
    assert result.test_ppl != pytest.approx(result.history[-1].metrics["test_ppl"], rel=1e-6)  # batch 8 differs


def test_activation_regularisers_change_the_step_and_off_leave_plain_cross_entropy():
    def one_step(**overrides):
        trainer = RNNTrainer(PTB, CORPUS, tiny_eval_config(**overrides), cpu_runtime())
        trainer.model.train()
        x, y = next(iter(bptt_batches(trainer.train_data, 10)))
        torch.manual_seed(0)
        trainer.train_step(x, y, trainer.model.init_hidden(8))
        return torch.cat([p.detach().flatten() for p in trainer.model.parameters()]), trainer

    plain, trainer = one_step(ar_alpha=0.0, tar_beta=0.0)
    with_tar, _ = one_step(ar_alpha=0.0, tar_beta=1.0)
    with_ar, _ = one_step(ar_alpha=1.0, tar_beta=0.0)
    assert not torch.equal(plain, with_tar) and not torch.equal(plain, with_ar)
    # off: the step is SGD on the cross-entropy alone (recomputed by hand from the same start and masks)
    fresh = RNNTrainer(PTB, CORPUS, tiny_eval_config(ar_alpha=0.0, tar_beta=0.0), cpu_runtime())
    fresh.model.train()
    x, y = next(iter(bptt_batches(fresh.train_data, 10)))
    torch.manual_seed(0)
    logits, _ = fresh.model(x, fresh.model.init_hidden(8))
    torch.nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]), y.reshape(-1)).backward()
    torch.nn.utils.clip_grad_norm_(fresh.model.parameters(), fresh.config.grad_clip)
    lr = fresh.config.lr * x.shape[0] / fresh.config.bptt
    with torch.no_grad():
        expected = torch.cat([(p - lr * (p.grad + fresh.config.weight_decay * p)).flatten()
                              for p in fresh.model.parameters()])
    assert torch.allclose(plain, expected, atol=1e-6)
