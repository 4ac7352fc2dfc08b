"""Several processes (ednas_core.distributed): CPU, gloo, 2 ranks spawned with torch.multiprocessing, tiny networks.
The evaluation trainer on 2 ranks equals one process emulating the 2 ranks on the concatenated batch; only rank 0
writes; a killed 2-rank run resumes to the uninterrupted result; runtime.gpus is validated."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn
from ruamel.yaml import YAML

from helpers import StopAfter, cpu_runtime, make_pattern_dataset, make_runtime, tiny_eval_config
from ednas_core import distributed
from ednas_core.config import ConfigError, load_params
from ednas_core.genotypes import PAPER_GENOTYPES
from ednas_core.train import GenotypeTrainer

WORLD = 2
PARAMS_YAML = Path(__file__).parents[1] / "params.yaml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(fn, *args) -> None:
    """Runs fn(rank, *args) in WORLD processes joined in a gloo group on this machine (torchrun's variables)."""
    mp.spawn(_worker, args=(fn, free_port(), args), nprocs=WORLD, join=True)


def _worker(rank: int, fn, port: int, args: tuple) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(WORLD), LOCAL_WORLD_SIZE=str(WORLD))
    torch.set_num_threads(1)
    try:
        fn(rank, *args)
    finally:
        distributed.shutdown()


def floats(model: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and floating-point buffers (num_batches_tracked counts forwards, not what is learnt)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}


# --- evaluation on 2 ranks = one process on the concatenated batch ----------------------------------------------

