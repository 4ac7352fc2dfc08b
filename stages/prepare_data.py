"""prepare-data: turns the task's raw data into data/prepared/{dataset.pt, manifest.json} (+ metrics/prepare.json).

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

import socket
from pathlib import Path

from ednas_core.data import DataError, ImageDataset, load_cifar10
from ednas_core.data.cifar10 import BIN_DIR, PY_DIR
from ednas_core.data.digits import load_digits_dataset
from ednas_core.config import Params
from ednas_core.data.nb201_table import NB201Table
from ednas_core.data.prepared import TABLE_FILE, Manifest, md5sum, save_prepared, save_table_manifest
from ednas_core.data.ptb import PTB_FILES, PTB_URL, Corpus, load_ptb, make_synthetic_corpus
from ednas_core.repo import download_lock, raw_data_root
from ednas_core.tasks.imagenet import imagenet_root, prepare_imagenet
from ednas_core.tracking import StageRun

from .common import METRICS_DIR, PREPARED, flat_params, read_params, run_stage, stage_tags, write_json

# md5 of the official python-version files (as torchvision checks them after download)
OFFICIAL_PY_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
NB201_DIR = "nb201"  # data.root/nb201: the NAS-Bench-201 table (ednas_core/data/nb201_table.py says which files)
CIFAR_FILES = {
    BIN_DIR: [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"],
    PY_DIR: [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"],
}


def _download_cifar10(root: Path) -> None:
    """torchvision's download of the python version (md5-checked); one-line DataError when offline."""
    from torchvision.datasets import CIFAR10

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)
    try:
        CIFAR10(str(root), train=True, download=True)
    except Exception as err:
        raise DataError(
            f"CIFAR-10 is not in {root} and could not be downloaded ({type(err).__name__}); offline, place "
            f"{BIN_DIR}/ (data_batch_1..5.bin, test_batch.bin) or {PY_DIR}/ (data_batch_1..5, test_batch, "
            f"batches.meta) from the official archive into {root}/"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)


def _cifar_sources(root: Path) -> dict[str, str]:
    """md5 of the raw files that were read; an official python-version file with another md5 is corrupt."""
    for folder, names in CIFAR_FILES.items():
        if all((root / folder / n).is_file() for n in names):
            sums = {f"{folder}/{n}": md5sum(root / folder / n) for n in names}
            if folder == PY_DIR:
                bad = [n for n in names if sums[f"{folder}/{n}"] != OFFICIAL_PY_MD5[n]]
                if bad:
                    raise DataError(f"{root / folder}: md5 of {', '.join(bad)} differs from the official "
                                    "CIFAR-10 files; delete the folder and download it again")
            return sums
    return {}


def _download_ptb(root: Path) -> None:
    """The three Mikolov files from the standard URL; one-line DataError when offline."""
    import urllib.request

    target = root / "ptb"
    target.mkdir(parents=True, exist_ok=True)
    try:
        for name in PTB_FILES:
            with urllib.request.urlopen(PTB_URL + name, timeout=30) as response:
                (target / f".{name}.part").write_bytes(response.read())
        for name in PTB_FILES:
            (target / f".{name}.part").replace(target / name)
    except OSError as err:
        raise DataError(f"PTB is not in {root} and could not be downloaded ({type(err).__name__}); offline, place "
                        f"{', '.join(PTB_FILES)} (Mikolov's version) into {target}/") from None


def _ptb(root: Path) -> tuple[Corpus, dict[str, str]]:
    def present() -> Path | None:
        return next((f for f in (root, root / "ptb") if all((f / n).is_file() for n in PTB_FILES)), None)

    folder = present()
    if folder is None:
        with download_lock(root):
            if present() is None:
                _download_ptb(root)
        folder = present() or root / "ptb"
    return load_ptb(folder), {f"{folder.name}/{n}": md5sum(folder / n) for n in PTB_FILES}


def load_task_data(task: str, root: Path) -> tuple[ImageDataset | Corpus, dict[str, str]]:
    if task == "ptb":
        return _ptb(root)
    if task == "markov":
        return make_synthetic_corpus(), {"ednas_core.data.ptb.make_synthetic_corpus": "defaults (seed 0)"}
    if task == "digits":
        import sklearn

        return load_digits_dataset(), {"sklearn.datasets.load_digits": f"scikit-learn {sklearn.__version__}"}
    if not any((root / folder).is_dir() for folder in CIFAR_FILES):
        with download_lock(root):
            if not any((root / folder).is_dir() for folder in CIFAR_FILES):
                _download_cifar10(root)
    return load_cifar10(root), _cifar_sources(root)


def _nb201_table(root: Path) -> tuple[NB201Table, str, dict[str, str]]:
    """The checked NAS-Bench-201 table from data.root/nb201, written to data/prepared; its md5 and the raw files'."""
    folder = root / NB201_DIR
    table = NB201Table.load(folder)
    PREPARED.mkdir(parents=True, exist_ok=True)
    table_md5 = table.save(PREPARED / TABLE_FILE)
    sources = {f"{NB201_DIR}/{name}": md5 for name, md5 in table.sources.items()}
    return table, table_md5, sources


def _prepare(params: Params, root: Path) -> tuple[Manifest, NB201Table | None]:
    """Prepares the task's data into data/prepared; nb201 also (in tabular mode: only) its benchmark table."""
    if params.task == "imagenet":
        return prepare_imagenet(params.data, PREPARED)[0], None
    if params.task != "nb201":
        dataset, sources = load_task_data(params.task, root)
        return save_prepared(dataset, PREPARED, params.task, sources), None
    table, table_md5, sources = _nb201_table(root)
    if params.nb201.search.mode == "tabular" and not params.nb201.evaluate.train:
        return save_table_manifest(PREPARED, params.task, table_md5, sources), table
    dataset, cifar_sources = load_task_data("cifar10", root)
    return save_prepared(dataset, PREPARED, params.task, {**sources, **cifar_sources}, table_md5), table


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
        manifest, table = _prepare(params, root)
        summary, info, logged, line = _describe(params, manifest, table)
        write_json(METRICS_DIR / "prepare.json", summary)
        write_json(METRICS_DIR / "info" / "prepare.json", {**info, "mlflow_run_id": run.run_id})
        run.log_metrics(logged)
        run.log_artifact(PREPARED / "manifest.json")
        print(line)


if __name__ == "__main__":
    run_stage("prepare-data", main)
