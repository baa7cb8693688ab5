"""Image classification: cross-entropy (or NLL) on the net's outputs, torchmetrics for train/val/test.

Metrics per stage (``train/``, ``val/``, ``test/``): ``acc`` (top-1), ``acc_top5`` (when there are more than
5 classes), ``precision_macro``, ``recall_macro``, ``f1_macro``, per-class accuracy
``acc_class/<name>`` (up to ``per_class_limit`` classes) and the confusion matrix (kept in
``confusion_matrices[stage]``; :class:`~lit_vision.callbacks.confusion_text.ConfusionMatrixText` writes it
to TensorBoard as a text table).

Each step's outputs stay on the device in a small buffer; every ``metric_chunk`` samples the buffer is
handed to the torchmetrics collection in one update, and the metrics are computed once per epoch. The
training step therefore makes no host synchronisation and pays a list append instead of seven metric
updates (about 1.3 ms per step on a CPU, several percent of a small CNN's step).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

from lit_vision.tasks.base import BaseTask, to_plain
from lit_vision.tasks.soft_targets import soft_target_loss


def classification_metrics(num_classes: int, top_k: int = 5) -> MetricCollection:
    """Top-1 and top-k accuracy, macro precision/recall/F1, per-class accuracy and the confusion matrix.

    ``validate_args=False``: the checks of every update would synchronise with the device.
    """
    common: dict[str, Any] = {"num_classes": num_classes, "validate_args": False}
    metrics: dict[str, Any] = {
        "acc": MulticlassAccuracy(average="micro", **common),
        "precision_macro": MulticlassPrecision(average="macro", **common),
        "recall_macro": MulticlassRecall(average="macro", **common),
        "f1_macro": MulticlassF1Score(average="macro", **common),
        "acc_per_class": MulticlassAccuracy(average=None, **common),
        "confusion": MulticlassConfusionMatrix(**common),
    }
    # Explicit compute groups: torchmetrics' automatic grouping merges metrics whose states are equal after
    # the first update, so top-1 and top-k accuracy became one metric whenever the first batch was all right.
    groups = [["acc"], ["precision_macro", "recall_macro", "f1_macro", "acc_per_class"], ["confusion"]]
    if num_classes > top_k:
        metrics[f"acc_top{top_k}"] = MulticlassAccuracy(top_k=top_k, average="micro", **common)
        groups.append([f"acc_top{top_k}"])
    return MetricCollection(metrics, compute_groups=groups)


class ClassificationTask(BaseTask):
    """Batches are ``(images, int labels)``; the net returns logits (or log-probabilities) ``(N, classes)``.

    Args:
        net, optimizer, scheduler, monitor, monitor_mode, lr_multipliers, channels_last, compile, init,
            pretrained_path: see :class:`~lit_vision.tasks.base.BaseTask`.
        num_classes: number of classes.
        loss: loss config; default ``torch.nn.CrossEntropyLoss`` (``label_smoothing`` works there). Use
            ``torch.nn.NLLLoss`` for nets that end in log_softmax.
        class_weights: one weight per class for the loss (also accepted as a list in ``loss.weight``).
        top_k: k of the top-k accuracy.
        aux_loss_weight: weight of auxiliary classifier losses (Inception v3, GoogLeNet) during training.
        per_class_limit: log per-class accuracy and the confusion-matrix text only up to this many classes.
        metric_chunk: samples collected on the device before the metrics are updated with them at once.

    Evaluation batches of shape ``(N, crops, C, H, W)`` (FiveCrop/TenCrop) are scored by the mean of the
    crops' outputs. Training batches mixed by ``data.mix`` are ``(images, labels, soft targets)``: the loss
    uses the soft targets, the metrics the integer labels.
    """

    progress_bar_metrics = ("acc",)

    def __init__(
        self,
        net: Mapping[str, Any],
        num_classes: int,
        loss: Mapping[str, Any] | None = None,
        monitor: str = "val/acc",
        monitor_mode: str = "max",
        top_k: int = 5,
        class_weights: Sequence[float] | None = None,
        aux_loss_weight: float = 0.4,
        per_class_limit: int = 20,
        metric_chunk: int = 4096,
        **kwargs: Any,
    ) -> None:
        loss = dict(to_plain(loss) or {"_target_": "torch.nn.CrossEntropyLoss"})
        if isinstance(loss.get("weight"), (list, tuple)):
            class_weights = class_weights or loss.pop("weight")
        super().__init__(
            net=net,
            loss=loss,
            monitor=monitor,
            monitor_mode=monitor_mode,
            num_classes=int(num_classes),
            top_k=int(top_k),
            class_weights=None if class_weights is None else [float(w) for w in to_plain(class_weights)],
            aux_loss_weight=float(aux_loss_weight),
            per_class_limit=int(per_class_limit),
            metric_chunk=int(metric_chunk),
            **kwargs,
        )
        self.confusion_matrices: dict[str, torch.Tensor] = {}
        # Logits are divided by it before the softmax of predict_step (set by callbacks.TemperatureScaling,
        # kept in checkpoints as a plain float); None: uncalibrated.
        self.temperature: float | None = None

    def configure_losses(self) -> torch.nn.Module:
        """The configured loss, with ``class_weights`` as its ``weight`` buffer."""
        loss_fn = super().configure_losses()
        weights = self.hparams.class_weights
        if weights is not None:
            if len(weights) != self.hparams.num_classes:
                raise ValueError(
                    f"class_weights has {len(weights)} values for {self.hparams.num_classes} classes"
                )
            loss_fn.register_buffer("weight", torch.tensor(weights, dtype=torch.float32))
        return loss_fn

    def configure_metrics(self) -> MetricCollection:
        return classification_metrics(self.hparams.num_classes, self.hparams.top_k)

    # ------------------------------------------------------------------ forward
    def predict_logits(self, images: torch.Tensor) -> torch.Tensor:
        """Outputs for a batch; multi-crop batches ``(N, crops, C, H, W)`` give the mean over crops."""
        if images.ndim == 5:
            n, crops = images.shape[:2]
            return self(images.flatten(0, 1)).view(n, crops, -1).mean(dim=1)
        return self(images)

    def compute_loss(
        self, outputs: torch.Tensor | tuple, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loss, main outputs)``; auxiliary outputs (a tuple from the net) add ``aux_loss_weight`` x their loss.

        ``labels`` are integer classes, or ``(N, classes)`` probabilities (MixUp/CutMix soft targets)."""
        loss_of = self.loss_fn if not labels.is_floating_point() else self._soft_loss
        if isinstance(outputs, (tuple, list)):
            logits, *aux = outputs
            loss = loss_of(logits, labels)
            for extra in aux:
                loss = loss + self.hparams.aux_loss_weight * loss_of(extra, labels)
            return loss, logits
        return loss_of(outputs, labels), outputs

    def _soft_loss(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return soft_target_loss(self.loss_fn, outputs, target)

    # ------------------------------------------------------------------ steps
    def model_step(
        self, batch, stage: str
    ) -> tuple[dict[str, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        images, labels, *soft = batch  # mixed training batches carry soft targets (data/mixing.py)
        outputs = self(images) if stage == "train" else self.predict_logits(images)
        loss, logits = self.compute_loss(outputs, soft[0] if soft else labels)
        # Monitoring callbacks (confusion matrix figure, PR curves...) read these instead of re-running the net.
        return {"loss": loss, "logits": logits, "target": labels}, (logits, labels)

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        logits = self.predict_logits(images).float()
        if self.temperature is not None:
            logits = logits / self.temperature
        return logits.softmax(dim=-1)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        if self.temperature is not None:
            checkpoint["temperature"] = float(self.temperature)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        temperature = checkpoint.get("temperature")
        self.temperature = None if temperature is None else float(temperature)

    # ------------------------------------------------------------------ epoch values
    def epoch_values(self, stage: str, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Scalars to log; the confusion matrix is kept in ``confusion_matrices[stage]``, per-class accuracy
        becomes ``acc_class/<name>`` up to ``per_class_limit`` classes."""
        per_class = values.pop("acc_per_class")
        self.confusion_matrices[stage] = values.pop("confusion").detach().cpu()
        names = list(self.class_names)
        if len(names) == len(per_class) <= self.hparams.per_class_limit:
            for name, value in zip(names, per_class, strict=True):
                values[f"acc_class/{name}"] = value
        return values
