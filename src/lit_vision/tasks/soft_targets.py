"""The classification loss for soft targets (class probabilities, as MixUp/CutMix produce)."""

from __future__ import annotations

import torch
from torch import nn

from lit_vision.errors import UserError


def soft_target_loss(loss_fn: nn.Module, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``outputs`` against ``(N, classes)`` target probabilities.

    ``CrossEntropyLoss`` takes probabilities itself (its ``weight`` and ``label_smoothing`` apply as
    usual); ``NLLLoss`` (nets ending in log_softmax) gets the same formula on its log-probabilities.
    Any other loss cannot read probabilities and is refused with the fix.
    """
    if isinstance(loss_fn, nn.CrossEntropyLoss):
        return loss_fn(outputs, target)
    if isinstance(loss_fn, nn.NLLLoss):
        log_probs = outputs.float()
        if loss_fn.weight is not None:
            log_probs = log_probs * loss_fn.weight
        per_sample = -(target * log_probs).sum(dim=1)
        return per_sample.sum() if loss_fn.reduction == "sum" else per_sample.mean()
    raise UserError(
        f"data.mix (MixUp/CutMix) trains on soft targets, which model.loss {type(loss_fn).__name__} cannot "
        "read: use model.loss._target_=torch.nn.CrossEntropyLoss (or NLLLoss for log_softmax nets), or "
        "switch mixing off (data.mix.mixup_alpha=0 data.mix.cutmix_alpha=0)."
    )
