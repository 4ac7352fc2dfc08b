"""The decoupled cell search space shared by the CNN, RNN and NAS-Bench-201 spaces of EDNAS.

A cell is a DAG with `n_inputs` input nodes followed by `n_nodes` searched nodes. Searched node i picks
`inputs_per_node` distinct predecessors among the i nodes before it (the structure decision: one index into
the list of combinations) and one operation for each picked edge (the operation decisions: one index into
`ops` per edge of the full DAG). With `inputs_per_node=None` a node picks any subset of its predecessors,
the empty one included (NAS-Bench-201: an edge left out is its `none` operation). A sampled cell is kept on
the host as plain ints:

    CellArch = ((pred, op), (pred, op)),   # node n_inputs      (pairs sorted by pred)
               ((pred, op), (pred, op)),   # node n_inputs + 1
               ...

An Architecture maps each cell type (CNN: normal, reduce; RNN: recurrent) to its CellArch.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property

Edge = tuple[int, int]  # (predecessor node, op index)
NodeArch = tuple[Edge, ...]
CellArch = tuple[NodeArch, ...]
Architecture = dict[str, CellArch]


@dataclass(frozen=True)
class CellSpace:
    """Geometry of one cell type: which combinations each node can pick and how edges are numbered."""

    n_inputs: int
    n_nodes: int
    inputs_per_node: int | None  # None: any subset of the predecessors (0..i inputs)
    ops: tuple[str, ...]

    @property
    def any_subset(self) -> bool:
        """True when a node takes any subset of its predecessors (edges may be absent: NB201's `none`)."""
        return self.inputs_per_node is None

    @property
    def node_ids(self) -> range:
        """Indices of the searched nodes (inputs come first)."""
        return range(self.n_inputs, self.n_inputs + self.n_nodes)

    @cached_property
    def combos(self) -> tuple[tuple[tuple[int, ...], ...], ...]:
        """For each searched node, its predecessor combinations in lexicographic order (any-subset cells: by
        size, then lexicographic; the empty combination first)."""
        if self.any_subset:
            return tuple(tuple(c for k in range(i + 1) for c in itertools.combinations(range(i), k))
                         for i in self.node_ids)
        return tuple(tuple(itertools.combinations(range(i), self.inputs_per_node)) for i in self.node_ids)

    @cached_property
    def _combo_index(self) -> tuple[dict[tuple[int, ...], int], ...]:
        return tuple({c: k for k, c in enumerate(node_combos)} for node_combos in self.combos)

    @property
    def max_combos(self) -> int:
        return max(len(c) for c in self.combos)

    @property
    def n_edges(self) -> int:
        """Edges of the full DAG: every node has one edge from each node before it."""
        return sum(self.node_ids)

    def edge_id(self, node: int, pred: int) -> int:
        """Index of edge pred -> node in the full DAG, numbered node by node (DARTS order)."""
        if not (self.n_inputs <= node < self.n_inputs + self.n_nodes and 0 <= pred < node):
            raise ValueError(f"no edge {pred}->{node} in a cell with {self.n_inputs} inputs and {self.n_nodes} nodes")
        return sum(range(self.n_inputs, node)) + pred

    @cached_property
    def edges(self) -> tuple[tuple[int, int], ...]:
        """(pred, node) of every edge, in edge_id order."""
        return tuple((j, i) for i in self.node_ids for j in range(i))

    @property
    def size(self) -> int:
        """Number of distinct cells: per node, the sum over its combinations of ops^(edges selected)."""
        n = 1
        for node_combos in self.combos:
            n *= sum(len(self.ops) ** len(c) for c in node_combos)
        return n

    # --- conversions between sampled indices and CellArch -------------------------------------------------

    def cell_from_choices(self, combo_indices: list[int], edge_ops: list[int]) -> CellArch:
        """Builds a CellArch from one combination index per node and one op index per DAG edge."""
        nodes = []
        for k, node in enumerate(self.node_ids):
            preds = self.combos[k][combo_indices[k]]
            nodes.append(tuple((p, edge_ops[self.edge_id(node, p)]) for p in preds))
        return tuple(nodes)

    def choices_of(self, cell: CellArch) -> tuple[list[int], list[int], list[int]]:
        """(combo index per node, edge ids of the selected edges, op index per selected edge)."""
        combo_indices, edge_ids, op_indices = [], [], []
        for k, (node, pairs) in enumerate(zip(self.node_ids, cell)):
            combo_indices.append(self._combo_index[k][tuple(p for p, _ in pairs)])
            for pred, op in pairs:
                edge_ids.append(self.edge_id(node, pred))
                op_indices.append(op)
        return combo_indices, edge_ids, op_indices

    def validate(self, cell: CellArch, label: str = "cell") -> CellArch:
        """Checks a CellArch and returns it in canonical form (pairs sorted by predecessor)."""
        if len(cell) != self.n_nodes:
            raise ValueError(f"{label}: expected {self.n_nodes} nodes, got {len(cell)}")
        canonical = []
        for node, pairs in zip(self.node_ids, cell):
            pairs = tuple(sorted((int(p), int(o)) for p, o in pairs))
            preds = [p for p, _ in pairs]
            if len(set(preds)) != len(preds) or (not self.any_subset and len(pairs) != self.inputs_per_node):
                needs = "distinct inputs" if self.any_subset else f"{self.inputs_per_node} distinct inputs"
                raise ValueError(f"{label}: node {node} needs {needs}, got {preds}")
            for pred, op in pairs:
                if not 0 <= pred < node:
                    raise ValueError(f"{label}: node {node} cannot take input from node {pred} (allowed 0..{node - 1})")
                if not 0 <= op < len(self.ops):
                    raise ValueError(f"{label}: op index {op} out of range 0..{len(self.ops) - 1}")
            canonical.append(pairs)
        return tuple(canonical)

    def ops_by_edge(self, cell: CellArch) -> dict[int, list[str]]:
        """edge id -> names of the ops `cell` uses on it (a fixed network builds only those)."""
        ops: dict[int, list[str]] = {}
        for node, pairs in zip(self.node_ids, cell):
            for pred, op in pairs:
                ops.setdefault(self.edge_id(node, pred), []).append(self.ops[op])
        return ops

    # --- one code per edge of the full DAG (NB201's encoding; ENAS / NAO / EvNAS on any-subset cells) ------

    def edge_codes(self, cell: CellArch) -> tuple[int, ...]:
        """Per edge of the full DAG (edge_id order): 0 when the edge is absent, else 1 + its op index."""
        codes = [0] * self.n_edges
        for node, pairs in zip(self.node_ids, cell):
            for pred, op in pairs:
                codes[self.edge_id(node, pred)] = 1 + op
        return tuple(codes)

    def cell_from_edge_codes(self, codes: list[int] | tuple[int, ...], label: str = "cell") -> CellArch:
        """Inverse of edge_codes (validated: a fixed-input cell needs exactly inputs_per_node edges per node)."""
        if len(codes) != self.n_edges or not all(0 <= int(c) <= len(self.ops) for c in codes):
            raise ValueError(f"{label}: expected {self.n_edges} edge codes in 0..{len(self.ops)}, got {list(codes)}")
        cell = tuple(tuple((pred, int(codes[self.edge_id(node, pred)]) - 1) for pred in range(node)
                           if codes[self.edge_id(node, pred)]) for node in self.node_ids)
        return self.validate(cell, label)


@dataclass(frozen=True)
class SearchSpace:
    """A named search space: several cell types (each with its own policy) sharing one cell geometry."""

    name: str
    cell: CellSpace
    cell_types: tuple[str, ...]
    concat: tuple[int, ...]

    @property
    def size(self) -> int:
        return self.cell.size ** len(self.cell_types)

    def validate(self, arch: Architecture) -> Architecture:
        if set(arch) != set(self.cell_types):
            raise ValueError(f"{self.name} architecture needs cells {list(self.cell_types)}, got {sorted(arch)}")
        return {t: self.cell.validate(arch[t], label=f"{self.name}.{t}") for t in self.cell_types}

    def arch_key(self, arch: Architecture) -> tuple[CellArch, ...]:
        """A hashable key of an architecture (for counting distinct samples)."""
        return tuple(arch[t] for t in self.cell_types)
