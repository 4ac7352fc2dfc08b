"""build_report: the report's Markdown built from the other stages' metrics, beside the paper's numbers."""

from __future__ import annotations

import dataclasses
import json

import pytest

from ednas_core.config import Params
from ednas_core.report import build_report
from stages.common import flat_params

GENOTYPE = {"normal": [["sep_conv_3x3", 0], ["skip_connect", 1]], "normal_concat": [2, 3],
            "reduce": [["max_pool_3x3", 0]], "reduce_concat": [2]}


def search_metrics(**overrides) -> dict:
    base = {"epochs": 300, "child_loss": 0.61, "child_acc": 0.7812, "first_epoch_child_acc": 0.3125, "reward": 0.74,
            "baseline": 0.73, "entropy": 1.9, "search_gpu_hours": 12.0, "device": "cuda (NVIDIA H100)",
            "mlflow_run_id": "searchrun0001"}
    base.update(overrides)
    return base


def derive_metrics(**overrides) -> dict:
    base = {"mode": "best", "samples": 100, "distinct_samples": 97, "best_reward": 0.81, "argmax_reward": 0.79,
            "chosen_reward": 0.81, "mean_reward": 0.62, "scored_on_images": 128, "mlflow_run_id": "deriverun0002"}
    base.update(overrides)
    return base


def evaluate_metrics(**overrides) -> dict:
    base = {"genotype": "derived", "epochs": 600, "test_error": 3.10, "test_acc": 0.969, "params": 4_100_000,
            "params_m": 4.1, "train_gpu_hours": 30.0, "device": "cuda (NVIDIA H100)",
            "mlflow_run_id": "evalrun0003"}
    base.update(overrides)
    return base


def without(d: dict, key: str, **extra) -> dict:
    d = {k: v for k, v in d.items() if k != key}
    d.update(extra)
    return d


@pytest.fixture
def cifar_params() -> dict:
    return flat_params(Params())


@pytest.fixture
def digits_params() -> dict:
    return flat_params(dataclasses.replace(Params(), task="digits"))


def cifar_report(params, search=None, derive=None, evaluate=None) -> str:
    return build_report("cifar10", params, search or search_metrics(), derive or derive_metrics(),
                        evaluate or evaluate_metrics(), GENOTYPE)


def test_cifar10_result_table_beside_paper(cifar_params):
    lines = cifar_report(cifar_params).splitlines()
    assert lines[0] == "# EDNAS report: cifar10"
    assert "| test error (%) | 3.1 | 2.84 | +0.26 |" in lines
    assert "| parameters (M) | 4.1 | 3.7 | +0.4 |" in lines
    assert "| search cost (GPU-days) | 0.5 | 0.28 | +0.22 |" in lines  # 12 GPU-hours
    assert not any("has no" in line for line in lines)


def test_cifar10_negative_difference(cifar_params):
    lines = cifar_report(cifar_params, evaluate=evaluate_metrics(test_error=2.5, params_m=3.3)).splitlines()
    assert "| test error (%) | 2.5 | 2.84 | -0.34 |" in lines
    assert "| parameters (M) | 3.3 | 3.7 | -0.4 |" in lines


def test_numbers_come_from_the_metrics(cifar_params):
    base = cifar_report(cifar_params)
    changed = cifar_report(cifar_params, search=search_metrics(child_acc=0.6543, search_gpu_hours=7.2),
                           derive=derive_metrics(best_reward=0.777, distinct_samples=55),
                           evaluate=evaluate_metrics(test_error=2.84, test_acc=0.9716, params=3_700_000, epochs=12))
    assert changed != base
    assert "| test error (%) | 2.84 | 2.84 | +0 |" in changed
    assert "| search cost (GPU-days) | 0.3 | 0.28 | +0.02 |" in changed
    assert "final child accuracy 0.6543" in changed and "0.7812" not in changed
    assert "7.2 GPU-hours on cuda (NVIDIA H100)" in changed
    assert "(55 distinct)" in changed and "best reward 0.777" in changed
    assert "top-1 test error 2.84% (accuracy 0.9716), 3,700,000 parameters" in changed
    assert "12 epochs" in changed
    assert "top-1 test error 3.10% (accuracy 0.9690), 4,100,000 parameters" in base


def test_search_derive_evaluate_sections(cifar_params):
    text = cifar_report(cifar_params)
    assert "- epochs: 300, final child accuracy 0.7812 (first epoch 0.3125), final reward 0.74, " \
           "policy entropy 1.9" in text
    assert "- 100 candidates (97 distinct) scored on 128 validation images: best reward 0.81, the strategy's own " \
           "answer (argmax) " \
           "0.79, mean 0.62; written: best" in text
    assert json.dumps(GENOTYPE) in text
    assert "- genotype: derived, 600 epochs, 30 GPU-hours on cuda (NVIDIA H100)" in text


