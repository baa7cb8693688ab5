"""Preparing image files exactly as the checkpoint's evaluation pipeline did, from its ``data_info``.

The steps of training's eval path, in order: decode the file to ``in_channels`` (EXIF orientation applied;
grey, grey + alpha, RGBA, palette, 16-bit and CMYK files converted, as ``decode_image_file`` does for
training), run ``data_info["eval_transforms"]`` (torchvision.transforms.v2, uint8), for segmentation the
final resize to ``image_size`` that the segmentation DataModules append, then, per batch on the device,
scale to [0, 1] and standardise with ``mean``/``std``.

In-memory datasets (digits, MNIST, CIFAR) trained on images of one size and record no eval pipeline: a file
of another size is resized to ``image_size`` (antialiased); an image of that size is used as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from lit_vision.data.image_files import stack_crops
from lit_vision.data.image_io import BadImageError, decode_image_file
from lit_vision.data.transforms import build_transforms
from lit_vision.errors import UserError

log = logging.getLogger("lit_vision")


def as_size(image_size: int | Sequence[int] | None) -> tuple[int, int] | None:
    """``32`` or ``[h, w]`` -> ``(h, w)``; None stays None."""
    if image_size is None:
        return None
    if isinstance(image_size, int):
        return (image_size, image_size)
    values = [int(v) for v in image_size]
    return (values[0], values[0]) if len(values) == 1 else (values[0], values[1])


class ImagePreprocessor:
    """File -> uint8 ``(C, H, W)`` (or ``(crops, C, H, W)``) tensor ready for batching, plus the photo's
    own ``(height, width)`` after EXIF orientation; :meth:`normalize` finishes a batch on its device.

    Args:
        data_info: the checkpoint's ``data_info`` (``in_channels``, ``image_size``, ``mean``, ``std``,
            optional ``eval_transforms``).
        kind: ``classification``, ``segmentation`` or ``regression`` (segmentation appends the resize to
            ``image_size`` its DataModules add to every pipeline).
        full_size: keep each image at the size the eval pipeline gives (no resize to ``image_size``): for
            sliding-window prediction of segmentation models.
    """

    def __init__(self, data_info: Mapping[str, Any], kind: str, full_size: bool = False) -> None:
        self.channels = int(data_info.get("in_channels") or 3)
        if self.channels not in (1, 3):
            raise UserError(
                f"the model takes {self.channels}-channel images; predicting from image files supports 1 "
                "(grey) or 3 (RGB) channels. Run the net on your own tensors instead (see README, Inference)."
            )
        self.full_size = bool(full_size)
        self.size = None if self.full_size else as_size(data_info.get("image_size"))
        items = list(data_info.get("eval_transforms") or [])
        if kind == "segmentation" and self.size is not None:
            items.append({"Resize": {"size": list(self.size), "antialias": True}})
        try:
            self.transform: v2.Transform | None = build_transforms(items)
        except (ValueError, TypeError) as exc:
            raise UserError(f"the checkpoint's eval_transforms cannot be rebuilt here: {exc}") from exc
        mean, std = data_info.get("mean"), data_info.get("std")
        self.mean = [float(m) for m in (mean if mean is not None else [0.0])]
        self.std = [float(s) for s in (std if std is not None else [1.0])]
        for key, values in (("mean", self.mean), ("std", self.std)):
            if len(values) not in (1, self.channels):
                raise UserError(
                    f"the checkpoint's data_info {key} has {len(values)} values for {self.channels}-channel "
                    "images; it is inconsistent and cannot be used."
                )
        self._norm: tuple[torch.Tensor, torch.Tensor] | None = None

    def __call__(self, path: str) -> tuple[torch.Tensor, tuple[int, int]]:
        """Decode and transform one file; raise UserError naming it when it cannot be decoded."""
        try:
            image, original = self.load(path)
        except BadImageError as err:
            raise UserError(f"{err.path}: {err.reason}.") from None
        return image.contiguous(), original

    def load(self, path: str) -> tuple[torch.Tensor, tuple[int, int]]:
        """Decode and transform one file (:class:`BadImageError` when it cannot be decoded). The tensor may
        be a strided view (batching copies it anyway)."""
        image = decode_image_file(path, self.channels)
        original = (int(image.shape[-2]), int(image.shape[-1]))
        return self._transform(image), original

    def transform_tensor(self, image: torch.Tensor) -> torch.Tensor:
        """The eval pipeline on a decoded uint8 ``(C, H, W)`` tensor (then a resize to ``image_size`` when
        the pipeline leaves another size, as for in-memory datasets)."""
        return self._transform(image).contiguous()

    def _transform(self, image: torch.Tensor) -> torch.Tensor:
        out = image
        if self.transform is not None:
            out = stack_crops(self.transform(tv_tensors.Image(image)))
        if self.size is not None and tuple(out.shape[-2:]) != self.size:
            out = TF.resize(out, list(self.size), antialias=True)
        return out

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 batch ``(N, [crops,] C, H, W)`` -> float ``(x / 255 - mean) / std`` on its device."""
        if self._norm is None or self._norm[0].device != images.device:
            mean = torch.tensor(self.mean, device=images.device).view(-1, 1, 1)
            std = torch.tensor(self.std, device=images.device).view(-1, 1, 1)
            self._norm = (mean, std)
        mean, std = self._norm
        return (images.float() / 255.0 - mean) / std

    def describe(self) -> dict[str, Any]:
        """The preprocessing in words and numbers (for export sidecars and logs)."""
        return {
            "decode": (
                f"{'RGB' if self.channels == 3 else 'grey'} uint8, EXIF orientation applied; grey, RGBA, "
                "palette, 16-bit and CMYK files are converted (16-bit scaled to 8 bits, alpha dropped)"
            ),
            "in_channels": self.channels,
            "transforms": "torchvision.transforms.v2 list below, on the uint8 image",
            "resize_to": list(self.size) if self.size is not None else None,
            "scale": "divide by 255 (to [0, 1])",
            "mean": self.mean,
            "std": self.std,
            "formula": "input = (pixel / 255 - mean[c]) / std[c], NCHW float32",
        }
