"""DARTS-style CIFAR augmentation (random crop, horizontal flip, normalize, cutout), batched on the device.

The random draws happen on the CPU (`draw_augmentation`) so that a seed gives the same stream on any device;
`augment_batch` only gathers and masks, with no per-sample Python loop and no host synchronisation.
"""

from __future__ import annotations

import torch


def draw_augmentation(n: int, height: int, width: int, pad: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """CPU draws for n images: crop_offsets int64 [n,2] in 0..2*pad, flips bool [n], cutout_centers int64 [n,2]."""
    crop_offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    cutout_centers = torch.stack(
        [torch.randint(0, height, (n,), generator=generator), torch.randint(0, width, (n,), generator=generator)], dim=1
    )
    return {"crop_offsets": crop_offsets, "flips": flips, "cutout_centers": cutout_centers}


def augment_batch(
    images: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    *,
    crop_offsets: torch.Tensor | None,
    flips: torch.Tensor | None,
    cutout_centers: torch.Tensor | None,
    pad: int = 4,
    cutout: int = 0,
) -> torch.Tensor:
    """Crop (zero padding `pad`), flip, x/255, normalize, cutout; a None parameter skips its step. Float32 [B,C,H,W]."""
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError(f"expected uint8 [B,C,H,W] images, got {images.dtype} {tuple(images.shape)}")
    b, c, h, w = images.shape
    device = images.device
    if crop_offsets is not None or flips is not None:
        rows = torch.arange(h, device=device).expand(b, h)
        cols = torch.arange(w, device=device).expand(b, w)
        if flips is not None:
            cols = torch.where(flips[:, None], (w - 1) - cols, cols)
        source = images
        if crop_offsets is not None:
            source = images.new_zeros(b, c, h + 2 * pad, w + 2 * pad)
            source[:, :, pad : pad + h, pad : pad + w] = images
            rows = rows + crop_offsets[:, 0:1]
            cols = cols + crop_offsets[:, 1:2]
        batch = torch.arange(b, device=device)[:, None, None, None]
        channel = torch.arange(c, device=device)[None, :, None, None]
        images = source[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]
    x = images.float().div_(255.0)
    x = x.sub_(mean.view(1, c, 1, 1)).div_(std.view(1, c, 1, 1))
    if cutout_centers is not None and cutout > 0:
        half = cutout // 2
        cy, cx = cutout_centers[:, 0:1], cutout_centers[:, 1:2]
        ys = torch.arange(h, device=device)[None, :]
        xs = torch.arange(w, device=device)[None, :]
        in_rows = (ys >= cy - half) & (ys < cy + half)
        in_cols = (xs >= cx - half) & (xs < cx + half)
        x = x.masked_fill((in_rows[:, :, None] & in_cols[:, None, :])[:, None], 0.0)
    return x
