"""Genotypes: a derived architecture as plain JSON, and the paper's published genotypes by name.

JSON form (readable by any tool, DARTS notation of (op, input node) pairs, two per CNN node, one per RNN node):
    {"space": "cnn", "normal": [["sep_conv_3x3", 0], ...], "normal_concat": [2, 3, 4, 5],
     "reduce": [...], "reduce_concat": [2, 3, 4, 5]}
    {"space": "rnn", "recurrent": [["identity", 0], ...], "recurrent_concat": [1, ..., 8]}
    {"space": "nb201", "cell": [["nor_conv_3x3", 0], ["none", 0], ["skip_connect", 1], ...], "cell_concat": [3],
     "arch_string": "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...|"}
A cell whose nodes take any subset of their inputs (nb201) lists one [op, input] per edge of the full DAG, node
by node, `none` for an edge left out; arch_string is NAS-Bench-201's spelling of the same cell (written for
reading and looking up; the cell list is what is loaded).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .spaces import NB201_SPACE, SPACES, Architecture, SearchSpace, to_nb201_string
from .spaces.nb201 import NONE

OpInput = tuple[str, int]
SHAPE = ('{"normal": [[op, input], ...], "reduce": [[op, input], ...]} (a recurrent cell: '
         '{"space": "rnn", "recurrent": [[op, input], ...]})')


def _kind(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    names = {bool: "true or false", dict: "an object", list: "a list", tuple: "a list", str: "a string",
             int: "a number", float: "a number", type(None): "null"}
    return next((name for t, name in names.items() if isinstance(value, t)), type(value).__name__)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Genotype:
    space: str
    cells: dict[str, tuple[OpInput, ...]]
    concat: dict[str, tuple[int, ...]]

    @property
    def search_space(self) -> SearchSpace:
        return SPACES[self.space]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"space": self.space}
        for cell_type, pairs in self.cells.items():
            out[cell_type] = [[op, inp] for op, inp in pairs]
            out[f"{cell_type}_concat"] = list(self.concat[cell_type])
        if self.space == NB201_SPACE.name:
            out["arch_string"] = to_nb201_string(to_architecture(self))
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Genotype":
        if not isinstance(data, dict):
            raise ValueError(f"expected a genotype object {SHAPE}, got {_kind(data)}")
        space_name = data.get("space", "cnn")
        if not isinstance(space_name, str) or space_name not in SPACES:
            raise ValueError(f"genotype space {space_name!r} is unknown; known: {', '.join(SPACES)}")
        space = SPACES[space_name]
        cells, concat = {}, {}
        for cell_type in space.cell_types:
            if cell_type not in data:
                raise ValueError(f"{space_name} genotype has no {cell_type!r} list")
            if not isinstance(data[cell_type], (list, tuple)):
                raise ValueError(
                    f"genotype {cell_type}: expected a list [[op, input], ...], got {_kind(data[cell_type])}")
            pairs = []
            for entry in data[cell_type]:
                if not (isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[0], str)
                        and _is_int(entry[1])):
                    raise ValueError(f"genotype {cell_type}: entries must be [op, input] (a name and an integer), "
                                     f"got {entry!r}")
                op, inp = entry
                known = (NONE, *space.cell.ops) if space.cell.any_subset else space.cell.ops
                if op not in known:
                    raise ValueError(f"genotype {cell_type}: unknown op {op!r}; known: {', '.join(known)}")
                pairs.append((op, inp))
            cells[cell_type] = tuple(pairs)
            given = data.get(f"{cell_type}_concat", list(space.concat))
            if not (isinstance(given, (list, tuple)) and all(map(_is_int, given))):
                raise ValueError(f"genotype {cell_type}_concat must be {list(space.concat)} in this search space")
            concat[cell_type] = tuple(given)
            if concat[cell_type] != space.concat:
                raise ValueError(f"genotype {cell_type}_concat must be {list(space.concat)} in this search space")
        genotype = cls(space=space_name, cells=cells, concat=concat)
        to_architecture(genotype)  # validates the structure
        return genotype


def to_architecture(genotype: Genotype) -> Architecture:
    """Genotype -> host ints (op indices), validated and canonical."""
    space = genotype.search_space
    if space.cell.any_subset:
        return _edge_list_architecture(genotype, space)
    per_node = space.cell.inputs_per_node
    arch = {}
    for cell_type in space.cell_types:
        pairs = genotype.cells[cell_type]
        if len(pairs) != per_node * space.cell.n_nodes:
            raise ValueError(
                f"genotype {cell_type}: expected {per_node * space.cell.n_nodes} (op, input) pairs, got {len(pairs)}"
            )
        arch[cell_type] = tuple(
            tuple((inp, space.cell.ops.index(op)) for op, inp in pairs[k * per_node : (k + 1) * per_node])
            for k in range(space.cell.n_nodes)
        )
    return space.validate(arch)


def _edge_list_architecture(genotype: Genotype, space: SearchSpace) -> Architecture:
    """An any-subset cell's genotype: one [op, input] per edge of the full DAG, node by node ('none': absent)."""
    cell, arch = space.cell, {}
    for cell_type in space.cell_types:
        pairs = genotype.cells[cell_type]
        if [inp for _, inp in pairs] != [pred for pred, _ in cell.edges]:
            raise ValueError(f"genotype {cell_type}: expected one [op, input] per edge, inputs "
                             f"{[pred for pred, _ in cell.edges]} in this order ('none' for an absent edge), "
                             f"got inputs {[inp for _, inp in pairs]}")
        codes = [0 if op == NONE else 1 + cell.ops.index(op) for op, _ in pairs]
        arch[cell_type] = cell.cell_from_edge_codes(codes, label=f"{space.name}.{cell_type}")
    return arch


