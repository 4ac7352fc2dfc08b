"""The recurrent language model of the PTB search: a DARTS-style highway cell with one weight matrix per DAG edge.

Per time step: node 0 is [c0, h0] = split(W0 [x_t * mx ; h_{t-1} * mh]), s0 = h_{t-1} + sigmoid(c0) (tanh(h0) - h_{t-1});
node i with predecessor j and activation f: [c, h~] = split(W_ji (s_j * mh)), s_i = s_j + sigmoid(c) (f(h~) - s_j);
the output h_t is the mean of nodes 1..8. As in DARTS, the h-mask also drops the node inputs s_j while training.
Only the edges of the architecture given to forward() are run, chosen from host ints; the decoder is tied to the
embedding. The evaluation network (models/rnn.py) is this class with only a genotype's edges.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..spaces import RNN_SPACE, Architecture

INITRANGE = 0.04   # DARTS: cell weights uniform(-0.04, 0.04)
EMB_INITRANGE = 0.1

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid, "identity": lambda x: x,
}
_ACTS = tuple(ACTIVATIONS[name] for name in RNN_SPACE.cell.ops)


def _mask(shape: tuple[int, ...], p: float, like: torch.Tensor) -> torch.Tensor:
    """Inverted-dropout mask (kept entries scaled by 1 / (1 - p)) from torch's global generator."""
    return like.new_empty(shape).bernoulli_(1.0 - p) / (1.0 - p)


def activation_regularisation(raw: torch.Tensor, dropped: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """DARTS / AWD-LSTM: alpha * mean(dropped outputs^2) + beta * mean((h_t - h_{t-1})^2) over a window's raw
    cell outputs [T, B, H]; 0 for terms whose weight is 0 (and TAR for a 1-step window)."""
    penalty = raw.new_zeros(())
    if alpha > 0:
        penalty = penalty + alpha * dropped.pow(2).mean()
    if beta > 0 and raw.shape[0] > 1:
        penalty = penalty + beta * (raw[1:] - raw[:-1]).pow(2).mean()
    return penalty


def edge_key(pred: int, node: int) -> str:
    return f"e{pred}_{node}"


class RNNSearchNetwork(nn.Module):
    """forward(tokens [T, B], hidden [B, H], arch) -> (logits [T, B, V], last hidden [B, H]).
    `edges` lists the (pred, node) pairs that get a weight matrix; default: all 36 edges of the RNN space."""

    def __init__(self, vocab_size: int, emb: int, hidden: int, *, dropout: float = 0.75, dropouth: float = 0.25,
                 dropoutx: float = 0.75, dropouti: float = 0.2, dropoute: float = 0.0,
                 edges: Iterable[tuple[int, int]] | None = None):
        super().__init__()
        if emb != hidden:
            raise ValueError(f"the decoder is tied to the embedding, so emb must equal hidden (got {emb} and {hidden})")
        self.hidden = hidden
        self.dropout, self.dropouth, self.dropoutx, self.dropouti, self.dropoute = (
            dropout, dropouth, dropoutx, dropouti, dropoute)
        self.encoder = nn.Embedding(vocab_size, emb)
        nn.init.uniform_(self.encoder.weight, -EMB_INITRANGE, EMB_INITRANGE)
        self.w0 = nn.Parameter(torch.empty(emb + hidden, 2 * hidden).uniform_(-INITRANGE, INITRANGE))
        self.edge_weights = nn.ParameterDict({
            edge_key(pred, node): nn.Parameter(torch.empty(hidden, 2 * hidden).uniform_(-INITRANGE, INITRANGE))
            for pred, node in (RNN_SPACE.cell.edges if edges is None else edges)
        })
        self.decoder_bias = nn.Parameter(torch.zeros(vocab_size))

    def init_hidden(self, batch_size: int) -> torch.Tensor:
        return self.w0.new_zeros(batch_size, self.hidden)

    def forward(self, tokens: torch.Tensor, hidden: torch.Tensor, arch: Architecture,
                return_outputs: bool = False) -> tuple[torch.Tensor, ...]:
        """(logits, last hidden); with return_outputs also the cell outputs [T, B, H] before and after the
        output dropout (for the activation regularisers)."""
        plan = [(pred, _ACTS[op], self.edge_weights[edge_key(pred, node)])
                for node, ((pred, op),) in zip(RNN_SPACE.cell.node_ids, arch["recurrent"])]
        T, B = tokens.shape
        train = self.training
        weight = self.encoder.weight
        if train and self.dropoute:
            weight = weight * _mask((weight.shape[0], 1), self.dropoute, weight)
        x = F.embedding(tokens, weight)
        if train and self.dropouti:
            x = x * _mask((1, B, x.shape[2]), self.dropouti, x)
        h_mask = _mask((B, self.hidden), self.dropouth, x) if train and self.dropouth else None
        if train and self.dropoutx:
            x = x * _mask((B, x.shape[2]), self.dropoutx, x)
        emb = x.shape[2]
        x_proj = x @ self.w0[:emb]  # the input half of W0 for every time step in one matmul
        w0_h = self.w0[emb:]
        outputs = []
        for t in range(T):
            hidden = self._step(x_proj[t], hidden, w0_h, h_mask, plan)
            outputs.append(hidden)
        raw = out = torch.stack(outputs)
        if train and self.dropout:
            out = out * _mask((1, B, self.hidden), self.dropout, out)
        logits = F.linear(out, self.encoder.weight, self.decoder_bias)
        return (logits, hidden, raw, out) if return_outputs else (logits, hidden)

    def _step(self, x_proj: torch.Tensor, h_prev: torch.Tensor, w0_h: torch.Tensor, h_mask: torch.Tensor | None,
              plan: list) -> torch.Tensor:
        H = self.hidden
        h_in = h_prev if h_mask is None else h_prev * h_mask
        c0, h0 = (x_proj + h_in @ w0_h).split(H, dim=-1)
        states = [torch.lerp(h_prev, torch.tanh(h0), torch.sigmoid(c0))]  # h + sigmoid(c0) (tanh(h0) - h)
        for pred, act, w in plan:
            s = states[pred]
            c, h = ((s if h_mask is None else s * h_mask) @ w).split(H, dim=-1)
            states.append(torch.lerp(s, act(h), torch.sigmoid(c)))
        return torch.stack(states[1:]).mean(0)
