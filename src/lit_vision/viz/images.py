"""Turning tensors and figures into pictures: un-normalising batches, tiling grids, rendering figures."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def single_view(images: Tensor) -> Tensor:
    """Multi-crop evaluation batches ``(N, crops, C, H, W)`` -> their first crop; others unchanged."""
    return images[:, 0] if images.ndim == 5 else images


def unnormalize(images: Tensor, data_info: Mapping[str, Any] | None = None) -> Tensor:
    """A normalised ``(N, C, H, W)`` batch back to ``[0, 1]`` floats on the CPU.

    Uses ``data_info["mean"]`` / ``["std"]`` (per channel) when they match the channel count; otherwise
    each image is min-max scaled, which is what a viewer would do with unknown statistics.
    """
    images = images.detach().float().cpu()
    info = data_info or {}
    mean, std = info.get("mean"), info.get("std")
    channels = images.shape[1]
    if mean is not None and std is not None and len(mean) == len(std) == channels:
        mean_t = torch.tensor(mean, dtype=images.dtype).view(1, -1, 1, 1)
        std_t = torch.tensor(std, dtype=images.dtype).view(1, -1, 1, 1)
        return (images * std_t + mean_t).clamp_(0.0, 1.0)
    return minmax_per_item(images)


def minmax_per_item(tensor: Tensor) -> Tensor:
    """Scale each item of the first dimension to ``[0, 1]`` (constant items become 0)."""
    flat = tensor.flatten(1)
    low = flat.min(dim=1, keepdim=True).values
    high = flat.max(dim=1, keepdim=True).values
    scaled = (flat - low) / (high - low).clamp_min(1e-12)
    return scaled.view_as(tensor)


def upscale_to(tiles: Tensor, min_size: int) -> Tensor:
    """Nearest-neighbour upscale of ``(N, C, H, W)`` tiles so the smaller side is at least ``min_size``."""
    side = min(tiles.shape[-2:])
    factor = math.ceil(min_size / side) if side < min_size else 1
    return F.interpolate(tiles, scale_factor=factor, mode="nearest") if factor > 1 else tiles


def grid_columns(count: int) -> int:
    """Columns of a roughly square grid of ``count`` tiles."""
    return max(1, math.ceil(math.sqrt(count)))


def figure_to_array(figure) -> np.ndarray:
    """Render a matplotlib Figure once and return it as ``(H, W, 3)`` uint8 (no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def save_png(image: np.ndarray, path: str | Path, compress_level: int = 6) -> Path:
    """Write an ``(H, W, 3)`` uint8 array as PNG, creating the folder (``compress_level`` 1 is fastest)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, compress_level=compress_level)
    return path
