"""ENAS (Pham, Guan, Zoph, Le, Dean 2018), micro search: an LSTM controller samples a cell autoregressively and is
trained by REINFORCE on the rewards of its samples. Reference: melodyguan/enas, src/cifar10/micro_controller.py
(the controller), src/cifar10/main.py and src/utils.py (its hard-coded settings and optimiser), and
scripts/cifar10_micro_search.sh (the published search settings, ENASConfig's defaults).

The controller, for each cell type in turn (the LSTM state carries over from one cell type to the next, as ENAS's
reduce-cell sampler starts from the normal cell's last state):

    input node j:     one LSTM step on g_emb; anchor_j = 0, anchor_w_j = h @ w_attn_1
    searched node i:  for each of its inputs:  LSTM step, logits_j = v_attn . tanh(anchor_w_j + h @ w_attn_2) over
                                               the nodes j < i; the next LSTM input is anchor_(chosen j)
                      for each chosen input:   LSTM step, logits = h @ w_soft + b_soft over the ops; the next LSTM
                                               input is w_emb[op]
                      one more LSTM step:      anchor_i = h, anchor_w_i = h @ w_attn_1; the next input is g_emb

and every logit vector is shaped as ENAS does it: logits / temperature, then c * tanh(.) with c = tanh_constant
for inputs and tanh_constant / op_tanh_reduce for ops. Inputs already chosen for a node are masked out, so a node's
inputs are distinct as this project's spaces require (ENAS draws them with replacement).

Training (ENAS's build_trainer): reward' = reward + entropy_weight * H(sample), where H(sample) is the summed
entropy of every decision's distribution (no gradient); advantage = reward' - baseline; loss = -log p(sequence) *
advantage, averaged over `num_aggregate` samples per Adam step (ENAS's SyncReplicasOptimizer with
replicas_to_aggregate = num_aggregate); `train_steps` Adam steps per epoch (rewards_wanted = their product), Adam
with ENAS's beta1 = 0 and epsilon = 1e-3 added where TensorFlow adds it (to sqrt(v), not to PyTorch's sqrt(v_hat):
eps / sqrt(1 - beta2^t) in PyTorch's terms, 31.6 x eps at the first step, 1.25 x at the 1,000th; adam_epsilon);
no weight decay, no gradient clipping, constant lr, as ENAS's controller. The child phase trains on controller
samples, one per child step.

Where this differs from ENAS, and why:
- Inputs are distinct (masked after being drawn): this project's spaces need two distinct inputs per node; ENAS
  draws a node's inputs with replacement.
- Baseline: the bias-corrected moving average (EMABaseline, as EDNAS's) of the reward' values seen BEFORE the
  sample (the first sample's advantage is 0), not ENAS's zero-initialised one updated with the sample before it is
  subtracted. Any baseline independent of the sample leaves the expected gradient as it is; ENAS's is still only
  1 - 0.99^100 = 63% of the mean reward after 100 samples, so early on most of every reward counts as advantage and
  every sample is pushed up (variance, no signal); the bias-corrected one is the mean of what was seen from the
  first sample on, and its curve compares with EDNAS's and random's.
- No op prior: ENAS initialises b_soft to [10, 10, 0, ...] and adds a fixed [0.25, 0.25, -0.25, ...] to the normal
  cell's op logits, favouring ITS ops 0 and 1 (sep_conv 3x3 / 5x5); here b_soft starts at 0 and every op is
  equally likely, as in EDNAS, whatever the op list.
- Each LSTM layer is PyTorch's (w_ih, w_hh; gates i, f, g, o), ENAS's single w [2H, 4H] on [x, h] (gates i, f, o, g)
  re-indexed: the same function and the same uniform initialisation, no biases.
- On the RNN space the same micro controller runs (one input per node, ops = activations), not ENAS's PTB
  controller (src/ptb/ptb_enas_controller.py, commit 2d0cd4b), which differs from it in: two LSTM steps per node,
  the first on the previous op's embedding (its h is the node's anchor and queries the inputs), the second on the
  chosen input's anchor divided by 0.1 + (i - j) (it picks the op), and no g_emb between nodes; a distance prior
  (i - j)^2 / 6 subtracted from the input logits (/ 12 in the earlier commit 00787a, which also did not carry the
  LSTM state from step to step, a bug its maintainer fixed); op logits without b_soft; and an entropy bonus of only
  the sampled choices' -p log p terms, where this controller sums every decision's full entropy.

On an any-subset cell (NAS-Bench-201) the controller does what the benchmark's ENAS baseline does
(D-X-Y/AutoDL-Projects, lib/models/cell_searchs/search_model_enas_utils.py Controller, run by exps/algos/ENAS.py):
no input decisions, one decision per edge of the full DAG in edge_id order over len(ops) + 1 codes (code 0 =
`none`, the edge left out; then the ops: NB201's five operations in the benchmark's order), each an LSTM step on
the previous code's embedding (the first on g_emb), logits = h @ w_soft + b_soft shaped as above with
c = tanh_constant / op_tanh_reduce. A sample is its edge codes (CellSpace.edge_codes), one sequence per cell, so
log P(arch) is that sequence's. The baseline's controller settings are nb201_defaults(); its own differences from
this one: a torch.nn.LSTM with biases and an nn.Linear output (bias initialised by PyTorch's default), where this
controller has ENAS's bias-free LSTM and a zero b_soft; only its first LSTM layer initialised uniform(-0.1, 0.1)
(the second keeps PyTorch's uniform(+-1/sqrt(32))); a gradient-norm clip of 5 on the controller; the entropy bonus
left in the graph (reward = accuracy + w * H with H's gradient); and its baseline (exps/algos/ENAS.py
train_controller): in the first epoch each sample's own accuracy (so the advantage is only the entropy bonus),
then per sample b - (1 - decay) * (b - reward) with b the value the previous epoch ended on, fixed for the whole
epoch, where this controller keeps its bias-corrected moving average. The NB201 search takes one Adam step of 20
samples an epoch (params.yaml nb201.search.enas.train_steps: 1; the benchmark's script: 50 steps, 1,000 rewards an
epoch); tabular, at 10 look-ups an epoch, that is one step every second epoch, 7 in its 150 look-ups.

Cost: the controller runs on the CPU, on one thread, and every pass is batched over many samples: the child phase
draws TRAIN_BLOCK architectures per pass and hands them out one per child step, the reward phase draws the rest of
the current aggregation window in one pass, and an update scores the window's `num_aggregate` samples in one pass
with gradients. Blocks are drawn from the loop's generator; drawn-but-unused samples are saved in state_dict, so a
resumed search continues exactly. A CIFAR-10 epoch at ENAS's settings (313 child steps, 300 rewards, 30 updates)
costs about half a second of host time.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from dataclasses import dataclass
from typing import ClassVar, Iterator

import numpy as np
import torch
from torch import nn

from ..knobs import knob
from ..spaces import Architecture, SearchSpace
from .base import Strategy, check_rewards, choice_frequencies, mean_or_nan, seeded_generator
from .ednas import EMABaseline

# samples per batched controller pass in the child phase (one architecture per child step is handed out of it)
TRAIN_BLOCK = 64
# samples behind probabilities(): Monte Carlo marginals (standard error <= 0.5 / sqrt(512) = 0.022 per entry)
PROBABILITY_SAMPLES = 512


@dataclass(frozen=True)
class ENASConfig:
    """The controller's settings (params.yaml: search.enas.*). Defaults: ENAS's CIFAR-10 micro search,
    melodyguan/enas scripts/cifar10_micro_search.sh (flags --controller_*); where the script sets no flag, the
    default of src/cifar10/main.py; where main.py or src/utils.py hard-code a value, that value."""

    lstm_size: int = knob(64, ge=1)                  # main.py: MicroController(lstm_size=64), hard-coded
    lstm_num_layers: int = knob(1, ge=1)             # main.py: MicroController(lstm_num_layers=1), hard-coded
    init_range: float = knob(0.1, gt=0.0)            # micro_controller.py: random_uniform_initializer(-0.1, 0.1)
    # --controller_temperature: not set by the script, main.py default None (logits not divided) = 1.0;
    # ptb_search.sh sets 5.0 (see rnn_defaults)
    temperature: float = knob(1.0, gt=0.0)
    tanh_constant: float = knob(1.10, gt=0.0)        # --controller_tanh_constant=1.10
    op_tanh_reduce: float = knob(2.5, gt=0.0)        # --controller_op_tanh_reduce=2.5 (ops: tanh_constant / 2.5)
    entropy_weight: float = knob(1e-4, ge=0.0)       # --controller_entropy_weight=0.0001
    baseline_decay: float = knob(0.99, ge=0.0, lt=1.0)  # --controller_bl_dec: not set, main.py default 0.99
    lr: float = knob(0.0035, gt=0.0)                 # --controller_lr=0.0035 (main.py: never decayed)
    adam_beta1: float = knob(0.0, ge=0.0, lt=1.0)    # utils.get_train_ops: AdamOptimizer(beta1=0.0)
    adam_beta2: float = knob(0.999, ge=0.0, lt=1.0)  # utils.get_train_ops: TF AdamOptimizer default beta2
    adam_eps: float = knob(1e-3, gt=0.0)             # utils.get_train_ops: AdamOptimizer(epsilon=1e-3)
    # where epsilon goes: tensorflow (ENAS's tf.train.AdamOptimizer: lr_t * m / (sqrt(v) + eps)) or pytorch
    # (torch.optim.Adam: lr * m_hat / (sqrt(v_hat) + eps), NAS-Bench-201's PyTorch ENAS baseline)
    adam_eps_form: str = knob("tensorflow", choices=("tensorflow", "pytorch"))
    train_steps: int = knob(30, ge=1)                # --controller_train_steps=30 (Adam steps per epoch)
    num_aggregate: int = knob(10, ge=1)              # --controller_num_aggregate=10 (samples per Adam step)


def rnn_defaults() -> ENASConfig:
    """ENAS's PTB search (melodyguan/enas scripts/ptb_search.sh, src/ptb/main.py), which differs from the CIFAR-10
    micro search in the controller's size and in every sampling and training flag."""
    return ENASConfig(
        lstm_size=100,          # ptb/main.py: PTBEnasController(lstm_size=100), hard-coded
        lstm_num_layers=1,      # ptb/main.py: lstm_num_layers=1
        temperature=5.0,        # --controller_temperature=5.0
        tanh_constant=2.5,      # --controller_tanh_constant=2.5
        op_tanh_reduce=1.0,     # ptb_enas_controller.py applies tanh_constant to the activation logits unreduced
        entropy_weight=1e-3,    # --controller_entropy_weight=0.001
        baseline_decay=0.99,    # --controller_bl_dec: not set, ptb/main.py default 0.99
        lr=1e-3,                # --controller_lr=0.001
        train_steps=100,        # --controller_train_steps=100
        num_aggregate=10,       # --controller_num_aggregate=10
    )


