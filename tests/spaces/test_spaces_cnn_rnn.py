"""The CNN and RNN instances of the decoupled cell space: sizes from EDNAS_SPEC.md sections 1 and 2."""

import math

from ednas_core.ops import CNN_OPS
from ednas_core.spaces import CNN_SPACE, NB201_SPACE, RNN_SPACE, SPACES
from ednas_core.spaces.rnn import RNN_ACTIVATIONS


def test_cnn_cell_geometry():
    cell = CNN_SPACE.cell
    assert cell.ops == CNN_OPS and len(cell.ops) == 7 and "none" not in cell.ops
    assert list(cell.node_ids) == [2, 3, 4, 5]
    assert [len(c) for c in cell.combos] == [1, 3, 6, 10]
    assert cell.max_combos == 10
    assert cell.n_edges == 14
    assert CNN_SPACE.cell_types == ("normal", "reduce")
    assert CNN_SPACE.concat == (2, 3, 4, 5)


def test_cnn_edge_ids_in_darts_order():
    cell = CNN_SPACE.cell
    assert [cell.edge_id(2, p) for p in range(2)] == [0, 1]
    assert [cell.edge_id(3, p) for p in range(3)] == [2, 3, 4]
    assert [cell.edge_id(4, p) for p in range(4)] == [5, 6, 7, 8]
    assert [cell.edge_id(5, p) for p in range(5)] == [9, 10, 11, 12, 13]


def test_cnn_space_size_is_the_papers_count():
    size = CNN_SPACE.cell.size
    assert size == 1 * 3 * 6 * 10 * 7**8 == 180 * 5_764_801
    assert math.isclose(size, 1.04e9, rel_tol=0.01)
    assert CNN_SPACE.size == size**2  # normal and reduction cells are independent


def test_rnn_cell_geometry_and_size():
    cell = RNN_SPACE.cell
    assert cell.ops == RNN_ACTIVATIONS == ("tanh", "relu", "sigmoid", "identity")
    assert list(cell.node_ids) == list(range(1, 9))
    assert [len(c) for c in cell.combos] == list(range(1, 9))
    assert all(c == tuple((j,) for j in range(i)) for i, c in zip(cell.node_ids, cell.combos))
    assert cell.n_edges == 36
    assert [cell.edge_id(8, p) for p in range(8)] == list(range(28, 36))
    assert cell.size == math.factorial(8) * 4**8
    assert math.isclose(cell.size, 2.64e9, rel_tol=0.01)
    assert RNN_SPACE.cell_types == ("recurrent",)
    assert RNN_SPACE.concat == tuple(range(1, 9))
    assert RNN_SPACE.size == cell.size


def test_spaces_registry():
    assert SPACES == {"cnn": CNN_SPACE, "rnn": RNN_SPACE, "nb201": NB201_SPACE}
