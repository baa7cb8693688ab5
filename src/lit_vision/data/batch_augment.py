"""Per-sample random augmentation of whole batches on the training device (no per-sample Python, no PIL).

In-memory datasets (MNIST, CIFAR...) hand the task one tensor per batch; these ops draw independent random
parameters for every sample of it and apply them with a few tensor operations, so they run at the same
speed on CPU and GPU regardless of the batch size. They act on *normalised* float images; fills are given
in pixel units (0 = black, 1 = white, as torchvision's ``fill`` for float images) and converted with the
dataset's mean/std.

Config form (a list, like the transform lists): ``[{RandomCrop: {padding: 4}}, {RandomHorizontalFlip: {}}]``
or ``[RandomHorizontalFlip]``. Ops: RandomCrop, RandomHorizontalFlip, RandomVerticalFlip, RandomAffine,
Cutout, and torchvision's RandAugment, TrivialAugmentWide, AutoAugment, RandomErasing with per-sample
parameters (``data/batch_autoaugment.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from lit_vision.data.batch_autoaugment import AUTO_OPS
from lit_vision.data.batch_op import BatchOp, sample_mask
from lit_vision.errors import UserError


class RandomCrop(BatchOp):
    """Pad every side by ``padding`` pixels, then crop ``size`` at an independent random offset per sample.

    ``RandomCrop(padding=4)`` on 32x32 images is the CIFAR recipe (torchvision's RandomCrop(32, padding=4)).
    ``padding_mode``: constant (with ``fill``), reflect or replicate.
    """

    def __init__(
        self,
        size: int | Sequence[int] | None = None,
        padding: int = 4,
        padding_mode: str = "constant",
        fill: float = 0.0,
    ) -> None:
        if padding_mode not in ("constant", "reflect", "replicate"):
            raise UserError(
                f"RandomCrop padding_mode must be constant, reflect or replicate, got {padding_mode!r}"
            )
        if int(padding) < 0:
            raise UserError(f"RandomCrop padding must be >= 0, got {padding}")
        self.size = None if size is None else _pair(size)
        self.padding = int(padding)
        self.padding_mode = padding_mode
        self.fill = float(fill)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        n, c, h, w = images.shape
        out_h, out_w = self.size or (h, w)
        p = self.padding
        if p:
            if self.padding_mode == "constant":
                padded = self.fill_tensor(self.fill, images).expand(n, c, h + 2 * p, w + 2 * p).clone()
                padded[:, :, p : p + h, p : p + w] = images
            else:
                padded = F.pad(images, (p, p, p, p), mode=self.padding_mode)
        else:
            padded = images
        ph, pw = padded.shape[-2:]
        if out_h > ph or out_w > pw:
            raise UserError(f"RandomCrop size {(out_h, out_w)} is larger than the padded image {(ph, pw)}")
        device = images.device
        top = torch.randint(0, ph - out_h + 1, (n,), device=device)
        left = torch.randint(0, pw - out_w + 1, (n,), device=device)
        rows = top[:, None] + torch.arange(out_h, device=device)
        cols = left[:, None] + torch.arange(out_w, device=device)
        # One gather over the flattened plane: index = row * width + col, the same for every channel.
        index = (rows[:, :, None] * pw + cols[:, None, :]).view(n, 1, out_h * out_w).expand(n, c, -1)
        return padded.reshape(n, c, ph * pw).gather(2, index).view(n, c, out_h, out_w)


class RandomHorizontalFlip(BatchOp):
    """Mirror left-right each sample with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = float(p)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        mask = sample_mask(images, self.p).view(-1, 1, 1, 1)
        return torch.where(mask, images.flip(-1), images)


class RandomVerticalFlip(BatchOp):
    """Mirror top-bottom each sample with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = float(p)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        mask = sample_mask(images, self.p).view(-1, 1, 1, 1)
        return torch.where(mask, images.flip(-2), images)


class RandomAffine(BatchOp):
    """Random rotation (``degrees``), translation (``translate`` = max fraction of width/height), scale
    (``scale`` = [min, max]) per sample, resampled bilinearly; uncovered pixels get ``fill``.

    Same meaning as torchvision's RandomAffine, e.g. ``{degrees: 10, translate: [0.1, 0.1]}`` for MNIST.
    """

    def __init__(
        self,
        degrees: float | Sequence[float] = 0.0,
        translate: Sequence[float] | None = None,
        scale: Sequence[float] | None = None,
        fill: float = 0.0,
        p: float = 1.0,
    ) -> None:
        if isinstance(degrees, (int, float)):
            degrees = (-float(degrees), float(degrees))
        self.degrees = (float(degrees[0]), float(degrees[1]))
        self.translate = None if translate is None else (float(translate[0]), float(translate[1]))
        self.scale = None if scale is None else (float(scale[0]), float(scale[1]))
        self.fill = float(fill)
        self.p = float(p)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        n = images.shape[0]
        device, dtype = images.device, images.dtype
        angle = _uniform(n, *self.degrees, device) * (math.pi / 180.0)
        factor = _uniform(n, *self.scale, device) if self.scale else torch.ones(n, device=device)
        if self.translate:
            # affine_grid works in [-1, 1] coordinates: a shift of fraction t of the size is 2t.
            tx = _uniform(n, -self.translate[0], self.translate[0], device) * 2.0
            ty = _uniform(n, -self.translate[1], self.translate[1], device) * 2.0
        else:
            tx = ty = torch.zeros(n, device=device)
        keep = ~sample_mask(images, self.p)
        angle = angle.masked_fill(keep, 0.0)
        factor = factor.masked_fill(keep, 1.0)
        tx, ty = tx.masked_fill(keep, 0.0), ty.masked_fill(keep, 0.0)
        # The grid maps output to input coordinates: the inverse of "scale, rotate, then shift".
        cos, sin = torch.cos(angle) / factor, torch.sin(angle) / factor
        theta = torch.stack(
            [
                torch.stack([cos, sin, -(cos * tx + sin * ty)], dim=1),
                torch.stack([-sin, cos, sin * tx - cos * ty], dim=1),
            ],
            dim=1,
        ).to(dtype)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        # Sample (image - fill) with zero padding, then add fill back: uncovered pixels become fill.
        fill = self.fill_tensor(self.fill, images)
        out = F.grid_sample(images - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return out + fill


class Cutout(BatchOp):
    """Blank one ``size`` x ``size`` square at a random centre (clipped at the borders) per sample, with
    probability ``p`` (DeVries & Taylor's cutout); the square gets ``fill``."""

    def __init__(self, size: int = 8, p: float = 1.0, fill: float = 0.0) -> None:
        if int(size) < 1:
            raise UserError(f"Cutout size must be >= 1 pixel, got {size}")
        self.size = int(size)
        self.p = float(p)
        self.fill = float(fill)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        n, _, h, w = images.shape
        device = images.device
        cy = torch.randint(0, h, (n, 1, 1), device=device)
        cx = torch.randint(0, w, (n, 1, 1), device=device)
        top, left = cy - self.size // 2, cx - self.size // 2
        ys = torch.arange(h, device=device).view(1, h, 1)
        xs = torch.arange(w, device=device).view(1, 1, w)
        inside = (ys >= top) & (ys < top + self.size) & (xs >= left) & (xs < left + self.size)
        inside &= sample_mask(images, self.p).view(n, 1, 1)
        return torch.where(inside.unsqueeze(1), self.fill_tensor(self.fill, images), images)


OPS: dict[str, type[BatchOp]] = {
    cls.__name__: cls for cls in (RandomCrop, RandomHorizontalFlip, RandomVerticalFlip, RandomAffine, Cutout)
} | AUTO_OPS


class BatchAugment:
    """A list of batch ops applied in order; built from config items by :func:`build_batch_augment`."""

    def __init__(self, ops: Sequence[BatchOp]) -> None:
        self.ops = list(ops)

    def set_normalization(self, mean: Sequence[float], std: Sequence[float]) -> None:
        for op in self.ops:
            op.set_normalization(mean, std)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        for op in self.ops:
            images = op(images)
        return images

    def __len__(self) -> int:
        return len(self.ops)

    def __repr__(self) -> str:
        return f"BatchAugment({self.ops})"


def build_batch_op(item: Mapping[str, Any] | str) -> BatchOp:
    """One op from ``"Name"``, ``{Name: {kwargs}}`` or ``{_target_: Name, **kwargs}``."""
    if isinstance(item, str):
        name, kwargs = item, {}
    elif "_target_" in item:
        name = str(item["_target_"]).rsplit(".", 1)[-1]
        kwargs = {k: v for k, v in item.items() if k != "_target_"}
    elif len(item) == 1:
        name, kwargs = next(iter(item.items()))
        kwargs = dict(kwargs or {})
    else:
        raise UserError(f"an augment item needs one op name, got keys {list(item)}")
    if name not in OPS:
        raise UserError(
            f"unknown batch augmentation {name!r} in data.augment; choose from {sorted(OPS)} "
            "(file-based datasets take torchvision transforms in data.train_transforms instead)"
        )
    kwargs = {
        k: list(v) if isinstance(v, Sequence) and not isinstance(v, str) else v for k, v in kwargs.items()
    }
    try:
        return OPS[name](**kwargs)
    except TypeError as err:
        raise UserError(f"data.augment item {name}: {err}") from None


def build_batch_augment(items: Sequence[Mapping[str, Any] | str] | None) -> BatchAugment | None:
    """The ops of a config list, or None for an empty/absent list."""
    if not items:
        return None
    return BatchAugment([build_batch_op(item) for item in items])


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    size = list(size)
    return (int(size[0]), int(size[-1]))


def _uniform(n: int, low: float, high: float, device: torch.device) -> torch.Tensor:
    return torch.empty(n, device=device).uniform_(low, high)
