"""The NAO overlap benchmark (benchmarks/nao_overlap.py): the real search loop with NAO at its published sizes over
a child whose steps cost wall time; one round measured blocking and overlapped."""

from __future__ import annotations

import json
import math
import time

import pytest

from benchmarks.nao_overlap import TimedChild, main
from ednas_core.spaces import CNN_SPACE
from ednas_core.synthetic import planted_architecture


@pytest.mark.parametrize("load", ["sleep", "dispatch"])
def test_a_timed_child_step_lasts_its_time(load):
    child = TimedChild(0.02, load, 4, 2)
    arch = planted_architecture(CNN_SPACE)
    start = time.perf_counter()
    child.train_step(arch, 0)
    assert 0.02 <= time.perf_counter() - start < 1.0
    with pytest.raises(ValueError, match="load: got 'real'"):
        TimedChild(0.02, "real", 4, 2)


def test_a_blocking_round_is_all_waiting_and_an_overlapped_round_waits_less(tmp_path, capsys):
    """At scale 1000 (a child epoch of 21 ms, one EPD pass) the overlapped search waits at most for its EPD's time,
    and both orders report their round's numbers."""
    out = main(["--overlap", "1", "--scale", "1000", "--load", "sleep", "--out", str(tmp_path)])
    assert out == json.loads((tmp_path / "nao_overlap.json").read_text())
    assert out["epd_passes"] == 1 and out["overlap_epochs"] == 1 and out["scale"] == 1000 and out["epd_threads"] == 1
    assert out["sleep_blocking_wait_s"] > 0 and out["sleep_blocking_added_s"] >= out["sleep_blocking_wait_s"] * 0.9
    assert 0 <= out["sleep_overlap_wait_s"] <= out["sleep_epd_s"]
    assert 0 < out["sleep_blocking_share_of_epoch"] < 1 and math.isfinite(out["sleep_overlap_child_slowdown"])
    assert not any(k.startswith("dispatch_") for k in out)
    assert "sleep    overlap  epoch" in capsys.readouterr().out


@pytest.mark.parametrize("args, says", [
    (["--load", "spin"], "argument --load: 'spin': expected some of sleep, dispatch, real, comma-separated"),
    (["--overlap", "0"], "argument --overlap: 0 is below 1"),
    (["--scale", "0.5"], "argument --scale: 0.5 is below 1.0"),
    (["--epd-threads", "0"], "argument --epd-threads: 0 is below 1")])
def test_bad_arguments_stop_with_one_line(args, says, capsys):
    with pytest.raises(SystemExit) as stop:
        main(args)
    assert stop.value.code == 2 and says in capsys.readouterr().err.strip().splitlines()[-1]


def test_the_real_child_measures_a_round_of_the_cnn_search(capsys):
    """--load real: the CNN search's own child (toy sizes with --quick) through the same measurement."""
    out = main(["--overlap", "1", "--scale", "1000", "--load", "real", "--quick", "--epd-threads", "2"])
    assert out["device"] == "cpu" and out["real_epoch_s"] > 0 and out["epd_threads"] == 2
    assert out["real_blocking_wait_s"] > 0 and 0 <= out["real_overlap_wait_s"] <= out["real_epd_s"]
    assert 0 < out["real_blocking_share_of_epoch"] < 1 and math.isfinite(out["real_overlap_added_s"])
    assert "real     overlap  epoch" in capsys.readouterr().out
