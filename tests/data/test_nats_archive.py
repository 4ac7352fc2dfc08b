"""NATS-Bench's own topology files (ednas_core/data/nats_archive.py), read without nats_bench and without running
code: the extracted -simple archive, the .tar as downloaded, the single benchmark file and NAS-Bench-201's .pth give
the same table, whose every accuracy is the seed mean of the record's last-epoch accuracy (as nats_bench's
get_more_info with is_random=False); a record that asks for any other global (a code-running pickle, the -full
archive's torch tensors) is refused before anything runs; and every incomplete or corrupt file is a one-line
DataError naming it.

The files are written by tests/nats_files.py in nats_bench's structure; the real download is not on this machine.
With EDNAS_DATA_ROOT, the published CSV tables written as NATS files load back to exactly the CSV's table."""

import bz2
import io
import os
import pickle
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from ednas_core.data import DataError
from ednas_core.data.nats_archive import (ARCHIVE_DIR, ARCHIVE_TAR, BENCHMARK_FILE, NB201_FILES, find_benchmark,
                                          load_benchmark, safe_load)
from ednas_core.data.nb201_table import N_ARCHITECTURES, NB201Table, all_arch_strings
from helpers import NB201_TABLES, needs_nb201_table
from nats_files import (pbz2, record, table_records, write_archive, write_benchmark_file, write_nb201_pth,
                        write_tar)

STRINGS = all_arch_strings()[::-1]  # index order differs from edge-code order, as the benchmark's does
TESTS = ("cifar10", "cifar100", "imagenet16")


