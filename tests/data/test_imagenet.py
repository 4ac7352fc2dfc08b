"""The ImageNet data layer on a tiny ImageFolder of random JPEGs: the index (counts, md5, every layout error),
its JSON file, the search split, decoding with corrupt files ('stop' / 'skip', also in worker processes), the
transforms, device normalisation and the (seed, epoch) order of the loader."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.io import encode_jpeg, encode_png

from ednas_core.data import DataError
from ednas_core.data.imagenet import (IMAGENET_MEAN, IMAGENET_STD, DeviceNormalize, EpochSampler, ImageNetDataset,
                                      ImageNetIndex, imagenet_loader, index_imagenet, load_index, save_index,
                                      search_split, train_transform, val_transform)

WNIDS = ["n01440764", "n01443537", "n01484850"]
TRAIN_PER_CLASS, VAL_PER_CLASS = 6, 2
VALPREP = ("sort val/ into <wnid> folders with the well-known valprep.sh run inside val/ "
           "(https://raw.githubusercontent.com/soumith/imagenetloader.torch/master/valprep.sh)")
RERUN = "rerun `dvc repro prepare-data`"
# torchvision 0.29 deprecates its image codecs in favour of TorchCodec (not a dependency); the task asks for them
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")


def random_jpeg(seed: int, height: int = 64, width: int = 80) -> bytes:
    image = torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    return encode_jpeg(image, quality=90).numpy().tobytes()


def write_imagefolder(root: Path) -> Path:
    """3 classes x (6 train + 2 val) random 64x80 images; one train image per class is named .jpg and one .PNG
    (a real PNG), to check the case-insensitive extensions; a hidden file and a text file must be ignored."""
    seed = 0
    for split, per_class in (("train", TRAIN_PER_CLASS), ("val", VAL_PER_CLASS)):
        for wnid in WNIDS:
            folder = root / split / wnid
            folder.mkdir(parents=True)
            for k in range(per_class):
                seed += 1
                if split == "train" and k == 4:
                    (folder / f"{wnid}_{k}.jpg").write_bytes(random_jpeg(seed))
                elif split == "train" and k == 5:
                    image = torch.randint(0, 256, (3, 64, 80), dtype=torch.uint8,
                                          generator=torch.Generator().manual_seed(seed))
                    (folder / f"{wnid}_{k}.PNG").write_bytes(encode_png(image).numpy().tobytes())
                else:
                    (folder / f"{wnid}_{k}.JPEG").write_bytes(random_jpeg(seed))
            (folder / ".hidden.JPEG").write_bytes(b"not an image")
            (folder / "notes.txt").write_text("ignored")
    return root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return write_imagefolder(tmp_path / "imagenet")


@pytest.fixture
def index(root: Path) -> ImageNetIndex:
    return index_imagenet(root)


def message(excinfo: pytest.ExceptionInfo) -> str:
    text = str(excinfo.value)
    assert "\n" not in text
    return text


# ------------------------------------------------------------------------------------------------------- index


def test_index_lists_classes_files_and_counts(root: Path, index: ImageNetIndex) -> None:
    assert index.classes == tuple(WNIDS)
    assert index.counts == {"train": 18, "val": 6}
    train = list(index.files("train"))
    expected = sorted(p.relative_to(root).as_posix() for p in (root / "train").glob("*/*")
                      if not p.name.startswith(".") and p.suffix != ".txt")
    assert [path for path, _, _ in train] == expected  # sorted: class, then name; .jpg/.PNG kept, others not
    assert {path.rsplit(".", 1)[1] for path, _, _ in train} == {"JPEG", "jpg", "PNG"}
    for path, label, size in train + list(index.files("val")):
        assert path.split("/")[1] == WNIDS[label]
        assert size == (root / path).stat().st_size
    assert [label for _, label, _ in index.files("val")] == [0, 0, 1, 1, 2, 2]


def test_md5_is_stable_machine_independent_and_tracks_the_files(root: Path, index: ImageNetIndex,
                                                                tmp_path: Path) -> None:
    assert len(index.md5) == 32 and index_imagenet(root).md5 == index.md5
    moved = tmp_path / "elsewhere" / "ILSVRC"
    shutil.copytree(root, moved)
    assert index_imagenet(moved).md5 == index.md5  # relative paths: the root's location is not hashed
    (root / "val" / WNIDS[1] / "extra.JPEG").write_bytes(random_jpeg(99))
    added = index_imagenet(root)
    assert added.counts == {"train": 18, "val": 7} and added.md5 != index.md5
    (moved / "train" / WNIDS[0] / f"{WNIDS[0]}_0.JPEG").write_bytes(random_jpeg(100, 64, 81))  # another size
    assert index_imagenet(moved).md5 != index.md5


def _get(root: Path) -> str:
    return (f"ImageNet cannot be downloaded automatically: register at https://image-net.org, download "
            f"ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar, extract them to {root}/train/<wnid>/*.JPEG "
            f"(each inner n*.tar into a folder of its name) and {root}/val/<wnid>/*.JPEG (sort val/ into <wnid> "
            f"folders with the well-known valprep.sh run inside val/), or place both archives and "
            f"ILSVRC2012_devkit_t12.tar.gz in {root}/ and the prepare-data stage extracts them")


def test_missing_root_says_what_to_place_where(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError) as err:
        index_imagenet(missing)
    assert message(err) == f"ImageNet not found: {missing} is not a folder; {_get(missing)}"


def test_missing_split_folders(root: Path) -> None:
    shutil.rmtree(root / "val")
    with pytest.raises(DataError) as err:
        index_imagenet(root)
    assert message(err) == (f"ImageNet split folder {root}/val is missing (expected {root}/val/<wnid>/*.JPEG); "
                            f"extract ILSVRC2012_img_val.tar into {root}/val and {VALPREP}")
    shutil.rmtree(root / "train")
    with pytest.raises(DataError) as err:
        index_imagenet(root)
    assert message(err) == (f"ImageNet split folder {root}/train is missing (expected {root}/train/<wnid>/*.JPEG); "
                            f"extract ILSVRC2012_img_train.tar into {root}/train, each inner n*.tar into a folder "
                            "of its name")


def test_unsorted_val_says_how_to_sort_it(root: Path) -> None:
    shutil.rmtree(root / "val")
    (root / "val").mkdir()
    for k in range(3):
        (root / "val" / f"ILSVRC2012_val_0000000{k}.JPEG").write_bytes(random_jpeg(k))
    with pytest.raises(DataError) as err:
        index_imagenet(root)
    assert message(err) == (f"ImageNet {root}/val holds 3 images outside class folders: the val images must be "
                            f"sorted into <wnid> folders like train's; {VALPREP}")


def test_loose_train_images_are_refused(root: Path) -> None:
    (root / "train" / "stray.jpeg").write_bytes(random_jpeg(5))
    with pytest.raises(DataError) as err:
        index_imagenet(root)
    assert message(err) == (f"ImageNet {root}/train holds 1 images outside class folders (they belong in "
                            f"{root}/train/<wnid>/); move them into their class folders or delete them")


def test_val_classes_must_be_train_classes_and_the_reverse(root: Path) -> None:
    for wnid in ("n09999999", "n09999998"):
        (root / "val" / wnid).mkdir()
        (root / "val" / wnid / "a.JPEG").write_bytes(random_jpeg(1))
    with pytest.raises(DataError) as err:
        index_imagenet(root)
    assert message(err) == (f"ImageNet {root}/val has 2 class folders that {root}/train lacks: n09999998, "
                            "n09999999; val must hold exactly train's <wnid> folders: remove the strays, or "
                            "extract the missing train classes")
    for wnid in ("n09999999", "n09999998"):
        shutil.rmtree(root / "val" / wnid)
    for wnid in WNIDS[1:]:
        shutil.rmtree(root / "val" / wnid)
    with pytest.raises(DataError) as err:
        index_imagenet(root)
    assert message(err) == (f"ImageNet {root}/val lacks the folders of 2 of the 3 train classes: n01443537, "
                            f"n01484850; every train class needs its val folder: {VALPREP}")


def test_many_missing_wnids_are_cut_to_the_first_five(root: Path) -> None:
    for k in range(7):
        (root / "train" / f"n0200000{k}").mkdir()
    with pytest.raises(DataError) as err:
        index_imagenet(root)
    assert f"lacks the folders of 7 of the 10 train classes: n02000000, n02000001, n02000002, n02000003, " \
           f"n02000004 and 2 more;" in message(err)


def test_empty_class_folder(root: Path) -> None:
    for path in (root / "train" / WNIDS[2]).iterdir():
        if not path.name.startswith(".") and path.suffix != ".txt":
            path.unlink()  # left: a hidden file and a text file, neither of them an image
    with pytest.raises(DataError) as err:
        index_imagenet(root)
    assert message(err) == (f"ImageNet has 1 class folders without images (.JPEG/.jpg/.jpeg/.png) in {root}/train: "
                            "n01484850; extract those classes again (an interrupted extraction leaves empty "
                            "folders) or delete the folders in both splits")


def test_split_without_any_image_files(root: Path) -> None:
    shutil.rmtree(root / "train")
    (root / "train").mkdir()
    (root / "train" / "README").write_text("nothing here")
    with pytest.raises(DataError) as err:
        index_imagenet(root)
    assert message(err) == (f"ImageNet split folder {root}/train holds no class folders and no image files "
                            f"(expected {root}/train/<wnid>/*.JPEG); {_get(root)}")
    for wnid in WNIDS:  # only the outer train archive extracted: the per-class archives are still there
        (root / "train" / f"{wnid}.tar").write_bytes(b"")
    with pytest.raises(DataError) as err:
        index_imagenet(root)
    assert message(err) == (f"ImageNet split folder {root}/train holds no class folders and no image files "
                            f"(expected {root}/train/<wnid>/*.JPEG); it holds 3 .tar archives: extract each n*.tar "
                            "into a folder of its name and delete the archive")


# ------------------------------------------------------------------------------------------------ index file


def test_saved_index_round_trips(index: ImageNetIndex, tmp_path: Path) -> None:
    path = tmp_path / "prepared" / "imagenet_index.json"
    assert save_index(index, path) == index.md5
    data = json.loads(path.read_text())
    assert data["md5"] == index.md5 and data["counts"] == {"train": 18, "val": 6}
    loaded = load_index(path)
    assert loaded.classes == index.classes and loaded.md5 == index.md5
    for split in ("train", "val"):
        assert list(loaded.files(split)) == list(index.files(split))


def test_damaged_missing_or_foreign_index_is_refused(index: ImageNetIndex, tmp_path: Path) -> None:
    path = tmp_path / "imagenet_index.json"
    with pytest.raises(DataError) as err:
        load_index(path)
    assert message(err) == (f"no ImageNet index at {path}; run the prepare-data stage (dvc repro prepare-data) "
                            "with the ImageNet folders in place")
    save_index(index, path)
    data = json.loads(path.read_text())
    data["files"]["train"][0][0][1] += 1  # one byte size altered: still valid JSON
    path.write_text(json.dumps(data))
    with pytest.raises(DataError) as err:
        load_index(path)
    assert message(err) == (f"ImageNet index {path} is damaged: its content does not match the md5 it records; "
                            f"{RERUN}")
    save_index(index, path)
    path.write_text(path.read_text()[:-40])
    with pytest.raises(DataError) as err:
        load_index(path)
    assert message(err) == f"ImageNet index {path} is not valid JSON (truncated or damaged); {RERUN}"
    path.write_text(json.dumps({"classes": [], "files": {}}))
    with pytest.raises(DataError) as err:
        load_index(path)
    assert message(err) == (f"{path} is not an ImageNet index of this project (its \"format\" is not "
                            f"'ednas-imagenet-index-v1'); delete it and {RERUN}")


def test_index_with_a_matching_md5_but_another_layout_is_refused(index: ImageNetIndex, tmp_path: Path) -> None:
    from ednas_core.data.imagenet import content_md5

    path = tmp_path / "imagenet_index.json"
    save_index(index, path)
    data = json.loads(path.read_text())
    data["files"]["val"] = data["files"]["val"][:2]  # two classes' val lists for three classes
    data["md5"] = content_md5(data["classes"], data["files"])
    path.write_text(json.dumps(data))
    with pytest.raises(DataError) as err:
        load_index(path)
    assert message(err) == (f"ImageNet index {path} matches its md5 but not the index layout (made by other code); "
                            f"delete it and {RERUN}")


# --------------------------------------------------------------------------------------------------- the split


def test_search_split_is_disjoint_deterministic_and_sized(index: ImageNetIndex) -> None:
    child, policy = search_split(index, train_images=12, policy_images=4, seed=3)
    assert child.dtype == policy.dtype == torch.int64 and (child.numel(), policy.numel()) == (12, 4)
    assert not set(child.tolist()) & set(policy.tolist())
    assert set(child.tolist()) | set(policy.tolist()) <= set(range(18))
    again = search_split(index, train_images=12, policy_images=4, seed=3)
    assert torch.equal(child, again[0]) and torch.equal(policy, again[1])
    other = search_split(index, train_images=12, policy_images=4, seed=4)
    assert not (torch.equal(child, other[0]) and torch.equal(policy, other[1]))
    full_child, full_policy = search_split(index, train_images=15, policy_images=3, seed=0)
    assert sorted(full_child.tolist() + full_policy.tolist()) == list(range(18))


def test_search_split_larger_than_the_training_set(index: ImageNetIndex) -> None:
    with pytest.raises(DataError) as err:
        search_split(index, seed=0)  # the paper's 1M / 0.2M
    assert message(err) == ("ImageNet search split asks for 1,000,000 + 200,000 training images but the index "
                            "lists 18; pass smaller train_images and policy_images (e.g. 15 and 3)")
    with pytest.raises(DataError):
        search_split(index, train_images=15, policy_images=4)
    with pytest.raises(ValueError):
        search_split(index, train_images=0, policy_images=4)


# ------------------------------------------------------------------------------------------------ the dataset


def test_items_are_uint8_224_crops_with_their_labels(root: Path, index: ImageNetIndex) -> None:
    ids = torch.tensor([0, 7, 17])
    train = ImageNetDataset(index, "train", ids, train_transform(), root)
    val = ImageNetDataset(index, "val", None, val_transform(), root)
    assert (len(train), len(val)) == (3, 6)
    for dataset, labels in ((train, [0, 1, 2]), (val, [0, 0, 1, 1, 2, 2])):
        for position, label in enumerate(labels):
            image, got, skipped = dataset[position]
            assert image.dtype == torch.uint8 and image.shape == (3, 224, 224)
            assert (got, skipped) == (label, 0)
    raw, _, _ = ImageNetDataset(index, "train", [5], None, root)[0]  # the real PNG decodes too
    assert raw.shape == (3, 64, 80)


def test_train_transform_has_the_darts_settings() -> None:
    from torchvision.transforms import v2

    crop, flip, jitter = train_transform().transforms
    assert isinstance(crop, v2.RandomResizedCrop) and tuple(crop.size) == (224, 224) and crop.scale == (0.08, 1.0)
    assert isinstance(flip, v2.RandomHorizontalFlip) and flip.p == 0.5
    assert isinstance(jitter, v2.ColorJitter)
    assert (jitter.brightness, jitter.contrast, jitter.saturation) == ((0.6, 1.4),) * 3
    assert jitter.hue == (-0.2, 0.2)


def test_val_transform_resizes_the_short_side_then_centre_crops(root: Path, index: ImageNetIndex) -> None:
    raw, _, _ = ImageNetDataset(index, "val", [0], None, root)[0]
    image, _, _ = ImageNetDataset(index, "val", [0], val_transform(), root)[0]
    resized = torch.nn.functional.interpolate(raw[None].float(), size=(256, 320), mode="bilinear",
                                              antialias=True, align_corners=False)[0]
    expected = resized[:, 16:240, 48:272].round().clamp(0, 255)
    assert (image.float() - expected).abs().max() <= 1


def test_train_transform_is_random_but_fixed_by_the_sample_seed(root: Path, index: ImageNetIndex) -> None:
    dataset = ImageNetDataset(index, "train", None, train_transform(), root)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    a, b, c = dataset[(3, 11)][0], dataset[(3, 11)][0], dataset[(3, 12)][0]
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's random stream is untouched
    assert not torch.equal(dataset[3][0], dataset[3][0])  # without a seed: the global stream, fresh draws


def _corrupt(root: Path, index: ImageNetIndex, file_id: int) -> Path:
    """Random bytes of the indexed size under an image's name (the index still matches the folder)."""
    path = root / index.relative_path("train", file_id)
    size = path.stat().st_size
    path.write_bytes(np.random.default_rng(file_id).integers(0, 256, size, dtype=np.uint8).tobytes())
    return path


