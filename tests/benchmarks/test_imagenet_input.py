"""Smoke test of the ImageNet input-pipeline benchmark at tiny sizes: it runs and its JSON is complete
(throughput is measured by running the benchmark, never by timed tests)."""

from __future__ import annotations

import json

from benchmarks.imagenet_input import main


def test_quick_run_writes_the_rates_of_each_worker_count(tmp_path):
    results = main(["--quick", "--images", "16", "--workers", "0", "1", "--out", str(tmp_path)])
    written = json.loads(next(tmp_path.glob("imagenet-input-*-quick.json")).read_text())
    assert written == json.loads(json.dumps(results))
    assert set(written["loader"]) == {"0", "1"} and all(r["images_per_s"] > 0 for r in written["loader"].values())
    assert written["best_images_per_s"] == max(r["images_per_s"] for r in written["loader"].values())
    assert written["imagenet_epoch_hours_at_best"] > 0 and written["decode_images_per_s"] > 0
