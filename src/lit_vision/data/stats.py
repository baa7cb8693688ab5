"""Per-channel mean and standard deviation of images (the values ``Normalize`` / ``data.mean`` need)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from lit_vision.data.image_io import BadImageError, decode_image_file
from lit_vision.data.in_memory import channel_stats


class _PixelSums(Dataset):
    """Per file: (sum, sum of squares, pixel count) per channel of the decoded image scaled to [0, 1]."""

    def __init__(self, paths: Sequence[str], channels: int) -> None:
        self.paths = list(paths)
        self.channels = channels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        try:
            image = decode_image_file(self.paths[index], self.channels)
        except BadImageError:
            return (
                torch.zeros(self.channels, dtype=torch.float64),
                torch.zeros(self.channels, dtype=torch.float64),
                0,
            )
        pixels = image.reshape(self.channels, -1).double() / 255.0
        return pixels.sum(dim=1), pixels.square().sum(dim=1), pixels.shape[1]


def sums_to_stats(total: torch.Tensor, total_sq: torch.Tensor, count: int) -> tuple[list[float], list[float]]:
    """Mean and (population) std from running sums; std floored at 1e-3 like ``channel_stats``."""
    if count == 0:
        raise ValueError("no pixels to compute statistics from")
    mean = total / count
    var = (total_sq / count - mean.square()).clamp_min(0.0)
    return mean.tolist(), var.sqrt().clamp_min(1e-3).tolist()


def file_channel_stats(
    paths: Sequence[str],
    channels: int = 3,
    max_images: int | None = None,
    seed: int = 0,
    num_workers: int = 0,
) -> tuple[list[float], list[float]]:
    """Mean/std per channel over the pixels of image files (images of any size; every pixel counts once).

    With ``max_images`` a seeded random subset of that many files is used.
    """
    paths = list(paths)
    if max_images is not None and len(paths) > max_images:
        pick = np.random.default_rng(seed).choice(len(paths), size=max_images, replace=False)
        paths = [paths[i] for i in sorted(pick)]
    loader = DataLoader(
        _PixelSums(paths, channels), batch_size=None, num_workers=num_workers if len(paths) > 64 else 0
    )
    total = torch.zeros(channels, dtype=torch.float64)
    total_sq = torch.zeros(channels, dtype=torch.float64)
    count = 0
    for s, sq, n in loader:
        total += s
        total_sq += sq
        count += int(n)
    return sums_to_stats(total, total_sq, count)


def tensor_channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Mean/std per channel of uint8 NCHW images (exact, from per-channel histograms)."""
    return channel_stats(images)
