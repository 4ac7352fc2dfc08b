"""The recurrent cell space of EDNAS (DARTS-style highway cell): node 0 = tanh(x_t, h_{t-1}) is fixed;
8 searched nodes each take ONE predecessor and one of four activations. 8! * 4^8 ~ 2.64e9 cells."""

from .base import CellSpace, SearchSpace

RNN_ACTIVATIONS: tuple[str, ...] = ("tanh", "relu", "sigmoid", "identity")

RNN_CELL = CellSpace(n_inputs=1, n_nodes=8, inputs_per_node=1, ops=RNN_ACTIVATIONS)
RNN_SPACE = SearchSpace(name="rnn", cell=RNN_CELL, cell_types=("recurrent",), concat=tuple(range(1, 9)))
