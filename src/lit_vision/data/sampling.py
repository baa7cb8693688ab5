"""The training sampler chosen by ``data.sampler``: a seeded shuffle, or class-balanced draws.

``balanced`` draws ``len(train)`` indices per epoch with replacement, each with probability proportional
to its class's weight (``1 / class count`` unless ``data.class_weights`` gives the weights), so every class
is drawn about equally often. The draw depends only on ``(seed, epoch)``, like
:class:`~lit_vision.data.resumable.EpochSampler`: a run resumed mid-epoch skips into the same draw, and under
DDP Lightning's ``DistributedSamplerWrapper`` hands every rank a disjoint share of the positions of that one
draw (all ranks compute the same draw from the same seed and epoch).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler, WeightedRandomSampler

from lit_vision.data.resumable import EpochSampler
from lit_vision.errors import UserError

SAMPLERS = ("shuffle", "balanced")


NOT_CLASSES = (
    "data.sampler=balanced needs one class label per sample, and this data set's targets are not that "
    "(numbers, or several labels per image): use data.sampler=shuffle."
)


def check_sampler_options(
    sampler: str, class_weights: Sequence[float] | None, has_classes: bool = True
) -> list[float] | None:
    """Validate ``data.sampler`` / ``data.class_weights`` at instantiation (``has_classes``: the targets are
    one class per sample); the weights as plain floats."""
    if sampler not in SAMPLERS:
        raise UserError(
            f"data.sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}: 'shuffle' draws every "
            "training sample once per epoch, 'balanced' draws classes about equally often."
        )
    if sampler == "balanced" and not has_classes:
        raise UserError(NOT_CLASSES)
    if class_weights is None:
        return None
    if sampler != "balanced":
        raise UserError(
            "data.class_weights is only read by data.sampler=balanced: set data.sampler=balanced, or "
            "data.class_weights=null."
        )
    try:
        weights = [float(w) for w in class_weights]
    except (TypeError, ValueError):
        raise UserError(
            f"data.class_weights must be a list of numbers, one per class, got {class_weights!r}."
        ) from None
    if any(not w >= 0 for w in weights) or not any(w > 0 for w in weights):
        raise UserError(
            f"data.class_weights must be non-negative numbers with at least one above zero, got {weights}."
        )
    return weights


class BalancedSampler(WeightedRandomSampler):
    """Indices drawn with replacement, probability proportional to their class's weight; seeded by
    ``(seed, epoch)`` only (Lightning calls :meth:`set_epoch` before every epoch, also through its
    distributed wrapper).

    ``labels``: the class of every sample. ``class_weights``: one weight per class; ``None`` weighs each
    class by ``1 / its count`` (absent classes weigh nothing). ``num_samples``: draws per epoch (default
    ``len(labels)``, so an epoch has as many steps as with shuffling).
    """

    def __init__(
        self,
        labels: Sequence[int] | torch.Tensor,
        class_weights: Sequence[float] | None = None,
        num_samples: int | None = None,
        seed: int = 0,
    ) -> None:
        labels = torch.as_tensor(labels, dtype=torch.long).cpu()
        if labels.numel() == 0:
            raise UserError("data.sampler=balanced: the training split is empty.")
        counts = torch.bincount(labels)
        if class_weights is None:
            per_class = torch.where(counts > 0, 1.0 / counts.clamp_min(1).double(), 0.0)
        else:
            per_class = torch.as_tensor(list(class_weights), dtype=torch.float64)
            if len(per_class) < len(counts):
                raise UserError(
                    f"data.class_weights has {len(per_class)} values but the training labels go up to class "
                    f"{len(counts) - 1}: give one weight per class ({len(counts)} or more values)."
                )
            if not (per_class[: len(counts)] * (counts > 0)).any():
                raise UserError(
                    "data.class_weights gives weight 0 to every class present in the training split: "
                    "nothing could be drawn. Give a positive weight to at least one present class."
                )
        self.class_weights = per_class
        self.seed = int(seed)
        self.epoch = 0
        super().__init__(per_class[labels], int(num_samples or len(labels)), replacement=True)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        # A fresh generator per pass: the draw of an epoch is the same in every run, process and resume.
        self.generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return super().__iter__()


def train_sampler(
    kind: str,
    size: int,
    shuffle: bool,
    seed: int,
    labels: Sequence[int] | torch.Tensor | None = None,
    class_weights: Sequence[float] | None = None,
) -> Sampler[int]:
    """The index sampler of a split: :class:`BalancedSampler` for ``kind == "balanced"`` when shuffling
    (the train split), else the seeded :class:`EpochSampler`."""
    if kind == "balanced" and shuffle:
        if labels is None:
            raise UserError(NOT_CLASSES)
        return BalancedSampler(labels, class_weights, num_samples=size, seed=seed)
    return EpochSampler(size, shuffle=shuffle, seed=seed)
