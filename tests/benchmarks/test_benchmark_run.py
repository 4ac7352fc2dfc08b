"""Smoke test of the benchmark harness at tiny sizes on the CPU: every section runs and the JSON is complete.
(The speed targets are measured by running the harness on a GPU, never by timed tests.)"""

from __future__ import annotations

import json

import pytest

from benchmarks.run import main


@pytest.mark.slow
def test_quick_run_writes_every_section(tmp_path):
    results = main(["--quick", "--device", "cpu", "--out", str(tmp_path)])
    written = json.loads(next(tmp_path.glob("cpu-*-quick.json")).read_text())
    assert written == json.loads(json.dumps(results))
    assert written["device"].startswith("CPU") and written["torch"] and written["dtype"] == "float32"
    assert written["search_step"]["ratio"] > 0
    assert written["search_epoch"]["child_images_per_s"] > 0 and 0 < written["search_epoch"]["policy_share"] < 1
    assert {"fp32_nchw_images_per_s", "channels_last_images_per_s"} <= set(written["eval_train"])
    assert written["data"]["batches_per_s"] > 0
    assert written["rnn"]["search_tokens_per_s"] > 0 and written["rnn"]["eval_tokens_per_s"] > 0
