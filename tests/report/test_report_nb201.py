"""The NAS-Bench-201 part of the report: the found cell against the table, the published rows of its mode, and
the curves of the search against the table."""

from __future__ import annotations

from ednas_core.report.nb201 import nb201_curves, nb201_result_lines

EVALUATE = {"arch_string": "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|nor_conv_1x1~2|",
            "nb201_index": 11692, "cifar10_test_acc": 94.015, "cifar100_test_acc": 71.29,
            "imagenet16_test_acc": 44.18, "rank": 37, "architectures": 15625, "cifar10_valid12_acc": 84.09}


def test_tabular_result_lists_the_truth_and_the_tabular_rows():
    text = "\n".join(nb201_result_lines("tabular", "ednas", {"queries": 150.0, "best_valid_acc": 84.09,
                                                              "best_test_acc": 94.015}, {}, EVALUATE))
    assert EVALUATE["arch_string"] in text and "| CIFAR-10 | 94.02 |" in text and "| ImageNet16-120 | 44.18 |" in text
    assert "rank 37 of 15625" in text and "REA | 93.92 +- 0.30" in text and "| this run (ednas) | 94.02 |" in text
    assert "GDAS" not in text


def test_weight_sharing_result_lists_ranking_and_the_weight_sharing_rows():
    search = {"rank_kendall_tau": 0.41, "rank_spearman_rho": 0.58, "rank_top5_precision": 0.2}
    text = "\n".join(nb201_result_lines("weight_sharing", "enas", search, {}, EVALUATE))
    assert "Kendall tau 0.410, Spearman rho 0.580, top-5% precision 0.200" in text
    assert "| GDAS | 93.61 |" in text and "REA" not in text


def test_the_strategys_answer_is_judged_in_both_modes():
    search = {"queries": 150.0, "answer_test_acc": 93.5, "answer_rank": 180.0}
    text = "\n".join(nb201_result_lines("tabular", "enas", search, {}, EVALUATE))
    assert ("- the strategy's own answer at the end of the search (the controller's greedy cell) tests at 93.50, "
            "rank 180 of 15625") in text
    text = "\n".join(nb201_result_lines("weight_sharing", "ednas", {"answer_test_acc": 54.3}, {}, EVALUATE))
    assert "(the policy's most probable cell) tests at 54.30, rank ? of 15625" in text
    assert "own answer" not in "\n".join(nb201_result_lines("tabular", "random", {"queries": 150.0}, {}, EVALUATE))


def test_trained_here_shows_both_accuracies():
    trained = {**EVALUATE, "cifar10_test_acc": 39.5, "table_test_acc": 94.015, "epochs": 1}
    text = "\n".join(nb201_result_lines("tabular", "ednas", {}, {}, trained))
    assert "| CIFAR-10 | 94.02 |" in text and "CIFAR-10 test accuracy 39.50, against the table's 94.02" in text


def test_curves_draw_what_the_rows_hold():
    tabular = [{"epoch": str(e), "best_valid_acc": str(80 + e), "best_test_acc": str(90 + e / 10)} for e in (1, 2)]
    ranking = [{"epoch": "1", "rank_kendall_tau": "", "rank_spearman_rho": "", "rank_top5_precision": ""},
               {"epoch": "2", "rank_kendall_tau": "0.3", "rank_spearman_rho": "0.4", "rank_top5_precision": "0.1"}]
    assert len(nb201_curves(tabular).axes) == 1 and len(nb201_curves(ranking).axes) == 1
    assert nb201_curves([{"epoch": "1", "child_acc": "0.5"}]) is None
    answered = [{**row, "answer_test_acc": str(54.3 + e)} for e, row in enumerate(ranking)]
    assert [a.get_title() for a in nb201_curves(answered).axes] == [
        "The strategy's answer each epoch (its final architecture)", "Ranking of the probe cells by the shared weights"]


def test_tabular_report_reads_as_a_table_search(tmp_path):
    """QA of a tabular nb201 report: a whole count of look-ups, the optimum line inside the axes, no child panels
    (there is no network), no learning curve for a looked-up cell, the cell captioned once, a population's
    heatmaps not called a policy, and no '?' for the evaluation device."""
    import numpy as np

    from ednas_core.genotypes import from_architecture
    from ednas_core.report.figures import write_figures
    from ednas_core.report.markdown import build_report
    from ednas_core.spaces import NB201_SPACE, from_nb201_string
    from ednas_core.viz import policy_heatmaps, search_curves

    text = "\n".join(nb201_result_lines("tabular", "rea", {"queries": 150.0}, {}, EVALUATE))
    assert "- search: 150 table look-ups" in text
    rows = [{"epoch": str(e), "child_loss": "", "child_acc": "", "reward": str(0.8 + e / 100), "baseline": "",
             "entropy": "3.0", "best_valid_acc": str(80 + e), "best_test_acc": str(90 + e / 10)} for e in (1, 2)]
    ax = nb201_curves(rows).axes[0]
    low, high = ax.get_ylim()
    assert low < 94.37 < high  # the optimum line is drawn where it can be seen
    titles = [a.get_title() for a in search_curves(rows, "rea", False).axes]
    assert not any("shared-weight child" in t for t in titles) and len(titles) == 2, titles

    genotype = from_architecture(NB201_SPACE, from_nb201_string(EVALUATE["arch_string"]))
    looked_up = [{"epoch": "200", "test_acc": "94.015"}]
    figures = write_figures(tmp_path, None, genotype, "derived", rows, looked_up, "rea", task="nb201")
    assert figures.evaluate == [] and not any("evaluate" in m for m in figures.missing)
    assert [ref.title for ref in figures.genotype] == ["derived: cell"]
    probs = {"cell_edge": np.full((6, 4), 0.25), "cell_node": np.full((3, 8), 1 / 8)}
    heat = [a.get_title() for a in policy_heatmaps(probs, NB201_SPACE, kind="population").axes]
    assert "cell: operation choices" in heat and not any("policy" in t for t in heat)

    report = build_report("nb201", {"nb201.search.mode": "tabular", "nb201.search.strategy": "rea"},
                          {"epochs": 15, "entropy": 3.0, "queries": 150.0, "device": "cpu"},
                          {"samples": 150, "distinct_samples": 150, "scored_on_images": 0, "mode": "queried"},
                          {**EVALUATE, "genotype": "derived", "test_error": 5.985}, genotype.to_dict())
    assert "evaluation: a look-up in the NAS-Bench-201 table." in report and "evaluation on ?" not in report
    assert "paper's is GPU time" not in report   # no published search cost to compare with
    assert "\n\n\n" not in report                # no doubled blank line after the result section
