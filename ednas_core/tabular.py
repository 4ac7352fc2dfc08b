"""Tabular NAS-Bench-201 search: the real search loop (ednas_core.search.EDNASSearch) over a child with no
network, whose reward is a look-up in the benchmark's table (ednas_core/data/nb201_table.py), as NB201's own
baselines search it (REA, REINFORCE, random search on `cifar10-valid` at the 12-epoch schedule).

TableChild has no child steps and `queries_per_epoch` reward batches per epoch; the reward of an architecture is
its 12-epoch CIFAR-10 validation accuracy / 100; `reward_budget` caps the look-ups of the whole run, and the loop
(ednas_core/search.py) scores at most `queries_per_epoch` rewards an epoch, so that it scores exactly `budget`
architectures over ceil(budget / queries_per_epoch) epochs, `queries_per_epoch` in every epoch but the last (the
rest of the budget): a strategy that wants more rewards in an epoch (ENAS: train_steps * num_aggregate; NAO: the
rest of its pool) gets `queries_per_epoch` and carries on in the next epoch, one that wants fewer uses fewer; a
repeated architecture costs a query again, as in NB201's simulated training. What a search found is judged by the
table's 200-epoch CIFAR-10 test accuracy of the architecture with the best validation accuracy among those
queried (NB201's protocol), and of the strategy's final_architecture. `table_reward` reads a reward without
making a query (derive.mode queried: nothing looked up beyond the budget).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from .config import tabular_epochs
from .data.nb201_table import NB201Table
from .epochs import EpochCallback
from .runtime import Runtime
from .search import AnswerProbe, EDNASSearch
from .spaces import NB201_SPACE, Architecture, to_nb201_string
from .strategies import make_strategy


class TableChild:
    """The search loop's Child protocol over the NB201 table: 0 child steps, `queries_per_epoch` rewards per epoch,
    each a look-up; records every query so that the best architecture so far is known after each one."""

    sample_unit = "lookups"  # a reward is one look-up: policy_lookups_per_s

    def __init__(self, table: NB201Table, budget: int, queries_per_epoch: int):
        if budget < 1 or queries_per_epoch < 1:
            raise ValueError(f"a tabular search needs budget >= 1 and queries_per_epoch >= 1, got {budget} and "
                             f"{queries_per_epoch}")
        self.table = table
        self.reward_budget = budget            # the loop scores no more rewards than this in the whole run
        self.queries_per_epoch = queries_per_epoch
        self.queried: list[int] = []           # NB201 index of every query, in order
        self.best: int | None = None           # index of the best validation accuracy so far (the first of ties)
        self.curve: list[float] = []           # after each query: CIFAR-10 test accuracy (%) of `best`

    # --- the Child protocol ----------------------------------------------------------------------------------

    def start_epoch(self, epoch: int) -> float:
        return math.nan  # no learning rate: nothing is trained

    def train_batches(self, epoch: int) -> Iterator[Any]:
        return iter(())

    def policy_batches(self, epoch: int) -> Iterator[Any]:
        return iter(range(self.queries_per_epoch))

    def train_step(self, arch: Architecture, batch: Any) -> None:
        raise RuntimeError("a tabular search has no child steps (TableChild.steps_per_epoch is (0, n))")

    def reward(self, arch: Architecture, batch: Any) -> float:
        """The table's 12-epoch CIFAR-10 validation accuracy of `arch` / 100 (`batch` is unused); a query."""
        index = self.table.index(arch)
        self._record(index)
        return self._reward_at(index)

    def table_reward(self, arch: Architecture) -> float:
        """The reward of `arch` read from the table without a query: nothing is recorded."""
        return self._reward_at(self.table.index(arch))

    def _reward_at(self, index: int) -> float:
        return float(self.table.valid_12[index]) / 100.0

    def queried_architectures(self) -> list[Architecture]:
        """The distinct architectures queried, in the order of their first query."""
        return [self.table.arch(index) for index in dict.fromkeys(self.queried)]

    def epoch_metrics(self) -> dict[str, float]:
        best = self.best
        return {
            "child_loss": math.nan,
            "child_acc": math.nan,
            "queries": float(len(self.queried)),
            "best_valid_acc": math.nan if best is None else float(self.table.valid_12[best]),
            "best_test_acc": math.nan if best is None else float(self.table.tests["cifar10"][best]),
            "best_rank": math.nan if best is None else float(self.table.rank(self.table.arch_strings[best])),
        }

    def state_dict(self) -> dict:
        return {"queried": list(self.queried)}

    def load_state_dict(self, state: dict) -> None:
        self.queried, self.best, self.curve = [], None, []
        for index in state["queried"]:
            self._record(int(index))

    @property
    def images_per_epoch(self) -> tuple[int, int]:
        return 0, self.queries_per_epoch

    @property
    def steps_per_epoch(self) -> tuple[int, int]:
        return 0, self.queries_per_epoch

    def _record(self, index: int) -> None:
        valid = self.table.valid_12
        if self.best is None or valid[index] > valid[self.best]:
            self.best = index
        self.queried.append(index)
        self.curve.append(float(self.table.tests["cifar10"][self.best]))


