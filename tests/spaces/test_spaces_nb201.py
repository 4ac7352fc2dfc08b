"""The NAS-Bench-201 space in EDNAS's decoupled form: 2*4*8 structures with 4^k operations give exactly the
benchmark's 15,625 cells, and its architecture strings convert both ways (every row of the real table)."""

from __future__ import annotations

import csv
import itertools
import os
from pathlib import Path

import pytest

from ednas_core.genotypes import Genotype, from_architecture, to_architecture
from ednas_core.spaces import NB201_SPACE, from_nb201_string, to_nb201_string
from ednas_core.spaces.nb201 import NB201_ALL_OPS

CELL = NB201_SPACE.cell
EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def every_cell() -> list[dict]:
    """All cells through the decoupled choices: a predecessor subset per node, an op per selected edge."""
    cells = []
    for combos in itertools.product(*(range(len(c)) for c in CELL.combos)):
        chosen = [CELL.combos[k][i] for k, i in enumerate(combos)]
        n_edges = sum(len(c) for c in chosen)
        for ops in itertools.product(range(len(CELL.ops)), repeat=n_edges):
            it = iter(ops)
            cells.append({"cell": tuple(tuple((p, next(it)) for p in preds) for preds in chosen)})
    return cells


def test_structure_choices_are_the_predecessor_subsets():
    assert [len(c) for c in CELL.combos] == [2, 4, 8]
    assert CELL.combos[2][0] == () and CELL.combos[2][-1] == (0, 1, 2)
    assert CELL.n_edges == 6 and len(CELL.ops) == 4
    assert CELL.size == NB201_SPACE.size == 5 ** 6 == 15625


def test_decoupled_choices_enumerate_each_benchmark_cell_once():
    strings = [to_nb201_string(arch) for arch in every_cell()]
    assert len(strings) == 15625 and len(set(strings)) == 15625
    for text in strings[:: 97]:
        assert to_nb201_string(from_nb201_string(text)) == text


def test_string_and_edge_codes():
    arch = from_nb201_string(EXAMPLE)
    assert arch == {"cell": (((0, 2),), ((0, 2), (1, 3)), ((0, 0), (1, 2), (2, 0)))}
    assert CELL.edge_codes(arch["cell"]) == (3, 3, 4, 1, 3, 1)
    assert [NB201_ALL_OPS[c] for c in CELL.edge_codes(arch["cell"])] == [
        "nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3", "skip_connect", "nor_conv_3x3", "skip_connect"]
    empty = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    assert from_nb201_string(empty) == {"cell": ((), (), ())}
    assert to_nb201_string({"cell": ((), (), ())}) == empty


@pytest.mark.parametrize("text, says", [
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|", "has 2 nodes; expected 3"),
    ("|conv_7x7~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown operation 'conv_7x7'"),
    ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 needs 2 edges"),
    ("|none~0|+|none~1|none~0|+|none~0|none~1|none~2|", "must come from node 0"),
    ("none~0+|none~0|none~1|+|none~0|none~1|none~2|", "must be written |op~input|"),
])
def test_bad_strings_say_what_is_wrong(text, says):
    with pytest.raises(ValueError, match=None) as err:
        from_nb201_string(text)
    assert says in str(err.value) and "\n" not in str(err.value)


def test_genotype_json_lists_every_edge_and_the_string():
    arch = from_nb201_string("|nor_conv_1x1~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|")
    genotype = from_architecture(NB201_SPACE, arch)
    data = genotype.to_dict()
    assert data["cell"] == [["nor_conv_1x1", 0], ["none", 0], ["skip_connect", 1], ["avg_pool_3x3", 0],
                            ["none", 1], ["nor_conv_3x3", 2]]
    assert data["arch_string"] == to_nb201_string(arch) and data["cell_concat"] == [3]
    assert to_architecture(Genotype.from_dict(data)) == arch
    data["cell"][1] = ["none", 1]
    with pytest.raises(ValueError, match="one \\[op, input\\] per edge"):
        Genotype.from_dict(data)


def test_fixed_input_spaces_keep_their_sizes():
    from ednas_core.spaces import CNN_SPACE, RNN_SPACE

    assert CNN_SPACE.cell.size == 1 * 3 * 6 * 10 * 7 ** 8
    assert RNN_SPACE.cell.size == 40320 * 4 ** 8


@pytest.mark.skipif("EDNAS_DATA_ROOT" not in os.environ, reason="EDNAS_DATA_ROOT is not set (NB201 tables absent)")
def test_every_row_of_the_real_table_round_trips():
    path = Path(os.environ["EDNAS_DATA_ROOT"]) / "nb201" / "nats_bench.csv"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    with open(path, newline="") as f:
        strings = [row["ArchitectureString"] for row in csv.DictReader(f)]
    assert len(strings) == 15625 == len(set(strings))
    assert all(to_nb201_string(from_nb201_string(s)) == s for s in strings)
    assert {to_nb201_string(a) for a in every_cell()} == set(strings)