def nb201_defaults() -> ENASConfig:
    """The NAS-Bench-201 ENAS baseline (D-X-Y/AutoDL-Projects: exps/algos/ENAS.py, scripts-search/algos/ENAS.sh,
    configs/nas-benchmark/algos/ENAS.config, search_model_enas.py create_controller with the Controller's
    defaults), which samples each edge's operation with its own controller and flags."""
    return ENASConfig(
        lstm_size=32,           # Controller(lstm_size=32), create_controller passes no size
        lstm_num_layers=2,      # Controller(lstm_num_layers=2)
        init_range=0.1,         # nn.init.uniform_(-0.1, 0.1)
        temperature=5.0,        # Controller(temperature=5.0)
        tanh_constant=2.5,      # Controller(tanh_constant=2.5)
        op_tanh_reduce=1.0,     # the op logits take tanh_constant unreduced (every decision is an op)
        entropy_weight=1e-4,    # --controller_entropy_weight 0.0001
        baseline_decay=0.99,    # --controller_bl_dec 0.99
        lr=1e-3,                # ENAS.config controller_lr 0.001
        adam_beta1=0.0,         # ENAS.config controller_betas [0, 0.999]
        adam_beta2=0.999,
        adam_eps=1e-3,          # ENAS.config controller_eps 0.001
        adam_eps_form="pytorch",  # exps/algos/ENAS.py: torch.optim.Adam
        train_steps=50,         # --controller_train_steps 50
        num_aggregate=20,       # --controller_num_aggregate 20
    )


