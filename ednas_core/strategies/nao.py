"""NAO with weight sharing (NAO-WS; Luo et al. 2018, "Neural Architecture Optimization").

A pool of architectures trains the shared weights (each child step on a pool member drawn uniformly, NAO-WS's
child_sample_policy=uniform). Every `update_every` epochs the reward phase scores the whole pool (one validation
batch each), then the encoder-predictor-decoder (EPD) learns from (pool, min-max normalised rewards; on PTB their
logs, predictor_target: log_reward, which is 1 - NAO-WS/rnn's normalised validation loss):

    encoder    token embeddings, each (input, op) pair concatenated into one step (NAO's source_length =
               2 * encoder_length), an LSTM, outputs l2-normalised; the architecture embedding is their mean,
               l2-normalised again
    predictor  an MLP (ReLU, dropout) on the embedding, sigmoid output: the normalised reward
    decoder    an LSTM started from (embedding, embedding), dot-product attention over the encoder outputs
               (NAO's PyTorch Attention: tanh(W [context; output])), a linear layer to the token vocabulary

trained jointly with loss = trade_off * MSE(prediction) + (1 - trade_off) * NLL(reconstruction), Adam with L2
weight decay and gradient-norm clipping. Then the top-k of the pool move their encoder outputs along the gradient
of the predicted reward (outputs + step * grad, re-normalised, mean-pooled: NAO's Encoder.infer), step =
1, 2, ... up to max_step_size until enough new architectures decode; decoding is greedy and constrained (every
token valid for its position: an input is an earlier node, distinct and ascending within a node, an op is one of
the space's ops), so it always yields a valid architecture in canonical form. As in NAO-WS's train_search.py the
pool keeps its size: the pool sorted by reward, its bottom replaced by the new architectures and by
`random_architectures` fresh uniform ones.

The EPD lives on the CPU by default (device: cpu), a few hundred thousand numbers trained on at most a few
thousand sequences; its dropout draws from a generator seeded by (seed, round), not from the global RNG, so a
round does not disturb the child's randomness and a resumed search repeats it exactly. Cost: NAO-WS's 1000 passes
over a pool of 1000 (10,000 Adam steps) take about 3 minutes of a 2-core CPU per round on the CNN space (163 to 180
s, README); `epochs` sets it. device: search puts the EPD on the search's device (NAO-WS trains its controller on
the GPU): the search loop calls place(runtime.device); the training loop reads its losses once per round, not per
step; dropout draws from a generator on that device seeded from the round's; with several GPUs, whose kernels need
not agree bit for bit, every rank takes rank 0's new pool (one broadcast per round) so that the ranks stay in
lockstep.

Overlapped rounds (overlap_epochs k >= 1, not a NAO-WS setting; the EPD on the CPU): the search need not wait for
a round's EPD. Once the pool is scored, the EPD's training, evaluation and generation run in a background thread on
a copy of the EPD and its optimizer, while the child trains k more epochs on the pool as it was; before the
(k+1)-th epoch after the round the search waits for the thread, if it is not done, and adopts its EPD, optimizer and
new pool (the round's statistics are logged at that epoch, with epd_time_s, the round's wall time, and
epd_wait_time_s, the part the search waited for). The thread computes bit for bit what a blocking round computes
(same inputs, same generators); what changes is that the new architectures join the pool k epochs later, so they
train update_every - k epochs, not update_every, before the next round scores them. A checkpoint holds an unadopted
round as pending (the EPD before it, the scored pool, its index) and a resumed search runs its thread again, so a
killed search still resumes to the same end. When the search ends with a round pending (its last), the thread is
stopped (a blocking search trains that last round to its end, for architectures that are never scored: see
below). The thread runs with `overlap_threads` torch threads (default 1; torch.set_num_threads there leaves the
search's thread's count as it was). With more, its OpenMP team and the search thread's together outnumber the cores,
and libgomp then lets an idle worker spin only 100 turns before it sleeps, so every small operation of both threads
waits for workers to wake: on a 2-core CPU, 50 forward-backward steps of the EPD's 96-wide LSTM (batch 100) took
0.16 s on the search's thread alone, 0.38 s in the background thread with two torch threads, 0.24 s with one.

Where this differs from NAO-WS's code:
- Rounds run at the end of every `update_every`-th epoch. The strategy does not know the schedule's length, so the
  round at the last epoch also trains the EPD and grows the pool (those architectures are never scored; NAO-WS
  stops after scoring); final_architecture and derive_candidates use the last scored pool.
- Tokens are in canonical order (a node's inputs ascending), so NAO's input-swap augmentation (--controller_symmetry,
  --controller_expand) has nothing to add; constrained decoding keeps that order (NAO-WS masks only the ranges).
- The decoder starts from (embedding, embedding), as both of NAO-WS's decoders do, and attends with NAO's PyTorch
  Attention (NAO-WS/rnn, NAO_pytorch); the TensorFlow CNN decoder uses normed Bahdanau attention. Encoder dropout
  is on the token embeddings (PyTorch) rather than on the LSTM outputs (TensorFlow's DropoutWrapper), and it stays
  on in every round: NAO-WS/cnn's encoder.Model sets the shared params' encoder_dropout to 0 when it builds its
  PREDICT graph, so from the second round on its EPD trains without encoder dropout (a side effect, not copied).
  The MLP's dropout is 0 on the CNN space because NAO-WS/cnn's never takes effect (NAOConfig.mlp_dropout).
- One Adam optimizer lives across rounds (NAO-WS/rnn), with its L2 term added to the clipped gradient (NAO-WS/rnn;
  NAO-WS/cnn adds the L2 loss before clipping). Every weight and bias starts uniform(-0.1, 0.1) (NAO-WS/cnn's
  scope initializer; its dense and LSTM biases start at 0, its LSTM adds a forget bias of 1, and its decoder's
  LSTM is orthogonally initialised).
- Step sizes 1 to max_step_size (NAO-WS/rnn; NAO-WS/cnn's loop stops after max_step_size + 1).
- The fresh random architectures of a round are distinct from the pool (NAO-WS does not check).
- PTB: update_every 30 of a 150-epoch search instead of 200 of 1000 (rnn_defaults).

Any-subset cells (NAS-Bench-201): a cell is the sequence of its edge codes (to_tokens; NB201's own encoding of
an architecture, one of its five operations per edge, `none` included), so the sequence has a fixed length
(n_edges per cell type), its vocabulary is the len(ops) + 1 codes, the encoder reads one code per step (as the
NAO authors' SemiNAS encoder does on NAS-Bench-101), and every decoded sequence is a valid cell (no constraint to
apply). Random architectures are uniform over the cells (uniform_architecture), as NAO-WS's generate_arch is over
its space.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import distributed
from ..knobs import ConfigError, knob
from ..spaces import Architecture, SearchSpace
from .base import (Strategy, check_rewards, choice_frequencies, from_tokens, seeded_generator, to_tokens,
                   uniform_architecture)

Tokens = tuple[int, ...]  # to_tokens of an architecture (raw predecessor / op indices)
EPD_PHASE = "nao controller"  # the progress phase of the EPD's training; a step is one pass over the pool

# Sources (renqianluo/NAO, NAO-WS/cnn/train_search.sh and the argparse defaults of NAO-WS/cnn/train_search.py,
# the TensorFlow code behind NAO-WS's published CIFAR-10 search; PTB: NAO-WS/rnn/train_search.{sh,py}).


@dataclass
class NAOConfig:
    # schedule and pool
    update_every: int = knob(30, ge=1)            # --child_eval_every_epochs=30 (of --child_num_epochs=150)
    seed_architectures: int = knob(1000, ge=2)    # --controller_num_seed_arch default 1000; also the pool size
    new_architectures: int = knob(500, ge=0)      # train_search.py: `while len(new_archs) < 500`
    random_architectures: int = knob(50, ge=0)    # train_search.py: `+ utils.generate_arch(50, 5, 5)` each round
    top_k: int = knob(100, ge=1)                  # train_search.py: `top100_archs = ... old_archs[:100]`
    max_step_size: int = knob(100, ge=1)          # train_search.py: `max_step_size = 100` (predict_lambda 1, 2, ...)
    # EPD training (per round)
    epochs: int = knob(1000, ge=0)                # --controller_train_epochs=1000 (passes over the pool)
    batch_size: int = knob(100, ge=1)             # --controller_batch_size=100
    lr: float = knob(1e-3, gt=0.0)                # --controller_lr=0.001, --controller_optimizer=adam
    l2_reg: float = knob(1e-4, ge=0.0)            # --controller_weight_decay default 1e-4 (tf.nn.l2_loss = Adam's L2)
    grad_clip: float = knob(5.0, gt=0.0)          # --controller_max_gradient_norm default 5.0
    trade_off: float = knob(0.8, ge=0.0, le=1.0)  # --controller_trade_off default 0.8 (weight of the MSE)
    # EPD sizes
    emb_size: int = knob(48, ge=1)                # --controller_encoder_emb_size=48
    hidden_size: int = knob(96, ge=1)             # --controller_encoder_hidden_size=96 = --controller_decoder_hidden_size
    encoder_layers: int = knob(1, ge=1)           # --controller_encoder_num_layers default 1
    decoder_layers: int = knob(1, ge=1)           # --controller_decoder_num_layers default 1
    mlp_layers: int = knob(3, ge=0)               # --controller_mlp_num_layers=3
    mlp_hidden_size: int = knob(100, ge=1)        # --controller_mlp_hidden_size=100
    # --controller_mlp_dropout=0.1 is passed, but NAO-WS/cnn/encoder/encoder.py applies it as
    # tf.layers.dropout(x, 0.1), whose `training` defaults to False: the published search never drops
    mlp_dropout: float = knob(0.0, ge=0.0, lt=1.0)
    encoder_dropout: float = knob(0.1, ge=0.0, lt=1.0)  # --controller_encoder_dropout default 0.1
    decoder_dropout: float = knob(0.0, ge=0.0, lt=1.0)  # --controller_decoder_dropout default 0.0
    attention: bool = True                        # --controller_attention
    # what the predictor learns, min-max normalised: the reward (NAO-WS/cnn: the validation accuracy), or its log
    # (PTB's reward is c * exp(-loss), so this is 1 - the normalised validation loss, NAO-WS/rnn's target)
    predictor_target: str = knob("reward", choices=("reward", "log_reward"))
    # where the EPD computes: cpu, or search = the search's device (runtime.device: its GPU, as NAO-WS trains
    # its controller); not a NAO-WS setting
    device: str = knob("cpu", choices=("cpu", "search"))
    # not a NAO-WS setting: 0 = NAO-WS's order, the search waits for each round's EPD training; k >= 1 = the EPD
    # trains in a background thread (device cpu) while the child trains k more epochs on the pool as it was, and
    # the round's new pool takes over before the (k+1)-th epoch after the round (NAOStrategy, "Overlapped rounds")
    overlap_epochs: int = knob(0, ge=0)
    # not a NAO-WS setting: torch's CPU threads in that background thread (the search's thread keeps its own); 1,
    # as a second OpenMP team on the cores of the search's slows both threads' small operations (NAOStrategy,
    # "Overlapped rounds")
    overlap_threads: int = knob(1, ge=1)

    def check_consistency(self, prefix: str = "search.nao.") -> None:
        """Called by config.from_mapping (and the strategy): values that conflict with each other."""
        if self.new_architectures + self.random_architectures >= self.seed_architectures:
            raise ConfigError(
                f"{prefix}new_architectures + {prefix}random_architectures: got {self.new_architectures} + "
                f"{self.random_architectures}; expected less than {prefix}seed_architectures "
                f"({self.seed_architectures}), the pool size, so that the best of the pool survive a round")
        if self.overlap_epochs >= self.update_every:
            raise ConfigError(f"{prefix}overlap_epochs: got {self.overlap_epochs}; expected less than "
                              f"{prefix}update_every ({self.update_every}), so that a round's new pool takes over "
                              f"before the next round scores it (0 = NAO-WS's order, the search waits for the EPD)")
        if self.overlap_epochs and self.device != "cpu":
            raise ConfigError(f"{prefix}overlap_epochs: got {self.overlap_epochs}; a round overlaps the child's "
                              f"epochs only with the EPD on the CPU ({prefix}device: cpu, got {self.device!r}); set "
                              f"{prefix}overlap_epochs: 0 or {prefix}device: cpu")
        if self.top_k > self.seed_architectures:
            raise ConfigError(f"{prefix}top_k: got {self.top_k}; expected at most {prefix}seed_architectures "
                              f"({self.seed_architectures}), the pool whose best top_k seed the new architectures")


def rnn_defaults() -> NAOConfig:
    """NAO-WS's PTB search (renqianluo/NAO, NAO-WS/rnn/train_search.sh and train_search.py's defaults).
    update_every: NAO-WS evaluates every 200 of 1000 child epochs (--child_eval_every_epochs=200,
    --child_train_epochs=1000), which a 150-epoch search (DARTS's, this project's PTB schedule) never reaches;
    30 keeps NAO-WS's five evaluations in 150 epochs."""
    return NAOConfig(
        update_every=30,            # scaled: 200 of 1000 epochs -> 30 of 150 (see above)
        seed_architectures=1000,    # --controller_num_seed_arch default 1000
        new_architectures=300,      # --controller_max_new_archs default 300
        random_architectures=50,    # train_search.py: `random_new_archs = generate_arch(50)`
        top_k=100,                  # train_search.py: `top100_archs = ... old_archs[:100]`
        max_step_size=30,           # --controller_max_step_size default 30
        epochs=1000,                # --controller_train_epochs=1000
        batch_size=100,             # --controller_batch_size=100
        lr=1e-3,                    # --controller_lr=0.001
        l2_reg=1e-4,                # --controller_weight_decay default 1e-4 (Adam weight_decay)
        grad_clip=5.0,              # --controller_max_gradient_norm default 5.0
        trade_off=0.8,              # --controller_trade_off=0.8
        emb_size=48,                # --controller_encoder_emb_size=48
        hidden_size=96,             # --controller_encoder_hidden_size=96, --controller_decoder_hidden_size=96
        encoder_layers=1,
        decoder_layers=1,
        mlp_layers=4,               # --controller_mlp_num_layers=4
        mlp_hidden_size=200,        # --controller_mlp_hidden_size=200
        mlp_dropout=0.0,            # --controller_mlp_dropout=0
        encoder_dropout=0.1,        # --controller_encoder_dropout=0.1
        decoder_dropout=0.0,        # --controller_decoder_dropout=0
        attention=True,             # the PyTorch decoder always attends
        predictor_target="log_reward",  # train_search.py: normalize_target(valid losses); -log(reward / c) is the loss
        device="cpu",               # not a NAO-WS setting (NAOConfig.device)
        overlap_epochs=0,           # not a NAO-WS setting (NAOConfig.overlap_epochs)
        overlap_threads=1,          # not a NAO-WS setting (NAOConfig.overlap_threads)
    )


