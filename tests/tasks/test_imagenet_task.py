"""The imagenet task on a generated ImageFolder of small JPEGs: prepare-data's index and manifest, the search on
image files (the split, the 28x28 stem, exact resume, unreadable files skipped and counted or stopped at),
derive's fixed batch and the mobile-setting trainer (top-5, warm-up and the linear scaling rule)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import Recorder, StopAfter, cpu_runtime, write_pattern_imagefolder
from ednas_core.checkpoint import load_checkpoint
from ednas_core.config import DataConfig, ImageNetEvaluateConfig, ImageNetSearchConfig, Params
from ednas_core.data import DataError
from ednas_core.data.imagenet import INDEX_FILE
from ednas_core.data.prepared import load_prepared, read_manifest
from ednas_core.genotypes import load_genotype, to_architecture
from ednas_core.knobs import ConfigError
from ednas_core.schedules import exponential_lr_with_warmup
from ednas_core.supernet.cnn import ImageNetSearchNetwork
from ednas_core.tasks import derive_scorer, load_data, make_search, make_trainer
from ednas_core.tasks.imagenet import (PreparedImageNet, check_imagenet_split, load_prepared_imagenet,
                                       prepare_imagenet)

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")


def search_config(**overrides) -> ImageNetSearchConfig:
    base = ImageNetSearchConfig(epochs=2, batch_size=8, policy_batch_size=8, layers=3, init_channels=4,
                                train_images=40, policy_images=16, image_size=32, workers=0, lr=0.05,
                                lr_schedule="step", lr_step_epochs=1, nesterov=False, policy_lr=0.01)
    return dataclasses.replace(base, **overrides)


def eval_config(**overrides) -> ImageNetEvaluateConfig:
    base = ImageNetEvaluateConfig(epochs=2, batch_size=16, layers=3, init_channels=8, image_size=32, resize=36,
                                  workers=0, warmup_epochs=2)
    return dataclasses.replace(base, **overrides)


@pytest.fixture
def raw(tmp_path: Path) -> DataConfig:
    write_pattern_imagefolder(tmp_path / "raw" / "imagenet")
    return DataConfig(root=str(tmp_path / "raw"))


@pytest.fixture
def prepared(raw: DataConfig, tmp_path: Path) -> PreparedImageNet:
    prepare_imagenet(raw, tmp_path / "prepared")
    return load_prepared_imagenet(tmp_path / "prepared", raw)


def test_prepare_writes_the_index_and_a_manifest_of_it(raw: DataConfig, tmp_path: Path) -> None:
    folder = tmp_path / "prepared"
    folder.mkdir()
    (folder / "dataset.pt").write_bytes(b"an earlier task's tensors")
    manifest, index = prepare_imagenet(raw, folder)
    assert manifest.kind == "index" and manifest.task == "imagenet"
    assert (manifest.train, manifest.test, len(manifest.classes)) == (60, 18, 6)
    assert manifest.dataset_md5 == index.md5 == json.loads((folder / INDEX_FILE).read_text())["md5"]
    assert read_manifest(folder) == manifest and not (folder / "dataset.pt").exists()
    data = load_data("imagenet", folder, raw, search_config())
    assert isinstance(data, PreparedImageNet) and data.num_classes == 6 and data.index.md5 == index.md5
    with pytest.raises(DataError, match="holds the index of ImageNet's files"):
        load_prepared(folder, "cifar10")


def test_a_changed_index_or_moved_images_are_one_line_errors(raw: DataConfig, tmp_path: Path) -> None:
    folder = tmp_path / "prepared"
    prepare_imagenet(raw, folder)
    (Path(raw.root) / "imagenet").rename(Path(raw.root) / "elsewhere")
    with pytest.raises(DataError, match=r"not in .*raw/imagenet \(train/ and val/\)"):
        load_prepared_imagenet(folder, raw)
    (Path(raw.root) / "elsewhere").rename(Path(raw.root) / "imagenet")
    text = (folder / INDEX_FILE).read_text()
    (folder / INDEX_FILE).write_text(text.replace('"n00000000_0.JPEG"', '"n00000000_0.jpeg"'))
    with pytest.raises(DataError, match="damaged"):
        load_prepared_imagenet(folder, raw)


def test_missing_imagenet_says_what_to_place_where(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        prepare_imagenet(DataConfig(root=str(tmp_path)), tmp_path / "prepared")
    assert "image-net.org" in str(info.value) and f"{tmp_path}/imagenet/train/<wnid>" in str(info.value)
    assert "\n" not in str(info.value)


def test_split_larger_than_the_index_or_smaller_than_a_batch_is_refused(prepared: PreparedImageNet) -> None:
    with pytest.raises(ConfigError, match=r"^imagenet\.search\.train_images \+ imagenet\.search\.policy_images = "
                                          r"70 training images, but the ImageNet index lists 60"):
        check_imagenet_split(prepared, search_config(train_images=50, policy_images=20), "imagenet.")
    with pytest.raises(ConfigError, match=r"^imagenet\.search\.policy_images: 4 images do not fill one batch of 8"):
        check_imagenet_split(prepared, search_config(policy_images=4), "imagenet.")
    check_imagenet_split(prepared, search_config(), "imagenet.")


def test_the_search_network_takes_the_stem_to_an_eighth() -> None:
    net = ImageNetSearchNetwork(init_channels=4, layers=3, num_classes=6)
    seen = {}
    net.stem1.register_forward_hook(lambda module, args, out: seen.update(stem=tuple(out.shape)))
    logits = net(torch.randn(2, 3, 224, 224), to_architecture(load_genotype("paper-imagenet")))
    assert seen["stem"][-2:] == (28, 28) and logits.shape == (2, 6)


def run(prepared, tmp_path, name="ckpt.safetensors", callbacks=(), **overrides):
    search = make_search("imagenet", prepared, search_config(**overrides), DataConfig(), cpu_runtime(0),
                         tmp_path / name, callbacks, {})
    return search, search.run()


def test_search_trains_on_the_split_and_resumes_exactly(prepared: PreparedImageNet, tmp_path: Path) -> None:
    full, result = run(prepared, tmp_path, "full.safetensors", epochs=2, workers=1)
    child = full.child
    assert child.images_per_epoch == (40, 16) and child.steps_per_epoch == (5, 2)
    train_ids = set(child.train_loader.dataset.ids.tolist())
    policy_ids = set(child.valid_loader.dataset.ids.tolist())
    assert len(train_ids) == 40 and len(policy_ids) == 16 and not train_ids & policy_ids
    m = result.history[-1].metrics
    assert m["skipped_images"] == 0 and 0.0 <= m["reward"] <= 1.0 and np.isfinite(m["child_loss"])
    assert [r.metrics["lr"] for r in result.history] == [0.05, pytest.approx(0.005)]  # / 10 every epoch here

    with pytest.raises(StopAfter.Killed):
        run(prepared, tmp_path, "killed.safetensors", callbacks=[StopAfter(0)], epochs=2)
    assert load_checkpoint(tmp_path / "killed.safetensors")["epoch"] == 0
    rec = Recorder()
    resumed, _ = run(prepared, tmp_path, "killed.safetensors", callbacks=[rec], epochs=2)  # workers 0 this time
    assert rec.resumed == [0] and [r.epoch for r in rec.reports] == [1]
    for (name, a), (_, b) in zip(full.child.net.state_dict().items(), resumed.child.net.state_dict().items()):
        assert torch.equal(a, b), name
    timing = {"child_time_s", "policy_time_s", "epoch_time_s", "child_images_per_s", "policy_images_per_s"}
    for a, b in zip(result.history, resumed.history):
        assert {k: v for k, v in a.metrics.items() if k not in timing} == \
               {k: v for k, v in b.metrics.items() if k not in timing}


def _corrupt_a_training_image(prepared: PreparedImageNet) -> None:
    path = prepared.root / prepared.index.relative_path("train", 0)
    data = bytearray(path.read_bytes())
    data[2:40] = b"\x00" * 38  # same size (the index matches), undecodable
    path.write_bytes(bytes(data))


def test_unreadable_images_are_skipped_and_counted_or_stop_the_search(prepared: PreparedImageNet,
                                                                      tmp_path: Path) -> None:
    _corrupt_a_training_image(prepared)
    everything = dict(train_images=44, policy_images=16)  # with the 60 images and seed 0, file 0 is in a split
    _, result = run(prepared, tmp_path, "skip.safetensors", epochs=1, **everything)
    assert result.history[0].metrics["skipped_images"] == 1
    with pytest.raises(DataError, match=r"n00000000_0\.JPEG cannot be decoded"):
        run(prepared, tmp_path, "stop.safetensors", epochs=1, on_unreadable="stop", **everything)


def test_derive_scores_every_candidate_on_the_same_centre_crops(prepared: PreparedImageNet,
                                                                tmp_path: Path) -> None:
    search, _ = run(prepared, tmp_path, epochs=1)
    score, scored_on = derive_scorer("imagenet", search.child, 8, cpu_runtime(0))
    arch = search.strategy.final_architecture()
    assert scored_on == 8 and score(arch) == score(arch) and 0.0 <= score(arch) <= 1.0


def test_trainer_reports_top5_with_label_smoothing_and_the_warm_up(prepared: PreparedImageNet,
                                                                   tmp_path: Path) -> None:
    trainer = make_trainer("imagenet", load_genotype("paper-imagenet"), prepared, eval_config(), cpu_runtime(0),
                           tmp_path / "eval.safetensors", [], {})
    assert trainer.loss_fn.label_smoothing == 0.1 and trainer.test_loss_fn.label_smoothing == 0.0
    result = trainer.run()
    lrs = [h.metrics["lr"] for h in result.history]
    assert lrs == [pytest.approx(exponential_lr_with_warmup(0.1, e, 0.97, 2)) for e in range(2)]
    assert lrs[0] == pytest.approx(0.05)  # 0.1 x 1/2 in the first of two warm-up epochs
    last = result.history[-1].metrics
    assert 0.0 <= last["test_acc"] <= last["test_top5_acc"] <= 1.0 and last["skipped_images"] == 0
    assert result.top5_error == pytest.approx(100.0 - last["test_top5_acc"] * 100.0)
    assert trainer.test_loader.num_samples == 18 and trainer.train_loader.num_samples == 60
    assert "the linear scaling rule" in trainer.lr_note()


def test_trainer_resumes_exactly(prepared: PreparedImageNet, tmp_path: Path) -> None:
    def trainer(name, callbacks=()):
        return make_trainer("imagenet", load_genotype("paper-imagenet"), prepared, eval_config(), cpu_runtime(0),
                            tmp_path / name, callbacks, {})

    full = trainer("full.safetensors").run()
    with pytest.raises(StopAfter.Killed):
        trainer("killed.safetensors", [StopAfter(0)]).run()
    resumed = trainer("killed.safetensors").run()
    for (name, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name
    assert full.test_error == resumed.test_error and full.top5_error == resumed.top5_error


def test_params_yaml_holds_the_papers_imagenet_recipe() -> None:
    config = Params().imagenet
    s, e = config.search, config.evaluate
    assert (s.train_images, s.policy_images, s.epochs, s.batch_size, s.policy_batch_size) == (
        1_000_000, 200_000, 50, 200, 50)
    assert (s.lr, s.lr_schedule, s.lr_step_epochs, s.lr_step_gamma, s.nesterov) == (0.05, "step", 10, 0.1, False)
    assert (e.layers, e.init_channels, e.epochs, e.batch_size, e.lr, e.lr_gamma, e.warmup_epochs) == (
        14, 48, 250, 200, 0.1, 0.97, 5)
    assert (e.weight_decay, e.label_smoothing, e.auxiliary_weight) == (3e-5, 0.1, 0.4)


def test_a_centre_crop_larger_than_the_resize_is_refused_by_name() -> None:
    from dataclasses import asdict

    from ednas_core.config import load_params

    data = asdict(Params())
    data["imagenet"]["evaluate"]["resize"] = 200
    with pytest.raises(ConfigError, match=r"^imagenet\.evaluate\.resize: 200 is smaller than "
                                          r"imagenet\.evaluate\.image_size 224"):
        load_params(data)
    data["imagenet"]["evaluate"]["resize"] = 256
    data["imagenet"]["search"]["on_unreadable"] = "ignore"
    with pytest.raises(ConfigError, match=r"^imagenet\.search\.on_unreadable: got 'ignore'; expected one of skip, stop"):
        load_params(data)
