"""Training a recurrent genotype on PTB from scratch (the paper's evaluation, AWD-LSTM / DARTS recipe): SGD with
gradient clipping, AWD-LSTM's variable bptt and DARTS's activation regularisers, switching to averaged SGD (ASGD,
t0=0, lambd=0) by the non-monotonic trigger; once averaging, validation and test use the averaged weights. Valid
and test perplexity every epoch (eval_batch_size columns); the weights of the best validation epoch are kept (on
the host, and in the checkpoint) and, as in DARTS and AWD-LSTM, the final test pass on test_batch_size columns
(DARTS: 1) runs with them, not with the last epoch's. Checkpointed atomically every epoch and resumed exactly, as
the CNN training is.

Several processes (torchrun, ednas_core.distributed; per-process batch, as the CNN training): the training stream
is batchified into W x batch_size columns and each rank trains on columns rank::W (data.ptb.shard_columns), all
ranks on the same windows (the variable lengths are drawn from (seed, epoch) alone), each carrying the hidden state
of its own columns, with its own dropout masks. The model is in DistributedDataParallel, as in train.py: the
carried hidden state is a detached input of each window's forward and every parameter is used in every window, so
DDP's once-per-backward gradient averaging fits as it is (and DDP's broadcast of rank 0's initial weights). The
gradients being the same on every rank, so are the clipped steps, the SGD and the ASGD weights and ASGD's averages.
Validation and test perplexity cover the whole streams: their eval_batch_size (test_batch_size) columns are shared
out among the ranks (every column kept, a rank may have none), the summed losses and token counts are all-reduced,
and every rank gets the same number, from which it takes the ASGD trigger and best-epoch decisions (identical on
every rank, so the ranks never diverge). The loop's rank 0 alone writes the checkpoint (epochs.CheckpointedLoop)."""

from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from torch.nn.parallel import DistributedDataParallel

from . import distributed
from .config import RNNEvaluateConfig
from .data.ptb import Corpus, batchify, bptt_batches, bptt_lengths, check_windows, shard_columns
from .device_sums import DeviceSums
from .genotypes import Genotype
from .models.rnn import RNNEvalNetwork, count_parameters
from .supernet.rnn import activation_regularisation
from .runtime import Runtime, seed_for
from .schedules import set_lr
from .epochs import CheckpointedLoop, NonFiniteError, fingerprint
from .train import TrainCallback, TrainEpoch


def switch_to_asgd(previous: Sequence[float], current: float, nonmono: int) -> bool:
    """AWD-LSTM's non-monotonic trigger: `current` (this epoch's validation loss) is worse than the best of the
    earlier SGD epochs' losses `previous`, leaving out the last `nonmono` of them."""
    return len(previous) > nonmono and current > min(previous[:-nonmono])


def perplexity(loss: float) -> float:
    return math.exp(loss) if loss < 700 else math.inf


@dataclass
class RNNTrainResult:
    valid_ppl: float         # after the last epoch (averaged weights once ASGD runs)
    test_ppl: float          # the final test pass with test_epoch's weights, test_batch_size columns
    best_valid_ppl: float    # test_epoch's validation perplexity (per-epoch test_ppl: eval_batch_size columns)
    test_epoch: int          # 1-based: the epoch of the best validation perplexity, whose weights were tested
    params: int
    history: list[TrainEpoch]
    model: RNNEvalNetwork    # holds test_epoch's evaluated (averaged, once ASGD ran) weights