def from_architecture(space: SearchSpace, arch: Architecture) -> Genotype:
    """Host ints -> genotype with op names, in canonical order (inputs ascending within each node)."""
    arch = space.validate(arch)
    if space.cell.any_subset:
        cells = {t: tuple((NONE if code == 0 else space.cell.ops[code - 1], pred)
                          for code, (pred, _) in zip(space.cell.edge_codes(arch[t]), space.cell.edges))
                 for t in space.cell_types}
        return Genotype(space=space.name, cells=cells, concat={t: space.concat for t in space.cell_types})
    cells = {
        t: tuple((space.cell.ops[op], pred) for node in arch[t] for pred, op in node) for t in space.cell_types
    }
    return Genotype(space=space.name, cells=cells, concat={t: space.concat for t in space.cell_types})


def _cnn(normal: list[OpInput], reduce: list[OpInput]) -> Genotype:
    return Genotype.from_dict({"space": "cnn", "normal": normal, "reduce": reduce})


PAPER_GENOTYPES: dict[str, Genotype] = {
    "paper-cifar10": _cnn(
        normal=[("sep_conv_3x3", 0), ("dil_conv_3x3", 1), ("sep_conv_5x5", 0), ("avg_pool_3x3", 1),
                ("sep_conv_5x5", 0), ("sep_conv_5x5", 3), ("avg_pool_3x3", 0), ("sep_conv_5x5", 1)],
        reduce=[("skip_connect", 0), ("avg_pool_3x3", 1), ("sep_conv_3x3", 0), ("dil_conv_3x3", 2),
                ("max_pool_3x3", 0), ("skip_connect", 3), ("sep_conv_5x5", 0), ("skip_connect", 4)],
    ),
    "paper-imagenet": _cnn(
        normal=[("sep_conv_5x5", 0), ("dil_conv_5x5", 1), ("skip_connect", 0), ("sep_conv_3x3", 1),
                ("max_pool_3x3", 1), ("dil_conv_3x3", 3), ("sep_conv_5x5", 1), ("max_pool_3x3", 3)],
        reduce=[("sep_conv_5x5", 0), ("sep_conv_3x3", 1), ("dil_conv_3x3", 0), ("sep_conv_3x3", 2),
                ("sep_conv_3x3", 0), ("avg_pool_3x3", 2), ("avg_pool_3x3", 0), ("dil_conv_5x5", 1)],
    ),
    "paper-ptb": Genotype.from_dict({
        "space": "rnn",
        "recurrent": [("identity", 0), ("tanh", 1), ("relu", 1), ("tanh", 2),
                      ("relu", 4), ("relu", 3), ("sigmoid", 4), ("tanh", 7)],
    }),
}


def load_genotype(name_or_path: str | Path) -> Genotype:
    """A named paper genotype (paper-cifar10, paper-imagenet, paper-ptb) or a genotype JSON file."""
    key = str(name_or_path)
    if key in PAPER_GENOTYPES:
        return PAPER_GENOTYPES[key]
    path = Path(name_or_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"genotype {key!r} is neither a named genotype ({', '.join(PAPER_GENOTYPES)}) nor an existing JSON file"
        )
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"genotype file {path} is not valid JSON: {err}") from None
    except UnicodeDecodeError:
        raise ValueError(f"genotype file {path} is not a text (JSON) file; give a genotype JSON {SHAPE}") from None
    if not isinstance(data, dict):
        raise ValueError(f"genotype file {path}: expected a JSON object {SHAPE}, got {_kind(data)}")
    try:
        return Genotype.from_dict(data)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def save_genotype(genotype: Genotype, path: str | Path) -> None:
    from .checkpoint import atomic_write_text

    atomic_write_text(Path(path), genotype.to_json() + "\n")
