"""The language-model tasks (ptb, markov): recurrent cells searched on the training stream with rewards
c / perplexity on validation windows (child_rnn.py) and trained from scratch as DARTS's recurrent network
(train_rnn.py). A task of this kind says only how its corpus is read (load_raw)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from ..child_rnn import TextChild, rnn_search
from ..config import DataConfig, Params
from ..data.prepared import Manifest, save_prepared
from ..data.ptb import Corpus, batchify
from ..epochs import EpochCallback
from ..genotypes import Genotype
from ..runtime import Runtime
from ..search import EDNASSearch
from ..spaces import RNN_SPACE
from .base import Scorer, Task


class TextTask(Task):
    space = RNN_SPACE
    text = True

    def load_raw(self, root: Path) -> tuple[Corpus, dict[str, str]]:
        """The task's corpus from `root` (data.root), and the md5 (or origin) of each raw source read."""
        raise NotImplementedError

    def prepare(self, params: Params, root: Path, folder: Path) -> tuple[Manifest, None]:
        corpus, sources = self.load_raw(root)
        return save_prepared(corpus, folder, self.name, sources), None

    def make_search(self, data: Any, search_config: Any, data_config: DataConfig, runtime: Runtime,
                    checkpoint: Path | None, callbacks: Iterable[EpochCallback], settings: dict,
                    table: Any = None) -> EDNASSearch:
        return rnn_search(data, search_config, runtime, checkpoint, callbacks, settings)

    def build_child(self, data: Any, search_config: Any, data_config: DataConfig, runtime: Runtime,
                    table: Any = None) -> TextChild:
        return TextChild.build(data, search_config, runtime)

    def derive_scorer(self, child: Any, batch_size: int, runtime: Runtime) -> Scorer:
        """c / perplexity on the first bptt window of the validation stream in `batch_size` columns."""
        valid = batchify(child.valid_data.t().reshape(-1), batch_size, runtime.device)
        window = min(child.config.bptt, valid.shape[0] - 1)
        batch = (valid[:window], valid[1 : window + 1])
        return (lambda arch: child.reward(arch, batch, carry=False)), batch[1].numel()

    def _trainer(self, genotype: Genotype, data: Any, evaluate_config: Any, runtime: Runtime,
                 checkpoint: Path | None, callbacks: Iterable[EpochCallback], settings: dict):
        from ..train_rnn import RNNTrainer

        return RNNTrainer(genotype, data, evaluate_config, runtime, checkpoint, callbacks, settings)
