"""derive: takes the search strategy's candidates (samples of the final policy, the final population or the top
of a pool), scores each on one validation minibatch (images, or a bptt window of tokens for text tasks) with the
search's shared weights, and writes the best (or the strategy's final architecture, derive.mode: argmax) as
data/derive/genotype.json, with every candidate in data/derive/candidates.csv and headline numbers in
metrics/derive.json. derive.mode queried (nb201 tabular; NB201's protocol: nothing looked up beyond
search.budget) draws nothing from the strategy: the candidates are the search's own distinct look-ups with their
table rewards (read without a query), the chosen and best cell the best-validation one among them, so best_reward
is the chosen cell's reward (derive.samples is unused). For nb201 the chosen cell is also looked up in the
benchmark table: its true 200-epoch CIFAR-10 test accuracy and rank among the 15,625 cells go to
metrics/derive.json."""

from __future__ import annotations

import json

from ednas_core.checkpoint import load_checkpoint, require_keys
from ednas_core.derive import derive
from ednas_core.genotypes import save_genotype, to_architecture
from ednas_core.runtime import Runtime
from ednas_core.tasks import get_task
from ednas_core.tasks.nb201 import derive_queried, lookup
from ednas_core.tracking import StageRun

from .common import (DERIVE_DIR, METRICS_DIR, PREPARED, StageError, flat_params, read_params, run_stage,
                     stage_tags, write_csv, write_json)
from .search import SUPERNET

RERUN_SEARCH = "rerun the search (dvc repro search)"


def main() -> None:
    params, text = read_params()
    task = params.task_config()
    runtime = Runtime.from_config(params.runtime)
    if not SUPERNET.is_file():
        raise StageError(f"{SUPERNET} is missing; run the search stage first (dvc repro search)")
    state = require_keys(load_checkpoint(SUPERNET, RERUN_SEARCH), ("child", "policy"), SUPERNET, RERUN_SEARCH)
    task_def = get_task(params.task)
    table = task_def.load_table(PREPARED)
    dataset = task_def.load_data(PREPARED, params.data, task.search)
    with StageRun("derive", params.task, flat_params(params), text, extra_tags=stage_tags(params)) as run:
        child, strategy = task_def.restore_search(dataset, task.search, params.data, runtime, state, SUPERNET,
                                                  RERUN_SEARCH, table=table)
        queried = task.derive.mode == "queried"
        if queried:  # NB201's protocol: the best of the search's own look-ups, no look-up beyond its budget
            result, scored_on = derive_queried(child, strategy), 0
        else:
            score, scored_on = task_def.derive_scorer(child, task.derive.batch_size, runtime)
            result = derive(strategy, score, task.derive.samples, runtime.generator("derive"), task.derive.mode)

        save_genotype(result.chosen.genotype, DERIVE_DIR / "genotype.json")
        save_genotype(result.best.genotype, DERIVE_DIR / "best_genotype.json")
        save_genotype(result.argmax.genotype, DERIVE_DIR / "argmax_genotype.json")
        ranked = result.ranked
        write_csv(DERIVE_DIR / "candidates.csv", [
            {"rank": i + 1, "reward": round(c.reward, 6), "log_prob": round(c.log_prob, 4),
             "genotype": json.dumps(c.genotype.to_dict(), separators=(",", ":"))}
            for i, c in enumerate(ranked)
        ])
        # metrics/derive.json: the headline numbers DVC compares; the rest, with the mode and the MLflow run id,
        # in metrics/info/derive.json (a plain output, read by the report)
        summary = {"best_reward": result.best.reward}
        info = {"mode": result.mode, "samples": len(result.candidates), "distinct_samples": result.distinct_samples,
                "argmax_reward": result.argmax.reward, "chosen_reward": result.chosen.reward,
                "mean_reward": sum(c.reward for c in result.candidates) / len(result.candidates),
                "scored_on_images": scored_on, "mlflow_run_id": run.run_id}
        if table is not None:  # the benchmark's truth about the chosen cell (the search never saw it)
            truth = lookup(table, to_architecture(result.chosen.genotype))
            summary.update({"cifar10_test_acc": truth["cifar10_test_acc"], "rank": truth["rank"]})
            info.update({"arch_string": truth["arch_string"], "nb201_index": truth["nb201_index"]})
        write_json(METRICS_DIR / "derive.json", summary)
        write_json(METRICS_DIR / "info" / "derive.json", info)
        run.log_metrics({k: v for k, v in {**summary, **info}.items() if isinstance(v, (int, float))})
        run.log_pipeline_metrics({f"derive_{k}": v for k, v in summary.items()})
        for name in ("genotype.json", "best_genotype.json", "argmax_genotype.json", "candidates.csv"):
            run.log_artifact(DERIVE_DIR / name, "derive")
        what = "queried cells (the search's own look-ups)" if queried else "samples"
        print(f"derive: best of {len(result.candidates)} {what} reward {result.best.reward:.4f}, argmax "
              f"{result.argmax.reward:.4f}; {result.mode} -> {DERIVE_DIR / 'genotype.json'}")


if __name__ == "__main__":
    run_stage("derive", main)
