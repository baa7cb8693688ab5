"""Sliding-window inference for segmentation: a large image is cut into overlapping tiles of the training
size, the tiles run through the model in batches, and their outputs are blended back with a weight window.

Every pixel's output is the weighted mean of the outputs of the tiles that cover it. The window (Gaussian or
linear ramp) gives a tile's centre more say than its edge, where the net sees less context. An image side
shorter than the tile is padded (reflected) up to the tile and the padding is cut off again, so the output
always has the input's size. The last tile of a row or column is aligned with the image's edge, so no
padding is needed on images at least one tile large.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from lit_vision.errors import UserError

WINDOWS = ("gaussian", "linear", "flat")
# Smallest window weight: keeps the image's corners (covered by one tile's corner only) well defined.
MIN_WEIGHT = 1e-3


def as_pair(value: int | Sequence[int], key: str) -> tuple[int, int]:
    """``64`` or ``[h, w]`` -> ``(h, w)`` of positive ints; UserError naming ``key`` otherwise."""
    values = [value] if isinstance(value, int) else list(value)
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
        raise UserError(
            f"{key}={value!r} must be a positive number of pixels or [height, width], e.g. {key}=256."
        )
    return int(values[0]), int(values[1])


def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets of the tiles along one side: every ``stride`` pixels, the last one flush with the edge."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def weight_window(size: tuple[int, int], kind: str) -> torch.Tensor:
    """A ``(h, w)`` blending window with values in ``[MIN_WEIGHT, 1]``, largest at the centre."""
    axes = []
    for n in size:
        position = torch.arange(n, dtype=torch.float64) + 0.5 - n / 2  # distance from the centre
        if kind == "gaussian":
            sigma = n / 8  # nnU-Net's choice: the edge gets exp(-8) of the centre's weight before clamping
            axes.append(torch.exp(-0.5 * (position / sigma) ** 2))
        elif kind == "linear":
            axes.append(1 - position.abs() / (n / 2))
        else:
            axes.append(torch.ones(n, dtype=torch.float64))
    window = axes[0][:, None] * axes[1][None, :]
    return (window / window.max()).clamp_min(MIN_WEIGHT).float()


class SlidingWindow:
    """Predict ``(N, C, H, W)`` images of any size with a model trained on ``tile``-sized inputs.

    Args:
        tile: tile size ``(h, w)`` (the model's training ``image_size`` by default, see
            :func:`lit_vision.inference.test_time.TestTimeOptions`).
        stride: step between tiles; at most ``tile`` (no gaps), default half a tile (every pixel of the
            interior in 4 tiles).
        window: ``gaussian``, ``linear`` (a ramp) or ``flat`` (plain mean) blending weights.
        batch_size: tiles per forward pass.
    """

    def __init__(
        self,
        tile: int | Sequence[int],
        stride: int | Sequence[int] | None = None,
        window: str = "gaussian",
        batch_size: int = 16,
    ) -> None:
        self.tile = as_pair(tile, "tile")
        self.stride = (
            (max(1, self.tile[0] // 2), max(1, self.tile[1] // 2))
            if stride is None
            else as_pair(stride, "stride")
        )
        if self.stride[0] > self.tile[0] or self.stride[1] > self.tile[1]:
            raise UserError(
                f"stride={list(self.stride)} is larger than tile={list(self.tile)}: the pixels between tiles would "
                "get no prediction. Use a stride of at most the tile (half the tile, the default, overlaps tiles "
                "by 50 %)."
            )
        if window not in WINDOWS:
            raise UserError(f"tile_window={window!r} is not one of {', '.join(WINDOWS)}.")
        if isinstance(batch_size, bool) or int(batch_size) < 1:
            raise UserError(f"tile_batch_size must be at least 1, got {batch_size!r}.")
        self.window_kind = window
        self.batch_size = int(batch_size)
        self._window: torch.Tensor | None = None

    def boxes(self, height: int, width: int) -> list[tuple[int, int]]:
        """Top-left corners ``(y, x)`` of the tiles covering an image of ``height x width`` (after padding)."""
        ys = tile_starts(height, self.tile[0], self.stride[0])
        xs = tile_starts(width, self.tile[1], self.stride[1])
        return [(y, x) for y in ys for x in xs]

    def window(self, device: torch.device) -> torch.Tensor:
        """The blending window on ``device``."""
        if self._window is None or self._window.device != device:
            self._window = weight_window(self.tile, self.window_kind).to(device)
        return self._window

    def __call__(self, predict: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> torch.Tensor:
        """``predict`` maps tile batches ``(B, C, th, tw)`` to dense outputs ``(B, K, th, tw)``; returns the
        blended ``(N, K, H, W)`` output for ``images``."""
        height, width = images.shape[-2:]
        padded = pad_to(images, self.tile)
        boxes = self.boxes(padded.shape[-2], padded.shape[-1])
        th, tw = self.tile
        window = self.window(images.device)
        total: torch.Tensor | None = None
        weight = torch.zeros(padded.shape[-2:], device=images.device)
        for y, x in boxes:
            weight[y : y + th, x : x + tw] += window
        # All images of the batch share the tile positions: tiles of every image go through one batch.
        crops = [padded[:, :, y : y + th, x : x + tw] for y, x in boxes]
        tiles = torch.cat(crops, dim=0) if len(crops) > 1 else crops[0]
        count = images.shape[0]
        for start in range(0, tiles.shape[0], self.batch_size):
            out = predict(tiles[start : start + self.batch_size]).float()
            if out.shape[-2:] != (th, tw):
                raise UserError(
                    f"the model's output for a {th}x{tw} tile is {tuple(out.shape[-2:])}: sliding windows need a "
                    "segmentation model whose output has its input's size."
                )
            if total is None:
                total = torch.zeros(count, out.shape[1], *padded.shape[-2:], device=out.device)
            for offset in range(out.shape[0]):
                tile_index, image_index = divmod(start + offset, count)
                y, x = boxes[tile_index]
                total[image_index, :, y : y + th, x : x + tw] += out[offset] * window
        assert total is not None
        return (total / weight)[..., :height, :width]


def pad_to(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``images`` padded at the bottom and right up to ``size`` where smaller (reflected where the image is
    large enough to reflect, else repeated edge pixels)."""
    height, width = images.shape[-2:]
    pad_h, pad_w = max(0, size[0] - height), max(0, size[1] - width)
    if not pad_h and not pad_w:
        return images
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(images, (0, pad_w, 0, pad_h), mode=mode)
