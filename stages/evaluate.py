"""evaluate: trains a genotype from scratch (the derived one, or a named paper genotype / JSON file given by
evaluate.genotype) and reports top-1 test error (image tasks) or valid/test perplexity (text tasks) and
parameters. Writes data/evaluate/model.safetensors, metrics/evaluate.json and metrics/evaluate_epochs.csv. A
resumable checkpoint (data/evaluate/checkpoint.safetensors, not a DVC output) is written every epoch and removed
when training has finished. nb201: the cell is looked up in the benchmark table instead (evaluate_by_lookup), and
with nb201.evaluate.train also trained here with the benchmark's recipe (ednas_core/train_nb201.py).

runtime.gpus > 1: the stage re-launches itself under torchrun (one process per GPU, DDP); under the user's own
torchrun command (several nodes) it runs as the rank it is. Rank 0 alone logs to MLflow and writes files."""

from __future__ import annotations

import sys

from ednas_core import distributed
from ednas_core.checkpoint import save_checkpoint
from ednas_core.data.prepared import read_manifest
from ednas_core.config import Params
from ednas_core.runtime import Runtime
from ednas_core.epochs import CheckpointMismatch, discard_unreadable
from ednas_core.tracking import StageRun
from ednas_core.tasks import Task, get_task
from ednas_core.tasks.nb201 import TABLE_DATASETS
from ednas_core.train import TrainCallback, TrainEpoch

from .common import (DERIVE_DIR, EVALUATE_DIR, METRICS_DIR, PREPARED, Progress, RankRun, code_version, epoch_rows,
                     flat_params, read_params, relaunched, run_stage, stage_tags, write_csv, write_json)

CHECKPOINT = EVALUATE_DIR / "checkpoint.safetensors"
MODEL = EVALUATE_DIR / "model.safetensors"
NB201_EPOCHS = 200  # the schedule of NAS-Bench-201's accuracies


class MLflowTrainLogger(TrainCallback):
    def __init__(self, run: StageRun):
        self.run = run

    def on_resume(self, history: list[TrainEpoch]) -> None:
        for report in history:
            self.on_epoch_end(report)

    def on_epoch_end(self, report: TrainEpoch) -> None:
        self.run.log_metrics(report.metrics, step=report.epoch + 1)


def evaluate_by_lookup(task_def: Task, params: Params, text: str) -> None:
    """A task with a table that does not train (nb201.evaluate.train false): the benchmark trained every cell (200
    epochs on CIFAR-10, CIFAR-100 and ImageNet16-120), so the cell is looked up, not trained.
    data/evaluate/model.safetensors holds the cell and its table row, no weights."""
    source = params.task_config().evaluate.genotype
    genotype = task_def.genotype_of(source, DERIVE_DIR / "genotype.json")
    truth = task_def.truth(genotype, PREPARED)
    with StageRun("evaluate", params.task, flat_params(params), text, extra_tags=stage_tags(params)) as run:
        run.set_tags({"ednas.genotype_source": source, "ednas.nb201_arch": truth["arch_string"]})
        run.log_dict(genotype.to_dict(), "genotype.json")
        save_checkpoint({"genotype": genotype.to_dict(), "nb201": truth}, MODEL)
        summary = {"test_error": 100.0 - truth["cifar10_test_acc"], "rank": truth["rank"],
                   **{f"{d}_test_acc": truth[f"{d}_test_acc"] for d in TABLE_DATASETS if f"{d}_test_acc" in truth}}
        info = {"genotype": source, "evaluation": "NAS-Bench-201 table look-up (200-epoch training)",
                "test_acc": truth["cifar10_test_acc"], **truth, "mlflow_run_id": run.run_id}
        write_json(METRICS_DIR / "evaluate.json", summary)
        write_json(METRICS_DIR / "info" / "evaluate.json", info)
        # the benchmark records the end of its 200-epoch schedule: one row, at epoch 200
        write_csv(METRICS_DIR / "evaluate_epochs.csv", [{"epoch": NB201_EPOCHS, "test_acc": truth["cifar10_test_acc"],
                                                         "test_error": summary["test_error"]}])
        run.log_metrics({k: float(v) for k, v in summary.items()})
        run.log_pipeline_metrics({k: float(v) for k, v in summary.items() if k == "test_error"})
        run.log_artifact(MODEL, "model")
        print(f"evaluate: {truth['arch_string']}: CIFAR-10 test accuracy {truth['cifar10_test_acc']:.2f}% after "
              f"NB201's 200 epochs, rank {truth['rank']} of {truth['architectures']} -> {METRICS_DIR / 'evaluate.json'}")


