"""RandAugment, TrivialAugmentWide and AutoAugment for (image, mask) pairs.

torchvision's v2 versions refuse a ``tv_tensors.Mask`` (they transform one image or video only). These
subclasses draw the ops exactly as torchvision does and apply them to the image; the geometric ones
(shear, translate, rotate) are then applied with the same magnitude to the mask, resampled nearest, and
pixels moved in from outside the mask get ``ignore_index`` (left out of the loss and the metrics). Colour
ops touch only the image. Segmentation DataModules use them for the plain names in ``train_transforms``
(``{RandAugment: {num_ops: 2}}``), see :data:`MASK_AWARE`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torchvision import tv_tensors
from torchvision.transforms import InterpolationMode, v2

from lit_vision.data.segmentation.labels import IGNORE_INDEX
from lit_vision.errors import UserError

GEOMETRIC_OPS = frozenset({"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate"})


class _MaskAware:
    """Mixin for a v2 auto-augment class: record the ops applied to the image, replay the geometric ones
    on the mask."""

    ignore_index: int = IGNORE_INDEX
    _recorded: list[tuple[str, float]] | None = None

    def _apply_image_or_video_transform(
        self, image: Any, transform_id: str, magnitude: float, interpolation: Any, fill: Any
    ) -> Any:
        if self._recorded is not None:
            self._recorded.append((transform_id, magnitude))
        return super()._apply_image_or_video_transform(image, transform_id, magnitude, interpolation, fill)  # type: ignore[misc]

    def forward(self, *inputs: Any) -> Any:
        flat = inputs[0] if len(inputs) == 1 and isinstance(inputs[0], (tuple, list)) else inputs
        masks = [i for i, x in enumerate(flat) if isinstance(x, tv_tensors.Mask)]
        if not masks:
            return super().forward(*inputs)  # type: ignore[misc]
        others = [x for i, x in enumerate(flat) if i not in masks]
        self._recorded = []
        try:
            out = super().forward(*others)  # type: ignore[misc]
            ops = self._recorded
        finally:
            self._recorded = None
        out_others = list(out) if isinstance(out, (tuple, list)) else [out]
        result, k = [], 0
        for i, x in enumerate(flat):
            if i in masks:
                result.append(self._replay_on_mask(x, ops))
            else:
                result.append(out_others[k])
                k += 1
        return tuple(result)

    def _replay_on_mask(self, mask: tv_tensors.Mask, ops: list[tuple[str, float]]) -> tv_tensors.Mask:
        fill = {tv_tensors.Mask: self.ignore_index}
        for transform_id, magnitude in ops:
            if transform_id in GEOMETRIC_OPS:
                mask = super()._apply_image_or_video_transform(  # type: ignore[misc]
                    mask, transform_id, magnitude, InterpolationMode.NEAREST, fill
                )
        return mask


class RandAugment(_MaskAware, v2.RandAugment):
    """``torchvision.transforms.v2.RandAugment`` that also moves the mask (see the module docstring)."""


class TrivialAugmentWide(_MaskAware, v2.TrivialAugmentWide):
    """``torchvision.transforms.v2.TrivialAugmentWide`` that also moves the mask."""


class AutoAugment(_MaskAware, v2.AutoAugment):
    """``torchvision.transforms.v2.AutoAugment`` that also moves the mask."""


# plain names in a segmentation train_transforms list -> the mask-aware classes (dotted paths)
MASK_AWARE = {name: f"{__name__}.{name}" for name in ("RandAugment", "TrivialAugmentWide", "AutoAugment")}
# not meaningful for a mask (several images mixed into one): refused with a UserError
NOT_FOR_MASKS = frozenset({"AugMix", "MixUp", "CutMix"})


def _name_of(item: Any) -> str | None:
    if isinstance(item, str):
        return item
    if isinstance(item, Mapping):
        if "_target_" in item:
            return str(item["_target_"])
        if len(item) == 1:
            return str(next(iter(item)))
    return None


def for_masks(items: Sequence[Any], key: str = "data.train_transforms") -> list[Any]:
    """``items`` (a v2 transform list, containers included) with the auto-augment names replaced by the
    mask-aware classes; a UserError for transforms that mix several images."""
    out = []
    for item in items:
        name = _name_of(item)
        short = name.rsplit(".", 1)[-1] if name else None
        if short in NOT_FOR_MASKS:
            raise UserError(
                f"{key}: {short} mixes several images into one and has no meaning for segmentation masks; "
                "remove it (it is a classification augmentation). For segmentation use RandAugment, "
                "TrivialAugmentWide, AutoAugment, RandomErasing or the geometric and colour transforms."
            )
        if short in MASK_AWARE and name in (short, f"torchvision.transforms.v2.{short}"):
            if isinstance(item, str):
                item = MASK_AWARE[short]
            elif "_target_" in item:
                item = {**item, "_target_": MASK_AWARE[short]}
            else:
                item = {MASK_AWARE[short]: item[name]}
        elif isinstance(item, Mapping):
            args = item if "_target_" in item else (item.get(name) if name else None)
            if isinstance(args, Mapping) and isinstance(args.get("transforms"), Sequence):
                nested = {**args, "transforms": for_masks(args["transforms"], key)}
                item = nested if "_target_" in item else {name: nested}
        out.append(item)
    return out