def tabular_search(table: NB201Table, search_config: Any, runtime: Runtime, checkpoint: Path | None,
                   callbacks: Iterable[EpochCallback] = (), settings: dict[str, Any] | None = None,
                   answer_probe: AnswerProbe | None = None) -> EDNASSearch:
    """The search of search_config.strategy over a TableChild of `search_config.budget` queries,
    `queries_per_epoch` per epoch, for ceil(budget / queries_per_epoch) epochs (search_config.epochs is replaced);
    call .run() on it. The strategy is seeded with runtime.seed; `answer_probe` judges its answer every epoch."""
    epochs = tabular_epochs(search_config.budget, search_config.queries_per_epoch)
    config = dataclasses.replace(search_config, epochs=epochs)
    child = TableChild(table, search_config.budget, search_config.queries_per_epoch)
    strategy = make_strategy(NB201_SPACE, config, seed=runtime.seed)
    return EDNASSearch(NB201_SPACE, child, strategy, config, runtime, checkpoint, callbacks,
                       {"tabular": True, **(settings or {})}, answer_probe=answer_probe)


@dataclass(frozen=True)
class TabularResult:
    """What one tabular search found, judged by the table."""

    strategy: str
    seed: int
    queries: int               # look-ups made (the budget, unless the strategy wanted fewer)
    best_arch: str             # best 12-epoch validation accuracy among the queried (NB201's answer of a search)
    best_valid_acc: float      # its 12-epoch CIFAR-10 validation accuracy (%)
    best_test_acc: float       # its 200-epoch CIFAR-10 test accuracy (%)
    best_rank: int             # its rank by test accuracy among the 15,625 cells (1 = best)
    final_arch: str            # the strategy's final_architecture (EDNAS: the policy's argmax)
    final_test_acc: float
    final_rank: int
    curve: tuple[float, ...]   # after each query: best_test_acc of the best-validation architecture so far

    @classmethod
    def of(cls, search: EDNASSearch) -> "TabularResult":
        """The result of a finished tabular_search."""
        child = search.child
        if not isinstance(child, TableChild):
            raise TypeError(f"TabularResult needs a search over a TableChild, got {type(child).__name__}")
        if child.best is None:
            raise ValueError("the search made no query; its budget or epochs are 0")
        table = child.table
        final = to_nb201_string(search.strategy.final_architecture())
        best = table.arch_strings[child.best]
        return cls(strategy=search.strategy.name, seed=search.runtime.seed, queries=len(child.queried),
                   best_arch=best, best_valid_acc=table.valid_acc(best), best_test_acc=table.test_acc(best),
                   best_rank=table.rank(best), final_arch=final, final_test_acc=table.test_acc(final),
                   final_rank=table.rank(final), curve=tuple(child.curve))


__all__ = ["TableChild", "TabularResult", "tabular_epochs", "tabular_search"]