@contextlib.contextmanager
def frozen_running_stats(model: nn.Module):
    """BatchNorm with momentum 0: normalises with the batch, leaves the running statistics as they are."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, v in zip(bns, saved):
            m.momentum = v


class TwoRanksInOneProcess(GenotypeTrainer):
    """One process, batch 2B, doing what 2 DDP ranks of batch B do: rank r's rows are r::2 of the global batch
    (the sharded order), BatchNorm normalises each rank's half on its own, DDP keeps rank 0's running statistics
    (broadcast_buffers) and averages the two gradients."""

    def train_step(self, images, labels):
        c = self.config
        self.optimizer.zero_grad(set_to_none=True)
        for r in range(WORLD):
            x, y = images[r::WORLD], labels[r::WORLD]
            with frozen_running_stats(self.model) if r else contextlib.nullcontext():
                logits, aux = self.forward(x)
            loss = self.loss_fn(logits, y)
            if aux is not None:
                loss = loss + c.auxiliary_weight * self.loss_fn(aux, y)
            (loss / WORLD).backward()
            self.sums.add(loss, y, logits.detach().argmax(1))
        nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)
        self.optimizer.step()


EQUIV = dict(epochs=2, batch_size=16, drop_path=0.0, lr=0.1)  # drop-path masks are drawn per rank: off here


def _equivalence_rank(rank: int, out: Path) -> None:
    trainer = GenotypeTrainer(PAPER_GENOTYPES["paper-cifar10"], make_pattern_dataset(), tiny_eval_config(**EQUIV),
                              make_runtime("cpu"))
    result = trainer.run()
    torch.save({"weights": floats(trainer.model), "history": [h.metrics for h in result.history],
                "steps": len(trainer.train_loader)}, out / f"rank{rank}.pt")


def test_two_rank_evaluation_equals_one_process_on_the_concatenated_batch(tmp_path):
    spawn(_equivalence_rank, tmp_path)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    config = tiny_eval_config(**{**EQUIV, "batch_size": EQUIV["batch_size"] * WORLD})
    reference = TwoRanksInOneProcess(PAPER_GENOTYPES["paper-cifar10"], make_pattern_dataset(), config, cpu_runtime())
    ref = reference.run()
    assert ranks[0]["steps"] == len(reference.train_loader) == 256 // 32  # same global batches
    for r in ranks:  # both ranks hold the same weights, and they are the emulation's
        for name, value in floats(reference.model).items():
            torch.testing.assert_close(r["weights"][name], value, rtol=1e-4, atol=1e-5, msg=name)
    for a, b in zip(ranks[0]["history"], [h.metrics for h in ref.history]):
        for key in ("train_loss", "train_acc", "test_loss", "test_acc"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), key
    for a, b in zip(ranks[0]["history"], ranks[1]["history"]):  # the ranks report the same (reduced) metrics
        assert {k: v for k, v in a.items() if "_s" not in k} == {k: v for k, v in b.items() if "_s" not in k}


# --- only rank 0 writes; killed after epoch 1 and resumed = uninterrupted ---------------------------------------

def _resume_rank(rank: int, ckpt: Path, out: Path) -> None:
    import ednas_core.epochs as epochs

    writes: list[str] = []
    save = epochs.save_checkpoint
    epochs.save_checkpoint = lambda state, path: (writes.append(Path(path).name), save(state, path))[1]

    def trainer(name, callbacks=()):
        return GenotypeTrainer(PAPER_GENOTYPES["paper-cifar10"], make_pattern_dataset(), tiny_eval_config(epochs=3),
                               make_runtime("cpu"), ckpt / name, callbacks)

    full = trainer("full.pt").run()
    killed = None
    try:
        trainer("k.pt", [StopAfter(0)]).run()
    except StopAfter.Killed:
        killed = sorted(p.name for p in ckpt.iterdir())  # what is on disk when the ranks stop
    resumed_trainer = trainer("k.pt")
    resumed = resumed_trainer.run()
    torch.save({"full": floats(full.model), "resumed": floats(resumed.model), "full_acc": full.test_acc,
                "resumed_acc": resumed.test_acc, "writes": writes, "on_disk_when_killed": killed,
                "resumed_history": [h.epoch for h in resumed.history]}, out / f"rank{rank}.pt")


@pytest.fixture(scope="module")
def resume_runs(tmp_path_factory):
    ckpt, out = tmp_path_factory.mktemp("ckpt"), tmp_path_factory.mktemp("out")
    spawn(_resume_rank, ckpt, out)
    return ckpt, [torch.load(out / f"rank{r}.pt") for r in range(WORLD)]


def test_only_rank_0_writes_checkpoints(resume_runs):
    ckpt, ranks = resume_runs
    assert ranks[1]["writes"] == []
    assert ranks[0]["writes"] == ["full.pt"] * 3 + ["k.pt"] + ["k.pt"] * 2  # every epoch, by rank 0
    assert ranks[0]["on_disk_when_killed"] == ranks[1]["on_disk_when_killed"] == ["full.pt", "k.pt"]
    assert sorted(p.name for p in ckpt.iterdir()) == ["full.pt", "k.pt"]  # no temp file left


def test_two_rank_evaluation_killed_after_epoch_1_resumes_to_the_uninterrupted_result(resume_runs):
    _, ranks = resume_runs
    for r in ranks:
        assert r["resumed_history"] == [0, 1, 2]
        for name, a in r["full"].items():
            assert torch.equal(a, r["resumed"][name]), name
        assert r["full_acc"] == r["resumed_acc"]
    for name, a in ranks[0]["full"].items():  # and the ranks agree
        assert torch.equal(a, ranks[1]["full"][name]), name


# --- NAO's EPD on each rank's device: rank 0's pool for all ------------------------------------------------------

def _nao_pool_rank(rank: int, out: Path) -> None:
    from ednas_core.spaces import CNN_SPACE
    from ednas_core.strategies.nao import NAOConfig, NAOStrategy
    from ednas_core.synthetic import planted_architecture, planted_reward

    settings = NAOConfig(update_every=1, seed_architectures=12, new_architectures=6, random_architectures=2, top_k=4,
                         max_step_size=10, epochs=5, batch_size=6, emb_size=8, hidden_size=16, mlp_layers=1,
                         mlp_hidden_size=16, lr=0.005, device="search")
    nao = NAOStrategy(CNN_SPACE, settings, seed=0)
    nao.place(make_runtime("cpu").device)  # joins the gloo group, as a search's runtime does
    if rank:  # stands for a GPU whose kernels round differently: this rank's EPD decides otherwise
        other = torch.Generator().manual_seed(rank)
        with torch.no_grad():
            for p in nao.epd.parameters():
                p.copy_(torch.rand(p.shape, generator=other) - 0.5)
    g = torch.Generator().manual_seed(0)
    nao.train_architecture(g)
    reward = planted_reward(CNN_SPACE, planted_architecture(CNN_SPACE))
    archs = nao.propose(g, 12)
    nao.observe(archs, [reward(a) for a in archs])
    assert nao.rounds == 1
    (out / f"pool{rank}.txt").write_text(repr(nao.pool))


def test_ranks_whose_epds_differ_go_on_with_rank_0s_pool(tmp_path):
    """search.nao.device search: each rank trains its own EPD (on its GPU, where kernels need not agree bit for
    bit); after a round every rank holds rank 0's pool, so the ranks go on in lockstep."""
    spawn(_nao_pool_rank, tmp_path)
    pools = [(tmp_path / f"pool{r}.txt").read_text() for r in range(WORLD)]
    assert pools[0] == pools[1]
    assert distributed.broadcast_host_value([1, 2]) == [1, 2]  # one process: the value itself


