"""The text tasks on several processes (CPU, gloo, 2 ranks spawned with torch.multiprocessing, tiny recurrent
networks on a synthetic Markov corpus). Search: the ranks sample the same cells and end with the same weights and
policy, which equal one process emulating the 2 ranks on the concatenated columns (rank r: columns r::2, its own
dropout masks, the gradients averaged, the rewards averaged). Evaluation: the ranks report the same perplexities and
switch to ASGD together, the sharded validation and test passes equal one process on the whole streams, only rank 0
writes the checkpoint, and a killed 2-rank run resumes to the uninterrupted result."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import StopAfter, cpu_runtime, make_runtime
from test_distributed import WORLD, floats, spawn
from ednas_core.child_rnn import TextChild, rnn_search
from ednas_core.config import RNNEvaluateConfig, RNNSearchConfig
from ednas_core.data.ptb import check_windows, make_synthetic_corpus, shard_columns
from ednas_core.distributed import World
from ednas_core.genotypes import PAPER_GENOTYPES
from ednas_core.knobs import ConfigError
from ednas_core.schedules import set_lr
from ednas_core.search import EDNASSearch
from ednas_core.seeds import seed_for
from ednas_core.spaces import RNN_SPACE
from ednas_core.strategies import make_strategy
from ednas_core.supernet.rnn import activation_regularisation
from ednas_core.train_rnn import RNNTrainer, perplexity

# search: 8 columns of 100 tokens (about 10 windows of bptt 10) for the weights, 8 of 40 (4 windows) for the policy
SEARCH_CORPUS = make_synthetic_corpus(40, 800, 320, 240, seed=0)
SEARCH = dict(epochs=2, batch_size=4, policy_batch_size=4, bptt=10, emb=12, hidden=12, dropout=0.1, dropouth=0.1,
              dropoutx=0.1, dropouti=0.1, dropoute=0.05, ar_alpha=0.01, policy_lr=0.05)


def search_config(**overrides) -> RNNSearchConfig:
    return dataclasses.replace(RNNSearchConfig(**SEARCH), **overrides)


# --- the columns of a stream -----------------------------------------------------------------------------------

def test_columns_interleave_and_too_few_tokens_for_the_processes_is_one_line():
    data = torch.arange(30).view(3, 10)
    drop = [shard_columns(data, True, World(r, 4)) for r in range(4)]
    keep = [shard_columns(data, False, World(r, 4)) for r in range(4)]
    assert [d[0].tolist() for d in drop] == [[0, 4], [1, 5], [2, 6], [3, 7]]  # columns 8, 9 dropped
    assert [k[0].tolist() for k in keep] == [[0, 4, 8], [1, 5, 9], [2, 6], [3, 7]]  # every column once
    assert torch.equal(shard_columns(data, True, World()), data)
    check_windows(176, 8, 10, "training", "search.batch_size", "search.bptt", processes=2)  # 16 columns of 11
    with pytest.raises(ConfigError) as err:
        check_windows(175, 8, 10, "training", "search.batch_size", "search.bptt", processes=2)
    assert str(err.value) == ("search.batch_size: 8 columns x 2 processes (16 columns) of the training split (175 "
                              "tokens) hold 10 tokens each, fewer than one bptt window (10 + 1); lower "
                              "search.batch_size to at most 7")
    with pytest.raises(ConfigError) as err:  # not even one column per process: bptt or the processes
        check_windows(30, 1, 10, "validation", "search.policy_batch_size", "search.bptt", processes=4)
    assert str(err.value).startswith("search.bptt: 4 processes (runtime.gpus) need a column each") and \
        str(err.value).endswith("lower search.bptt to at most 6 or runtime.gpus to at most 2")


# --- search: 2 ranks = one process emulating them on the concatenated columns ----------------------------------

def _search_summary(search, result) -> dict:
    return {"net": floats(search.child.net),
            "policy": [p.detach().clone() for p in search.strategy.vectors.parameters()],
            "metrics": [r.metrics for r in result.history], "counts": [r.counts for r in result.history],
            "final": result.final_architecture}


def _search_rank(rank: int, out: Path) -> None:
    search = rnn_search(SEARCH_CORPUS, search_config(), make_runtime("cpu"), None)
    summary = _search_summary(search, search.run())
    torch.save({**summary, "steps": search.child.steps_per_epoch, "columns": search.child.train_data.shape[1],
                "tokens": search.child.images_per_epoch}, out / f"rank{rank}.pt")


class TwoRanksTextChild(TextChild):
    """One process, 2 x batch_size columns, doing what 2 ranks do: rank r's columns are r::2, drawn with rank r's
    dropout masks (its own global generator, seeded as Runtime.seed_epoch seeds rank r's epoch), the gradient is the
    mean of the ranks' gradients, the reward the mean of the ranks' rewards (each c / perplexity of its columns)."""

    def start_epoch(self, epoch: int) -> float:
        self._rank_rng = []
        for r in range(WORLD):
            torch.manual_seed(seed_for(self.runtime.seed, "search", epoch, r))
            self._rank_rng.append(torch.get_rng_state())
        return super().start_epoch(epoch)

    def train_step(self, arch, batch):
        x, y = batch
        self._set_mode("train")
        c = self.config
        self.optimizer.zero_grad(set_to_none=True)
        hidden = self._train_hidden.clone()
        for r in range(WORLD):
            torch.set_rng_state(self._rank_rng[r])
            logits, h, raw, dropped = self.net(x[:, r::WORLD], self._train_hidden[r::WORLD], arch,
                                               return_outputs=True)
            self._rank_rng[r] = torch.get_rng_state()
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[:, r::WORLD].reshape(-1))
            ((loss + activation_regularisation(raw, dropped, c.ar_alpha, c.tar_beta)) / WORLD).backward()
            hidden[r::WORLD] = h.detach()
            self.sums.add(loss, y[:, r::WORLD], logits.detach().argmax(-1))
        nn.utils.clip_grad_norm_(self.net.parameters(), c.grad_clip)
        lr = self.optimizer.param_groups[0]["lr"]
        set_lr(self.optimizer, lr * x.shape[0] / c.bptt)
        self.optimizer.step()
        set_lr(self.optimizer, lr)
        self._train_hidden = hidden

    @torch.no_grad()
    def reward(self, arch, batch, carry=True):
        x, y = batch
        self._set_mode("eval")
        logits, self._valid_hidden = self.net(x, self._valid_hidden, arch)  # eval: no dropout, columns apart
        losses = [F.cross_entropy(logits[:, r::WORLD].reshape(-1, logits.shape[-1]), y[:, r::WORLD].reshape(-1))
                  for r in range(WORLD)]
        return sum(self.config.reward_c * math.exp(-float(loss)) for loss in losses) / WORLD


def test_two_rank_text_search_samples_alike_and_equals_one_process_on_the_concatenated_columns(tmp_path):
    spawn(_search_rank, tmp_path)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    for name, value in ranks[0]["net"].items():  # the ranks agree exactly
        assert torch.equal(value, ranks[1]["net"][name]), name
    for a, b in zip(ranks[0]["policy"], ranks[1]["policy"]):
        assert torch.equal(a, b)
    for a, b in zip(ranks[0]["metrics"], ranks[1]["metrics"]):
        assert {k: v for k, v in a.items() if "_s" not in k} == {k: v for k, v in b.items() if "_s" not in k}
    for ca, cb in zip(ranks[0]["counts"], ranks[1]["counts"]):  # the same cells, step by step
        assert (ca["recurrent"] == cb["recurrent"]).all()
    assert ranks[0]["columns"] == ranks[1]["columns"] == SEARCH["batch_size"]  # each rank its batch_size columns

    runtime = cpu_runtime()
    config = search_config(batch_size=SEARCH["batch_size"] * WORLD,
                           policy_batch_size=SEARCH["policy_batch_size"] * WORLD)
    child = TwoRanksTextChild.build(SEARCH_CORPUS, config, runtime)
    strategy = make_strategy(RNN_SPACE, config, seed_for(runtime.seed, "policy-init"))
    search = EDNASSearch(RNN_SPACE, child, strategy, config, runtime, None)
    ref = _search_summary(search, search.run())
    assert ranks[0]["steps"] == child.steps_per_epoch  # as many child and policy windows
    assert [t * WORLD for t in ranks[0]["tokens"]] == list(child.images_per_epoch)  # the columns split in two
    for name, value in ref["net"].items():
        torch.testing.assert_close(ranks[0]["net"][name], value, rtol=1e-4, atol=1e-5, msg=name)
    for a, b in zip(ranks[0]["policy"], ref["policy"]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    for a, b in zip(ranks[0]["metrics"], ref["metrics"]):
        for key in ("child_loss", "child_ppl", "child_acc", "reward", "baseline", "entropy"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), key
    for ca, cb in zip(ranks[0]["counts"], ref["counts"]):
        assert (ca["recurrent"] == cb["recurrent"]).all()
    assert ranks[0]["final"] == ref["final"]


# --- evaluation: the same perplexities on both ranks; killed and resumed = uninterrupted -------------------------

EVAL_CORPUS = make_synthetic_corpus(40, 640, 240, 240, seed=0)  # 8 columns of 80 training tokens
PTB = PAPER_GENOTYPES["paper-ptb"]
# eval_batch_size 5: the validation and test columns split 3 / 2; test_batch_size 1: rank 1 has no column
EVALUATE = dict(epochs=5, batch_size=4, eval_batch_size=5, test_batch_size=1, bptt=10, emb=12, hidden=12, nonmono=1,
                dropout=0.1, dropouth=0.1, dropoutx=0.1, dropouti=0.1, dropoute=0.05, ar_alpha=0.01)
SWITCH_EPOCH = 2  # 0-based: its validation loss is raised, so that the non-monotonic trigger switches to ASGD


def force_asgd_switch(trainer: RNNTrainer) -> None:
    """Epoch SWITCH_EPOCH's validation loss (the real, reduced one) is raised by 10: the trigger fires after it."""
    real = trainer._mean_loss

    def planted(data):
        loss = real(data)  # every rank runs the collective
        return loss + 10.0 if data is trainer.valid_data and len(trainer.history) == SWITCH_EPOCH else loss

    trainer._mean_loss = planted


def _evaluate_rank(rank: int, ckpt: Path, out: Path) -> None:
    import ednas_core.epochs as epochs

    writes: list[str] = []
    save = epochs.save_checkpoint
    epochs.save_checkpoint = lambda state, path: (writes.append(Path(path).name), save(state, path))[1]

    def trainer(name, callbacks=()):
        t = RNNTrainer(PTB, EVAL_CORPUS, RNNEvaluateConfig(**EVALUATE), make_runtime("cpu"), ckpt / name, callbacks)
        force_asgd_switch(t)
        return t

    full_trainer = trainer("full.pt")
    full = full_trainer.run()
    killed = None
    try:
        trainer("k.pt", [StopAfter(3)]).run()  # killed after epoch 4, the first averaged one
    except StopAfter.Killed:
        killed = sorted(p.name for p in ckpt.iterdir())
    resumed = trainer("k.pt").run()

    def summary(result):
        return {"weights": floats(result.model), "history": [h.metrics for h in result.history],
                "test_ppl": result.test_ppl, "valid_ppl": result.valid_ppl, "best_valid_ppl": result.best_valid_ppl,
                "test_epoch": result.test_epoch}

    torch.save({"full": summary(full), "resumed": summary(resumed), "writes": writes, "on_disk_when_killed": killed,
                "optimizer": type(full_trainer.optimizer).__name__, "columns": full_trainer.train_data.shape[1],
                "eval_columns": [full_trainer.valid_data.shape[1], full_trainer.final_test_data.shape[1]]},
               out / f"rank{rank}.pt")


@pytest.fixture(scope="module")
def evaluate_runs(tmp_path_factory):
    ckpt, out = tmp_path_factory.mktemp("ckpt"), tmp_path_factory.mktemp("out")
    spawn(_evaluate_rank, ckpt, out)
    return ckpt, [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def _without_times(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if "_s" not in k}


def test_two_rank_text_evaluation_gives_every_rank_the_same_perplexities_and_asgd_switch(evaluate_runs):
    _, ranks = evaluate_runs
    assert [r["columns"] for r in ranks] == [EVALUATE["batch_size"]] * WORLD
    assert [r["eval_columns"] for r in ranks] == [[3, 1], [2, 0]]  # every validation / test column once
    a, b = ranks[0]["full"], ranks[1]["full"]
    for name, value in a["weights"].items():
        assert torch.equal(value, b["weights"][name]), name
    assert [_without_times(m) for m in a["history"]] == [_without_times(m) for m in b["history"]]
    for key in ("test_ppl", "valid_ppl", "best_valid_ppl", "test_epoch"):
        assert a[key] == b[key], key
    assert [m["averaged"] for m in a["history"]] == [0, 0, 0, 1, 1]  # both switched after epoch 3
    assert ranks[0]["optimizer"] == ranks[1]["optimizer"] == "ASGD"
    assert math.isfinite(a["test_ppl"]) and 1.0 < a["test_ppl"] < 40.0

    # the sharded passes equal one process on the whole streams, with the weights the ranks tested
    one = RNNTrainer(PTB, EVAL_CORPUS, RNNEvaluateConfig(**EVALUATE), cpu_runtime())
    one.model.load_state_dict({k: v for k, v in a["weights"].items()})
    assert perplexity(one._mean_loss(one.final_test_data)) == pytest.approx(a["test_ppl"], rel=1e-5)
    assert perplexity(one._mean_loss(one.valid_data)) == pytest.approx(a["best_valid_ppl"], rel=1e-5)
    best = a["history"][a["test_epoch"] - 1]
    assert one._mean_loss(one.test_data) == pytest.approx(best["test_loss"], rel=1e-5)


def test_two_rank_text_evaluation_writes_on_rank_0_and_resumes_to_the_uninterrupted_result(evaluate_runs):
    ckpt, ranks = evaluate_runs
    assert ranks[1]["writes"] == []
    assert ranks[0]["writes"] == ["full.pt"] * 5 + ["k.pt"] * 4 + ["k.pt"]  # every epoch, by rank 0
    assert ranks[0]["on_disk_when_killed"] == ranks[1]["on_disk_when_killed"] == ["full.pt", "k.pt"]
    assert sorted(p.name for p in ckpt.iterdir()) == ["full.pt", "k.pt"]  # no temp file left
    for r in ranks:
        full, resumed = r["full"], r["resumed"]
        for name, value in full["weights"].items():
            assert torch.equal(value, resumed["weights"][name]), name
        assert [_without_times(m) for m in full["history"]] == [_without_times(m) for m in resumed["history"]]
        for key in ("test_ppl", "valid_ppl", "best_valid_ppl", "test_epoch"):
            assert full[key] == resumed[key], key