def _accuracies(seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    valid = np.round(rng.uniform(10, 85, N_ARCHITECTURES), 4)
    return valid, {d: np.round(rng.uniform(10, 94, N_ARCHITECTURES), 4) for d in TESTS}


def _error(folder: Path) -> str:
    with pytest.raises(DataError) as caught:
        NB201Table.load(folder)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """The four published layouts (three of NATS-Bench, one of NAS-Bench-201) of one benchmark whose records have
    two seeds each; and the expected seed means."""
    root = tmp_path_factory.mktemp("nats")
    valid, tests = _accuracies(0)
    records = table_records(STRINGS, valid, tests, spread=0.375)
    archive = write_archive(root / "dir" / ARCHIVE_DIR, STRINGS, records)
    for layout in ("tar", "file", "pth"):
        (root / layout).mkdir()
    write_tar(archive, root / "tar" / ARCHIVE_TAR)
    write_benchmark_file(root / "file" / BENCHMARK_FILE, STRINGS, records)
    write_nb201_pth(root / "pth" / NB201_FILES[0], STRINGS, records)
    means = {"valid": np.array([np.mean([v - 0.375, v + 0.375]) for v in valid]),
             **{d: np.array([np.mean([v - 0.375, v + 0.375]) for v in tests[d]]) for d in TESTS}}
    return root, means


@pytest.mark.slow
@pytest.mark.parametrize("layout, source", [("dir", ARCHIVE_DIR), ("tar", ARCHIVE_TAR), ("file", BENCHMARK_FILE),
                                            ("pth", NB201_FILES[0])])
def test_each_published_layout_gives_the_seed_means_of_the_records(published, layout, source):
    root, means = published
    said = []
    table = NB201Table.from_nats(load_benchmark(root / layout / source, said.append))
    assert table.arch_strings == tuple(STRINGS)
    np.testing.assert_array_equal(table.valid_12, means["valid"])
    for d in TESTS:
        np.testing.assert_array_equal(table.tests[d], means[d])
    i = 4321
    assert table.valid_acc(STRINGS[i]) == means["valid"][i] and table.test_acc(STRINGS[i], "cifar100") == means[
        "cifar100"][i]
    [(name, md5)] = table.sources.items()
    assert name.startswith(source) and len(md5) == 32
    assert said[0] == f"reading the benchmark {root / layout / source}"
    if layout in ("dir", "tar"):  # an archive says every 2,500 records how many it has read
        assert said[1:] == [f"read {n:,} architecture records of {source}" for n in range(2500, 15625, 2500)] + [
            f"read 15,625 architecture records of {source} in all"]


@pytest.mark.slow
def test_the_four_layouts_agree_and_the_tar_is_read_without_extracting(published):
    root, _ = published
    tables = [NB201Table.load(root / layout) for layout in ("dir", "tar", "file", "pth")]
    assert {t.to_csv() for t in tables} == {tables[0].to_csv()}
    assert sorted(p.name for p in (root / "tar").iterdir()) == [ARCHIVE_TAR]


@pytest.mark.slow
def test_published_csvs_take_precedence_over_nats_files(published, tmp_path):
    root, _ = published
    folder = tmp_path / "both"
    shutil.copytree(root / "file", folder)
    table = NB201Table(STRINGS, np.full(N_ARCHITECTURES, 50.0), {"cifar10": np.full(N_ARCHITECTURES, 60.0)})
    table.save(folder / "nb201.csv")
    loaded = NB201Table.load(folder)
    assert list(loaded.sources) == ["nb201.csv"] and loaded.valid_12[0] == 50.0


@pytest.mark.slow
@needs_nb201_table
def test_the_published_tables_written_as_nats_files_load_back_exactly(tmp_path):
    """Every accuracy through the NATS reader equals the published CSV's row (one trial seed per record)."""
    real = NB201Table.load(NB201_TABLES)
    strings = list(real.arch_strings)
    write_archive(tmp_path / ARCHIVE_DIR, strings, table_records(strings, real.valid_12, real.tests))
    assert NB201Table.load(tmp_path).to_csv() == real.to_csv()


# --- nothing runs -------------------------------------------------------------------------------------------


class _RunsCode:
    """Unpickles to a call of os.system (what a malicious 'benchmark' file would carry)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _archive_with_record_zero(folder: Path, content: object, raw: bytes | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "meta.pickle.pbz2").write_bytes(pbz2({"meta_archs": STRINGS}))
    (folder / "000000.pickle.pbz2").write_bytes(raw if raw is not None else pbz2(content))
    return folder


def test_a_record_that_would_run_code_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    content = record(0, STRINGS[0], [50.0], {"cifar10": [90.0], "cifar100": [70.0], "ImageNet16-120": [40.0]})
    content["12"]["arch_config"] = _RunsCode(marker)
    _archive_with_record_zero(tmp_path / "raw" / ARCHIVE_DIR, content)
    message = _error(tmp_path / "raw")
    assert f"{ARCHIVE_DIR}/000000.pickle.pbz2 asks to load posix.system" in message and ARCHIVE_TAR in message
    assert not marker.exists()
    assert not pickle.loads(pickle.dumps(_RunsCode(marker))) and marker.exists()  # the payload does run unguarded


def test_the_full_archive_with_trained_weights_is_refused(tmp_path):
    content = record(0, STRINGS[0], [50.0], {"cifar10": [90.0], "cifar100": [70.0], "ImageNet16-120": [40.0]})
    content["200"]["all_results"][("cifar10", 777)]["net_state_dict"] = {"stem.weight": torch.zeros(2, 3)}
    _archive_with_record_zero(tmp_path / ARCHIVE_DIR, content)
    message = _error(tmp_path)
    assert "asks to load torch." in message and "-full archive holds trained weights" in message


def test_numpy_1_pickles_of_numpy_numbers_and_arrays_load():
    """Files written under numpy 1.x name numpy.core.multiarray (numpy 2: numpy._core.multiarray)."""
    data = pickle.dumps({"a": np.float64(93.5), "b": np.arange(3.0), "c": [np.int64(7)]}, protocol=2)
    old = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert old != data
    loaded = safe_load(io.BytesIO(bz2.compress(old)), "x")
    assert loaded["a"] == 93.5 and loaded["b"].tolist() == [0.0, 1.0, 2.0] and loaded["c"] == [7]


def test_a_nas_bench_201_file_is_read_without_running_code(tmp_path):
    """NAS-Bench-201's .pth files go through torch.load(weights_only=True): a code-running object is refused."""
    marker = tmp_path / "ran"
    torch.save({"meta_archs": STRINGS, "arch2infos": {0: _RunsCode(marker)}}, tmp_path / NB201_FILES[1])
    message = _error(tmp_path)
    assert f"{NB201_FILES[1]}: torch.load(weights_only=True) refuses it" in message
    assert "unsupported GLOBAL posix.system" in message
    assert not marker.exists()
    data = (tmp_path / NB201_FILES[1]).read_bytes()
    (tmp_path / NB201_FILES[1]).write_bytes(data[: len(data) // 2])
    assert "is not a readable torch file" in _error(tmp_path) and not marker.exists()


# --- incomplete or corrupt files: one line naming the file --------------------------------------------------


def test_a_truncated_record_names_the_file(tmp_path):
    good = pbz2(record(0, STRINGS[0], [50.0], {"cifar10": [90.0], "cifar100": [70.0], "ImageNet16-120": [40.0]}))
    _archive_with_record_zero(tmp_path / ARCHIVE_DIR, None, raw=good[: len(good) // 2])
    message = _error(tmp_path)
    assert "000000.pickle.pbz2 is not a readable bz2 pickle" in message and "download it again" in message


def test_an_incompletely_extracted_archive_names_the_first_missing_record(tmp_path, capsys):
    valid, tests = _accuracies(1)
    records = {i: r for i, r in table_records(STRINGS[:7], valid, tests).items()}
    write_archive(tmp_path / ARCHIVE_DIR, STRINGS, records)
    message = _error(tmp_path)
    assert "holds 7 of the 15,625 architecture records (the first missing: 000007)" in message
    assert capsys.readouterr().err.splitlines() == [  # what prepare-data prints while it reads
        f"prepare-data: reading the benchmark {tmp_path / ARCHIVE_DIR}",
        f"prepare-data: read 7 architecture records of {ARCHIVE_DIR} in all"]


def test_an_archive_without_its_meta_file(tmp_path):
    folder = _archive_with_record_zero(tmp_path / ARCHIVE_DIR, record(
        0, STRINGS[0], [50.0], {"cifar10": [90.0], "cifar100": [70.0], "ImageNet16-120": [40.0]}))
    (folder / "meta.pickle.pbz2").unlink()
    assert "has no meta.pickle.pbz2: it is incomplete" in _error(tmp_path)


def test_a_record_without_the_200_epoch_results(tmp_path):
    content = record(0, STRINGS[0], [50.0], {"cifar10": [90.0], "cifar100": [70.0], "ImageNet16-120": [40.0]})
    del content["200"]
    _archive_with_record_zero(tmp_path / ARCHIVE_DIR, content)
    assert "000000.pickle.pbz2: no ori-test accuracy of cifar10 after the 200-epoch schedule" in _error(tmp_path)


def test_a_record_of_another_architecture_than_the_meta_file_lists(tmp_path):
    valid, tests = _accuracies(2)
    records = table_records(STRINGS, valid, tests)
    records[5], records[6] = records[6], records[5]
    write_archive(tmp_path / ARCHIVE_DIR, STRINGS, records)
    message = _error(tmp_path)
    assert "record 5 is of architecture" in message and "different versions" in message


def test_the_size_benchmark_is_not_this_space(tmp_path):
    folder = tmp_path / ARCHIVE_DIR
    folder.mkdir()
    (folder / "meta.pickle.pbz2").write_bytes(pbz2({"meta_archs": ["8:8:8:8:8"] * 32768}))
    assert "lists 32,768 architectures; the topology benchmark has 15,625" in _error(tmp_path)


@pytest.mark.slow
def test_a_truncated_tar(published, tmp_path):
    root, _ = published
    data = (root / "tar" / ARCHIVE_TAR).read_bytes()
    with tarfile.open(root / "tar" / ARCHIVE_TAR) as archive:
        members = archive.getmembers()
    meta = next(m for m in members if m.name.endswith("meta.pickle.pbz2"))
    record = members[len(members) // 2]
    # inside the meta file's data, inside a record's header, inside a record's data
    for cut in (meta.offset_data + meta.size // 2, record.offset + 100, record.offset_data + record.size // 2):
        (tmp_path / ARCHIVE_TAR).write_bytes(data[:cut])
        message = _error(tmp_path)
        assert f"{ARCHIVE_TAR} " in message and "download" in message
        assert "incomplete" in message or "not a readable tar archive" in message, message


def test_a_bad_accuracy_names_the_architecture(tmp_path):
    valid, tests = _accuracies(3)
    valid[9] = np.nan
    write_benchmark_file(tmp_path / BENCHMARK_FILE, STRINGS, table_records(STRINGS, valid, tests))
    assert f"{BENCHMARK_FILE} architecture 9: cifar10_valid_12 is nan" in _error(tmp_path)


def test_find_benchmark_prefers_the_extracted_archive(tmp_path):
    assert find_benchmark(tmp_path) is None
    (tmp_path / BENCHMARK_FILE).write_bytes(b"")
    assert find_benchmark(tmp_path) == tmp_path / BENCHMARK_FILE
    (tmp_path / ARCHIVE_DIR).mkdir()
    assert find_benchmark(tmp_path) == tmp_path / ARCHIVE_DIR
    with pytest.raises(DataError, match="has no meta.pickle.pbz2"):
        load_benchmark(tmp_path / ARCHIVE_DIR)


def test_no_table_at_all_names_every_accepted_layout(tmp_path):
    message = _error(tmp_path)
    assert all(name in message for name in (ARCHIVE_TAR, BENCHMARK_FILE, "nats_bench.csv", "nb201.csv"))
