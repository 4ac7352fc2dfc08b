"""What every figure module shares: a fresh Agg figure, reproducible PNG/SVG writing, space lookup."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
from matplotlib import rcParams
from matplotlib.figure import Figure

from ..checkpoint import atomic_write_bytes
from ..spaces import SPACES, SearchSpace

# SVG element ids are derived from this salt instead of a random one: the same figure gives the same file.
rcParams["svg.hashsalt"] = "ednas"

_METADATA = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None}, "pdf": {"CreationDate": None}}


def new_figure(width: float, height: float) -> Figure:
    """A figure on the Agg canvas, detached from pyplot (nothing to close, never shown)."""
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def figure_bytes(fig: Figure, fmt: str = "png", dpi: int = 110) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=dpi, metadata=_METADATA.get(fmt))
    return buffer.getvalue()


def figure_png_bytes(fig: Figure, dpi: int = 110) -> bytes:
    return figure_bytes(fig, "png", dpi)


def save_figure(fig: Figure, path_without_suffix: str | Path, formats: Iterable[str] = ("png", "svg"),
                dpi: int = 110, close: bool = True) -> list[Path]:
    """Writes `<path>.<fmt>` for every format, each atomically; returns the paths written. close: clear the
    figure afterwards, releasing its memory even while the caller still holds a reference."""
    base = Path(path_without_suffix)
    written = []
    for fmt in formats:
        path = base.with_name(f"{base.name}.{fmt}")
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, figure_bytes(fig, fmt, dpi))
        written.append(path)
    if close:
        fig.clear()
    return written


def space_of(probabilities_or_counts: Mapping[str, np.ndarray]) -> SearchSpace:
    """The search space whose cell types name the keys ('normal_edge', 'counts_recurrent', ...)."""
    keys = " ".join(probabilities_or_counts)
    for space in SPACES.values():
        if all(t in keys for t in space.cell_types):
            return space
    raise ValueError(f"no search space has the cell types of keys {sorted(probabilities_or_counts)}")


def edge_label(pred: int, node: int) -> str:
    return f"{pred}->{node}"


def combo_label(combo: tuple[int, ...]) -> str:
    return "(" + ",".join(map(str, combo)) + ")" if len(combo) != 1 else str(combo[0])  # () : no input


def cell_name(cell_type: str) -> str:
    """How titles name a cell type: 'normal cell', 'recurrent cell'; NB201's single type 'cell' stays 'cell'."""
    return cell_type if cell_type == "cell" else f"{cell_type} cell"
