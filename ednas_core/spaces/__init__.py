"""Search spaces: one shared decoupled-cell geometry (base.py), instantiated for CNN and RNN cells."""

from .base import Architecture, CellArch, CellSpace, SearchSpace
from .cnn import CNN_SPACE
from .rnn import RNN_SPACE

SPACES: dict[str, SearchSpace] = {s.name: s for s in (CNN_SPACE, RNN_SPACE)}

__all__ = ["Architecture", "CellArch", "CellSpace", "SearchSpace", "CNN_SPACE", "RNN_SPACE", "SPACES"]