# --- sharding and runtime.gpus -------------------------------------------------------------------------------

def test_shards_interleave_one_permutation():
    order = torch.arange(11)
    drop = [distributed.shard(order, True, distributed.World(r, 2)) for r in range(2)]
    keep = [distributed.shard(order, False, distributed.World(r, 2)) for r in range(2)]
    assert [d.tolist() for d in drop] == [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]]  # the remainder (10) dropped
    assert [k.tolist() for k in keep] == [[0, 2, 4, 6, 8, 10], [1, 3, 5, 7, 9]]  # every sample once
    assert [distributed.shard_size(11, True, distributed.World(r, 2)) for r in range(2)] == [5, 5]
    assert [distributed.shard_size(11, False, distributed.World(r, 2)) for r in range(2)] == [6, 5]


def _params(**runtime) -> dict:
    data = YAML(typ="safe").load(PARAMS_YAML.read_text())
    data["runtime"].update(runtime)
    return data


def test_runtime_gpus_is_validated():
    assert load_params(_params()).runtime.gpus == 1
    assert load_params(_params(gpus=4)).runtime.gpus == 4
    for bad in (0, -1, 2.5, "two"):
        with pytest.raises(ConfigError, match=r"^runtime\.gpus"):
            load_params(_params(gpus=bad))
    for task in ("ptb", "markov"):  # the text tasks run in several processes too (tests/test_distributed_text.py)
        text = _params(gpus=2)
        text["task"] = task
        assert load_params(text).runtime.gpus == 2


@pytest.mark.skipif(torch.cuda.device_count() >= 64, reason="a machine with 64 GPUs")
def test_more_gpus_than_visible_is_one_config_error(monkeypatch):
    for var in distributed.TORCHRUN_VARS:
        monkeypatch.delenv(var, raising=False)
    for device in ("auto", "cuda"):
        with pytest.raises(ConfigError) as err:
            distributed.maybe_relaunch("stages.evaluate", 64, device)
        assert str(err.value).startswith("runtime.gpus: 64 asked for but") and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="runtime.gpus: 2 processes need runtime.device auto or cuda"):
        distributed.check_gpus(2, "cuda:1")
    distributed.check_gpus(2, "cpu")  # gloo processes on the CPU
    distributed.check_gpus(1, "cuda:7")  # one process: runtime.device decides alone


def test_relaunch_uses_torchrun_once(monkeypatch):
    args = distributed.relaunch_args("stages.search", 8)
    assert args[1:] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=8", "-m", "stages.search"]
    for var, value in dict(RANK="0", LOCAL_RANK="0", WORLD_SIZE="16", MASTER_ADDR="h", MASTER_PORT="1").items():
        monkeypatch.setenv(var, value)
    assert distributed.maybe_relaunch("stages.search", 8, "auto") is None  # already a rank: no second launch
    monkeypatch.delenv("RANK")
    assert distributed.maybe_relaunch("stages.search", 1, "auto") is None  # one process: no launch
