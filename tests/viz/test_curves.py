"""Learning curves: the reward axis names the task's reward, no axis hides its values behind an offset, and each
search strategy's own signals get a row of their own."""

from __future__ import annotations

import dataclasses

import pytest

from ednas_core.config import SearchConfig
from ednas_core.spaces import CNN_SPACE
from ednas_core.strategies import STRATEGIES, STRATEGY_NAMES, make_strategy
from ednas_core.viz import evaluate_curves, search_curves
from ednas_core.viz.curves import reward_label


def search_rows(text: bool, epochs: int = 6):
    rows = []
    for e in range(1, epochs + 1):
        row = {"epoch": str(e), "child_loss": str(2.0 - 0.1 * e), "child_acc": str(0.1 * e),
               "reward": str(0.1 * e), "baseline": str(0.08 * e),
               "entropy": str(60.5 + 0.0004 * e)}  # a tiny range far from 0: matplotlib's default shows an offset
        if text:
            row["child_ppl"] = str(7.4 - 0.1 * e)
            row["reward"] = str(80 / (7.4 - 0.1 * e))
        rows.append(row)
    return rows


def axis(fig, title):
    found = [ax for ax in fig.axes if ax.get_title() == title]
    assert len(found) == 1, [ax.get_title() for ax in fig.axes]
    return found[0]


@pytest.mark.parametrize("text, label", [(False, "validation accuracy"),
                                         (True, "reward = c / validation perplexity")])
def test_reward_axis_is_labelled_by_the_tasks_reward(text, label):
    rows = search_rows(text)
    assert reward_label(rows) == label
    ax = axis(search_curves(rows), "policy: reward and baseline (moving average of the reward)")
    assert ax.get_ylabel() == label
    if text:
        assert "accuracy" not in ax.get_ylabel()


def test_text_rows_with_empty_perplexity_are_image_rows():
    rows = [{**r, "child_ppl": ""} for r in search_rows(False)]
    assert reward_label(rows) == "validation accuracy"


def test_no_axis_uses_an_offset_or_scientific_notation():
    fig = search_curves(search_rows(False))
    fig.draw_without_rendering()
    entropy = axis(fig, "policy entropy (all vectors, summed)")
    assert entropy.yaxis.get_offset_text().get_text() == ""
    assert all(t.get_text().startswith("60.50") for t in entropy.get_yticklabels() if t.get_text())
    for ax in fig.axes:
        assert ax.xaxis.get_offset_text().get_text() == "" and ax.yaxis.get_offset_text().get_text() == ""
    rows = [{"epoch": str(e), "train_loss": str(1e-4 + 1e-7 * e), "train_acc": str(0.99990 + 1e-6 * e)}
            for e in range(1, 6)]
    fig = evaluate_curves(rows)
    fig.draw_without_rendering()
    for ax in fig.axes:
        assert ax.yaxis.get_offset_text().get_text() == "", ax.get_title()


def test_ednas_keeps_its_four_panels():
    fig = search_curves(search_rows(False), "ednas", has_policy=True)
    assert sorted(ax.get_title() for ax in fig.axes) == [
        "policy entropy (all vectors, summed)", "policy: reward and baseline (moving average of the reward)",
        "shared-weight child: training accuracy", "shared-weight child: training loss"]


def test_nao_rows_get_its_predictor_panels_drawn_on_its_round_epochs_only():
    """NAO logs its EPD's signals on round epochs (NaN, written empty, on the others) and keeps no baseline."""
    rows = [{**row, "baseline": "", "predictor_loss": "", "pairwise_accuracy": "", "reconstruction_loss": ""}
            for row in search_rows(False)]
    for epoch, (mse, pairs, nll) in {3: (0.02, 0.7, 1.2), 6: (0.01, 0.85, 0.4)}.items():
        rows[epoch - 1].update(predictor_loss=str(mse), pairwise_accuracy=str(pairs), reconstruction_loss=str(nll))
    fig = search_curves(rows, "nao", has_policy=False, own=STRATEGIES["nao"].signal_panels)
    assert len(fig.axes) == 7 and fig.get_suptitle() == "Search learning curves (nao)"
    (line,) = axis(fig, "NAO-WS predictor: pairwise ranking accuracy").get_lines()
    assert list(line.get_xdata()) == [3.0, 6.0] and list(line.get_ydata()) == [0.7, 0.85]
    (reward,) = axis(fig, "reward: mean over the epoch's scored architectures").get_lines()  # no baseline line
    assert reward.get_label() == "reward"
    axis(fig, "entropy of the choice frequencies (all vectors, summed)")


def test_a_population_fitness_axis_is_the_tasks_reward():
    rows = [{**row, "fitness_mean": row["reward"], "fitness_max": row["reward"]} for row in search_rows(True)]
    ax = axis(search_curves(rows, "evnas", has_policy=False, own=STRATEGIES["evnas"].signal_panels),
              "EvNAS population: fitness")
    assert ax.get_ylabel() == "reward = c / validation perplexity" and len(ax.get_lines()) == 2


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_every_panel_key_is_one_the_strategy_logs(name):
    """The panels read search_epochs.csv's columns, which are the strategy's epoch_statistics (and the loop's
    reward, baseline, entropy): a renamed statistic would leave a panel empty ("no data")."""
    strategy = make_strategy(CNN_SPACE, dataclasses.replace(SearchConfig(), strategy=name), 0)
    logged = set(strategy.epoch_statistics())
    for keys, _, _ in STRATEGIES[name].signal_panels:
        assert set(keys) <= logged, (name, set(keys) - logged)



def test_the_report_says_what_enas_baseline_averages(tmp_path, monkeypatch):
    """ENAS's baseline is the moving average of reward + entropy bonus, above the rewards: the search curves the
    report draws (write_figures) say so in the panel title; EDNAS's is the reward's own average."""
    import ednas_core.viz as viz
    from ednas_core.genotypes import PAPER_GENOTYPES
    from ednas_core.report.figures import write_figures

    drawn = {}

    def spy(*args, **kwargs):  # the titles as drawn (write_figures closes the figure once saved)
        fig = search_curves(*args, **kwargs)
        drawn[args[1]] = [ax.get_title() for ax in fig.axes]
        return fig

    monkeypatch.setattr(viz, "search_curves", spy)
    for strategy in ("enas", "ednas"):
        write_figures(tmp_path / strategy, None, PAPER_GENOTYPES["paper-cifar10"], "derived", search_rows(False), [],
                      strategy)
    assert ("enas: reward and baseline (moving average of reward + entropy_weight x sample entropy (ENAS))"
            in drawn["enas"])
    assert "policy: reward and baseline (moving average of the reward)" in drawn["ednas"]
