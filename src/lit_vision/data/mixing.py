"""MixUp and CutMix of classification training batches (torchvision.transforms.v2.MixUp / CutMix).

Config (``data.mix``), the names of timm's ``Mixup``::

    mix:
      mixup_alpha: 0.2    # Beta(alpha, alpha) mixing weight; 0: no MixUp
      cutmix_alpha: 1.0   # Beta(alpha, alpha) box area; 0: no CutMix
      prob: 1.0           # share of training batches that are mixed
      switch_prob: 0.5    # with both alphas > 0: share of mixed batches that use CutMix

Both alphas 0 (the default) switch mixing off. A mixed training batch is ``(images, labels, soft)``:
``labels`` are the original integer labels (the metrics use them), ``soft`` the ``(N, classes)`` target
probabilities the loss uses (rows sum to 1). Batches that are not mixed get one-hot ``soft`` rows, so the
batch format stays the same for a whole run. As in torchvision (and timm's default ``mode="batch"``), one
mixing weight is drawn per batch and each image is mixed with its neighbour in the batch (``roll(1)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torchvision.transforms import v2

from lit_vision.errors import UserError

MIX_KEYS = ("mixup_alpha", "cutmix_alpha", "prob", "switch_prob")


@dataclass(frozen=True)
class MixSettings:
    """The checked ``data.mix`` values; :meth:`build` makes the mixer once the class count is known."""

    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    prob: float = 1.0
    switch_prob: float = 0.5

    @property
    def enabled(self) -> bool:
        return self.prob > 0 and (self.mixup_alpha > 0 or self.cutmix_alpha > 0)

    def build(self, num_classes: int) -> BatchMix:
        return BatchMix(self, int(num_classes))


def parse_mix(config: Mapping[str, Any] | None, key: str = "data.mix") -> MixSettings | None:
    """``data.mix`` as :class:`MixSettings`, or None when mixing is off; a UserError names a bad key."""
    if config is None:
        return None
    if not isinstance(config, Mapping):
        raise UserError(
            f"{key} must be a mapping such as {{mixup_alpha: 0.2, cutmix_alpha: 1.0}}, got {config!r}."
        )
    unknown = sorted(set(config) - set(MIX_KEYS))
    if unknown:
        raise UserError(
            f"{key}.{unknown[0]} is not a mixing option; {key} takes {', '.join(MIX_KEYS)} "
            f"(e.g. {key}.mixup_alpha=0.2 {key}.cutmix_alpha=1.0)."
        )
    values: dict[str, float] = {}
    for name, value in config.items():
        try:
            values[name] = float(value)
        except (TypeError, ValueError):
            raise UserError(f"{key}.{name} must be a number, got {value!r}.") from None
    for name in ("mixup_alpha", "cutmix_alpha"):
        if values.get(name, 0.0) < 0:
            raise UserError(f"{key}.{name} must be >= 0 (0 switches it off), got {values[name]}.")
    for name in ("prob", "switch_prob"):
        if not 0.0 <= values.get(name, 0.5) <= 1.0:
            raise UserError(f"{key}.{name} is a probability and must be in [0, 1], got {values[name]}.")
    settings = MixSettings(**values)
    return settings if settings.enabled else None


class BatchMix:
    """Mixes a training batch with torchvision's MixUp or CutMix; returns ``(images, labels, soft)``.

    uint8 batches (the file sets' collate) become float in [0, 1] when MixUp blends them; CutMix only
    pastes boxes and keeps the dtype. Normalised float batches (the in-memory sets, on the device) mix as
    they are: mixing is linear, so it commutes with the per-channel normalisation.
    """

    def __init__(self, settings: MixSettings, num_classes: int) -> None:
        if num_classes < 2:
            raise UserError(f"data.mix needs at least 2 classes, the data has {num_classes}.")
        self.settings = settings
        self.num_classes = num_classes
        self.mixup = (
            v2.MixUp(alpha=settings.mixup_alpha, num_classes=num_classes) if settings.mixup_alpha else None
        )
        self.cutmix = (
            v2.CutMix(alpha=settings.cutmix_alpha, num_classes=num_classes) if settings.cutmix_alpha else None
        )

    def choose(self) -> v2.Transform | None:
        """The transform for this batch: None (not mixed), MixUp or CutMix."""
        if float(torch.rand(())) >= self.settings.prob:
            return None
        if self.mixup is None or self.cutmix is None:
            return self.mixup or self.cutmix
        return self.cutmix if float(torch.rand(())) < self.settings.switch_prob else self.mixup

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        transform = self.choose()
        if transform is None:
            soft = torch.nn.functional.one_hot(labels, self.num_classes).float()
            return images, labels, soft
        if transform is self.mixup and not images.is_floating_point():
            images = images.float().div_(255.0)
        # torchvision's labels_getter finds the labels as the second item of the (images, labels) pair
        mixed, soft = transform(images, labels)
        return mixed.as_subclass(torch.Tensor), labels, soft.float()

    def __repr__(self) -> str:
        return f"BatchMix({self.settings}, num_classes={self.num_classes})"
