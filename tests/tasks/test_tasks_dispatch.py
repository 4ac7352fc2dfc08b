"""What each task builds (ednas_core.tasks): the registry against the names params.yaml accepts, the trainer of
every task and the search space, through the same calls the evaluate and search stages make (the tasks package
imports its trainers lazily: a broken import shows only here and in the end-to-end runs)."""

from __future__ import annotations

import pytest

from ednas_core.config import TASKS, Params
from ednas_core.data.ptb import make_synthetic_corpus
from ednas_core.genotypes import PAPER_GENOTYPES, from_architecture
from ednas_core.spaces import CNN_SPACE, NB201_SPACE, RNN_SPACE, from_nb201_string
from ednas_core.tasks import TASK_REGISTRY, get_task, make_trainer, space_of
from helpers import cpu_runtime

NB201_CELL = "|nor_conv_1x1~0|+|skip_connect~0|nor_conv_3x3~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|"


def test_the_registry_holds_every_task_params_yaml_accepts_under_its_own_name():
    assert sorted(TASK_REGISTRY) == sorted(TASKS)
    assert all(task.name == name for name, task in TASK_REGISTRY.items())


def test_an_unknown_task_is_one_line_naming_the_known_ones():
    with pytest.raises(ValueError) as err:
        get_task("cifar100")
    message = str(err.value)
    assert "\n" not in message and message.startswith("unknown task 'cifar100'")
    assert all(name in message for name in TASKS)


def test_what_the_report_asks_of_each_task():
    assert [name for name, task in TASK_REGISTRY.items() if task.text] == ["ptb", "markov"]
    assert [name for name, task in TASK_REGISTRY.items() if task.auxiliary_head] == ["cifar10", "digits", "imagenet"]
    assert [name for name, task in TASK_REGISTRY.items() if task.has_table] == ["nb201"]
    assert get_task("imagenet").error_label == "top-1 error (%)" and get_task("cifar10").error_label == "test error (%)"


def test_spaces_of_the_tasks():
    assert [space_of(t) for t in ("cifar10", "digits", "ptb", "markov", "nb201", "imagenet")] == [
        CNN_SPACE, CNN_SPACE, RNN_SPACE, RNN_SPACE, NB201_SPACE, CNN_SPACE]


@pytest.mark.parametrize("task, trainer", [("digits", "GenotypeTrainer"), ("markov", "RNNTrainer"),
                                           ("nb201", "NB201Trainer")])
def test_make_trainer_builds_each_tasks_trainer(task, trainer, pattern_dataset):
    params = Params()
    genotype = {"digits": PAPER_GENOTYPES["paper-cifar10"], "markov": PAPER_GENOTYPES["paper-ptb"],
                "nb201": from_architecture(NB201_SPACE, from_nb201_string(NB201_CELL))}[task]
    data = make_synthetic_corpus() if task == "markov" else pattern_dataset
    built = make_trainer(task, genotype, data, getattr(params, task).evaluate, cpu_runtime(0), None, [], {})
    assert type(built).__name__ == trainer


def test_a_tabular_nb201_search_reads_no_images_but_its_evaluation_does(tmp_path, pattern_dataset):
    """nb201.search.mode tabular with nb201.evaluate.train: prepare-data writes CIFAR-10 beside the table; the
    search reads none of it, the evaluate stage (search_config None) trains on it."""
    from ednas_core.config import DataConfig
    from ednas_core.data.prepared import save_prepared
    from ednas_core.tasks import load_data

    save_prepared(pattern_dataset, tmp_path, "nb201", {})
    tabular = Params().nb201.search
    assert tabular.mode == "tabular"
    assert load_data("nb201", tmp_path, DataConfig(), tabular) is None
    images = load_data("nb201", tmp_path, DataConfig(), None)
    assert len(images.train_labels) == len(pattern_dataset.train_labels)
