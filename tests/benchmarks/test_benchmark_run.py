"""Smoke test of the benchmark harness at tiny sizes on the CPU: every section runs and the JSON is complete.
(The speed targets are measured by running the harness on a GPU, never by timed tests.)"""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks.run import compare, main
from helpers import DEVICES
from ednas_core.strategies import STRATEGIES


@pytest.mark.slow
def test_quick_run_writes_every_section(tmp_path):
    results = main(["--quick", "--device", "cpu", "--out", str(tmp_path)])
    written = json.loads(next(tmp_path.glob("cpu-*-quick.json")).read_text())
    assert written == json.loads(json.dumps(results))
    assert written["device"].startswith("CPU") and written["torch"] and written["dtype"] == "float32"
    assert written["search_step"]["ratio"] > 0
    # the weight-sharing network dispatches exactly the fixed network's operators: only the sampled ops run
    assert written["search_step"]["supernet_ops_per_step"] == written["search_step"]["fixed_ops_per_step"] > 100
    assert written["search_epoch"]["child_images_per_s"] > 0 and 0 < written["search_epoch"]["policy_share"] < 1
    assert {"fp32_nchw_images_per_s", "channels_last_images_per_s"} <= set(written["eval_train"])
    assert written["data"]["batches_per_s"] > 0
    assert written["eval_train"]["full_eval_hours_600_epochs"] > 0
    assert written["memory"]["search_peak_gb"] > 0 and written["memory"]["eval_peak_gb"] > 0
    assert written["memory"]["method"].startswith("peak RSS")
    assert all(written["rnn"][k] > 0 for k in ("search_tokens_per_s", "reward_tokens_per_s", "eval_tokens_per_s"))
    for name in STRATEGIES:  # every strategy's host cost per epoch on both spaces, and its share of an epoch
        for space in ("cnn", "rnn"):
            assert written["strategies"][f"{name}_{space}_host_s_per_epoch"] > 0
            assert written["strategies"][f"{name}_{space}_max_epoch_s"] > 0
        assert 0 < written["strategies"][f"{name}_cnn_share_of_epoch"] < 1
    assert written["strategies"]["nao_cnn_rewards_per_epoch"] > 0  # the quick period includes one NAO round


@pytest.mark.slow
def test_compare_prints_the_ratio_to_an_earlier_run(tmp_path, capsys):
    before = tmp_path / "before.json"
    before.write_text(json.dumps({"device": "elsewhere", "data": {"batches_per_s": 1e-3, "gone": 1.0}}))
    results = main(["--quick", "--device", "cpu", "--only", "data", "--out", str(tmp_path), "--compare", str(before)])
    out = capsys.readouterr().out
    assert "measured on elsewhere" in out
    ratio = results["data"]["batches_per_s"] / 1e-3
    assert f"x{ratio:.3f}" in out


def test_compare_pairs_only_numbers_both_runs_have():
    now = {"device": "d", "a": {"x": 2.0, "y": 3.0, "name": "s"}, "b": {"z": 1.0}}
    before = {"device": "d", "a": {"x": 4.0, "name": "s", "y": 0.0}, "c": {"z": 1.0}}
    assert compare(now, before) == [("a", "x", 4.0, 2.0, 0.5)]