class RNNTrainer(CheckpointedLoop[TrainEpoch]):
    what = "training run"
    report_type = TrainEpoch

    def __init__(self, genotype: Genotype, corpus: Corpus, config: RNNEvaluateConfig, runtime: Runtime,
                 checkpoint_path: Path | None = None, callbacks: Iterable[TrainCallback] = (),
                 settings: dict | None = None):
        super().__init__(config.epochs, checkpoint_path, callbacks,
                         fingerprint(evaluate=asdict(config), seed=runtime.seed, genotype=genotype.to_dict(),
                                     data=[len(corpus.vocab), corpus.train.numel(), corpus.valid.numel(),
                                           corpus.test.numel()], **(settings or {})))
        self.config = config
        self.runtime = runtime
        device = runtime.device
        self.world = world = distributed.world()
        # training: batch_size columns per process; validation and test: their columns shared out among the ranks
        for split, tokens, setting, processes in (("training", corpus.train, "batch_size", world.size),
                                                  ("validation", corpus.valid, "eval_batch_size", 1),
                                                  ("test", corpus.test, "eval_batch_size", 1),
                                                  ("test", corpus.test, "test_batch_size", 1)):
            check_windows(tokens.numel(), getattr(config, setting), config.bptt, split, f"evaluate.{setting}",
                          "evaluate.bptt", processes)
        torch.manual_seed(seed_for(runtime.seed, "evaluate-init"))
        self.model = RNNEvalNetwork(genotype, len(corpus.vocab), config.emb, config.hidden, dropout=config.dropout,
                                    dropouth=config.dropouth, dropoutx=config.dropoutx, dropouti=config.dropouti,
                                    dropoute=config.dropoute).to(device)
        self.params = count_parameters(self.model)
        if world.distributed:  # the same initial weights on every rank (DDP broadcasts rank 0's), gradients averaged
            self.forward: nn.Module = DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None)
            if world.is_main:
                print(f"{self.what}: {world.size} processes x batch {config.batch_size} = global batch "
                      f"{world.size * config.batch_size} columns (learning rate as set, not scaled)",
                      file=sys.stderr, flush=True)
        else:
            self.forward = self.model
        # this rank's columns: training batch_size of W x batch_size; evaluation its share, every column kept
        self.train_data = shard_columns(batchify(corpus.train, world.size * config.batch_size, device))
        self.valid_data = shard_columns(batchify(corpus.valid, config.eval_batch_size, device), False)
        self.test_data = shard_columns(batchify(corpus.test, config.eval_batch_size, device), False)
        self.final_test_data = shard_columns(batchify(corpus.test, config.test_batch_size, device), False)
        self.optimizer: torch.optim.Optimizer = runtime.sgd(self.model.parameters(), lr=config.lr,
                                                             weight_decay=config.weight_decay)
        self.sgd_valid_losses: list[float] = []  # the trigger's memory: validation losses of the SGD epochs
        self.sums = DeviceSums(device)  # the epoch's training loss, added to by train_step
        # the best validation epoch so far: {"epoch": 0-based, "valid_loss", "model": its evaluated weights on the host}
        self.best: dict | None = None

    # --- optimizer ----------------------------------------------------------------------------------------

    @property
    def averaging(self) -> bool:
        return isinstance(self.optimizer, torch.optim.ASGD)

    def _switch_to_asgd(self) -> None:
        # capturable keeps ASGD's step counters on the device: otherwise it reads one per parameter per step
        self.optimizer = torch.optim.ASGD(self.model.parameters(), lr=self.config.lr, t0=0, lambd=0.0,
                                          weight_decay=self.config.weight_decay,
                                          capturable=self.runtime.device.type == "cuda")

    @contextlib.contextmanager
    def _evaluated_weights(self) -> Iterator[None]:
        """The averaged weights in place of the current ones while averaging (restored on exit)."""
        if not self.averaging:
            yield
            return
        params = list(self.model.parameters())
        saved = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p in params:
                p.copy_(self.optimizer.state[p].get("ax", p))
        try:
            yield
        finally:
            with torch.no_grad():
                for p, s in zip(params, saved):
                    p.copy_(s)

    # --- checkpoint and loop -------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "averaging": self.averaging,
                "optimizer": self.optimizer.state_dict(), "sgd_valid_losses": list(self.sgd_valid_losses),
                "best": self.best}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        if state["averaging"]:
            self._switch_to_asgd()
        self.optimizer.load_state_dict(state["optimizer"])
        self.sgd_valid_losses = list(state["sgd_valid_losses"])
        self.best = state["best"]

    def _keep_if_best(self, epoch: int, valid_loss: float) -> None:
        """Keeps the evaluated weights on the host when `valid_loss` beats every earlier epoch's (DARTS and
        AWD-LSTM save the model then, and reload it for the final test)."""
        if not valid_loss < (math.inf if self.best is None else self.best["valid_loss"]):  # NaN is never best
            return
        with self._evaluated_weights():
            weights = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
        self.best = {"epoch": epoch, "valid_loss": valid_loss, "model": weights}

    def run(self) -> RNNTrainResult:
        self.run_epochs()
        last = self.history[-1].metrics if self.history else self.evaluate()
        if self.best is not None:  # DARTS: reload the best validation epoch's weights before the final test
            self.model.load_state_dict(self.best["model"])
            test_epoch, best = self.best["epoch"] + 1, perplexity(self.best["valid_loss"])
        else:  # no finite validation loss: test the last weights (the averaged ones while averaging)
            if self.averaging:
                with torch.no_grad():
                    for p in self.model.parameters():
                        p.copy_(self.optimizer.state[p].get("ax", p))
            test_epoch, best = len(self.history), last["valid_ppl"]
        test_ppl = perplexity(self._mean_loss(self.final_test_data))  # at test_batch_size (DARTS: 1)
        return RNNTrainResult(valid_ppl=last["valid_ppl"], test_ppl=test_ppl, best_valid_ppl=best,
                              test_epoch=test_epoch, params=self.params, history=self.history, model=self.model)

    def run_epoch(self, epoch: int) -> TrainEpoch:
        c, rt = self.config, self.runtime
        rt.seed_epoch(epoch, "train")
        bptt_seed = seed_for(rt.seed, "bptt", epoch) if c.variable_bptt else None
        total = len(bptt_lengths(self.train_data.shape[0], c.bptt, bptt_seed))
        averaged = self.averaging
        self.model.train()
        hidden = self.model.init_hidden(self.train_data.shape[1])
        self.sums.reset()
        self.progress("train", 0, total)
        t0 = time.perf_counter()
        for i, (x, y) in enumerate(bptt_batches(self.train_data, c.bptt, bptt_seed), 1):
            hidden = self.train_step(x, y, hidden)
            self.progress("train", i, total)
        rt.synchronize()
        train_time = time.perf_counter() - t0
        train_loss, _ = self.sums.means()  # several processes: every rank's sums
        tokens = self.sums.seen * self.world.size  # every rank's columns
        if not math.isfinite(train_loss):
            raise NonFiniteError(f"evaluate epoch {epoch + 1}: training loss is {train_loss}; "
                                 "lower evaluate.lr or evaluate.grad_clip")
        metrics = {"train_loss": train_loss, "train_ppl": perplexity(train_loss), "lr": c.lr,
                   "averaged": float(averaged), "epoch_time_s": train_time,
                   "train_tokens_per_s": tokens / train_time if train_time > 0 else math.nan}
        metrics.update(self.evaluate())
        self._keep_if_best(epoch, metrics["valid_loss"])  # this epoch's evaluated weights, before any switch
        if not averaged:
            if switch_to_asgd(self.sgd_valid_losses, metrics["valid_loss"], c.nonmono):
                self._switch_to_asgd()
            self.sgd_valid_losses.append(metrics["valid_loss"])
        return TrainEpoch(epoch=epoch, epochs=c.epochs, metrics=metrics)

    def train_step(self, x: torch.Tensor, y: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """One SGD/ASGD step on a bptt window; returns the detached hidden state for the next window. The loss
        accumulates on the device (nothing is read on the host)."""
        c = self.config
        set_lr(self.optimizer, c.lr * x.shape[0] / c.bptt)  # AWD-LSTM: lr scaled by the window length
        logits, hidden, raw, dropped = self.forward(x, hidden, return_outputs=True)  # DDP: averaged gradients
        loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), y.reshape(-1))
        self.optimizer.zero_grad(set_to_none=True)
        (loss + activation_regularisation(raw, dropped, c.ar_alpha, c.tar_beta)).backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)
        self.optimizer.step()
        self.sums.add(loss, y)
        return hidden.detach()

    def evaluate(self) -> dict[str, float]:
        """Validation and test loss and perplexity (with the averaged weights while averaging)."""
        with self._evaluated_weights():
            valid, test = self._mean_loss(self.valid_data), self._mean_loss(self.test_data)
        return {"valid_loss": valid, "valid_ppl": perplexity(valid), "test_loss": test, "test_ppl": perplexity(test)}

    @torch.no_grad()
    def _mean_loss(self, data: torch.Tensor) -> float:
        """Mean next-token cross-entropy over a batchified stream, hidden state carried across windows. Several
        processes: `data` is this rank's columns (maybe none); the summed losses and token counts of every rank
        are all-reduced (a collective: every rank calls it), so every rank returns the same value."""
        self.model.eval()
        device = self.runtime.device
        total = torch.zeros((), device=device)
        if data.shape[1]:  # (without DDP: no collective per window, the shards may differ in width)
            hidden = self.model.init_hidden(data.shape[1])
            for x, y in bptt_batches(data, self.config.bptt):
                logits, hidden = self.model(x, hidden)
                total += F.cross_entropy(logits.view(-1, logits.shape[-1]), y.reshape(-1), reduction="sum")
        sums = torch.stack([total.double(), torch.tensor(float((data.shape[0] - 1) * data.shape[1]),
                                                         dtype=torch.float64, device=device)])
        if self.world.distributed:
            distributed.all_reduce_sum_(sums)
        loss, tokens = sums.tolist()
        return loss / tokens
