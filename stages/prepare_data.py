"""prepare-data: turns the task's raw data into data/prepared/{dataset.pt, manifest.json} (+ metrics/prepare.json);
each task's prepare (ednas_core/tasks/) does the work.

PTB is read from data.root (or data.root/ptb), downloaded from the standard URL when missing; the markov task
generates its corpus. nb201 reads the NAS-Bench-201 table from data.root/nb201 (checked, written as
data/prepared/nb201.csv) and, in weight_sharing mode or to train the found cell (nb201.evaluate.train),
CIFAR-10 as the cifar10 task does; the table cannot be
downloaded here (the stage says which files to place where). imagenet indexes data.root/imagenet/{train,val}/
(file names and sizes, data/prepared/imagenet_index.json): the 150 GB of images stay where they are, and
ImageNet cannot be downloaded automatically (the stage says what to place where).

CIFAR-10 is read from data.root (binary or python version); when missing it is downloaded with torchvision
(python version, md5-checked); offline, the stage stops with one line saying which files to place where.
The md5 of every raw file is recorded in the manifest and checked against the official sums where known."""

from __future__ import annotations

from ednas_core.config import Params
from ednas_core.data.nb201_table import NB201Table
from ednas_core.data.prepared import Manifest
from ednas_core.repo import raw_data_root
from ednas_core.tasks import get_task
from ednas_core.tasks.imagenet import imagenet_root
from ednas_core.tracking import StageRun

from .common import METRICS_DIR, PREPARED, flat_params, read_params, run_stage, stage_tags, write_json


def _describe(params: Params, manifest: Manifest,
              table: NB201Table | None) -> tuple[dict, dict, dict, str]:
    """What the stage records of its data: metrics/prepare.json's numbers (DVC compares them), the names and md5s
    for metrics/info/prepare.json (a plain output), the metrics logged to MLflow, and the line it prints."""
    if manifest.kind == "table":
        summary = {"architectures": len(table), "optimum_test_acc": table.optimum(), "mean_test_acc": table.mean()}
        return (summary, {"task": params.task, "table_md5": manifest.table_md5}, summary,
                f"prepare-data: {params.task}: table of {len(table)} architectures (tabular mode) -> {PREPARED}")
    if manifest.kind == "index":  # the images stay in place; the counts are of the files indexed
        summary = {"train_images": manifest.train, "val_images": manifest.test, "classes": len(manifest.classes)}
        images = imagenet_root(params.data)
        return (summary, {"task": params.task, "images": str(images), "index_md5": manifest.dataset_md5}, summary,
                f"prepare-data: imagenet: indexed {manifest.train:,} train / {manifest.test:,} val images of "
                f"{len(manifest.classes):,} classes in {images} -> {PREPARED}")
    unit = "tokens" if manifest.kind == "text" else "images"
    counts = {f"train_{unit}": manifest.train, f"test_{unit}": manifest.test}
    summary = {**counts, **({"vocab_size": manifest.vocab_size} if manifest.kind == "text" else {})}
    shape = {} if manifest.kind == "text" else {"image_shape": manifest.shape, "classes": len(manifest.classes)}
    info = {"task": params.task, **shape, "dataset_md5": manifest.dataset_md5,
            **({"table_md5": manifest.table_md5} if manifest.table_md5 else {})}
    return (summary, info, counts,
            f"prepare-data: {params.task}: {manifest.train} train / {manifest.test} test {unit} -> {PREPARED}")


def main() -> None:
    params, text = read_params()
    root = raw_data_root(params.data.root)
    with StageRun("prepare-data", params.task, flat_params(params), text, extra_tags=stage_tags(params)) as run:
        # nb201 also returns its benchmark table (written to data/prepared; in tabular mode, alone)
        manifest, table = get_task(params.task).prepare(params, root, PREPARED)
        summary, info, logged, line = _describe(params, manifest, table)
        write_json(METRICS_DIR / "prepare.json", summary)
        write_json(METRICS_DIR / "info" / "prepare.json", {**info, "mlflow_run_id": run.run_id})
        run.log_metrics(logged)
        run.log_artifact(PREPARED / "manifest.json")
        print(line)


if __name__ == "__main__":
    run_stage("prepare-data", main)
