"""The RNN child of the search (PTB): SGD steps of the weight-sharing language model on sampled cells, and the
policy reward c / perplexity of a sampled cell on one validation bptt window (shared weights in eval mode, one
no-grad forward). The hidden state is carried (detached) from window to window within an epoch, separately for
the training and the validation stream, and reset when a stream starts over. Token counts stand in for images.
With variable_bptt the training windows have AWD-LSTM / DARTS random lengths, drawn per epoch from a seed of
(run seed, epoch) so that a resumed search is exact, each step's learning rate scaled by length / bptt; the
validation windows keep the fixed bptt (every reward on the same window length).

Several processes (ednas_core.distributed; per-process batch, as the image tasks): each stream is batchified into
W x batch_size (training) or W x policy_batch_size (validation) columns and each rank keeps columns rank::W
(data.ptb.shard_columns), so rank r's window i is columns r::W of window i of one process with W times as many
columns. Every rank walks the same windows (the same rows; the variable lengths are drawn from (seed, epoch) alone),
so the step counts are equal; each rank carries the hidden state of its own columns. Every rank trains the same
sampled cell; the gradients that exist (the sampled edges', the embedding's, W0's) are averaged with one all-reduce
per step before clipping (child_base); the dropout masks are each rank's own (Runtime.seed_epoch). Each rank's
reward is c / perplexity of its columns of the window (the search loop averages the rewards over the ranks); the
epoch's loss and accuracy sums are reduced over the ranks (DeviceSums). The network has no buffers, so nothing else
is synchronised."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from . import distributed
from .child_base import SharedWeightsChild
from .device_sums import DeviceSums
from .config import RNNSearchConfig
from .data.ptb import Corpus, batchify, bptt_batches, bptt_lengths, check_windows, shard_columns, windows
from .strategies import make_strategy
from .runtime import Runtime, seed_for
from .schedules import set_lr
from .search import EDNASSearch, SearchCallback
from .spaces import RNN_SPACE, Architecture
from .supernet.rnn import RNNSearchNetwork, activation_regularisation

Batch = tuple[torch.Tensor, torch.Tensor]


class TextChild(SharedWeightsChild):
    sample_unit = "tokens"  # images_per_epoch counts predicted tokens

    def __init__(self, net: RNNSearchNetwork, train_data: torch.Tensor, valid_data: torch.Tensor,
                 config: RNNSearchConfig, runtime: Runtime):
        self.net = net
        self.train_data = train_data
        self.valid_data = valid_data
        self.config = config
        self.runtime = runtime
        self.optimizer = runtime.sgd(net.parameters(), lr=config.lr, momentum=config.momentum,
                                      weight_decay=config.weight_decay)
        self._train_hidden = net.init_hidden(train_data.shape[1])
        self._valid_hidden = net.init_hidden(valid_data.shape[1])
        self.sums = DeviceSums(runtime.device)
        self._lengths: tuple[int, list[int]] = (0, self.window_lengths(0))  # (epoch, its training windows)

    @classmethod
    def build(cls, corpus: Corpus, config: RNNSearchConfig, runtime: Runtime) -> "TextChild":
        """Training stream for the shared weights, validation stream for the policy, both on the device; several
        processes: each rank its batch_size (policy_batch_size) columns of the W times as many."""
        device = runtime.device
        processes = distributed.world().size
        check_windows(corpus.train.numel(), config.batch_size, config.bptt, "training", "search.batch_size",
                      "search.bptt", processes)
        check_windows(corpus.valid.numel(), config.policy_batch_size, config.bptt, "validation",
                      "search.policy_batch_size", "search.bptt", processes)
        train_data = shard_columns(batchify(corpus.train, processes * config.batch_size, device))
        valid_data = shard_columns(batchify(corpus.valid, processes * config.policy_batch_size, device))
        torch.manual_seed(seed_for(runtime.seed, "search-init"))
        net = RNNSearchNetwork(len(corpus.vocab), config.emb, config.hidden, dropout=config.dropout,
                               dropouth=config.dropouth, dropoutx=config.dropoutx, dropouti=config.dropouti,
                               dropoute=config.dropoute).to(device)
        return cls(net, train_data, valid_data, config, runtime)

    # --- phases -----------------------------------------------------------------------------------------

    def window_lengths(self, epoch: int) -> list[int]:
        """The training windows of `epoch`: random lengths seeded by (run seed, epoch) with variable_bptt (AWD-LSTM
        / DARTS: bptt, or bptt / 2 with probability 0.05, plus N(0, 5)), else bptt."""
        c = self.config
        seed = seed_for(self.runtime.seed, "bptt-search", epoch) if c.variable_bptt else None
        return bptt_lengths(self.train_data.shape[0], c.bptt, seed)

    def _epoch_lengths(self, epoch: int) -> list[int]:
        if self._lengths[0] != epoch:
            self._lengths = (epoch, self.window_lengths(epoch))
        return self._lengths[1]

    def start_epoch(self, epoch: int) -> float:
        set_lr(self.optimizer, self.config.lr)
        self.sums.reset()
        self._epoch_lengths(epoch)  # steps_per_epoch counts this epoch's windows from here on
        return self.config.lr

    def train_batches(self, epoch: int) -> Iterator[Batch]:
        self._train_hidden = self.net.init_hidden(self.train_data.shape[1])
        yield from windows(self.train_data, self._epoch_lengths(epoch))

    def policy_batches(self, epoch: int) -> Iterator[Batch]:
        self._valid_hidden = self.net.init_hidden(self.valid_data.shape[1])
        yield from bptt_batches(self.valid_data, self.config.bptt)


    def train_step(self, arch: Architecture, batch: Batch) -> None:
        x, y = batch
        self._set_mode("train")
        c = self.config
        logits, hidden, raw, dropped = self.net(x, self._train_hidden, arch, return_outputs=True)
        loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), y.reshape(-1))
        self.optimizer.zero_grad(set_to_none=True)
        (loss + activation_regularisation(raw, dropped, c.ar_alpha, c.tar_beta)).backward()
        self._sync_gradients()  # several processes: the sampled cell's gradients averaged over the ranks
        nn.utils.clip_grad_norm_(self.net.parameters(), self.config.grad_clip)
        lr = self.optimizer.param_groups[0]["lr"]
        set_lr(self.optimizer, lr * x.shape[0] / c.bptt)  # AWD-LSTM / DARTS: lr scaled by the window length
        self.optimizer.step()
        set_lr(self.optimizer, lr)
        self._train_hidden = hidden.detach()
        self.sums.add(loss, y, logits.detach().argmax(-1))

    @torch.no_grad()
    def reward(self, arch: Architecture, batch: Batch, carry: bool = True) -> float:
        """reward_c / perplexity of `arch` on one window (reads one scalar). carry: start from, and keep, the
        validation stream's hidden state; carry=False starts from zeros and keeps nothing (derive's fixed score)."""
        x, y = batch
        self._set_mode("eval")
        self._sync_buffers()  # as the CNN child; the network has no floating-point buffers: no collective
        hidden = self._valid_hidden if carry else self.net.init_hidden(x.shape[1])
        logits, hidden = self.net(x, hidden, arch)
        if carry:
            self._valid_hidden = hidden
        loss = float(F.cross_entropy(logits.view(-1, logits.shape[-1]), y.reshape(-1)))
        return self.config.reward_c * math.exp(-loss)  # = c / ppl; NaN when the weights diverged

    def epoch_metrics(self) -> dict[str, float]:
        """Child loss, perplexity and next-token accuracy of the epoch (the one device read per epoch)."""
        loss, acc = self.sums.means()
        return {"child_loss": loss, "child_ppl": math.exp(loss) if loss < 700 else math.inf, "child_acc": acc}

    @property
    def images_per_epoch(self) -> tuple[int, int]:
        """Predicted tokens per pass over this rank's columns of the training and the validation stream."""
        return ((self.train_data.shape[0] - 1) * self.train_data.shape[1],
                (self.valid_data.shape[0] - 1) * self.valid_data.shape[1])

    @property
    def steps_per_epoch(self) -> tuple[int, int]:
        """Training windows of the epoch last started (epoch 0 before any), validation windows."""
        return len(self._lengths[1]), len(bptt_lengths(self.valid_data.shape[0], self.config.bptt))


def rnn_search(corpus: Corpus, config: RNNSearchConfig, runtime: Runtime, checkpoint_path: Path | None,
               callbacks: Iterable[SearchCallback] = (), settings: dict | None = None) -> EDNASSearch:
    """The whole PTB search, ready to run(): child language model on the device, strategy on the host.
    `settings` joins the checkpoint fingerprint (e.g. the code version)."""
    child = TextChild.build(corpus, config, runtime)
    strategy = make_strategy(RNN_SPACE, config, seed_for(runtime.seed, "policy-init"))  # type: ignore[arg-type]
    settings = {"corpus": [len(corpus.vocab), corpus.train.numel(), corpus.valid.numel()], **(settings or {})}
    return EDNASSearch(RNN_SPACE, child, strategy, config, runtime, checkpoint_path, callbacks,  # type: ignore[arg-type]
                       settings)
