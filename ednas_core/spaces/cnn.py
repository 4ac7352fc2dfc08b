"""The convolutional cell space of EDNAS: 2 inputs, 4 searched nodes taking 2 inputs each, 7 operations,
separate policies for normal and reduction cells. 1*3*6*10 * 7^8 ~ 1.04e9 cells per cell type."""

from ..ops import CNN_OPS
from .base import CellSpace, SearchSpace

CNN_CELL = CellSpace(n_inputs=2, n_nodes=4, inputs_per_node=2, ops=CNN_OPS)
CNN_SPACE = SearchSpace(name="cnn", cell=CNN_CELL, cell_types=("normal", "reduce"), concat=(2, 3, 4, 5))
