"""search: the architecture search (search.strategy: EDNAS or another strategy of ednas_core/strategies) on the
prepared data. Writes data/search/{supernet.safetensors, policy_history.npz, final_policy.json},
metrics/search.json and metrics/search_epochs.csv; logs every epoch to MLflow.

A resumable checkpoint (data/search/checkpoint.safetensors, not a DVC output) is written every epoch: a killed
`dvc repro` resumes the search where it stopped; it is removed once the search has finished.

runtime.gpus > 1 (image and text tasks; a tabular nb201 search stays one process): the stage re-launches itself
under torchrun; under the user's own torchrun command (several nodes) it runs as the rank it is. Every rank samples
the same architectures; rank 0 alone logs to MLflow and writes."""

from __future__ import annotations

import io
import math
import sys

import numpy as np

from ednas_core import distributed
from ednas_core.checkpoint import atomic_write_bytes, save_checkpoint
from ednas_core.data.prepared import read_manifest
from ednas_core.genotypes import from_architecture
from ednas_core.tasks import get_task
from ednas_core.tasks.nb201 import is_tabular
from ednas_core.runtime import Runtime
from ednas_core.epochs import CheckpointMismatch, discard_unreadable
from ednas_core.search import SearchResult
from ednas_core.strategies import STRATEGIES
from ednas_core.tracking import MLflowPolicyFigures, MLflowSearchLogger, StageRun, policy_json

from .common import (METRICS_DIR, PREPARED, Progress, RankRun, SEARCH_DIR, code_version, epoch_rows, flat_params,
                     read_params, relaunched, run_stage, stage_tags, write_csv, write_json)

CHECKPOINT = SEARCH_DIR / "checkpoint.safetensors"
SUPERNET = SEARCH_DIR / "supernet.safetensors"
# nb201: the best cell found so far (tabular), the strategy's own answer judged by the table (tasks.nb201.answer_probe)
# and the ranking quality of the shared weights (weight sharing)
NB201_HEADLINE = ("queries", "best_valid_acc", "best_test_acc", "answer_test_acc", "answer_rank", "rank_kendall_tau",
                  "rank_spearman_rho", "rank_top5_precision")


def history_arrays(result: SearchResult) -> dict[str, np.ndarray]:
    """Policy softmax, sampling counts and metrics of every epoch, stacked: key -> [epochs, ...]; a metric that
    some epochs lack (measured only since a resume with a later version) is NaN there."""
    arrays: dict[str, np.ndarray] = {"epoch": np.array([r.epoch + 1 for r in result.history])}
    for key in result.history[0].probabilities:
        arrays[f"prob_{key}"] = np.stack([r.probabilities[key] for r in result.history])
    for key in result.history[0].counts:
        arrays[f"counts_{key}"] = np.stack([r.counts[key] for r in result.history])
    for key in dict.fromkeys(k for r in result.history for k in r.metrics):  # NaN where an epoch lacks one
        arrays[f"metric_{key}"] = np.array([r.metrics.get(key, math.nan) for r in result.history])
    return arrays


