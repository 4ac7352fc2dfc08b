"""The official ILSVRC-2012 archives placed in data.root/imagenet are extracted by prepare-data through
torchvision.datasets.ImageNet's parsers: small archives of the official layout made here (a devkit with meta.mat
and the val ground truth, a train tar of per-class tars, a flat val tar), whose md5s stand in for the official
ones in torchvision's table."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from torchvision.datasets import imagenet as tv
from torchvision.io import encode_jpeg

from ednas_core.config import DataConfig
from ednas_core.data import DataError
from ednas_core.data.imagenet_archives import DEVKIT, extract_official_archives
from ednas_core.tasks.imagenet import prepare_imagenet

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")

WNIDS = ["n01440764", "n01443537", "n01484850"]
VAL_CLASSES = [2, 1, 3, 3, 1, 2]  # ILSVRC2012_IDs (1-based) of the val images, as the devkit's ground truth


def _jpeg(seed: int) -> bytes:
    image = torch.randint(0, 256, (3, 24, 24), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    return encode_jpeg(image).numpy().tobytes()


def _tar(path: Path, members: dict[str, bytes], mode: str = "w") -> str:
    with tarfile.open(path, mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.md5(path.read_bytes()).hexdigest()


def _meta_mat() -> bytes:
    """meta.mat's synsets: the 3 leaf classes (num_children 0) and one inner node that must be ignored."""
    dtype = [("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O"), ("gloss", "O"), ("num_children", "O")]
    rows = [(i + 1, w, f"class {i}, alias {i}", "", 0) for i, w in enumerate(WNIDS)] + [(1001, "n00000001", "x", "", 3)]
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {"synsets": np.array(rows, dtype=dtype)})
    return buffer.getvalue()


def write_archives(root: Path) -> dict[str, str]:
    """The three archives in root; returns torchvision's ARCHIVE_META entries with their md5s."""
    root.mkdir(parents=True)
    inner = {}
    for c, wnid in enumerate(WNIDS):
        class_tar = root / f"{wnid}.tar"
        _tar(class_tar, {f"{wnid}_{k}.JPEG": _jpeg(10 * c + k) for k in range(4)})
        inner[f"{wnid}.tar"] = class_tar.read_bytes()
        class_tar.unlink()
    md5 = {"train": _tar(root / "ILSVRC2012_img_train.tar", inner),
           "val": _tar(root / "ILSVRC2012_img_val.tar",
                       {f"ILSVRC2012_val_{i + 1:08d}.JPEG": _jpeg(100 + i) for i in range(len(VAL_CLASSES))}),
           "devkit": _tar(root / DEVKIT, {
               "ILSVRC2012_devkit_t12/data/meta.mat": _meta_mat(),
               "ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt":
                   "".join(f"{c}\n" for c in VAL_CLASSES).encode()}, mode="w:gz")}
    return md5


@pytest.fixture
def archives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "raw" / "imagenet"
    md5 = write_archives(root)
    monkeypatch.setattr(tv, "ARCHIVE_META", {k: (name, md5[k]) for k, (name, _) in tv.ARCHIVE_META.items()})
    return root


def test_prepare_data_extracts_the_official_archives_and_indexes_them(archives: Path, tmp_path: Path) -> None:
    manifest, index = prepare_imagenet(DataConfig(root=str(archives.parent)), tmp_path / "prepared")
    assert index.classes == tuple(WNIDS) and (manifest.train, manifest.test) == (12, 6)
    assert sorted(p.name for p in (archives / "train" / WNIDS[0]).iterdir()) == [f"{WNIDS[0]}_{k}.JPEG"
                                                                               for k in range(4)]
    assert not list((archives / "train").glob("*.tar"))  # the inner archives are deleted once extracted
    val = {wnid: sorted(p.name for p in (archives / "val" / wnid).iterdir()) for wnid in WNIDS}
    # the ground truth's ID 1 is the first wnid: val images 2 and 5
    assert val[WNIDS[0]] == ["ILSVRC2012_val_00000002.JPEG", "ILSVRC2012_val_00000005.JPEG"]
    assert val[WNIDS[2]] == ["ILSVRC2012_val_00000003.JPEG", "ILSVRC2012_val_00000004.JPEG"]
    assert not list(archives.glob(".*.partial"))
    assert extract_official_archives(archives) == []  # the folders exist: nothing is extracted again


def test_an_interrupted_extraction_starts_over(archives: Path) -> None:
    (archives / ".train.partial" / "n01440764").mkdir(parents=True)  # left by a killed stage
    (archives / ".train.partial" / "n01440764" / "half-written.JPEG").write_bytes(b"\xff\xd8")
    assert extract_official_archives(archives, say=lambda _: None) == ["train", "val"]
    assert len(list((archives / "train").rglob("*.JPEG"))) == 12


def test_a_corrupt_or_foreign_archive_is_one_line(archives: Path) -> None:
    (archives / "ILSVRC2012_img_train.tar").write_bytes(b"truncated")
    with pytest.raises(DataError) as info:
        extract_official_archives(archives, say=lambda _: None)
    text = str(info.value)
    assert "ILSVRC2012_img_train.tar" in text and "official md5" in text and "\n" not in text
    assert not (archives / "train").exists()


def test_val_archive_without_the_devkit_says_so(archives: Path) -> None:
    (archives / DEVKIT).unlink()
    with pytest.raises(DataError, match=r"needs .*ILSVRC2012_devkit_t12\.tar\.gz"):
        extract_official_archives(archives, say=lambda _: None)
