"""The NAS-Bench-201 cell space (Dong and Yang, ICLR 2020; NATS-Bench's topology space) in EDNAS's decoupled form.

The benchmark's cell has 4 nodes: node 0 is the cell input, nodes 1..3 sum one operation of every earlier node,
chosen among none, skip_connect, nor_conv_1x1, nor_conv_3x3 and avg_pool_3x3 (6 edges, 5^6 = 15,625 cells).
EDNAS decouples it exactly: node i's structure policy picks the subset of its predecessors whose edges are not
`none` (2, 4 and 8 subsets), and each edge's operation policy picks one of the 4 other operations, so that
2*4*8 structures with 4^k operations on their k edges give the same 15,625 cells. The output of the cell is
node 3 alone (no concatenation).

Architecture strings are the benchmark's: node after node, every incoming edge as op~input,
    |nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|
"""

from __future__ import annotations

from .base import Architecture, CellSpace, SearchSpace

NONE = "none"
NB201_OPS: tuple[str, ...] = ("skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NB201_ALL_OPS: tuple[str, ...] = (NONE, *NB201_OPS)  # the benchmark's order; index = edge code (edge_codes)

NB201_CELL = CellSpace(n_inputs=1, n_nodes=3, inputs_per_node=None, ops=NB201_OPS)
NB201_SPACE = SearchSpace(name="nb201", cell=NB201_CELL, cell_types=("cell",), concat=(3,))


def to_nb201_string(arch: Architecture) -> str:
    """The benchmark's architecture string of an NB201-space architecture."""
    cell = NB201_CELL
    codes = cell.edge_codes(NB201_SPACE.validate(arch)["cell"])
    nodes = ["|" + "|".join(f"{NB201_ALL_OPS[codes[cell.edge_id(node, pred)]]}~{pred}" for pred in range(node)) + "|"
             for node in cell.node_ids]
    return "+".join(nodes)


def from_nb201_string(text: str) -> Architecture:
    """Parses an architecture string (as to_nb201_string writes it); one-line ValueError naming what is wrong."""
    cell = NB201_CELL
    example = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    nodes = str(text).strip().split("+")
    if len(nodes) != cell.n_nodes:
        raise ValueError(f"NB201 architecture string {text!r} has {len(nodes)} nodes; expected {cell.n_nodes}, "
                         f"like {example}")
    codes = [0] * cell.n_edges
    for node, part in zip(cell.node_ids, nodes):
        if not (part.startswith("|") and part.endswith("|")):
            raise ValueError(f"NB201 architecture string {text!r}: node {node} must be written |op~input|...|")
        edges = part[1:-1].split("|")
        if len(edges) != node:
            raise ValueError(f"NB201 architecture string {text!r}: node {node} needs {node} edges "
                             f"(one from each earlier node), got {len(edges)}")
        for pred, edge in enumerate(edges):
            op, _, inp = edge.partition("~")
            if op not in NB201_ALL_OPS:
                raise ValueError(f"NB201 architecture string {text!r}: unknown operation {op!r}; "
                                 f"known: {', '.join(NB201_ALL_OPS)}")
            if inp != str(pred):
                raise ValueError(f"NB201 architecture string {text!r}: node {node}'s edge {pred + 1} must come from "
                                 f"node {pred}, got {edge!r}")
            codes[cell.edge_id(node, pred)] = NB201_ALL_OPS.index(op)
    return {"cell": cell.cell_from_edge_codes(codes, label="nb201")}
