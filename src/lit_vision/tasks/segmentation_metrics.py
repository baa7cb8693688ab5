"""Segmentation scores from a pixel confusion matrix accumulated over a whole split (torchmetrics).

IoU of class c = TP / (TP + FP + FN) and Dice = 2 TP / (2 TP + FP + FN), counted over every pixel of the
split (not averaged per image). mIoU is the mean IoU over the classes; like the tutorial it leaves the
background out by default (``exclude_background``), so for cats vs background it is the cat IoU. A class
that appears in neither target nor prediction has no score (nan) and does not enter the means. Pixel
accuracy is the fraction of non-ignored pixels labelled correctly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics.classification import MulticlassConfusionMatrix


def confusion_matrix_metric(num_classes: int, ignore_index: int = 255) -> MulticlassConfusionMatrix:
    """A torchmetrics confusion matrix over class-index masks (rows: target, columns: prediction)."""
    return MulticlassConfusionMatrix(num_classes=num_classes, ignore_index=ignore_index, validate_args=False)


def metric_key(name: str) -> str:
    """A class name usable in a metric key (``val/iou_<key>``)."""
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name.strip("_")) or "class"


def scores_from_confusion(
    confmat: torch.Tensor, class_names: Sequence[str] | None = None, exclude_background: bool = True
) -> dict[str, torch.Tensor]:
    """``{"iou", "dice", "pixel_acc", "iou_<class>", "dice_<class>"}`` from a (C, C) confusion matrix."""
    confmat = confmat.double()
    num_classes = confmat.shape[0]
    names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
    tp = confmat.diagonal()
    fp = confmat.sum(dim=0) - tp
    fn = confmat.sum(dim=1) - tp
    union = tp + fp + fn
    nan = torch.full_like(tp, float("nan"))
    iou = torch.where(union > 0, tp / union.clamp_min(1), nan)
    dice = torch.where(union > 0, 2 * tp / (2 * tp + fp + fn).clamp_min(1), nan)
    counted = slice(1, None) if exclude_background and num_classes > 1 else slice(None)
    out = {
        "iou": iou[counted].nanmean(),
        "dice": dice[counted].nanmean(),
        "pixel_acc": tp.sum() / confmat.sum().clamp_min(1),
    }
    for i, name in enumerate(names):
        key = metric_key(name)
        out[f"iou_{key}"] = iou[i]
        out[f"dice_{key}"] = dice[i]
    return {k: v.float() for k, v in out.items()}
