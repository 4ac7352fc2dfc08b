"""Search spaces: one shared decoupled-cell geometry (base.py), instantiated for CNN, RNN and NAS-Bench-201 cells."""

from .base import Architecture, CellArch, CellSpace, SearchSpace
from .cnn import CNN_SPACE
from .nb201 import NB201_SPACE, from_nb201_string, to_nb201_string
from .rnn import RNN_SPACE

SPACES: dict[str, SearchSpace] = {s.name: s for s in (CNN_SPACE, RNN_SPACE, NB201_SPACE)}

__all__ = ["Architecture", "CellArch", "CellSpace", "SearchSpace", "CNN_SPACE", "RNN_SPACE", "NB201_SPACE", "SPACES",
           "from_nb201_string", "to_nb201_string"]
