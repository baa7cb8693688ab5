"""Segmentation losses on logits, from segmentation-models-pytorch, chosen by name in the config.

``name`` is one loss or a ``+``-joined sum of them, e.g. ``dice``, ``bce+dice`` (alias ``bce_dice``),
``focal+dice``. Available: dice, bce (binary cross-entropy; in multi-class mode it means cross-entropy),
ce, jaccard, focal, lovasz, tversky. ``weights`` gives one weight per term (default 1 each). Every term
skips pixels equal to ``ignore_index``. ``smooth`` is the additive smoothing of the soft scores:
Dice = (2 |P n G| + smooth) / (|P| + |G| + smooth) as in the tutorial, Jaccard = (|P n G| + smooth) /
(|P u G| + smooth), Tversky likewise. ``mode`` ("binary": one logit channel and masks of 0/1; or
"multiclass": one channel per class) is set by the task from its head, not by the user.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType

import torch
from torch import nn

from lit_vision.errors import UserError

TERMS = ("dice", "bce", "ce", "jaccard", "focal", "lovasz", "tversky")
ALIASES = {"bce_dice": "bce+dice", "dice_bce": "dice+bce", "ce_dice": "ce+dice", "dice_ce": "dice+ce"}
MODES = ("binary", "multiclass")


def smp_losses() -> ModuleType:
    """``segmentation_models_pytorch.losses``, imported on first use: importing smp loads timm (and what
    timm pulls in), about a second that every run importing the tasks would otherwise pay."""
    from segmentation_models_pytorch import losses

    return losses


def parse_terms(name: str) -> list[str]:
    """``"bce_dice"`` / ``"bce+dice"`` -> ``["bce", "dice"]`` (validated)."""
    terms = [t.strip().lower() for t in ALIASES.get(name, name).split("+") if t.strip()]
    unknown = [t for t in terms if t not in TERMS]
    if not terms or unknown:
        raise UserError(
            f"model.loss.name={name!r}: unknown loss {unknown or name!r}. Choose from {list(TERMS)} or join "
            "them with '+' (e.g. bce+dice)."
        )
    return terms


class BinaryCrossEntropy(nn.Module):
    """smp's SoftBCEWithLogitsLoss for one-channel logits, averaged over the pixels that are not ignored."""

    def __init__(
        self, ignore_index: int, smooth_factor: float | None = None, pos_weight: float | None = None
    ):
        super().__init__()
        weight = None if pos_weight is None else torch.tensor([float(pos_weight)])
        self.ignore_index = ignore_index
        self.bce = smp_losses().SoftBCEWithLogitsLoss(
            ignore_index=ignore_index, reduction="none", smooth_factor=smooth_factor, pos_weight=weight
        )

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.unsqueeze(1).to(logits.dtype)
        per_pixel = self.bce(logits, target)
        valid = (target != self.ignore_index).sum().clamp_min(1)
        return per_pixel.sum() / valid


class SegmentationLoss(nn.Module):
    """A weighted sum of smp losses on logits ``(N, C, H, W)`` against masks ``(N, H, W)``."""

    def __init__(
        self,
        name: str = "dice",
        mode: str = "binary",
        ignore_index: int = 255,
        weights: Sequence[float] | None = None,
        smooth: float = 1.0,
        log_loss: bool = False,
        focal_alpha: float | None = None,
        focal_gamma: float = 2.0,
        tversky_alpha: float = 0.5,
        tversky_beta: float = 0.5,
        tversky_gamma: float = 1.0,
        lovasz_per_image: bool = False,
        label_smoothing: float = 0.0,
        pos_weight: float | None = None,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.names = parse_terms(name)
        weights = [1.0] * len(self.names) if weights is None else [float(w) for w in weights]
        if len(weights) != len(self.names):
            raise UserError(
                f"model.loss.weights has {len(weights)} values for the {len(self.names)} terms of "
                f"{name!r}; give one weight per term."
            )
        self.weights = weights
        self.mode = mode
        common = {"mode": mode, "ignore_index": ignore_index}
        builders = {
            # smp writes Dice as (I + s) / (I + (FP + FN) / 2 + s), i.e. (2I + 2s) / (|P| + |G| + 2s): half
            # of ``smooth`` gives the usual (2I + smooth) / (|P| + |G| + smooth) of the tutorial.
            "dice": lambda: smp_losses().DiceLoss(**common, smooth=smooth / 2, log_loss=log_loss),
            "jaccard": lambda: smp_losses().JaccardLoss(**common, smooth=smooth, log_loss=log_loss),
            "tversky": lambda: smp_losses().TverskyLoss(
                **common,
                smooth=smooth,
                log_loss=log_loss,
                alpha=tversky_alpha,
                beta=tversky_beta,
                gamma=tversky_gamma,
            ),
            "focal": lambda: smp_losses().FocalLoss(**common, alpha=focal_alpha, gamma=focal_gamma),
            "lovasz": lambda: smp_losses().LovaszLoss(**common, per_image=lovasz_per_image),
            "bce": lambda: self._cross_entropy(ignore_index, label_smoothing, pos_weight),
            "ce": lambda: self._cross_entropy(ignore_index, label_smoothing, pos_weight),
        }
        self.terms = nn.ModuleList(builders[t]() for t in self.names)

    def _cross_entropy(
        self, ignore_index: int, label_smoothing: float, pos_weight: float | None
    ) -> nn.Module:
        if self.mode == "binary":
            return BinaryCrossEntropy(
                ignore_index, smooth_factor=label_smoothing or None, pos_weight=pos_weight
            )
        return nn.CrossEntropyLoss(ignore_index=ignore_index, label_smoothing=label_smoothing)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()  # losses in float32 even under bf16 autocast
        target = target.long()
        total = logits.new_zeros(())
        for weight, term in zip(self.weights, self.terms, strict=True):
            total = total + weight * term(logits, target)
        return total

    def extra_repr(self) -> str:
        return f"mode={self.mode}, terms={self.names}, weights={self.weights}"