def test_strategies_alone_beside_an_earlier_search_epoch(tmp_path, capsys):
    """python -m benchmarks.strategies: the chosen strategies' host cost and their share of the search epoch of an
    earlier benchmarks.run result (e.g. one measured on a GPU); NAO with fewer controller passes per round."""
    from benchmarks.strategies import main as strategies_main

    earlier = tmp_path / "gpu.json"
    earlier.write_text(json.dumps({"device": "NVIDIA H200", "search_epoch": {"child_s": 10.0, "policy_step_ms": 5.0}}))
    result = strategies_main(["--quick", "--only", "enas,nao", "--nao-epochs", "1", "--search-epoch", str(earlier),
                              "--nao-device", "search", "--out", str(tmp_path / "out")])
    assert result["search_epoch_device"] == "NVIDIA H200" and result["nao_epochs"] == 1
    assert result["search_device"] == "cpu" and result["nao_device"] == "search"
    measured = result["strategies"]
    assert {k.split("_")[0] for k in measured} == {"enas", "nao"}
    for name in ("enas", "nao"):
        host = measured[f"{name}_cnn_host_s_per_epoch"]
        epoch = 10.0 + measured[f"{name}_cnn_rewards_per_epoch"] * 0.005 + host
        assert measured[f"{name}_cnn_share_of_epoch"] == pytest.approx(host / epoch)
    for space in ("cnn", "rnn"):  # measured at 1 and 2 passes, projected to the (quick) settings' 2 passes
        assert measured[f"nao_{space}_host_s_per_epoch_projected"] > 0
    assert 0 < measured["nao_cnn_share_of_epoch_projected"] < 1
    assert "enas_cnn_host_s_per_epoch_projected" not in measured
    written = json.loads(next((tmp_path / "out").glob("strategies-*.json")).read_text())
    assert written["strategies"] == measured
    assert "search epoch of: NVIDIA H200" in capsys.readouterr().out
    for bad in (["--only", "darts"], ["--nao-epochs", "0"], ["--search-epoch", str(tmp_path / "missing.json")],
                ["--device", "tpu"], ["--nao-device", "gpu"], ["--threads", "0"]):
        with pytest.raises(SystemExit):
            strategies_main(["--quick", *bad])


def test_strategies_run_on_the_threads_asked_for_and_record_them():
    """--threads N: torch's CPU threads for the run (NAO's CPU EPD scales with them), recorded in the result."""
    from benchmarks.strategies import main as strategies_main

    threads = torch.get_num_threads()
    try:
        result = strategies_main(["--quick", "--only", "random", "--threads", "1"])
        assert result["cpu_threads"] == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(threads)


def test_a_round_of_more_passes_is_projected_linearly():
    """An epoch of 3 s with a round every 30 epochs of 10 passes at 0.2 s: at 1000 passes 3 + 990 x 0.2 / 30."""
    from benchmarks.strategies import projected

    assert projected(3.0, 0.2, 1 / 30, 10, 1000) == pytest.approx(3.0 + 990 * 0.2 / 30)
    assert projected(3.0, 0.2, 1 / 30, 10, 10) == pytest.approx(3.0)
    assert projected(3.0, 0.2, 0.0, 10, 1000) == pytest.approx(3.0)  # no round in the period: nothing to scale


def test_the_epd_clock_times_nao_passes_and_leaves_the_others_alone():
    """benchmarks.strategies times NAO's controller training on its own: every round's passes and seconds."""
    from benchmarks.strategies import QUICK, _config, host_cost
    from ednas_core.config import SearchConfig
    from ednas_core.spaces import CNN_SPACE

    nao = host_cost(CNN_SPACE, _config(SearchConfig(), "nao", True, nao_epochs=3), 4, 2)
    assert nao["epd_passes_per_epoch"] == 3 / QUICK["nao"]["update_every"]  # one round of 3 passes a period
    assert 0 < nao["epd_s_per_pass"] * nao["epd_passes_per_epoch"] < nao["host_s_per_epoch"]
    assert "epd_s_per_pass" not in host_cost(CNN_SPACE, _config(SearchConfig(), "enas", True), 4, 2)


@pytest.mark.parametrize("device", DEVICES)
def test_nao_with_its_epd_on_the_search_device(device):
    """benchmarks.run's strategies section on a GPU adds NAO with its EPD there (nao_epd_on_device_*); on a CPU
    search that is the strategies section itself, so nothing is added."""
    from benchmarks.run import QUICK
    from benchmarks.strategies import bench_nao_epd_on_device

    measured = bench_nao_epd_on_device(QUICK, device, {"child_s": 10.0, "policy_step_ms": 5.0})
    if device == "cpu":
        assert measured == {}
    else:
        assert measured["nao_epd_on_device_cnn_host_s_per_epoch"] > 0
        assert 0 < measured["nao_epd_on_device_cnn_share_of_epoch"] < 1
