"""Test-time options shared by predict and evaluate: flip/scale augmentation (TTA) and sliding windows.

:class:`TestTimeOptions` holds the keys both commands take (``tta``, ``tta_flips``, ``tta_scales``,
``tiling``, ``tile``, ``stride``, ``tile_window``, ``tile_batch_size``) and checks them.
:func:`test_time_scorer` turns a function from an input batch to scores into the same function with TTA,
tiling, or both: tiling cuts the image into tiles and runs TTA on every tile batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from lit_vision.errors import UserError
from lit_vision.inference.tiling import WINDOWS, SlidingWindow, as_pair

Scorer = Callable[[torch.Tensor], torch.Tensor]

# flip name -> image dimensions it mirrors
FLIPS: dict[str, tuple[int, ...]] = {"h": (-1,), "v": (-2,), "hv": (-2, -1)}


@dataclass(frozen=True)
class TestTimeOptions:
    """How predictions are made at test time.

    Attributes:
        tta: average over the views below (the plain image always counts as one).
        flips: mirrored views: ``h`` (left-right), ``v`` (up-down), ``hv`` (both).
        scales: input scales; each flip is taken at each scale (segmentation only for scales other than 1).
        tiling: segmentation: sliding windows over the image at its own size instead of one resized image.
        tile: tile size in pixels (``[h, w]`` or one number); None: the model's training ``image_size``.
        stride: step between tiles; None: half the tile.
        tile_window: blending weights, ``gaussian``, ``linear`` or ``flat``.
        tile_batch_size: tiles per forward pass.
    """

    __test__ = False  # not a pytest test class, despite its name

    tta: bool = False
    flips: tuple[str, ...] = ("h",)
    scales: tuple[float, ...] = (1.0,)
    tiling: bool = False
    tile: tuple[int, int] | None = None
    stride: tuple[int, int] | None = None
    tile_window: str = "gaussian"
    tile_batch_size: int = 16

    KEYS = ("tta", "tta_flips", "tta_scales", "tiling", "tile", "stride", "tile_window", "tile_batch_size")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], prefix: str = "") -> TestTimeOptions:
        """Options from config keys (:attr:`KEYS`; missing ones keep their defaults); a UserError names the
        key (``prefix`` + key) and the fix for a bad value."""

        def flag(key: str) -> bool:
            value = values.get(key, False)
            if not isinstance(value, bool):
                raise UserError(f"{prefix}{key}={value!r} must be true or false.")
            return value

        flips = tuple(str(f) for f in as_list(values.get("tta_flips", ["h"]), f"{prefix}tta_flips"))
        for flip in flips:
            if flip not in FLIPS:
                raise UserError(
                    f"{prefix}tta_flips has {flip!r}; each entry is h (left-right), v (up-down) or hv (both), "
                    f"e.g. {prefix}tta_flips=[h,v]; [] for scales only."
                )
        scales = as_list(values.get("tta_scales", [1.0]), f"{prefix}tta_scales")
        if not scales or any(
            isinstance(s, bool) or not isinstance(s, (int, float)) or s <= 0 for s in scales
        ):
            raise UserError(
                f"{prefix}tta_scales={list(scales)!r} must list positive input scales, e.g. [0.75,1.0,1.25] "
                "(1.0: the input as it is)."
            )
        tile, stride = values.get("tile"), values.get("stride")
        window = values.get("tile_window", "gaussian")
        if window not in WINDOWS:
            raise UserError(f"{prefix}tile_window={window!r} is not one of {', '.join(WINDOWS)}.")
        batch = values.get("tile_batch_size", 16)
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise UserError(f"{prefix}tile_batch_size={batch!r} must be a whole number of tiles, at least 1.")
        options = cls(
            tta=flag("tta"),
            flips=flips,
            scales=tuple(float(s) for s in scales),
            tiling=flag("tiling"),
            tile=None if tile is None else as_pair(plain(tile), f"{prefix}tile"),
            stride=None if stride is None else as_pair(plain(stride), f"{prefix}stride"),
            tile_window=str(window),
            tile_batch_size=int(batch),
        )
        if options.tile is not None and options.stride is not None:
            SlidingWindow(options.tile, options.stride)  # stride > tile: the error names both
        return options

    @property
    def active(self) -> bool:
        """Whether anything differs from one plain forward pass."""
        return self.tta or self.tiling

    def describe(self) -> dict[str, Any]:
        """The options as plain data (for predict.json and metrics.json)."""
        out: dict[str, Any] = {"tta": self.tta, "tiling": self.tiling}
        if self.tta:
            out.update(tta_flips=list(self.flips), tta_scales=list(self.scales))
        if self.tiling:
            out.update(
                tile=None if self.tile is None else list(self.tile),
                stride=None if self.stride is None else list(self.stride),
                tile_window=self.tile_window,
            )
        return out

    def check_for(self, kind: str) -> None:
        """UserError when an option does not apply to a ``kind`` model."""
        if kind == "segmentation":
            return
        if self.tiling:
            raise UserError(
                f"tiling=true cuts images into tiles for segmentation; this is a {kind} model (leave tiling false)."
            )
        if self.tta and any(s != 1.0 for s in self.scales):
            raise UserError(
                f"tta_scales rescale segmentation inputs; a {kind} model takes one input size (use tta_scales=[1.0])."
            )

    def sliding_window(self, image_size: Sequence[int] | int | None) -> SlidingWindow:
        """The :class:`SlidingWindow` for these options; the tile defaults to ``image_size`` (the training
        size from the checkpoint's data_info)."""
        tile = self.tile
        if tile is None:
            if image_size is None:
                raise UserError(
                    "tiling=true needs a tile size: the checkpoint records no training image_size, so give one "
                    "with tile=<pixels>."
                )
            tile = as_pair(plain(image_size), "image_size")
        return SlidingWindow(tile, self.stride, self.tile_window, self.tile_batch_size)


def plain(value: Any) -> Any:
    """OmegaConf lists -> Python lists (other values unchanged)."""
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else value


def as_list(value: Any, key: str) -> list[Any]:
    """A config value that should be a list (one scalar is taken as a list of one)."""
    if value is None:
        raise UserError(f"{key} must be a list, e.g. {key}=[h].")
    if isinstance(value, (str, int, float)):
        return [value]
    return list(value)


def augmented(
    predict: Scorer, images: torch.Tensor, flips: Sequence[str], scales: Sequence[float], dense: bool
) -> torch.Tensor:
    """The mean of ``predict`` over the plain view and each flip, at each scale. Dense outputs ``(N, K, H,
    W)`` are mapped back first (resized to the input's size, then mirrored back), so every pixel averages
    with itself; other outputs ``(N, K)`` are averaged as they are."""
    height, width = images.shape[-2:]
    total: torch.Tensor | None = None
    views = 0
    for scale in scales:
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        scaled = images if size == (height, width) else resize(images, size)
        for dims in [(), *(FLIPS[f] for f in flips)]:
            out = predict(scaled.flip(dims) if dims else scaled).float()
            if dense:
                if dims:
                    out = out.flip(dims)
                if tuple(out.shape[-2:]) != (height, width):
                    out = resize(out, (height, width))
            total = out if total is None else total + out
            views += 1
    assert total is not None
    return total / views


def resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a float batch (antialiased when shrinking)."""
    shrink = size[0] < images.shape[-2] or size[1] < images.shape[-1]
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=shrink)


def test_time_scorer(
    predict: Scorer, options: TestTimeOptions, kind: str, image_size: Sequence[int] | int | None
) -> Scorer:
    """``predict`` (a batch -> scores) with ``options`` applied: TTA, tiling, or tiling with TTA per tile
    batch. ``kind`` is the model's task (dense outputs for segmentation); ``image_size`` its training size."""
    options.check_for(kind)
    dense = kind == "segmentation"
    scorer = predict
    if options.tta:

        def scorer(images: torch.Tensor) -> torch.Tensor:
            return augmented(predict, images, options.flips, options.scales, dense)

    if options.tiling:
        window = options.sliding_window(image_size)
        tiled_from = scorer

        def tiled(images: torch.Tensor) -> torch.Tensor:
            return window(tiled_from, images)

        return tiled
    return scorer


test_time_scorer.__test__ = False  # type: ignore[attr-defined]  # not a pytest test function
