"""NATS-Bench topology benchmark files for tests, written in the structure nats_bench writes them
(nats_bench/api_utils.py: `pickle_save` = bz2 + pickle protocol 4; a record per architecture {hp: ArchResults
state_dict}, whose `all_results` maps (dataset, seed) to a ResultsCount state_dict; meta.pickle.pbz2 holds
'meta_archs'). The accuracies are given per trial seed, so a reader must average them as nats_bench does."""

from __future__ import annotations

import bz2
import functools
import pickle
import tarfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

SEEDS = (777, 888)
# hp -> dataset -> the evaluation sets nats_bench records for it
EVAL_SETS = {"cifar10-valid": ("x-valid", "ori-test"), "cifar10": ("ori-test",),
             "cifar100": ("ori-test", "x-valid", "x-test"), "ImageNet16-120": ("ori-test", "x-valid", "x-test")}
CLASSES = {"cifar10-valid": 10, "cifar10": 10, "cifar100": 100, "ImageNet16-120": 120}


@functools.lru_cache(maxsize=None)
def _trial_template(dataset: str, epochs: int) -> dict:
    """The fields of a trial that do not depend on the architecture (built once: thousands of records share it)."""
    kept = (0, epochs - 2, epochs - 1)
    accs = {f"{eval_set}@{e}": 10.0 + e * 0.1 for eval_set in EVAL_SETS[dataset] for e in kept}
    return {"name": dataset, "net_state_dict": None,
            "train_acc1es": OrderedDict((e, np.float64(20.0 + e)) for e in kept), "train_acc5es": None,
            "train_losses": OrderedDict((e, np.float64(2.0 - e / epochs)) for e in kept),
            "train_times": OrderedDict((e, 7.5) for e in kept),
            "params": np.float64(0.37), "flop": np.float64(52.3), "epochs": epochs, "latency": [0.012],
            "eval_names": list(EVAL_SETS[dataset]), "eval_acc1es": accs,
            "eval_times": {k: 0.5 for k in accs if k.endswith(f"@{epochs - 1}")},
            "eval_losses": {k: 1.0 for k in accs if k.endswith(f"@{epochs - 1}")}}


def trial(arch_str: str, dataset: str, seed: int, epochs: int, final: dict[str, float]) -> dict:
    """A ResultsCount state_dict: `final` gives the last epoch's accuracy of each evaluation set (others: 50).
    nats_bench keeps every epoch; to stay small these hold the first and the last two (the earlier ones differ
    from the last, so a reader of the wrong epoch is caught), with plausible numbers (numpy floats, as AutoDL's
    counters give)."""
    template = _trial_template(dataset, epochs)
    accs = dict(template["eval_acc1es"])
    for eval_set in EVAL_SETS[dataset]:
        accs[f"{eval_set}@{epochs - 1}"] = final.get(eval_set, 50.0)
    return {**template, "seed": seed, "eval_acc1es": accs,
            "arch_config": {"name": "infer.tiny", "C": 16, "N": 5, "arch_str": arch_str,
                            "class_num": CLASSES[dataset]}}


def record(index: int, arch_str: str, valid_12: list[float], tests: dict[str, list[float]]) -> dict:
    """{hp: ArchResults state_dict}: hp '12' with `valid_12` (one accuracy per seed) as cifar10-valid's x-valid;
    hp '200' with tests['cifar10'] as cifar10's ori-test and tests['cifar100'] / tests['ImageNet16-120'] as
    x-test."""
    def results(hp: int, finals: dict[str, dict[str, list[float]]]) -> dict:
        all_results, seeds = {}, {}
        for dataset in EVAL_SETS:
            per_seed = finals.get(dataset, {})
            n = max([len(v) for v in per_seed.values()] or [1])
            seeds[dataset] = list(SEEDS[:n])
            for k, seed in enumerate(seeds[dataset]):
                final = {eval_set: values[k] for eval_set, values in per_seed.items()}
                all_results[(dataset, seed)] = trial(arch_str, dataset, seed, hp, final)
        return {"arch_index": index, "arch_str": arch_str, "all_results": all_results, "dataset_seed": seeds,
                "clear_net_done": True}

    return {"12": results(12, {"cifar10-valid": {"x-valid": valid_12}}),
            "200": results(200, {"cifar10": {"ori-test": tests["cifar10"]},
                                 "cifar100": {"x-test": tests["cifar100"]},
                                 "ImageNet16-120": {"x-test": tests["ImageNet16-120"]}})}


def pbz2(obj: object) -> bytes:
    """nats_bench's pickle_save: pickle protocol 4, bz2-compressed."""
    return bz2.compress(pickle.dumps(obj, protocol=4), 1)


def write_archive(folder: Path, arch_strings: list[str], records: dict[int, dict]) -> Path:
    """NATS-tss-...-simple: meta.pickle.pbz2 and <index:06d>.pickle.pbz2 per record. Returns `folder`."""
    folder.mkdir(parents=True)
    (folder / "meta.pickle.pbz2").write_bytes(pbz2({"meta_archs": list(arch_strings), "arch2infos": {},
                                                     "evaluated_indexes": set()}))
    for index, content in records.items():
        (folder / f"{index:06d}.pickle.pbz2").write_bytes(pbz2(content))
    return folder


def write_tar(folder: Path, tar: Path) -> Path:
    """The archive folder as its published .tar (members under the folder's name)."""
    with tarfile.open(tar, "w") as archive:
        archive.add(folder, arcname=folder.name)
    return tar


def write_benchmark_file(path: Path, arch_strings: list[str], records: dict[int, dict]) -> Path:
    """The single benchmark file: {'meta_archs', 'arch2infos': {index: record}, 'evaluated_indexes'}."""
    path.write_bytes(pbz2({"meta_archs": list(arch_strings), "arch2infos": records,
                           "evaluated_indexes": set(records)}))
    return path


def table_records(arch_strings: list[str], valid_12: np.ndarray, tests: dict[str, np.ndarray],
                  spread: float = 0.0) -> dict[int, dict]:
    """A record per architecture whose seed-mean accuracies are the given ones: with `spread` two seeds at
    value -+ spread, else one seed at the value."""
    def seeds(value: float) -> list[float]:
        return [float(value) - spread, float(value) + spread] if spread else [float(value)]

    names = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16": "ImageNet16-120"}
    return {i: record(i, s, seeds(valid_12[i]), {names[d]: seeds(tests[d][i]) for d in names})
            for i, s in enumerate(arch_strings)}


def write_nb201_pth(path: Path, arch_strings: list[str], records: dict[int, dict]) -> Path:
    """NAS-Bench-201's own benchmark file (nas_201_api): torch.save of {'meta_archs', 'arch2infos': {index:
    {'less': 12-epoch results, 'full': 200-epoch results}}, 'evaluated_indexes'}."""
    import torch

    infos = {i: {"less": r["12"], "full": r["200"]} for i, r in records.items()}
    torch.save({"meta_archs": list(arch_strings), "arch2infos": infos, "evaluated_indexes": sorted(records)}, path)
    return path
