"""ImageNet input-pipeline throughput on this machine's CPUs:

    python -m benchmarks.imagenet_input [--images 512] [--size 500x375] [--batch 64] [--workers 0 1 2 ...]
                                        [--epochs 1] [--out benchmarks/results] [--quick]

Writes `--images` synthetic JPEGs of ImageNet-like size and file size (500x375, quality 90, smooth content plus
noise: about 110 KB each, as ILSVRC-2012's average, so that decoding costs what it costs on photos rather than on
incompressible noise) as an ImageFolder in a temporary folder, indexes it (ednas_core.data.imagenet), and measures
images/s of the input pipeline alone: file read + decode + DARTS's train transforms (RandomResizedCrop 224, flip,
ColorJitter) + collation, through imagenet_loader with batch `--batch`, for each worker count (default 0..the
usable CPUs). Each worker count gets one warm-up epoch (worker start-up, reported apart) and `--epochs` timed
ones on the same persistent workers. Also reported: decode alone and transforms alone, one image at a time in this
process, and the hours one epoch of the 1,281,167 ImageNet training images would take at the best rate. Prints a
table and writes JSON to `--out` (imagenet-input-<time>[-quick].json). No GPU is involved: the loader pins memory
only when CUDA is present; normalisation happens on the device and is not measured here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

import torch
import torchvision
from torchvision.io import ImageReadMode, decode_image, encode_jpeg

from ednas_core.data.imagenet import ImageNetDataset, imagenet_loader, index_imagenet, train_transform

IMAGENET_TRAIN_IMAGES = 1_281_167
CLASSES = 4


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def synthetic_jpeg(width: int, height: int, generator: torch.Generator) -> bytes:
    """A smooth random colour field plus noise: entropy-coded about like a photo of that size."""
    low = torch.rand(3, max(2, height // 8), max(2, width // 8), generator=generator) * 255
    image = torch.nn.functional.interpolate(low[None], size=(height, width), mode="bicubic", align_corners=False)[0]
    image = (image + torch.randn(image.shape, generator=generator) * 16).clamp(0, 255).to(torch.uint8)
    return encode_jpeg(image, quality=90).numpy().tobytes()


def write_imagefolder(root: Path, images: int, width: int, height: int) -> list[Path]:
    """`images` train JPEGs over CLASSES class folders, and one val image per class (the layout needs val)."""
    generator = torch.Generator().manual_seed(0)
    paths = []
    for c in range(CLASSES):
        for split in ("train", "val"):
            (root / split / f"n{c:08d}").mkdir(parents=True)
        (root / "val" / f"n{c:08d}" / "val_0.JPEG").write_bytes(synthetic_jpeg(width, height, generator))
    for i in range(images):
        path = root / "train" / f"n{i % CLASSES:08d}" / f"img_{i:06d}.JPEG"
        path.write_bytes(synthetic_jpeg(width, height, generator))
        paths.append(path)
    return paths


def per_image_rates(paths: Sequence[Path], count: int) -> dict[str, float]:
    """Decode alone and the train transforms alone, one image at a time in this process (its torch threads)."""
    blobs = [torch.frombuffer(bytearray(p.read_bytes()), dtype=torch.uint8) for p in paths[:count]]
    start = time.perf_counter()
    decoded = [decode_image(blob, mode=ImageReadMode.RGB) for blob in blobs]
    decode_s = time.perf_counter() - start
    transform = train_transform()
    start = time.perf_counter()
    for image in decoded:
        transform(image)
    transform_s = time.perf_counter() - start
    return {"decode_images_per_s": len(blobs) / decode_s, "transform_images_per_s": len(blobs) / transform_s}


def loader_rate(dataset: ImageNetDataset, batch: int, workers: int, epochs: int) -> dict[str, float]:
    loader = imagenet_loader(dataset, batch_size=batch, workers=workers, shuffle=True, seed=0, epoch=0)
    start = time.perf_counter()
    for _ in loader:  # warm-up: starts the workers
        pass
    first_epoch_s = time.perf_counter() - start
    images = 0
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        loader.sampler.set_epoch(epoch)
        for batch_images, _, _ in loader:
            images += batch_images.shape[0]
    seconds = time.perf_counter() - start
    del loader  # stops its persistent workers before the next worker count starts its own
    return {"images_per_s": images / seconds, "first_epoch_s": first_epoch_s}


def measure(images: int, width: int, height: int, batch: int, workers: Sequence[int], epochs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="imagenet-input-") as folder:
        root = Path(folder)
        paths = write_imagefolder(root, images, width, height)
        mean_kb = sum(p.stat().st_size for p in paths) / len(paths) / 1000
        index = index_imagenet(root)
        dataset = ImageNetDataset(index, "train", None, train_transform(), root)
        result: dict[str, Any] = {
            "benchmark": "imagenet_input", "cpu_count": os.cpu_count(), "usable_cpus": usable_cpus(),
            "main_process_torch_threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
            "python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "images": images, "image_size": [width, height], "mean_jpeg_kb": round(mean_kb, 1), "batch": batch,
            "timed_epochs": epochs, **per_image_rates(paths, min(len(paths), 64)), "loader": {}}
        for w in workers:
            result["loader"][str(w)] = loader_rate(dataset, batch, w, epochs)
    best = max(r["images_per_s"] for r in result["loader"].values())
    result["best_images_per_s"] = best
    result["imagenet_epoch_hours_at_best"] = IMAGENET_TRAIN_IMAGES / best / 3600
    return result


def table(result: dict[str, Any]) -> str:
    lines = [f"ImageNet input pipeline: {result['images']} JPEGs {result['image_size'][0]}x{result['image_size'][1]} "
             f"(mean {result['mean_jpeg_kb']} KB), batch {result['batch']}, {result['cpu_count']} CPUs "
             f"({result['usable_cpus']} usable), torch {result['torch']}, torchvision {result['torchvision']}",
             f"  decode alone     {result['decode_images_per_s']:8.1f} images/s (one process, "
             f"{result['main_process_torch_threads']} torch threads)",
             f"  transforms alone {result['transform_images_per_s']:8.1f} images/s",
             f"  {'workers':>7} {'images/s':>9} {'warm-up epoch s':>16}"]
    for w, r in result["loader"].items():
        lines.append(f"  {w:>7} {r['images_per_s']:9.1f} {r['first_epoch_s']:16.2f}")
    lines.append(f"  one ImageNet training epoch ({IMAGENET_TRAIN_IMAGES:,} images) at "
                 f"{result['best_images_per_s']:.0f} images/s: {result['imagenet_epoch_hours_at_best']:.2f} h of "
                 "input pipeline")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.imagenet_input", description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=None, help="synthetic training JPEGs (default 512; 64 quick)")
    parser.add_argument("--size", default=None, help="WIDTHxHEIGHT (default 500x375; 160x120 quick)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default 64; 16 quick)")
    parser.add_argument("--workers", type=int, nargs="+", default=None,
                        help="worker counts to measure (default 0 up to the usable CPUs)")
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs per worker count, after a warm-up one")
    parser.add_argument("--out", default="benchmarks/results", help="folder for the JSON result")
    parser.add_argument("--quick", action="store_true", help="few small images (a smoke test)")
    args = parser.parse_args(argv)
    images = args.images or (64 if args.quick else 512)
    size = args.size or ("160x120" if args.quick else "500x375")
    batch = args.batch or (16 if args.quick else 64)
    workers = args.workers if args.workers is not None else list(range(usable_cpus() + 1))
    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        parser.error(f"--size must be WIDTHxHEIGHT such as 500x375, got {size!r}")
    if images < CLASSES or batch < 1 or args.epochs < 1 or min(workers) < 0 or min(width, height) < 2:
        parser.error(f"need --images >= {CLASSES}, --batch >= 1, --epochs >= 1, --workers >= 0 and a size of at "
                     f"least 2x2, got {images}, {batch}, {args.epochs}, {workers} and {size}")
    warnings.filterwarnings("ignore", "The image decoding and encoding capabilities", DeprecationWarning)
    result = measure(images, width, height, batch, workers, args.epochs)
    return report(result, table(result), Path(args.out), "imagenet-input", args.quick)


def report(result: dict[str, Any], text: str, out: Path, name: str, quick: bool) -> dict[str, Any]:
    """Prints `text` and writes `result` as out/<name>-<time>[-quick].json; returns `result`."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}{'-quick' if quick else ''}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(text)
    print(f"written to {path}")
    return result


if __name__ == "__main__":
    main()