# --- the controller ------------------------------------------------------------------------------------------


class ENASController(nn.Module):
    """ENAS's micro controller over any SearchSpace; `run` samples, decodes greedily or scores given sequences.

    A sample is a sequence of ints, for each cell type, for each searched node: its inputs in the order they were
    drawn, then the op of each of those inputs (same order); on an any-subset cell, for each cell type, the code
    of every edge of the full DAG (CellSpace.edge_codes: 0 = none, 1 + op), with no attention parameters.
    Parameters as ENAS's, except that each LSTM layer is stored as PyTorch's (w_ih [4H, H], w_hh [4H, H], gates
    i, f, g, o) rather than ENAS's w [2H, 4H] on [x, h] (gates i, f, o, g): the same function, re-indexed, with
    the same uniform initialisation; no biases, as ENAS."""

    def __init__(self, space: SearchSpace, settings: ENASConfig, generator: torch.Generator):
        super().__init__()
        self.space = space
        self.settings = settings
        cell = space.cell
        # any-subset cells decide one code per edge: `none` and the ops (AutoDL-Projects' NB201 Controller)
        hidden, n_ops = settings.lstm_size, len(cell.ops) + (1 if cell.any_subset else 0)
        self.w_ih = nn.ParameterList(nn.Parameter(torch.empty(4 * hidden, hidden))
                                     for _ in range(settings.lstm_num_layers))
        self.w_hh = nn.ParameterList(nn.Parameter(torch.empty(4 * hidden, hidden))
                                     for _ in range(settings.lstm_num_layers))
        self.g_emb = nn.Parameter(torch.empty(1, hidden))
        self.w_emb = nn.Parameter(torch.empty(n_ops, hidden))
        self.w_soft = nn.Parameter(torch.empty(hidden, n_ops))
        # ENAS initialises b_soft to [10, 10, 0, ...] and adds a fixed [0.25, 0.25, -0.25, ...] in the normal cell:
        # a prior for its ops 0 and 1 (sep_conv 3x3 / 5x5 in its op list); here the ops start equally likely
        self.b_soft = nn.Parameter(torch.zeros(n_ops))
        if not cell.any_subset:  # the input decisions' attention (an any-subset cell has none)
            self.w_attn_1 = nn.Parameter(torch.empty(hidden, hidden))
            self.w_attn_2 = nn.Parameter(torch.empty(hidden, hidden))
            self.v_attn = nn.Parameter(torch.empty(hidden, 1))
        r = settings.init_range
        with torch.no_grad():  # from `generator` only: the global RNG is not touched
            for name, p in self.named_parameters():
                if name != "b_soft":
                    p.copy_(torch.rand(p.shape, generator=generator) * (2 * r) - r)

    def _lstm(self, x: torch.Tensor, state: list[tuple[torch.Tensor, torch.Tensor]]):
        new = []
        for w_ih, w_hh, (h, c) in zip(self.w_ih, self.w_hh, state):
            h, c = torch.lstm_cell(x, [h, c], w_ih, w_hh)
            new.append((h, c))
            x = h
        return x, new

    def _shape(self, logits: torch.Tensor, constant: float) -> torch.Tensor:
        return constant * torch.tanh(logits / self.settings.temperature)

    def run(self, batch: int, generator: torch.Generator | None = None, forced: torch.Tensor | None = None,
            greedy: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(sequences [B, L] int64, log p(sequence) [B], summed entropy of the decisions' distributions [B],
        without gradient). Decisions are drawn from `generator`, taken as the argmax (`greedy`), or read from
        `forced` [B, L] (scoring; log p carries the gradient when grad is enabled).

        Each decision only computes its shaped logits and its choice; the log-softmaxes of all input decisions
        (padded with -inf to the widest) and of all op decisions are taken at the end, two batched ops instead
        of a handful per decision."""
        s, cell = self.settings, self.space.cell
        hidden, k = s.lstm_size, cell.inputs_per_node
        widest = cell.n_inputs + cell.n_nodes - 1
        op_constant = s.tanh_constant / s.op_tanh_reduce
        rows = torch.arange(batch)
        zeros = torch.zeros(batch, hidden)
        g_emb = self.g_emb.expand(batch, hidden)
        state = [(zeros, zeros) for _ in range(s.lstm_num_layers)]
        columns: list[torch.Tensor] = []
        groups: dict[str, tuple[list[torch.Tensor], list[torch.Tensor]]] = {"input": ([], []), "op": ([], [])}

        def decide(group: str, logits: torch.Tensor) -> torch.Tensor:
            if forced is not None:
                choice = forced[:, len(columns)]
            elif greedy:
                choice = logits.argmax(-1)
            else:  # softmax: no overflow for any tanh_constant; masked (-inf) entries get weight 0
                choice = torch.multinomial(torch.softmax(logits.detach(), -1), 1, generator=generator).squeeze(1)
            columns.append(choice)
            groups[group][0].append(logits)
            groups[group][1].append(choice)
            return choice

        for _ in self.space.cell_types:
            if cell.any_subset:  # one code per edge, each step fed the previous code's embedding
                x = g_emb
                for _ in range(cell.n_edges):
                    h, state = self._lstm(x, state)
                    x = self.w_emb[decide("op", self._shape(h @ self.w_soft + self.b_soft, op_constant))]
                continue
            anchors: list[torch.Tensor] = []
            anchors_w: list[torch.Tensor] = []
            for _ in range(cell.n_inputs):
                h, state = self._lstm(g_emb, state)
                anchors.append(zeros)
                anchors_w.append(h @ self.w_attn_1)
            x = g_emb
            for node in cell.node_ids:
                anchor = torch.stack(anchors, 1)      # [B, node, H]
                anchor_w = torch.stack(anchors_w, 1)  # [B, node, H]
                chosen = torch.zeros(batch, node, dtype=torch.bool)
                for _ in range(k):  # its inputs, one after another, each distinct from the ones before
                    h, state = self._lstm(x, state)
                    query = torch.tanh(anchor_w + (h @ self.w_attn_2).unsqueeze(1))
                    logits = self._shape((query @ self.v_attn).squeeze(-1), s.tanh_constant)
                    logits = nn.functional.pad(logits.masked_fill(chosen, float("-inf")), (0, widest - node),
                                               value=float("-inf"))
                    j = decide("input", logits)
                    chosen = chosen.clone()
                    chosen[rows, j] = True
                    x = anchor[rows, j]
                for _ in range(k):  # the op of each chosen input, in the same order
                    h, state = self._lstm(x, state)
                    logits = self._shape(h @ self.w_soft + self.b_soft, op_constant)
                    x = self.w_emb[decide("op", logits)]
                h, state = self._lstm(x, state)
                anchors.append(h)
                anchors_w.append(h @ self.w_attn_1)
                x = g_emb

        log_prob = torch.zeros(batch)
        entropy = torch.zeros(batch)
        for logits, choices in groups.values():
            if not logits:  # an any-subset cell makes no input decisions
                continue
            logits = torch.stack(logits, 1)  # [B, decisions, choices]
            lp = torch.log_softmax(logits, dim=-1)
            log_prob = log_prob + lp.gather(2, torch.stack(choices, 1).unsqueeze(-1)).squeeze(-1).sum(1)
            with torch.no_grad():  # ENAS: tf.stop_gradient; masked entries have p = 0 and log p = -inf
                entropy = entropy - (lp.exp() * lp.masked_fill(torch.isinf(logits), 0.0)).sum((1, 2))
        sequences = torch.stack(columns, 1) if forced is None else forced
        return sequences, log_prob, entropy


def adam_epsilon(settings: ENASConfig, step: int) -> float:
    """torch.optim.Adam's epsilon at Adam step `step` (from 1) that makes its update the one the settings' form
    of Adam takes. TensorFlow's is lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps), i.e. PyTorch's
    lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps') with eps' = eps / sqrt(1 - beta2^t)."""
    if settings.adam_eps_form == "pytorch":
        return settings.adam_eps
    return settings.adam_eps / math.sqrt(1.0 - settings.adam_beta2 ** step)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Runs the block with one intra-op thread. The controller's tensors are a few thousand numbers: more threads
    only add fork/join and spin-waiting, which stalled epochs for tens of seconds on a busy 2-core machine."""
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# --- sequences and architectures -----------------------------------------------------------------------------


def architecture_of(space: SearchSpace, sequence: list[int]) -> Architecture:
    """The canonical architecture of a controller sequence (each node's pairs sorted by predecessor)."""
    cell = space.cell
    if cell.any_subset:  # n_edges edge codes per cell type
        n = cell.n_edges
        if len(sequence) != n * len(space.cell_types):
            raise ValueError(f"{space.name}: expected {n * len(space.cell_types)} edge codes, got {len(sequence)}")
        return space.validate({t: cell.cell_from_edge_codes(sequence[c * n : (c + 1) * n], label=f"{space.name}.{t}")
                               for c, t in enumerate(space.cell_types)})
    k, arch, pos = cell.inputs_per_node, {}, 0
    for t in space.cell_types:
        nodes = []
        for _ in cell.node_ids:
            preds, ops = sequence[pos : pos + k], sequence[pos + k : pos + 2 * k]
            nodes.append(tuple(sorted(zip(preds, ops))))
            pos += 2 * k
        arch[t] = tuple(nodes)
    return space.validate(arch)


def sequences_of(space: SearchSpace, arch: Architecture) -> list[list[int]]:
    """Every controller sequence that gives `arch`: each node's inputs in every order (ops follow their inputs),
    (inputs_per_node!) ** (nodes of all cell types) sequences; on an any-subset cell the one sequence of its edge
    codes."""
    arch = space.validate(arch)
    if space.cell.any_subset:
        return [[c for t in space.cell_types for c in space.cell.edge_codes(arch[t])]]
    per_node = []
    for t in space.cell_types:
        for pairs in arch[t]:
            per_node.append([[p for p, _ in order] + [o for _, o in order]
                             for order in itertools.permutations(pairs)])
    return [[v for node in choice for v in node] for choice in itertools.product(*per_node)]


@dataclass
class _Sample:
    sequence: list[int]
    entropy: float
    arch: Architecture


# --- the strategy ----------------------------------------------------------------------------------------------


class ENASStrategy(Strategy):
    """ENAS's controller and its REINFORCE training, in the search loop's epoch protocol: the child phase trains
    on controller samples; the reward phase scores `train_steps * num_aggregate` samples, one Adam step per
    `num_aggregate` of them."""

    name = "enas"
    # probabilities() are Monte Carlo marginals of the controller's distribution (it has no closed-form ones)
    distribution_kind: ClassVar[str] = "policy (sampled marginals)"
    distribution_title: ClassVar[str] = f"ENAS controller: choice frequencies of {PROBABILITY_SAMPLES} samples"
    baseline_title = "moving average of reward + entropy_weight x sample entropy (ENAS)"
    answer_title = "the controller's greedy cell"
    signal_panels = ((("controller_entropy",), "ENAS controller: entropy of a sample's decisions (summed)", "nats"),
                     (("controller_loss",), "ENAS controller: REINFORCE loss (mean over an epoch's updates)", "loss"))

    def __init__(self, space: SearchSpace, settings: ENASConfig, seed: int):
        super().__init__(space, settings, seed)
        self.seed = int(seed)
        self.controller = ENASController(space, settings, torch.Generator().manual_seed(self.seed))
        self.optimizer = torch.optim.Adam(self.controller.parameters(), lr=settings.lr,
                                          betas=(settings.adam_beta1, settings.adam_beta2), eps=settings.adam_eps)
        self.baseline = EMABaseline(settings.baseline_decay)
        self.updates = 0                        # Adam steps taken
        self._train_block: list[_Sample] = []   # drawn for the child phase, not yet handed out
        self._pending: list[_Sample] = []       # drawn for the current aggregation window, not yet proposed
        self._outstanding: list[_Sample] = []   # proposed, not yet observed
        self._aggregate: list[tuple[list[int], float]] = []  # (sequence, advantage) of the window's observed samples
        self._stats: dict[str, list[float]] = {"advantage": [], "entropy": [], "loss": []}

    # --- sampling ---------------------------------------------------------------------------------------------

    def _draw(self, n: int, generator: torch.Generator | None = None, greedy: bool = False) -> list[_Sample]:
        with torch.no_grad(), one_thread():
            sequences, _, entropy = self.controller.run(n, generator=generator, greedy=greedy)
        return [_Sample(seq, ent, architecture_of(self.space, seq))
                for seq, ent in zip(sequences.tolist(), entropy.tolist())]

    def sample(self, generator: torch.Generator) -> Architecture:
        return self._draw(1, generator)[0].arch

    # --- the epoch protocol -------------------------------------------------------------------------------------

    def begin_epoch(self, epoch: int) -> None:
        self._stats = {"advantage": [], "entropy": [], "loss": []}
        self._train_block = []  # each epoch's child samples come from that epoch's generator

    def train_architecture(self, generator: torch.Generator) -> Architecture:
        if not self._train_block:
            self._train_block = self._draw(TRAIN_BLOCK, generator)
        return self._train_block.pop(0).arch

    def rewards_wanted(self, epoch: int, policy_batches: int) -> int:
        return self.settings.train_steps * self.settings.num_aggregate

    def propose(self, generator: torch.Generator, limit: int) -> list[Architecture]:
        """Up to `limit` samples of the current aggregation window (drawn together, handed out in order);
        proposals of an earlier call that were never observed are dropped."""
        if limit < 1:
            raise ValueError(f"propose needs limit >= 1, got {limit}")
        if not self._pending:
            self._pending = self._draw(self.settings.num_aggregate - len(self._aggregate), generator)
        self._outstanding, self._pending = self._pending[:limit], self._pending[limit:]
        return [s.arch for s in self._outstanding]

    def observe(self, archs: list[Architecture], rewards: list[float]) -> None:
        check_rewards(archs, rewards)
        given = [self.space.validate(a) for a in archs]
        if given != [s.arch for s in self._outstanding[: len(given)]]:
            raise ValueError("ENAS learns from the architectures of its last propose, in order")
        w = self.settings.entropy_weight
        for sample, reward in zip(self._outstanding, rewards):
            reward = reward + w * sample.entropy  # ENAS: self.reward += entropy_weight * sample_entropy
            baseline = self.baseline.value
            advantage = 0.0 if math.isnan(baseline) else reward - baseline
            self.baseline.update(reward)
            self._aggregate.append((sample.sequence, advantage))
            self._stats["advantage"].append(advantage)
            self._stats["entropy"].append(sample.entropy)
            if len(self._aggregate) == self.settings.num_aggregate:
                self._update()
        self._outstanding = self._outstanding[len(given):]

    def _update(self) -> None:
        """One Adam step on the mean REINFORCE loss of the aggregation window's samples."""
        sequences = torch.tensor([seq for seq, _ in self._aggregate], dtype=torch.int64)
        advantages = torch.tensor([adv for _, adv in self._aggregate], dtype=torch.float32)
        with one_thread():
            _, log_prob, _ = self.controller.run(len(sequences), forced=sequences)
            loss = -(log_prob * advantages).mean()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for group in self.optimizer.param_groups:
                group["eps"] = adam_epsilon(self.settings, self.updates + 1)
            self.optimizer.step()
        self.updates += 1
        self._stats["loss"].append(float(loss.detach()))
        self._aggregate, self._pending, self._train_block = [], [], []  # drawn from the old controller

    def epoch_statistics(self) -> dict[str, float]:
        """baseline: the moving average of reward + entropy bonus; controller_entropy: mean over the epoch's
        rewarded samples of the summed entropy of their decisions (ENAS's logged `ent`, nats); controller_loss:
        mean over the epoch's Adam steps of the aggregated loss; advantage: mean over the rewarded samples."""
        return {"baseline": self.baseline.value,
                "controller_entropy": mean_or_nan(self._stats["entropy"]),
                "controller_loss": mean_or_nan(self._stats["loss"]),
                "advantage": mean_or_nan(self._stats["advantage"])}

    # --- what it found --------------------------------------------------------------------------------------

    def probabilities(self) -> dict[str, np.ndarray]:
        """Choice frequencies among PROBABILITY_SAMPLES controller samples drawn with a generator seeded from
        (seed, updates): node combinations per node, ops per edge conditional on the edge being selected
        (uniform for an edge no sample selected). Does not touch the loop's generator."""
        generator = seeded_generator(self.seed, "probabilities", self.updates)
        return choice_frequencies(self.space, [s.arch for s in self._draw(PROBABILITY_SAMPLES, generator)])

    def final_architecture(self) -> Architecture:
        """Greedy decoding: the most probable choice at every decision, in the controller's order."""
        return self._draw(1, greedy=True)[0].arch

    def derive_candidates(self, generator: torch.Generator, samples: int) -> list[Architecture]:
        return [s.arch for s in self._draw(samples, generator)] if samples > 0 else []

    def log_prob(self, arch: Architecture) -> float:
        """log P(arch): the controller's probability of the canonical architecture, summed over every order in
        which each node's inputs can be drawn (exact; one batched pass over those sequences); any-subset cells:
        the probability of its one sequence of edge codes."""
        sequences = torch.tensor(sequences_of(self.space, arch), dtype=torch.int64)
        with torch.no_grad(), one_thread():
            _, log_prob, _ = self.controller.run(len(sequences), forced=sequences)
        return float(torch.logsumexp(log_prob.double(), 0))

    # --- resume ------------------------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        def samples(xs: list[_Sample]) -> dict:
            return {"sequences": [list(s.sequence) for s in xs], "entropies": [float(s.entropy) for s in xs]}

        return {"controller": self.controller.state_dict(), "optimizer": self.optimizer.state_dict(),
                "baseline": self.baseline.state_dict(), "seed": self.seed, "updates": self.updates,
                "train_block": samples(self._train_block), "pending": samples(self._pending),
                "outstanding": samples(self._outstanding),
                "aggregate": {"sequences": [list(seq) for seq, _ in self._aggregate],
                              "advantages": [float(adv) for _, adv in self._aggregate]}}

    def load_state_dict(self, state: dict) -> None:
        def samples(d: dict) -> list[_Sample]:
            return [_Sample(list(seq), float(ent), architecture_of(self.space, seq))
                    for seq, ent in zip(d["sequences"], d["entropies"])]

        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline.load_state_dict(state["baseline"])
        self.seed, self.updates = int(state["seed"]), int(state["updates"])
        self._train_block = samples(state["train_block"])
        self._pending = samples(state["pending"])
        self._outstanding = samples(state["outstanding"])
        self._aggregate = [(list(seq), float(adv)) for seq, adv in
                           zip(state["aggregate"]["sequences"], state["aggregate"]["advantages"])]
