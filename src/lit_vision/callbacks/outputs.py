"""How monitoring callbacks read a task's predictions (classification and segmentation alike).

Contract for tasks: ``validation_step`` / ``test_step`` may return a dict (besides e.g. ``"loss"``) with

- ``"logits"``: classification ``(N, C)``; segmentation ``(N, C, H, W)`` (``C == 1``: binary, sigmoid);
- ``"preds"``: predicted class indices ``(N,)`` / ``(N, H, W)`` (enough for the confusion matrix; the
  task's own thresholding is then respected);
- ``"target"``: ``(N,)`` / ``(N, H, W)`` int64 (default: the batch's second element).

In masks, pixels equal to the task's ``ignore_index`` hyperparameter (default 255) are left out. A task that
returns nothing still works: the callbacks then run ``pl_module(images)`` on the batch themselves (one
extra forward pass over that batch).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from lit_vision.nets.heads import head_module_names
from lit_vision.viz.images import single_view

DEFAULT_IGNORE_INDEX = 255


def scores_and_target(pl_module: L.LightningModule, outputs: Any, batch: Any) -> tuple[Tensor, Tensor] | None:
    """``(logits, target)`` of an evaluated batch, or None when the batch is not class-labelled.

    Reads the step's returned dict when it has ``logits`` and ``target``; otherwise runs the model on
    ``batch[0]`` when ``batch[1]`` holds integer labels or masks (regression targets are float: None).
    """
    if isinstance(outputs, Mapping) and "logits" in outputs and "target" in outputs:
        logits, target = outputs["logits"], outputs["target"]
    else:
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            return None
        inputs, target = batch[0], batch[1]
        if not isinstance(target, Tensor) or target.is_floating_point():
            return None
        with torch.no_grad():
            logits = pl_module(single_view(inputs))
    if not isinstance(logits, Tensor) or logits.ndim != target.ndim + 1 or logits.ndim not in (2, 4):
        return None
    return logits.detach(), target.detach()


def predictions_and_target(
    pl_module: L.LightningModule, outputs: Any, batch: Any
) -> tuple[Tensor, Tensor, int] | None:
    """``(predicted classes, target, number of classes)`` of an evaluated batch, or None when the batch is
    not class-labelled. Reads ``preds`` or ``logits`` from the step's dict, else runs the model."""
    declared = (getattr(pl_module, "hparams", {}) or {}).get("num_classes")
    if isinstance(outputs, Mapping) and "preds" in outputs:
        target = outputs.get("target")
        if target is None and isinstance(batch, (tuple, list)) and len(batch) >= 2:
            target = batch[1]
        preds = outputs["preds"]
        if (
            declared
            and isinstance(target, Tensor)
            and not target.is_floating_point()
            and preds.shape == target.shape
        ):
            return preds.detach(), target.detach(), int(declared)
    pair = scores_and_target(pl_module, outputs, batch)
    if pair is None:
        return None
    logits, target = pair
    return class_predictions(logits), target, max(num_classes_of(logits), int(declared or 0))


def num_classes_of(logits: Tensor) -> int:
    """Classes encoded by ``logits``: a single channel is a binary problem (2 classes)."""
    return max(2, int(logits.shape[1]))


def class_probabilities(logits: Tensor) -> Tensor:
    """Softmax over dim 1; a single channel becomes ``[1 - sigmoid, sigmoid]``."""
    if logits.shape[1] == 1:
        positive = logits.float().sigmoid()
        return torch.cat([1.0 - positive, positive], dim=1)
    return logits.float().softmax(dim=1)


def class_predictions(logits: Tensor) -> Tensor:
    """Predicted class per sample (or pixel): argmax over dim 1, or ``logit > 0`` for one channel."""
    if logits.shape[1] == 1:
        return (logits[:, 0] > 0).long()
    return logits.argmax(dim=1)


def ignore_index_of(pl_module: L.LightningModule, target: Tensor) -> int | None:
    """The label to leave out: the task's ``ignore_index`` for masks, none for per-image labels."""
    if target.ndim < 2:
        return None
    hparams = getattr(pl_module, "hparams", {}) or {}
    value = hparams.get("ignore_index", DEFAULT_IGNORE_INDEX)
    return None if value is None else int(value)


def class_names_of(pl_module: L.LightningModule, num_classes: int) -> list[str]:
    """Class names from the task's ``data_info`` (stored from the DataModule), else ``0..C-1``."""
    info = getattr(pl_module, "data_info", None) or {}
    names = info.get("class_names") or []
    if len(names) == num_classes:
        return [str(n) for n in names]
    return [str(i) for i in range(num_classes)]


def penultimate_features(pl_module: L.LightningModule, images: Tensor) -> Tensor:
    """The features a classifier's head sees, flattened to ``(N, D)``.

    Uses ``net.forward_features`` when the net has it (4-D outputs are average-pooled); otherwise hooks
    the input of the net's head (``lit_vision.nets.heads``: ``head_name``, else the last ``nn.Linear``)
    during a normal forward pass; a net without a head gives its outputs.
    """
    net = getattr(pl_module, "net", pl_module)
    with torch.no_grad():
        if hasattr(net, "forward_features"):
            features = net.forward_features(images)
        else:
            head = head_of(net)
            if head is None:
                features = pl_module(images)
            else:
                captured: list[Tensor] = []
                handle = head.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
                try:
                    pl_module(images)
                finally:
                    handle.remove()
                features = captured[-1]
    if features.ndim == 4:
        features = features.float().mean(dim=(2, 3))
    return features.flatten(1).float()


def head_of(net: nn.Module) -> nn.Module | None:
    """The net's classifier head module, or None when it has none."""
    try:
        name = head_module_names(net)[0]
    except ValueError:
        return None
    return net.get_submodule(name)