# --- token grammar ------------------------------------------------------------------------------------------


class TokenGrammar:
    """The vocabulary of the EPD and which token is valid where. Vocabulary ids: 0 = start of sequence (NAO's
    SOS_ID), 1 .. n_preds = predecessor node 0 .. n_preds-1, then the ops. Position t of a sequence is, for
    cell type c, node k, selected edge j: 2 * (c * n_nodes * m + k * m + j) (+1 for the op); the encoder reads
    one (input, op) pair per step (step_tokens = 2).

    Any-subset cells (NAS-Bench-201): the sequence is every cell type's edge codes (to_tokens: n_edges per cell
    type, 0 = none, 1 + op), ids 1 .. 1 + n_ops (n_preds = 0, n_ops = the codes), every code valid at every
    position (any combination of codes is a cell), one token per encoder step (step_tokens = 1, as the NAO
    authors' encoder on NAS-Bench-101 reads its sequence: renqianluo/SemiNAS nasbench/encoder.py)."""

    def __init__(self, space: SearchSpace):
        cell = space.cell
        self.space = space
        self.any_subset = cell.any_subset
        if self.any_subset:
            self.m, self.n_preds, self.n_ops, self.step_tokens = 0, 0, len(cell.ops) + 1, 1
            self.length = len(space.cell_types) * cell.n_edges
        else:
            self.m, self.n_ops, self.step_tokens = cell.inputs_per_node, len(cell.ops), 2
            self.n_preds = cell.n_inputs + cell.n_nodes - 1
            self.length = 2 * len(space.cell_types) * cell.n_nodes * self.m
        self.op_offset = 1 + self.n_preds
        self.vocab = 1 + self.n_preds + self.n_ops
        # per pair position: (node id, index of the edge within its node)
        self.pair_node: list[int] = []
        self.pair_edge: list[int] = []
        for _ in space.cell_types:
            for node in cell.node_ids:
                for j in range(self.m):
                    self.pair_node.append(node)
                    self.pair_edge.append(j)
        self._vocab_ids: dict[torch.device, torch.Tensor] = {}  # torch.arange(vocab) on each device asked for

    def ids_on(self, device: torch.device) -> torch.Tensor:
        """[vocab] every vocabulary id, on `device` (made once per device)."""
        device = torch.device(device)
        if device not in self._vocab_ids:
            self._vocab_ids[device] = torch.arange(self.vocab, device=device)
        return self._vocab_ids[device]

    def to_ids(self, tokens: Sequence[Sequence[int]]) -> torch.Tensor:
        """[B, length] vocabulary ids of raw token sequences (to_tokens)."""
        t = torch.tensor([list(s) for s in tokens], dtype=torch.long).reshape(-1, self.length)
        ids = t + 1
        if not self.any_subset:
            ids[:, 1::2] += self.n_preds
        return ids

    def to_tokens(self, ids: torch.Tensor) -> list[Tokens]:
        t = ids.clone() - 1
        if not self.any_subset:
            t[:, 1::2] -= self.n_preds
        return [tuple(row) for row in t.tolist()]

    def mask(self, position: int, previous: torch.Tensor | None,
             device: torch.device | str = "cpu") -> torch.Tensor:
        """[B, vocab] (or [vocab]) valid ids at `position`, given the ids decoded at position - 2 (the previous
        edge's input in the same node, when this is not the node's first edge), on `device` (previous's, when
        given). Any-subset cells: every code."""
        ids = self.ids_on(previous.device if previous is not None else device)
        if self.any_subset or position % 2:
            return ids >= self.op_offset
        pair = position // 2
        node, j = self.pair_node[pair], self.pair_edge[pair]
        hi = node - (self.m - j)          # leave room for the node's later (larger) inputs
        if j == 0:
            return (ids >= 1) & (ids <= 1 + hi)
        # strictly above the previous input: id of pred p is p + 1, so ids from previous + 1
        return (ids[None, :] >= previous[:, None] + 1) & (ids[None, :] <= 1 + hi)


