"""Smoke test of the ImageNet training-step benchmark at tiny sizes on the CPU: it runs, its JSON is complete and
it names the slower of input pipeline and step as the bound (throughput is measured by running the benchmark,
never by timed tests)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.imagenet_step import main


def run_quick(folder: Path, input_rate: float) -> dict:
    folder.mkdir()
    input_json = folder / "imagenet-input.json"
    input_json.write_text(json.dumps({"best_images_per_s": input_rate}))
    return main(["--quick", "--device", "cpu", "--out", str(folder), "--input-json", str(input_json)])


def test_quick_run_writes_both_step_rates_and_the_bound_of_an_epoch(tmp_path):
    results = run_quick(tmp_path / "fast-input", 1e9)
    written = json.loads(next((tmp_path / "fast-input").glob("imagenet-step-*-quick.json")).read_text())
    assert written == json.loads(json.dumps(results))
    assert written["eval_step"]["images_per_s"] > 0 and written["search_step"]["images_per_s"] > 0
    assert written["eval_step"]["params"] > 0 and written["size"] == 64 and written["torch"]
    assert written["input_images_per_s"] == 1e9 and written["input_json"].endswith("imagenet-input.json")
    assert written["bound_eval"] == written["bound_search"] == "training step"
    assert written["eval_epoch_hours"] > 0 and written["search_epoch_hours"] > 0

    slow = run_quick(tmp_path / "slow-input", 1e-6)
    assert slow["bound_eval"] == slow["bound_search"] == "input pipeline"
    assert slow["eval_epoch_hours"] == 1_281_167 / 1e-6 / 3600
