"""The memory probe's workload: its heaviest search architecture is a valid architecture of the CNN space."""

from __future__ import annotations

from benchmarks.memory import heaviest_architecture
from ednas_core.spaces import CNN_SPACE


def test_heaviest_architecture_is_valid_and_all_sep_conv_5x5():
    arch = heaviest_architecture()
    assert set(arch) == set(CNN_SPACE.cell_types)
    for cell in arch.values():
        assert CNN_SPACE.cell.validate(cell) == cell
        _, edges, ops = CNN_SPACE.cell.choices_of(cell)
        assert len(set(edges)) == 2 * CNN_SPACE.cell.n_nodes
        assert {CNN_SPACE.cell.ops[o] for o in ops} == {"sep_conv_5x5"}