def _dropout(x: torch.Tensor, p: float, training: bool, generator: torch.Generator | None) -> torch.Tensor:
    """Inverted dropout drawing from `generator` (the global RNG stays untouched)."""
    if not training or p == 0.0:
        return x
    keep = torch.rand(x.shape, generator=generator, device=x.device) >= p
    return x * keep.to(x.dtype) / (1.0 - p)


class EncoderPredictorDecoder(nn.Module):
    """NAO's controller: encoder LSTM, MLP predictor on the mean-pooled embedding, attention LSTM decoder."""

    def __init__(self, grammar: TokenGrammar, s: NAOConfig):
        super().__init__()
        self.grammar = grammar
        self.s = s
        h = s.hidden_size
        self.enc_embedding = nn.Embedding(grammar.vocab, s.emb_size)
        self.encoder = nn.LSTM(grammar.step_tokens * s.emb_size, h, s.encoder_layers, batch_first=True)
        mlp, width = [], h
        for _ in range(s.mlp_layers):
            mlp.append(nn.Linear(width, s.mlp_hidden_size))
            width = s.mlp_hidden_size
        self.mlp = nn.ModuleList(mlp)
        self.regression = nn.Linear(width, 1)
        self.dec_embedding = nn.Embedding(grammar.vocab, h)
        self.decoder = nn.LSTM(h, h, s.decoder_layers, batch_first=True)
        self.attention_out = nn.Linear(2 * h, h) if s.attention else None
        self.out = nn.Linear(h, grammar.vocab)

    # --- encoder and predictor ---------------------------------------------------------------------------

    def encode(self, ids: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """[B, length] ids -> encoder outputs [B, length / step_tokens, hidden], each l2-normalised."""
        x = _dropout(self.enc_embedding(ids), self.s.encoder_dropout, self.training, generator)
        k = self.grammar.step_tokens  # one step per (input, op) pair; per edge code on an any-subset cell
        x = x.reshape(ids.shape[0], ids.shape[1] // k, k * self.s.emb_size)
        out, _ = self.encoder(x)
        return F.normalize(out, dim=-1)

    @staticmethod
    def embed(outputs: torch.Tensor) -> torch.Tensor:
        """The architecture embedding: mean of the encoder outputs, l2-normalised."""
        return F.normalize(outputs.mean(1), dim=-1)

    def predict(self, emb: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """[B, hidden] embeddings -> [B] predicted normalised reward in (0, 1)."""
        x = emb
        for layer in self.mlp:
            x = _dropout(F.relu(layer(x)), self.s.mlp_dropout, self.training, generator)
        return torch.sigmoid(self.regression(x)).squeeze(-1)

    # --- decoder ---------------------------------------------------------------------------------------

    def _initial_state(self, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h0 = emb.unsqueeze(0).expand(self.s.decoder_layers, -1, -1).contiguous()
        return h0, h0

    def _attend(self, y: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        if self.attention_out is None:
            return y
        weights = torch.softmax(torch.bmm(y, memory.transpose(1, 2)), dim=-1)
        context = torch.bmm(weights, memory)
        return torch.tanh(self.attention_out(torch.cat([context, y], dim=-1)))

    def decode_logits(self, emb: torch.Tensor, outputs: torch.Tensor, ids: torch.Tensor,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """Teacher-forced logits [B, length, vocab] of the sequences `ids` (inputs: SOS, ids[:, :-1])."""
        inputs = torch.cat([torch.zeros_like(ids[:, :1]), ids[:, :-1]], dim=1)
        x = _dropout(self.dec_embedding(inputs), self.s.decoder_dropout, self.training, generator)
        y, _ = self.decoder(x, self._initial_state(emb))
        return self.out(self._attend(y, outputs))

    @torch.no_grad()
    def greedy_decode(self, emb: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
        """[B, length] ids: at each position the most probable VALID token (TokenGrammar.mask)."""
        g = self.grammar
        batch = emb.shape[0]
        state = self._initial_state(emb)
        token = torch.zeros(batch, dtype=torch.long, device=emb.device)
        decoded: list[torch.Tensor] = []
        for t in range(g.length):
            y, state = self.decoder(self.dec_embedding(token).unsqueeze(1), state)
            logits = self.out(self._attend(y, outputs)).squeeze(1)
            mask = g.mask(t, decoded[t - 2] if t >= 2 else None, emb.device)
            token = logits.masked_fill(~mask, float("-inf")).argmax(-1)
            decoded.append(token)
        return torch.stack(decoded, dim=1)


def pairwise_accuracy(targets: Sequence[float], predictions: Sequence[float]) -> float:
    """Share of pairs i < j that the predictions order like the targets (NAO's utils.pairwise_accuracy:
    a pair counts when t_i >= t_j and p_i >= p_j, or t_i < t_j and p_i < p_j). NaN for fewer than 2 items."""
    t = np.asarray(targets, dtype=np.float64)
    p = np.asarray(predictions, dtype=np.float64)
    if len(t) < 2:
        return math.nan
    i, j = np.triu_indices(len(t), k=1)
    dt, dp = t[i] - t[j], p[i] - p[j]
    same = ((dt >= 0) & (dp >= 0)) | ((dt < 0) & (dp < 0))
    return float(same.mean())


def _minmax(values: Sequence[float]) -> list[float]:
    lo, hi = min(values), max(values)
    if hi == lo:
        return [0.5] * len(values)
    return [(v - lo) / (hi - lo) for v in values]


# epd_time_s: the round's learning (EPD training, evaluation, generation), wall seconds wherever it ran; epd_wait_time_s:
# the part of it the search waited for (all of it when overlap_epochs is 0)
_ROUND_STATS = ("predictor_loss", "reconstruction_loss", "pairwise_accuracy", "new_architectures", "step_size",
                "epd_time_s", "epd_wait_time_s")


class RoundStopped(Exception):
    """A background round's thread was told to stop (NAOStrategy.close)."""


class BackgroundRound:
    """One round's learning (`work`, run on `worker`, a copy of the strategy) in a daemon thread: its result or its
    exception, the passes it has made, its wall time; stop() makes it end at its next pass (record, the worker's
    progress display, raises RoundStopped there)."""

    def __init__(self, work: Callable[[], tuple[list[Tokens], dict[str, float]]], worker: "NAOStrategy"):
        self.worker = worker
        self.cancel = threading.Event()
        self.passes = 0
        self.seconds = math.nan
        self._work = work
        self._outcome: tuple[list[Tokens], dict[str, float]] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="nao-epd", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        start = time.perf_counter()
        torch.set_num_threads(self.worker.settings.overlap_threads)  # this thread's OpenMP team only
        try:
            self._outcome = self._work()
        except BaseException as error:  # handed to the search's thread by result()
            self._error = error
        self.seconds = time.perf_counter() - start

    def record(self, phase: str, step: int, total: int, unit: str) -> None:
        """The worker's progress display: counts the EPD's passes (the search's thread shows them) and ends the
        work once stop() was called."""
        if self.cancel.is_set():
            raise RoundStopped("the search stopped")
        if phase == EPD_PHASE:
            self.passes = step

    def wait(self, timeout: float) -> bool:
        """Whether the work is done, after waiting up to `timeout` seconds."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def result(self) -> tuple[list[Tokens], dict[str, float]]:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._outcome is not None
        return self._outcome

    def stop(self) -> None:
        self.cancel.set()
        self._thread.join()


class NAOStrategy(Strategy):
    """NAO-WS: a pool of architectures, rescored every `update_every` epochs and grown by the EPD."""

    name = "nao"
    distribution_kind = "population"
    distribution_title = "NAO pool: choice frequencies of its top_k best-rewarded cells"
    answer_title = "the best-rewarded cell of its last scored pool"
    # the EPD's signals exist on round epochs only (NaN between rounds): their lines join the rounds
    signal_panels = ((("predictor_loss",), "NAO-WS predictor: MSE on the scored pool", "MSE (normalised reward)"),
                     (("pairwise_accuracy",), "NAO-WS predictor: pairwise ranking accuracy", "accuracy"),
                     (("reconstruction_loss",), "NAO-WS decoder: reconstruction NLL", "NLL per token"))

    def __init__(self, space: SearchSpace, settings: NAOConfig, seed: int):
        super().__init__(space, settings, seed)
        settings.check_consistency()
        self.seed = int(seed)
        self.grammar = TokenGrammar(space)
        with torch.random.fork_rng(devices=[]):  # module constructors draw from the global RNG: keep it as it is
            self.epd = EncoderPredictorDecoder(self.grammar, settings)
        init = seeded_generator(self.seed, "nao-init")
        with torch.no_grad():  # NAO-WS's initializer: uniform(-0.1, 0.1) for every weight
            for p in self.epd.parameters():
                p.copy_(torch.rand(p.shape, generator=init) * 0.2 - 0.1)
        self.optimizer = self._adam(self.epd)
        self.pool: list[Tokens] = []           # the architectures the child trains on (and the next round scores)
        self.cursor = 0                        # next pool index to propose in the current round
        self.round_rewards: list[float] = []   # rewards of pool[:len(round_rewards)] in the current round
        self.scored: list[Tokens] = []         # the last scored pool, best reward first
        self.scored_rewards: list[float] = []
        self.rounds = 0                        # finished rounds
        self.stats: dict[str, float] = {}
        self.device = torch.device("cpu")      # where the EPD lives: see place()
        self.epoch = 0                         # the current epoch (begin_epoch)
        self.pending: int | None = None        # overlapped round: the epoch before which its new pool takes over
        self._job: BackgroundRound | None = None     # its thread (not state: started again on resume)

    def _adam(self, epd: EncoderPredictorDecoder) -> torch.optim.Adam:
        """The EPD's optimizer (NAO-WS: Adam with L2 weight decay)."""
        return torch.optim.Adam(epd.parameters(), lr=self.settings.lr, weight_decay=self.settings.l2_reg)

    def place(self, device: torch.device) -> None:
        """settings.device 'search': the EPD (and its optimizer's state) moves to the search's device."""
        if self.settings.device != "search":
            return
        self.device = torch.device(device)
        self.epd.to(self.device)
        for state in self.optimizer.state.values():
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and key != "step":
                    state[key] = value.to(self.device)

    def _ids(self, pool: Sequence[Tokens]) -> torch.Tensor:
        return self.grammar.to_ids(pool).to(self.device)

    def _draws_on_host(self) -> bool:
        """Whether the EPD's random draws come from the round's CPU generator itself (the EPD on the CPU) rather
        than from a generator on its device."""
        return self.device.type == "cpu"

    def _dropout_generator(self, generator: torch.Generator) -> torch.Generator:
        """The dropout masks' generator: `generator` itself on the CPU; on another device a generator there,
        seeded by a draw from `generator` (so a round repeats exactly on the same device)."""
        if self._draws_on_host():
            return generator
        seed = int(torch.randint(2**62, (1,), generator=generator))
        return torch.Generator(device=self.device).manual_seed(seed)

    # --- pool ------------------------------------------------------------------------------------------

    def _ensure_pool(self, generator: torch.Generator) -> None:
        """The initial pool: seed_architectures distinct uniform architectures from the loop's generator."""
        if not self.pool:
            self.pool = self._distinct_uniform(self.settings.seed_architectures, set(), generator)

    def _distinct_uniform(self, n: int, exclude: set[Tokens], generator: torch.Generator) -> list[Tokens]:
        out: list[Tokens] = []
        seen = set(exclude)
        for _ in range(100 * n + 100):
            if len(out) == n:
                break
            tokens = tuple(to_tokens(self.space, uniform_architecture(self.space, generator)))
            if tokens not in seen:
                seen.add(tokens)
                out.append(tokens)
        if len(out) < n:
            raise ValueError(f"{self.space.name}: could not draw {n} distinct architectures")
        return out

    def _arch(self, tokens: Tokens) -> Architecture:
        return from_tokens(self.space, list(tokens))

    # --- the epoch protocol ----------------------------------------------------------------------------

    def begin_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.stats = {}
        if self.pending is not None:
            if self._job is None:  # resumed with a pending round: its learning starts again from the same inputs
                self._launch()
            if epoch >= self.pending:
                self._join()

    def train_architecture(self, generator: torch.Generator) -> Architecture:
        self._ensure_pool(generator)
        return self._arch(self.pool[int(torch.randint(len(self.pool), (1,), generator=generator))])

    def rewards_wanted(self, epoch: int, policy_batches: int) -> int:
        if (epoch + 1) % self.settings.update_every:
            return 0
        return (len(self.pool) or self.settings.seed_architectures) - self.cursor

    def propose(self, generator: torch.Generator, limit: int) -> list[Architecture]:
        """The next `limit` (at most) pool members not yet scored in this round, in pool order."""
        self._ensure_pool(generator)
        if limit < 1:
            raise ValueError(f"propose needs limit >= 1, got {limit}")
        return [self._arch(t) for t in self.pool[self.cursor : self.cursor + limit]]

    def observe(self, archs: list[Architecture], rewards: list[float]) -> None:
        check_rewards(archs, rewards)
        expected = self.pool[self.cursor : self.cursor + len(archs)]
        got = [tuple(to_tokens(self.space, self.space.validate(a))) for a in archs]
        if got != expected:
            raise ValueError("NAO observes rewards of the pool members it proposed, in order")
        self.round_rewards.extend(float(r) for r in rewards)
        self.cursor += len(archs)
        if self.cursor == len(self.pool):
            self._round()

    # --- a round -------------------------------------------------------------------------------------

    def _round_generator(self) -> torch.Generator:
        return seeded_generator(self.seed, "nao-round", self.rounds)

    def _round(self) -> None:
        """The pool is scored: rank it, then train the EPD, grow new architectures from the top and replace the
        bottom, now (overlap_epochs 0) or in the background (see _launch)."""
        rewards = np.asarray(self.round_rewards, dtype=np.float64)
        order = np.argsort(-rewards, kind="stable")
        self.scored = [self.pool[i] for i in order]
        self.scored_rewards = [float(rewards[i]) for i in order]
        self.cursor, self.round_rewards = 0, []
        if self.settings.overlap_epochs:
            self.pending = self.epoch + 1 + self.settings.overlap_epochs
            self._launch()
            return
        start = time.perf_counter()
        pool, stats = self._grow(self.scored, self.scored_rewards, self._round_generator())
        elapsed = time.perf_counter() - start
        self._adopt(pool, {**stats, "epd_time_s": elapsed, "epd_wait_time_s": elapsed})

    def _grow(self, ranked: list[Tokens], ranked_rewards: list[float], generator: torch.Generator
              ) -> tuple[list[Tokens], dict[str, float]]:
        """A round's learning on this strategy's EPD: train it on the ranked pool, then the next pool (the best
        of `ranked`, new architectures from its top_k, fresh uniform ones) and the round's statistics."""
        s = self.settings
        with torch.enable_grad():
            targets = self.targets(ranked_rewards)
            self.train_epd(ranked, targets, s.epochs, generator)
            mse, nll, predicted = self.evaluate_epd(ranked, targets)
            new, step = self.generate(ranked[: s.top_k], set(ranked), s.new_architectures)
        fresh = self._distinct_uniform(s.random_architectures, set(ranked) | set(new), generator)
        keep = len(ranked) - len(new) - len(fresh)
        return ranked[:keep] + new + fresh, {
            "predictor_loss": mse, "reconstruction_loss": nll,
            "pairwise_accuracy": pairwise_accuracy(ranked_rewards, predicted),
            "new_architectures": float(len(new)), "step_size": float(step)}

    def targets(self, rewards: Sequence[float]) -> list[float]:
        """The predictor's targets: the rewards (predictor_target reward) or their logs (log_reward), min-max
        normalised over the pool."""
        if self.settings.predictor_target == "reward":
            return _minmax(rewards)
        if min(rewards) <= 0:
            raise ValueError(f"search.nao.predictor_target: log_reward needs positive rewards, got {min(rewards)!r}; "
                             "use predictor_target: reward for a task whose reward can be 0 (an accuracy)")
        return _minmax([math.log(r) for r in rewards])

    def _adopt(self, pool: list[Tokens], stats: dict[str, float]) -> None:
        """The round's new pool takes over; the round is finished."""
        if self.settings.device == "search":  # several GPUs: their EPDs may decide differently; rank 0's pool
            pool = [tuple(t) for t in distributed.broadcast_host_value([list(t) for t in pool])]
        self.pool = pool
        self.rounds += 1
        self.pending = None
        self.stats = stats

    # --- overlapped rounds ---------------------------------------------------------------------------------
    # overlap_epochs k >= 1: the round's learning (_grow) runs in a background thread on a copy of the EPD and its
    # optimizer, from inputs that the state keeps (the EPD and optimizer before the round, the scored pool, the
    # round's index, which seeds its generator), so the thread computes exactly what a blocking round computes. The
    # child trains on the pool as it was until begin_epoch(pending), round epoch + 1 + k, which waits for the
    # thread (if it is not done) and adopts its EPD, optimizer and pool. A checkpoint taken meanwhile holds the
    # round as pending; a resumed search starts the thread again at its first begin_epoch, so it ends identical.

    def _launch(self) -> None:
        """Starts the pending round's learning in a background thread (the EPD on the CPU: see check_consistency)."""
        worker = copy.copy(self)  # shares space, settings, grammar; its own EPD, optimizer and progress
        worker.epd = copy.deepcopy(self.epd)
        worker.optimizer = self._adam(worker.epd)
        worker.optimizer.load_state_dict(copy.deepcopy(self.optimizer.state_dict()))
        ranked, ranked_rewards, generator = list(self.scored), list(self.scored_rewards), self._round_generator()
        job = BackgroundRound(lambda: worker._grow(ranked, ranked_rewards, generator), worker)
        worker.attach_progress(job.record)
        self._job = job
        job.start()

    def _join(self) -> None:
        """Waits for the pending round's thread (reporting its passes meanwhile) and adopts what it learned."""
        job = self._job
        assert job is not None
        start = time.perf_counter()
        while not job.wait(0.5):
            self.report_progress(EPD_PHASE, job.passes, self.settings.epochs, "pass")
        pool, stats = job.result()
        self._job = None
        self.epd, self.optimizer = job.worker.epd, job.worker.optimizer
        self._adopt(pool, {**stats, "epd_time_s": job.seconds, "epd_wait_time_s": time.perf_counter() - start})

    def close(self) -> None:
        """Stops a pending round's thread; the round stays pending in state_dict (its inputs are kept)."""
        if self._job is not None:
            self._job.stop()
            self._job = None

    def train_epd(self, pool: Sequence[Tokens], targets: Sequence[float], epochs: int,
                  generator: torch.Generator) -> list[tuple[float, float]]:
        """`epochs` shuffled passes over (pool, targets) in minibatches; returns each pass's mean (MSE, NLL)."""
        s = self.settings
        ids = self._ids(pool)
        y = torch.tensor(list(targets), dtype=torch.float32, device=self.device)
        n = len(pool)
        # on another device than the CPU the permutations are drawn there too: no host-to-device copy a pass
        dropout = self._dropout_generator(generator)
        shuffle = generator if self._draws_on_host() else dropout
        history = []  # per pass: the summed (MSE, NLL) on the EPD's device; read once at the end (no sync a step)
        self.epd.train()
        self.report_progress(EPD_PHASE, 0, epochs, "pass")
        for done in range(1, epochs + 1):
            perm = torch.randperm(n, generator=shuffle, device=self.device)
            sums = torch.zeros(2, dtype=torch.float64, device=self.device)
            for start in range(0, n, s.batch_size):
                idx = perm[start : start + s.batch_size]
                mse, nll = self._losses(ids[idx], y[idx], dropout)
                loss = s.trade_off * mse + (1.0 - s.trade_off) * nll
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(self.epd.parameters(), s.grad_clip)
                self.optimizer.step()
                sums += torch.stack([mse.detach(), nll.detach()]).double() * len(idx)
            history.append(sums / n)
            self.report_progress(EPD_PHASE, done, epochs, "pass")
        self.epd.eval()
        return [(mse, nll) for mse, nll in torch.stack(history).tolist()] if history else []  # floats already

    def _losses(self, ids: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = self.epd.encode(ids, generator)
        emb = self.epd.embed(outputs)
        mse = F.mse_loss(self.epd.predict(emb, generator), y)
        logits = self.epd.decode_logits(emb, outputs, ids, generator)
        nll = F.cross_entropy(logits.reshape(-1, self.grammar.vocab), ids.reshape(-1))
        return mse, nll

    @torch.no_grad()
    def evaluate_epd(self, pool: Sequence[Tokens], targets: Sequence[float]) -> tuple[float, float, list[float]]:
        """Eval-mode (MSE, per-token NLL, predictions) of the EPD on (pool, normalised targets)."""
        self.epd.eval()
        y = torch.tensor(list(targets), dtype=torch.float32, device=self.device)
        mse, nll = self._losses(self._ids(pool), y, None)
        return float(mse), float(nll), self.predict(pool)

    @torch.no_grad()
    def predict(self, pool: Sequence[Tokens]) -> list[float]:
        """The predictor's normalised reward of each token sequence (eval mode)."""
        self.epd.eval()
        if not pool:
            return []
        return self.epd.predict(self.epd.embed(self.epd.encode(self._ids(pool)))).tolist()

    def _gradient(self, seeds: Sequence[Tokens]) -> tuple[torch.Tensor, torch.Tensor]:
        """The seeds' encoder outputs and the gradient of their predicted reward with respect to them."""
        self.epd.eval()
        with torch.enable_grad():
            outputs = self.epd.encode(self._ids(seeds)).detach().requires_grad_(True)
            grad, = torch.autograd.grad(self.epd.predict(self.epd.embed(outputs)).sum(), outputs)
        return outputs.detach(), grad

    def ascend(self, seeds: Sequence[Tokens], step: float) -> tuple[torch.Tensor, torch.Tensor]:
        """NAO's Encoder.infer: encoder outputs moved by `step` along the gradient of the predicted reward,
        l2-normalised, and their embedding: (new outputs [B, L/2, H], new embedding [B, H])."""
        return self._moved(*self._gradient(seeds), step)

    def _moved(self, outputs: torch.Tensor, grad: torch.Tensor, step: float) -> tuple[torch.Tensor, torch.Tensor]:
        new_outputs = F.normalize(outputs + step * grad, dim=-1)
        return new_outputs, self.epd.embed(new_outputs)

    def generate(self, seeds: Sequence[Tokens], exclude: set[Tokens], wanted: int) -> tuple[list[Tokens], int]:
        """Up to `wanted` new distinct architectures (not in `exclude`) decoded from the seeds' embeddings moved
        by step sizes 1, 2, ... max_step_size (NAO: predict_lambda += 1 until enough are new); returns them and
        the last step size tried (0 when none was needed)."""
        if wanted <= 0 or not seeds:
            return [], 0
        outputs, grad = self._gradient(seeds)
        new: list[Tokens] = []
        seen = set(exclude)
        step = 0
        while len(new) < wanted and step < self.settings.max_step_size:
            step += 1
            new_outputs, new_emb = self._moved(outputs, grad, float(step))
            for tokens in self.grammar.to_tokens(self.epd.greedy_decode(new_emb, new_outputs)):
                if tokens not in seen:
                    seen.add(tokens)
                    new.append(tokens)
                    if len(new) == wanted:
                        break
        return new, step

    @torch.no_grad()
    def decode(self, outputs: torch.Tensor, emb: torch.Tensor) -> list[Architecture]:
        """Constrained greedy decoding of (encoder outputs, embedding) into architectures."""
        return [self._arch(t) for t in self.grammar.to_tokens(self.epd.greedy_decode(emb, outputs))]

    def reconstruct(self, archs: Sequence[Architecture]) -> list[Architecture]:
        """Encode then decode (no gradient step)."""
        self.epd.eval()
        with torch.no_grad():
            outputs = self.epd.encode(self._ids([to_tokens(self.space, a) for a in archs]))
            return self.decode(outputs, self.epd.embed(outputs))

    # --- statistics and what it found ------------------------------------------------------------------

    def epoch_statistics(self) -> dict[str, float]:
        """The round's EPD losses (eval mode, on the scored pool after training), pairwise_accuracy, the number of
        new architectures and the last step size tried: NaN on epochs without a round. pool_size every epoch
        (NaN before the pool exists)."""
        out = {k: self.stats.get(k, math.nan) for k in _ROUND_STATS}
        out["pool_size"] = float(len(self.pool)) if self.pool else math.nan
        return out

    def _ranked(self) -> list[Tokens]:
        """The last scored pool, best first; before any round the pool ranked by the predictor."""
        if self.scored:
            return list(self.scored)
        predicted = self.predict(self.pool)
        return [self.pool[i] for i in np.argsort(-np.asarray(predicted), kind="stable")]

    def probabilities(self) -> dict[str, np.ndarray]:
        """choice_frequencies of the top_k of the last scored pool (the seeds of NAO's next architectures);
        the whole pool before any round; uniform before the pool exists."""
        top = self.scored[: self.settings.top_k] if self.scored else self.pool
        return choice_frequencies(self.space, [self._arch(t) for t in top])

    def final_architecture(self) -> Architecture:
        """The best-rewarded architecture of the last scored pool; before any round the pool member the
        predictor ranks first; before the pool exists a uniform architecture drawn from the seed."""
        ranked = self._ranked()
        if ranked:
            return self._arch(ranked[0])
        return uniform_architecture(self.space, seeded_generator(self.seed, "nao-final"))

    def derive_candidates(self, generator: torch.Generator, samples: int) -> list[Architecture]:
        """The top `samples` of the last scored pool by reward, best first (the pool by predicted reward
        before any round)."""
        ranked = self._ranked()
        if not ranked:
            return [self.final_architecture()]
        return [self._arch(t) for t in ranked[:samples]]

    # --- resume ------------------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {"epd": self.epd.state_dict(), "optimizer": self.optimizer.state_dict(),
                "pool": [list(t) for t in self.pool], "cursor": self.cursor,
                "round_rewards": list(self.round_rewards),
                "scored": [list(t) for t in self.scored], "scored_rewards": list(self.scored_rewards),
                "rounds": self.rounds, "seed": self.seed,
                "pending": -1 if self.pending is None else self.pending}

    def load_state_dict(self, state: dict) -> None:
        self.close()
        self.epd.load_state_dict(state["epd"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.pool = [tuple(int(v) for v in t) for t in state["pool"]]
        self.cursor = int(state["cursor"])
        self.round_rewards = [float(r) for r in state["round_rewards"]]
        self.scored = [tuple(int(v) for v in t) for t in state["scored"]]
        self.scored_rewards = [float(r) for r in state["scored_rewards"]]
        self.rounds = int(state["rounds"])
        self.seed = int(state["seed"])  # seeds each round's generator
        pending = int(state.get("pending", -1))  # states written before 2026-12-06 have no overlapped round
        self.pending = None if pending < 0 else pending


__all__ = ["NAOConfig", "NAOStrategy", "EncoderPredictorDecoder", "TokenGrammar", "pairwise_accuracy",
           "rnn_defaults"]
