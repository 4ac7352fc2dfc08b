"""The NAS-Bench-201 child of the search: ImageChild (same SGD steps, lr schedule and reward: top-1 accuracy of a
sampled child on one validation minibatch, shared weights in eval mode, one no-grad forward) on the NB201
weight-sharing network (supernet/nb201.py).

Config mapping: search.init_channels is the benchmark's C (channels of the first stage; 16 in NB201) and
search.layers is its N, the cells per stage (5 in NB201): the network has 3N cells and 2 ResNet blocks.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterable

from torch import nn

from .child_cnn import ImageChild
from .config import DataConfig, SearchConfig
from .data import ImageDataset
from .runtime import Runtime, seed_for
from .search import AnswerProbe, EDNASSearch, EpochProbe, SearchCallback
from .spaces import NB201_SPACE
from .strategies import make_strategy
from .supernet.nb201 import NB201SearchNetwork


class NB201Child(ImageChild):
    """ImageChild on the NB201 supernet; NB201Child.build(dataset, search, data, runtime) as ImageChild.build
    (derive restores a finished search's weights into it)."""

    @classmethod
    def make_network(cls, search: SearchConfig, dataset: ImageDataset) -> nn.Module:
        return NB201SearchNetwork(search.init_channels, search.layers, dataset.num_classes, dataset.in_channels)


def nb201_search(dataset: ImageDataset, search: SearchConfig, data: DataConfig, runtime: Runtime,
                 checkpoint_path: Path | None, callbacks: Iterable[SearchCallback] = (),
                 settings: dict | None = None,
                 epoch_probe: Callable[[NB201Child], EpochProbe] | None = None,
                 answer_probe: AnswerProbe | None = None) -> EDNASSearch:
    """The whole NB201 search, ready to run(), as child_cnn.cnn_search. `epoch_probe`, when given, is called
    once with the built child and returns the per-epoch probe (e.g. RankingProbe.for_child(...).every(...));
    `answer_probe` judges the strategy's answer every epoch (EDNASSearch)."""
    child = NB201Child.build(dataset, search, data, runtime)
    strategy = make_strategy(NB201_SPACE, search, seed_for(runtime.seed, "policy-init"))
    settings = {"data": asdict(data), "dataset": [len(dataset.train_labels), list(dataset.train_images.shape[1:])],
                **(settings or {})}
    probe = epoch_probe(child) if epoch_probe is not None else None
    return EDNASSearch(NB201_SPACE, child, strategy, search, runtime, checkpoint_path, callbacks, settings,
                       epoch_probe=probe, answer_probe=answer_probe)