def main() -> None:
    params, text = read_params()
    task_def = get_task(params.task)
    if not task_def.trains(params.task_config().evaluate):
        evaluate_by_lookup(task_def, params, text)
        return
    if relaunched("evaluate", params):  # runtime.gpus > 1: torchrun ran the ranks of this stage
        return
    task = params.task_config()
    runtime = Runtime.from_config(params.runtime)  # under torchrun: joins the process group, cuda:LOCAL_RANK
    main_rank = distributed.is_main()
    source = task.evaluate.genotype
    genotype = task_def.genotype_of(source, DERIVE_DIR / "genotype.json")
    truth = task_def.truth(genotype, PREPARED)  # nb201: trained with the benchmark's recipe, and looked up beside
    # the images to train on (no search config: a tabular nb201 search has no images, its evaluation does)
    dataset = task_def.load_data(PREPARED, params.data, None)
    settings = {"code": code_version(), "data_md5": read_manifest(PREPARED).dataset_md5}  # checkpoint fingerprint
    if main_rank:  # an unreadable one is set aside before the MLflow run looks
        discard_unreadable(CHECKPOINT, "evaluate")
    world = distributed.world()
    # several processes: rank 0 alone logs to MLflow (one run per stage) and writes; the others train with it
    with (StageRun("evaluate", params.task, flat_params(params), text, extra_tags=stage_tags(params),
                   checkpoint=CHECKPOINT) if main_rank else RankRun()) as run:
        run.set_tags({"ednas.device": runtime.name, "ednas.genotype_source": source,
                      "ednas.world_size": str(world.size),
                      "ednas.global_batch_size": str(world.size * task.evaluate.batch_size)})
        run.log_dict(genotype.to_dict(), "genotype.json")
        headline = ("train_ppl", "valid_ppl") if task_def.text else ("train_loss", "train_acc", "test_acc")
        progress = Progress("evaluate", params.tracking.progress, headline)

        def build():
            return task_def.make_trainer(genotype, dataset, task.evaluate, runtime, CHECKPOINT,
                                         [MLflowTrainLogger(run), progress] if main_rank else [], settings=settings)

        try:
            result = build().run()
        except CheckpointMismatch:
            if main_rank:
                print(f"evaluate: {CHECKPOINT} is from other settings or code; starting over", file=sys.stderr)
                CHECKPOINT.unlink()
            distributed.barrier()
            run.restart()  # a run that went on from the killed execution holds the discarded epochs
            result = build().run()
        if not main_rank:
            return

        save_checkpoint({"model": result.model.state_dict(), "genotype": genotype.to_dict(),
                         "evaluate": flat_params(params)}, MODEL)
        seconds = sum(h.metrics["epoch_time_s"] for h in result.history) * world.size  # device-hours of all ranks
        hours_key = "train_gpu_hours" if runtime.device.type == "cuda" else "train_cpu_hours"
        # metrics/evaluate.json: the headline numbers DVC compares; the rest, with the genotype source, the device
        # and the MLflow run id, in metrics/info/evaluate.json (a plain output, read by the report)
        if task_def.text:
            scores = {"test_ppl": result.test_ppl, "valid_ppl": result.valid_ppl}
            more = {"best_valid_ppl": result.best_valid_ppl, "test_epoch": result.test_epoch}
            headline = f"test perplexity {result.test_ppl:.2f} (weights of epoch {result.test_epoch})"
        else:
            scores = {"test_error": result.test_error,
                      **({"top5_error": result.top5_error} if result.top5_error is not None else {})}
            more = {"test_acc": result.test_acc}
            headline = f"test error {result.test_error:.2f}%" + (
                f", top-5 error {result.top5_error:.2f}%" if result.top5_error is not None else "")
        summary = {**scores, "params": result.params}
        info = {"genotype": source, "epochs": len(result.history), **more, "params_m": result.params / 1e6,
                hours_key: seconds / 3600.0, "device": runtime.name, "mlflow_run_id": run.run_id}
        if truth is not None:  # nb201: what the benchmark measured for the same cell
            summary.update({"table_test_acc": truth["cifar10_test_acc"], "rank": truth["rank"]})
            info = {**truth, **info, "cifar10_test_acc": result.test_acc * 100.0,
                    "evaluation": f"trained here ({len(result.history)} epochs) and looked up in NAS-Bench-201"}
            headline += f" (the benchmark's 200 epochs: {100.0 - truth['cifar10_test_acc']:.2f}%)"
        write_json(METRICS_DIR / "evaluate.json", summary)
        write_json(METRICS_DIR / "info" / "evaluate.json", info)
        write_csv(METRICS_DIR / "evaluate_epochs.csv", epoch_rows(result.history))
        # per-epoch values (test_acc, valid/test ppl) are already logged by epoch; add what only the end knows
        final = ({k: v for k, v in scores.items() if k in ("test_error", "top5_error")} if "test_error" in scores
                 else {"best_valid_ppl": result.best_valid_ppl, "test_epoch": result.test_epoch})
        run.log_metrics({**final, "params_m": result.params / 1e6, hours_key: seconds / 3600})
        run.log_pipeline_metrics({**scores, "params_m": result.params / 1e6, "evaluate_hours": seconds / 3600,
                                  **({"table_test_acc": truth["cifar10_test_acc"]} if truth is not None else {})})
        if "test_ppl" in scores:  # the final single-column test pass: at the last epoch's step, logged later,
            run.log_metrics({"test_ppl": result.test_ppl}, step=len(result.history))  # so MLflow shows it
        run.log_artifact(MODEL, "model")
        CHECKPOINT.unlink(missing_ok=True)
        print(f"evaluate: {headline} with {result.params / 1e6:.2f}M parameters -> {METRICS_DIR / 'evaluate.json'}")


if __name__ == "__main__":
    run_stage("evaluate", main)
