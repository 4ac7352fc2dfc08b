"""The PTB evaluation network: the search network's highway cell with only a genotype's eight edges
(emb = hidden = 850 and dropouts .75/.25/.75/.2/.1 by default; about 23M parameters with a 10,000-word vocabulary)."""

from __future__ import annotations

import torch

from ..genotypes import Genotype, to_architecture
from ..spaces import RNN_SPACE
from ..supernet.rnn import RNNSearchNetwork


class RNNEvalNetwork(RNNSearchNetwork):
    """forward(tokens [T, B], hidden [B, H]) -> (logits [T, B, V], last hidden [B, H])."""

    def __init__(self, genotype: Genotype, vocab_size: int, emb: int = 850, hidden: int = 850, *,
                 dropout: float = 0.75, dropouth: float = 0.25, dropoutx: float = 0.75, dropouti: float = 0.2,
                 dropoute: float = 0.1):
        if genotype.space != RNN_SPACE.name:
            raise ValueError(f"the PTB network needs an rnn genotype, got space {genotype.space!r}")
        arch = to_architecture(genotype)
        edges = [(pred, node) for node, ((pred, _),) in zip(RNN_SPACE.cell.node_ids, arch["recurrent"])]
        super().__init__(vocab_size, emb, hidden, dropout=dropout, dropouth=dropouth, dropoutx=dropoutx,
                         dropouti=dropouti, dropoute=dropoute, edges=edges)
        self.arch = arch
        self.genotype = genotype

    def forward(self, tokens: torch.Tensor, hidden: torch.Tensor,  # type: ignore[override]
                return_outputs: bool = False) -> tuple[torch.Tensor, ...]:
        return super().forward(tokens, hidden, self.arch, return_outputs)


def count_parameters(model: torch.nn.Module) -> int:
    """Trainable parameters (the tied decoder weight counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