def test_stop_names_the_unreadable_file(root: Path, index: ImageNetIndex) -> None:
    path = _corrupt(root, index, 7)
    dataset = ImageNetDataset(index, "train", None, val_transform(), root, on_unreadable="stop")
    dataset[6]
    with pytest.raises(DataError) as err:
        dataset[7]
    assert message(err) == (f"ImageNet image {path} cannot be decoded (Unsupported image file. Only jpeg, png, webp "
                            "and gif are currently supported. For avif and heic format, please rely on `decode_avif` "
                            "and `decode_heic` directly.); replace or delete it and rerun prepare-data, or read with "
                            "on_unreadable='skip'")


def test_stop_names_a_truncated_missing_or_changed_file(root: Path, index: ImageNetIndex) -> None:
    dataset = ImageNetDataset(index, "train", None, None, root)
    path = root / index.relative_path("train", 0)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError) as err:
        dataset[0]
    assert message(err).startswith(f"ImageNet image {path} is {len(data) // 2:,} bytes but the index says "
                                   f"{len(data):,} (changed since indexing: rerun prepare-data if that was on purpose)")
    path.write_bytes(data[: len(data) // 2] + bytes(len(data) - len(data) // 2))  # same size, cut-off JPEG data
    with pytest.raises(DataError, match=r"cannot be decoded \(.*truncated"):
        dataset[0]
    path.unlink()
    with pytest.raises(DataError) as err:
        dataset[0]
    assert message(err).startswith(f"ImageNet image {path} cannot be read (No such file or directory);")


def test_skip_substitutes_the_next_readable_image_of_the_class(root: Path, index: ImageNetIndex) -> None:
    _corrupt(root, index, 7)  # class 1 holds train ids 6..11
    _corrupt(root, index, 8)
    dataset = ImageNetDataset(index, "train", None, None, root, on_unreadable="skip")
    image, label, skipped = dataset[7]
    assert (label, skipped) == (1, 2)
    assert torch.equal(image, dataset[9][0])  # 8 is unreadable too: the next readable one is 9
    subset = ImageNetDataset(index, "train", [6, 7, 0, 2], None, root, on_unreadable="skip")
    image, label, skipped = subset[1]  # after position 1 no class-1 id follows: wraps around to position 0
    assert (label, skipped) == (1, 1) and torch.equal(image, subset[0][0])
    for file_id in (6, 9, 10, 11):
        _corrupt(root, index, file_id)
    with pytest.raises(DataError, match=r"every one of the 6 train images of class n01443537 in this dataset is "
                                        r"unreadable \(first: .*n01443537_1\.JPEG cannot be decoded"):
        dataset[7]


def test_skips_are_counted_through_worker_processes(root: Path, index: ImageNetIndex) -> None:
    corrupt = [_corrupt(root, index, file_id) for file_id in (2, 13)]
    dataset = ImageNetDataset(index, "train", None, val_transform(), root, on_unreadable="skip")
    loader = imagenet_loader(dataset, batch_size=4, workers=2, shuffle=True, seed=0)
    total, labels = 0, []
    for images, batch_labels, skipped in loader:
        assert images.dtype == torch.uint8 and images.shape[1:] == (3, 224, 224)
        total += int(skipped.sum())
        labels += batch_labels.tolist()
    assert total == len(corrupt) and sorted(labels) == sorted([0] * 6 + [1] * 6 + [2] * 6)
    stopping = ImageNetDataset(index, "train", None, val_transform(), root, on_unreadable="stop")
    with pytest.raises(DataError, match=f"ImageNet image {corrupt[0]} cannot be decoded"):
        list(imagenet_loader(stopping, batch_size=4, workers=2, shuffle=False, seed=0))


def test_dataset_arguments_are_checked(root: Path, index: ImageNetIndex, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="on_unreadable must be 'skip' or 'stop'"):
        ImageNetDataset(index, "train", None, None, root, on_unreadable="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ids must be a 1-D sequence of ids in 0..5 of the val split"):
        ImageNetDataset(index, "val", [6], None, root)
    with pytest.raises(DataError, match="ImageNet images not found: .*/other/train is not a folder"):
        ImageNetDataset(index, "train", None, None, tmp_path / "other")


# ------------------------------------------------------------------------------------------ device and loader


def test_device_normalize_converts_on_the_device_side() -> None:
    images = torch.randint(0, 256, (2, 3, 5, 5), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    x = DeviceNormalize("cpu", channels_last=True)(images)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    assert x.dtype == torch.float32 and x.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(x, (images.float() / 255 - mean) / std, atol=1e-6)


def _positions(loader, reference: list[torch.Tensor]) -> list[int]:
    """Which dataset positions the loader's batches hold (its images are the untransformed, distinct ones)."""
    out = []
    for images, _, _ in loader:
        for image in images:
            out.append(next(p for p, ref in enumerate(reference) if torch.equal(image, ref)))
    return out


def test_loader_order_follows_seed_and_epoch(root: Path, index: ImageNetIndex) -> None:
    dataset = ImageNetDataset(index, "train", list(range(6, 18)), None, root)
    reference = [dataset[p][0] for p in range(len(dataset))]  # all 64x80, all different
    loader = imagenet_loader(dataset, batch_size=5, workers=0, shuffle=True, seed=7, epoch=0)
    epoch0 = _positions(loader, reference)
    assert sorted(epoch0) == list(range(12)) and epoch0 != list(range(12))
    assert _positions(imagenet_loader(dataset, 5, 0, True, seed=7, epoch=0), reference) == epoch0
    loader.sampler.set_epoch(1)
    epoch1 = _positions(loader, reference)
    assert sorted(epoch1) == list(range(12)) and epoch1 != epoch0
    resumed = imagenet_loader(dataset, 5, 2, True, seed=7, epoch=1)  # a fresh run at epoch 1, with 2 workers
    assert _positions(resumed, reference) == epoch1
    assert _positions(imagenet_loader(dataset, 5, 0, True, seed=8, epoch=0), reference) != epoch0
    assert _positions(imagenet_loader(dataset, 5, 0, False, seed=7, epoch=3), reference) == list(range(12))
    assert len(imagenet_loader(dataset, 5, 0, True, seed=7, drop_last=True)) == 2


def test_an_epoch_replays_its_augmentation_with_any_worker_count(root: Path, index: ImageNetIndex) -> None:
    dataset = ImageNetDataset(index, "train", None, train_transform(), root)

    def epoch(workers: int, number: int) -> torch.Tensor:
        loader = imagenet_loader(dataset, 6, workers, True, seed=1, epoch=number, prefetch_factor=1)
        return torch.cat([images for images, _, _ in loader])

    first = epoch(0, 2)
    assert torch.equal(first, epoch(2, 2)) and not torch.equal(first, epoch(0, 3))


def test_sampler_seeds_differ_per_sample_and_loader_arguments_are_checked(root: Path,
                                                                          index: ImageNetIndex) -> None:
    items = list(EpochSampler(18, seed=0))
    assert len({seed for _, seed in items}) == 18
    dataset = ImageNetDataset(index, "train", None, None, root)
    with pytest.raises(ValueError, match="need batch_size >= 1, workers >= 0 and prefetch_factor >= 1"):
        imagenet_loader(dataset, 0, 0, True, seed=0)


def test_sampler_shards_one_epoch_order_across_ranks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Several processes: each rank its slice of the same (position, seed) pairs, the remainder dropped for training
    (equal step counts) or kept for evaluation (every image once)."""
    from ednas_core import distributed

    whole = list(EpochSampler(11, seed=3, epoch=2))
    shards = {}
    for mode in ("drop", "keep"):
        for rank in range(2):
            monkeypatch.setattr(distributed, "world", lambda rank=rank: distributed.World(rank, 2))
            sampler = EpochSampler(11, seed=3, epoch=2, shard=mode)
            shards[mode, rank] = list(sampler)
            assert len(sampler) == len(shards[mode, rank])
    assert [len(shards["drop", r]) for r in range(2)] == [5, 5]
    assert sorted(shards["keep", 0] + shards["keep", 1]) == sorted(whole)
    assert shards["drop", 0] + shards["drop", 1] == whole[0:10:2] + whole[1:10:2]
    assert not set(shards["drop", 0]) & set(shards["drop", 1])
    with pytest.raises(ValueError, match="shard must be"):
        EpochSampler(11, seed=3, shard="half")
