"""CellSpace geometry and conversions (spaces/base.py): combinations, edge numbering, round trips, validation."""

import itertools
import math

import pytest

from ednas_core.spaces import CNN_SPACE, RNN_SPACE
from ednas_core.spaces.base import CellSpace

CELL = CNN_SPACE.cell
TOY = CellSpace(n_inputs=2, n_nodes=2, inputs_per_node=2, ops=("a", "b", "c"))


def test_combos_are_lexicographic_distinct_predecessors():
    for node, node_combos in zip(CELL.node_ids, CELL.combos):
        assert list(node_combos) == list(itertools.combinations(range(node), 2))
        assert all(len(set(c)) == 2 and max(c) < node for c in node_combos)


def test_edges_listed_in_edge_id_order():
    assert len(CELL.edges) == CELL.n_edges
    for k, (pred, node) in enumerate(CELL.edges):
        assert CELL.edge_id(node, pred) == k


def test_edge_id_rejects_edges_outside_the_dag():
    for node, pred in [(1, 0), (6, 0), (3, 3), (4, 5), (2, -1)]:
        with pytest.raises(ValueError, match="no edge"):
            CELL.edge_id(node, pred)


def test_toy_space_size_and_counts():
    # node 2: C(2,2)=1, node 3: C(3,2)=3; 4 selected edges with 3 ops each
    assert [len(c) for c in TOY.combos] == [1, 3]
    assert TOY.n_edges == 2 + 3
    assert TOY.size == 1 * 3 * 3**4


def _all_choices(cell):
    """Every combination index tuple, paired with a deterministic op assignment over the edges."""
    for k, combo_indices in enumerate(itertools.product(*[range(len(c)) for c in cell.combos])):
        edge_ops = [(k + 3 * e) % len(cell.ops) for e in range(cell.n_edges)]
        yield list(combo_indices), edge_ops


@pytest.mark.parametrize("space", [CNN_SPACE, RNN_SPACE], ids=["cnn", "rnn"])
def test_cell_from_choices_and_choices_of_round_trip(space):
    cell_space = space.cell
    n = 0
    for combo_indices, edge_ops in _all_choices(cell_space):
        cell = cell_space.cell_from_choices(combo_indices, edge_ops)
        assert len(cell) == cell_space.n_nodes
        assert cell_space.validate(cell) == cell  # already canonical
        got_combos, edge_ids, op_idx = cell_space.choices_of(cell)
        assert got_combos == combo_indices
        # the selected edges are exactly those of the chosen combinations, in node order
        expected_edges = [cell_space.edge_id(node, p)
                          for k, node in enumerate(cell_space.node_ids)
                          for p in cell_space.combos[k][combo_indices[k]]]
        assert edge_ids == expected_edges
        assert op_idx == [edge_ops[e] for e in edge_ids]
        assert len(edge_ids) == cell_space.n_nodes * cell_space.inputs_per_node
        n += 1
    assert n == math.prod(len(c) for c in cell_space.combos)


def test_validate_canonicalises_pair_order():
    cell = (((1, 3), (0, 2)), ((2, 0), (0, 1)), ((3, 6), (1, 5)), ((4, 4), (0, 0)))
    canon = CELL.validate(cell)
    assert canon == (((0, 2), (1, 3)), ((0, 1), (2, 0)), ((1, 5), (3, 6)), ((0, 0), (4, 4)))
    assert all(isinstance(v, int) for node in canon for pair in node for v in pair)


GOOD = (((0, 0), (1, 0)), ((0, 0), (1, 0)), ((0, 0), (1, 0)), ((0, 0), (1, 0)))


def _with_node(k, pairs):
    cell = list(GOOD)
    cell[k] = pairs
    return tuple(cell)


@pytest.mark.parametrize(
    "cell, pattern",
    [
        (GOOD[:3], r"expected 4 nodes, got 3"),
        (GOOD + (((0, 0), (1, 0)),), r"expected 4 nodes, got 5"),
        (_with_node(1, ((1, 0), (1, 2))), r"node 3 needs 2 distinct inputs"),
        (_with_node(0, ((0, 0),)), r"node 2 needs 2 distinct inputs"),
        (_with_node(1, ((0, 0), (3, 1))), r"node 3 cannot take input from node 3"),
        (_with_node(3, ((0, 0), (7, 1))), r"node 5 cannot take input from node 7"),
        (_with_node(2, ((0, 0), (1, 7))), r"op index 7 out of range 0..6"),
        (_with_node(2, ((0, -1), (1, 0))), r"op index -1 out of range"),
    ],
)
def test_validate_rejects_bad_cells_with_a_message(cell, pattern):
    with pytest.raises(ValueError, match=pattern) as err:
        CELL.validate(cell, label="cnn.normal")
    assert "cnn.normal" in str(err.value)


def test_search_space_validate_needs_every_cell_type():
    arch = {"normal": GOOD}
    with pytest.raises(ValueError, match="needs cells"):
        CNN_SPACE.validate(arch)
    full = CNN_SPACE.validate({"normal": GOOD, "reduce": GOOD})
    assert CNN_SPACE.arch_key(full) == (GOOD, GOOD)