def main() -> None:
    params, text = read_params()
    task = params.task_config()
    if not is_tabular(task.search) and relaunched("search", params):  # runtime.gpus > 1: torchrun ran the ranks
        return
    runtime = Runtime.from_config(params.runtime)  # under torchrun: joins the process group, cuda:LOCAL_RANK
    main_rank = distributed.is_main()
    world = distributed.world()
    task_def = get_task(params.task)
    table = task_def.load_table(PREPARED)
    dataset = task_def.load_data(PREPARED, params.data, task.search)
    task_def.check_search_data(dataset, task.search, params.data, params.task_prefix())  # before anything is written
    if main_rank:  # an unreadable one is set aside before the MLflow run looks
        discard_unreadable(CHECKPOINT, "search")
    # several processes: rank 0 alone logs to MLflow (one run per stage) and writes; the others search with it
    with (StageRun("search", params.task, flat_params(params), text, extra_tags=stage_tags(params),
                   checkpoint=CHECKPOINT) if main_rank else RankRun()) as run:
        run.set_tags({"ednas.device": runtime.name, "ednas.world_size": str(world.size),
                      "ednas.global_batch_size": str(world.size * task.search.batch_size)})
        progress = Progress("search", params.tracking.progress, ("child_loss", "child_acc", "reward", "entropy"))
        callbacks = [MLflowSearchLogger(run, params.tracking.policy_every),
                     MLflowPolicyFigures(run, params.tracking.heatmap_every,
                                         title=STRATEGIES[task.search.strategy].distribution_title),
                     progress] if main_rank else []
        if main_rank and world.distributed:
            print(f"search: {world.size} processes x batch {task.search.batch_size} = global batch "
                  f"{world.size * task.search.batch_size} (policy batch {task.search.policy_batch_size} per rank; "
                  "learning rates as set, not scaled)", file=sys.stderr, flush=True)
        manifest = read_manifest(PREPARED)
        settings = {"code": code_version(), "data_md5": manifest.dataset_md5,
                    **({"table_md5": manifest.table_md5} if manifest.table_md5 else {})}

        def build():
            return task_def.make_search(dataset, task.search, params.data, runtime, CHECKPOINT, callbacks, settings,
                                        table=table)

        search = build()
        try:
            result = search.run()
        except CheckpointMismatch:
            if main_rank:
                print(f"search: {CHECKPOINT} is from other settings or code; starting a new search",
                      file=sys.stderr)
                CHECKPOINT.unlink()
            distributed.barrier()
            run.restart()  # a run that went on from the killed execution holds the discarded epochs
            search = build()
            result = search.run()

        child_state = search.child.state_dict()  # every rank: it averages the ranks' BatchNorm statistics
        if not main_rank:
            return
        final = result.history[-1].metrics
        search_seconds = sum(r.metrics["epoch_time_s"] for r in result.history) * world.size  # all ranks' hours
        argmax = from_architecture(search.space, result.final_architecture)
        save_checkpoint({"child": child_state, "policy": search.strategy.state_dict(),
                         "fingerprint": search.fingerprint, "strategy": search.strategy.name}, SUPERNET)
        arrays = history_arrays(result)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        atomic_write_bytes(SEARCH_DIR / "policy_history.npz", buffer.getvalue())
        final_policy = {"epochs": len(result.history), **policy_json(result.history[-1].probabilities),
                        "argmax_genotype": argmax.to_dict()}
        write_json(SEARCH_DIR / "final_policy.json", final_policy)
        hours_key = "search_gpu_hours" if runtime.device.type == "cuda" else "search_cpu_hours"
        # metrics/search.json: the headline numbers DVC compares (dvc exp show, dvc metrics diff); the rest, with
        # names and ids, in metrics/info/search.json (a plain output, read by the report)
        summary = {"child_acc": final["child_acc"],
                   **({"child_ppl": final["child_ppl"]} if "child_ppl" in final else {}), "entropy": final["entropy"],
                   **{k: final[k] for k in NB201_HEADLINE if k in final}}
        info = {
            "epochs": len(result.history), "first_epoch_child_acc": result.history[0].metrics["child_acc"],
            "child_loss": final["child_loss"], "reward": final["reward"], "baseline": final["baseline"],
            # the search's reward budget: rewards scored (validation batches; table look-ups), resumed epochs too
            "rewards_total": sum(r.metrics["reward_count"] for r in result.history),
            hours_key: search_seconds / 3600.0, "device": runtime.name, "mlflow_run_id": run.run_id,
        }
        # a value the strategy did not measure (NaN: EvNAS has no baseline) is left out: JSON has no NaN
        summary, info = ({k: v for k, v in d.items() if not (isinstance(v, float) and math.isnan(v))}
                         for d in (summary, info))
        write_json(METRICS_DIR / "search.json", summary)
        write_json(METRICS_DIR / "info" / "search.json", info)
        write_csv(METRICS_DIR / "search_epochs.csv", epoch_rows(result.history))
        run.log_metrics({hours_key: info[hours_key], "rewards_total": info["rewards_total"]})
        run.log_pipeline_metrics({"search_child_acc": final["child_acc"], "search_reward": final["reward"],
                                  "search_hours": info[hours_key], "search_rewards_total": info["rewards_total"],
                                  **{f"search_{k}": final[k] for k in ("child_ppl", *NB201_HEADLINE) if k in final}})
        run.log_dict(final_policy, "final_policy.json")
        run.log_artifact(SEARCH_DIR / "policy_history.npz")
        CHECKPOINT.unlink(missing_ok=True)
        found = (f"{final['queries']:.0f} look-ups, best validation accuracy {final['best_valid_acc']:.2f}"
                 if is_tabular(task.search) else f"child_acc {final['child_acc']:.4f}")
        print(f"search: {len(result.history)} epochs, {found}, reward {final['reward']:.4f} -> {SEARCH_DIR}, "
              f"{METRICS_DIR / 'search.json'}")


if __name__ == "__main__":
    run_stage("search", main)
