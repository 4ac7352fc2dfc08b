"""The search on 2 ranks (CPU, gloo, torch.multiprocessing): the ranks sample the same architectures and end with
the same weights and policy, which equal one process emulating the 2 ranks on the concatenated batches; a rank
that samples otherwise stops both with one RankMismatch line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers import cpu_runtime, make_pattern_dataset, make_runtime, tiny_search_config
from test_distributed import WORLD, floats, spawn
from ednas_core.child_cnn import ImageChild, cnn_search
from ednas_core.config import DataConfig
from ednas_core.distributed import RankMismatch
from ednas_core.search import EDNASSearch
from ednas_core.seeds import seed_for
from ednas_core.spaces import CNN_SPACE
from ednas_core.strategies import make_strategy


def dataset():
    """260 training images: 208 for the weights and 52 for the policy, both even, so no rank drops a remainder."""
    return make_pattern_dataset(n_train=260)


SEARCH = dict(epochs=2, batch_size=16, policy_batch_size=16, policy_lr=0.05)


def _summary(search, result) -> dict:
    return {"net": floats(search.child.net), "policy": [p.detach().clone() for p in search.strategy.vectors.parameters()],
            "metrics": [r.metrics for r in result.history], "counts": [r.counts for r in result.history]}


def _search_rank(rank: int, out: Path) -> None:
    search = cnn_search(dataset(), tiny_search_config(**SEARCH), DataConfig(), make_runtime("cpu"), None)
    torch.save({**_summary(search, search.run()), "steps": search.child.steps_per_epoch}, out / f"rank{rank}.pt")


class TwoRanksChild(ImageChild):
    """One process, batches twice as large, doing what 2 ranks do: rank r's rows are r::2 of the batch, BatchNorm
    normalises each half on its own and the running statistics are the mean of the halves' updates, the gradient is
    the mean of the halves' gradients. The reward on the whole batch is the mean of the halves' rewards already."""

    def train_step(self, arch, batch):
        images, labels = batch
        self._set_mode("train")
        self.optimizer.zero_grad(set_to_none=True)
        buffers = [b for b in self.net.buffers() if b.is_floating_point()]
        start, updated = [b.clone() for b in buffers], []
        for r in range(WORLD):
            for b, s in zip(buffers, start):
                b.copy_(s)
            logits = self.net(images[r::WORLD], arch)
            loss = self.loss_fn(logits, labels[r::WORLD])
            (loss / WORLD).backward()
            self.sums.add(loss, labels[r::WORLD], logits.detach().argmax(1))
            updated.append([b.clone() for b in buffers])
        for i, b in enumerate(buffers):
            b.copy_(sum(u[i] for u in updated) / WORLD)
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.config.grad_clip)
        self.optimizer.step()


def test_two_rank_search_samples_alike_and_equals_one_process_on_the_concatenated_batch(tmp_path):
    spawn(_search_rank, tmp_path)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    for key in ("net",):  # the ranks agree exactly
        for name, value in ranks[0][key].items():
            assert torch.equal(value, ranks[1][key][name]), name
    for a, b in zip(ranks[0]["policy"], ranks[1]["policy"]):
        assert torch.equal(a, b)
    for a, b in zip(ranks[0]["metrics"], ranks[1]["metrics"]):
        assert {k: v for k, v in a.items() if "_s" not in k} == {k: v for k, v in b.items() if "_s" not in k}
    for ca, cb in zip(ranks[0]["counts"], ranks[1]["counts"]):  # the same architectures, step by step
        for cell in ca:
            assert (ca[cell] == cb[cell]).all()

    runtime = cpu_runtime()
    config = tiny_search_config(**{**SEARCH, "batch_size": 32, "policy_batch_size": 32})
    child = TwoRanksChild.build(dataset(), config, DataConfig(), runtime)
    strategy = make_strategy(CNN_SPACE, config, seed_for(runtime.seed, "policy-init"))
    search = EDNASSearch(CNN_SPACE, child, strategy, config, runtime, None)
    ref = _summary(search, search.run())
    assert ranks[0]["steps"] == child.steps_per_epoch  # as many child and policy batches
    for name, value in ref["net"].items():
        torch.testing.assert_close(ranks[0]["net"][name], value, rtol=1e-4, atol=1e-5, msg=name)
    for a, b in zip(ranks[0]["policy"], ref["policy"]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    for a, b in zip(ranks[0]["metrics"], ref["metrics"]):
        for key in ("child_loss", "child_acc", "reward", "baseline", "entropy"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), key
    for ca, cb in zip(ranks[0]["counts"], ref["counts"]):
        for cell in ca:
            assert (ca[cell] == cb[cell]).all()


def _diverged_rank(rank: int, out: Path) -> None:
    search = cnn_search(dataset(), tiny_search_config(**SEARCH), DataConfig(), make_runtime("cpu"), None)
    if rank == 1:  # rank 1 draws its architectures from another generator
        sample = search.strategy.train_architecture
        other = torch.Generator().manual_seed(12345)
        search.strategy.train_architecture = lambda generator: sample(other)
    try:
        search.run()
        message = None
    except RankMismatch as err:
        message = str(err)
    (out / f"rank{rank}.txt").write_text(repr(message))


def test_a_rank_sampling_other_architectures_is_detected(tmp_path):
    spawn(_diverged_rank, tmp_path)
    for r in range(WORLD):
        message = eval((tmp_path / f"rank{r}.txt").read_text())
        assert message is not None, f"rank {r} did not detect the divergence"
        assert message.startswith("search epoch 1: the first sampled architecture differs between ranks")
        assert "\n" not in message


def _killed_search_rank(rank: int, ckpt: Path, out: Path) -> None:
    from helpers import StopAfter

    def search(name, callbacks=()):
        return cnn_search(dataset(), tiny_search_config(**{**SEARCH, "epochs": 3}), DataConfig(), make_runtime("cpu"),
                          ckpt / name, callbacks)

    full = search("full.pt")
    full_result = full.run()
    try:
        search("k.pt", [StopAfter(0)]).run()
    except StopAfter.Killed:
        pass
    resumed = search("k.pt")
    resumed_result = resumed.run()
    torch.save({"full": _summary(full, full_result), "resumed": _summary(resumed, resumed_result),
                "resumed_from": resumed_result.resumed_from}, out / f"rank{rank}.pt")


def test_two_rank_search_killed_after_epoch_1_resumes_to_the_uninterrupted_result(tmp_path):
    ckpt, out = tmp_path / "ckpt", tmp_path / "out"
    ckpt.mkdir(), out.mkdir()
    spawn(_killed_search_rank, ckpt, out)
    timing = ("_time_s", "_per_s")
    for r in range(WORLD):
        rank = torch.load(out / f"rank{r}.pt", weights_only=False)
        assert rank["resumed_from"] == 1
        full, resumed = rank["full"], rank["resumed"]
        for name, value in full["net"].items():
            assert torch.equal(value, resumed["net"][name]), name
        for a, b in zip(full["policy"], resumed["policy"]):
            assert torch.equal(a, b)
        for a, b in zip(full["metrics"], resumed["metrics"]):
            assert ({k: v for k, v in a.items() if not k.endswith(timing)}
                    == {k: v for k, v in b.items() if not k.endswith(timing)})
