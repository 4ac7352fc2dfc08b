"""The markov task: a generated corpus (a sparse random first-order Markov chain, data/ptb.py
make_synthetic_corpus) as a PTB stand-in for the CPU demo of the recurrent search and the tests; searched and
trained as PTB is. Its entropy rate is about log(3), so a language model can reach a perplexity far below the
vocabulary's 50 words."""

from __future__ import annotations

from pathlib import Path

from ..data.ptb import Corpus, make_synthetic_corpus
from .text import TextTask


class MarkovTask(TextTask):
    name = "markov"

    def load_raw(self, root: Path) -> tuple[Corpus, dict[str, str]]:
        return make_synthetic_corpus(), {"ednas_core.data.ptb.make_synthetic_corpus": "defaults (seed 0)"}


MARKOV = MarkovTask()