def test_a_population_strategy_reports_the_entropy_of_its_choice_frequencies_and_no_baseline(cifar_params):
    """EvNAS, NAO and REA have no policy and no reward baseline (the search stage leaves the NaN baseline out of
    its JSON): the report says what its entropy is of and prints no baseline line; EDNAS keeps both."""
    text = cifar_report({**cifar_params, "search.strategy": "nao"}, search=without(search_metrics(), "baseline"))
    assert "final reward 0.74, entropy of its choice frequencies 1.9" in text
    assert "reward baseline" not in text and "policy entropy" not in text
    enas = cifar_report({**cifar_params, "search.strategy": "enas"})
    assert "entropy of its choice frequencies 1.9" in enas
    # ENAS's baseline averages the reward plus its entropy bonus (above the reward): the line says so
    assert ("- final reward baseline (moving average of reward + entropy_weight x sample entropy (ENAS)) 0.73"
            in enas)
    assert "- final reward baseline (moving average of the reward) 0.73" in cifar_report(cifar_params)


def test_a_text_task_reports_tokens_and_no_auxiliary_head():
    """PTB's derive scores a bptt window of tokens, and an RNN has no auxiliary head: the report must not speak
    of images or of an auxiliary head there; CIFAR-10's report does."""
    ptb = build_report("ptb", flat_params(dataclasses.replace(Params(), task="ptb")), search_metrics(),
                       derive_metrics(scored_on_images=2240),
                       without(evaluate_metrics(test_ppl=61.2, params=175_120), "test_error"), GENOTYPE)
    assert "scored on 2240 validation tokens (one bptt window)" in ptb and "validation images" not in ptb
    assert "175,120 parameters\n" in ptb and "auxiliary" not in ptb
    cifar = build_report("cifar10", flat_params(Params()), search_metrics(), derive_metrics(), evaluate_metrics(),
                         GENOTYPE)
    assert "scored on 128 validation images" in cifar and "4,100,000 parameters (auxiliary head excluded)" in cifar


def test_mlflow_run_ids_appear(cifar_params):
    text = cifar_report(cifar_params)
    assert "search `searchrun0001`, derive `deriverun0002`, evaluate `evalrun0003`" in text


def test_configuration_table_shows_task_sections(cifar_params, digits_params):
    cifar = cifar_report(cifar_params)
    assert "| search.lr | 0.05 |" in cifar and "| evaluate.layers | 20 |" in cifar
    assert "| task | cifar10 |" in cifar and "| runtime.seed | 2 |" in cifar
    assert "digits." not in cifar and "tracking." not in cifar
    digits = build_report("digits", digits_params, search_metrics(), derive_metrics(), evaluate_metrics(), GENOTYPE)
    assert "| digits.search.lr | 0.1 |" in digits and "| digits.evaluate.layers | 5 |" in digits
    assert "| search.lr |" not in digits


def test_digits_has_no_paper_experiment(digits_params):
    search = without(search_metrics(), "search_gpu_hours", search_cpu_hours=0.25, device="cpu")
    evaluate = without(evaluate_metrics(test_error=7.5, params_m=0.012), "train_gpu_hours", train_cpu_hours=0.1,
                       device="cpu")
    text = build_report("digits", digits_params, search, derive_metrics(), evaluate, GENOTYPE)
    lines = text.splitlines()
    assert lines[0] == "# EDNAS report: digits"
    assert "No published digits result of strategy `ednas`; the numbers above stand alone." in lines
    assert "| test error (%) | 7.5 | - | - |" in lines
    assert "| parameters (M) | 0.012 | - | - |" in lines
    assert "2.84" not in text and "3.7 |" not in text
    assert "GPU time" not in text  # no published cost to set the CPU time against


def test_a_cpu_search_cost_beside_a_published_gpu_cost_says_so(cifar_params):
    search = without(search_metrics(), "search_gpu_hours", search_cpu_hours=48.0, device="cpu")
    assert "The search cost here is measured in CPU time; the paper's is GPU time." in cifar_report(cifar_params,
                                                                                                    search=search)
    assert "GPU time" not in cifar_report(cifar_params)  # measured on a GPU


def test_cpu_hours_label(cifar_params):
    search = without(search_metrics(), "search_gpu_hours", search_cpu_hours=48.0, device="cpu")
    evaluate = without(evaluate_metrics(), "train_gpu_hours", train_cpu_hours=2.5, device="cpu")
    text = cifar_report(cifar_params, search=search, evaluate=evaluate)
    assert "| search cost (CPU-days) | 2 | 0.28 | +1.72 |" in text
    assert "- measured cost: 48 CPU-hours on cpu" in text
    assert "- genotype: derived, 600 epochs, 2.5 CPU-hours on cpu" in text
    assert "GPU-" not in text


def test_training_hours_label_follows_evaluate_metrics(cifar_params):
    """Search and evaluation may run on different machines (evaluate re-run alone): each label follows its own
    file's key."""
    evaluate = without(evaluate_metrics(), "train_gpu_hours", train_cpu_hours=2.5, device="cpu")
    text = cifar_report(cifar_params, evaluate=evaluate)
    assert "12 GPU-hours on cuda (NVIDIA H100)" in text
    assert "- genotype: derived, 600 epochs, 2.5 CPU-hours on cpu" in text
    search = without(search_metrics(), "search_gpu_hours", search_cpu_hours=1.0, device="cpu")
    text = cifar_report(cifar_params, search=search)
    assert "1 CPU-hours on cpu" in text
    assert "- genotype: derived, 600 epochs, 30 GPU-hours on cuda (NVIDIA H100)" in text
