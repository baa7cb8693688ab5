"""Image classification: cross-entropy on logits, accuracy/F1 with torchmetrics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from lit_vision.tasks.base import BaseTask


def classification_metrics(num_classes: int, top_k: int = 5) -> MetricCollection:
    """Top-1 accuracy, top-k accuracy (when there are more than k classes) and macro F1."""
    metrics: dict[str, Any] = {
        "acc": MulticlassAccuracy(num_classes, average="micro"),
        "f1_macro": MulticlassF1Score(num_classes, average="macro"),
    }
    if num_classes > top_k:
        metrics[f"acc_top{top_k}"] = MulticlassAccuracy(num_classes, top_k=top_k, average="micro")
    return MetricCollection(metrics)


class ClassificationTask(BaseTask):
    """Batches are ``(images, int labels)``; the net returns logits of shape (N, num_classes)."""

    def __init__(
        self,
        net: Mapping[str, Any],
        num_classes: int,
        loss: Mapping[str, Any] | None = None,
        optimizer: Mapping[str, Any] | None = None,
        scheduler: Mapping[str, Any] | None = None,
        monitor: str = "val/acc",
        monitor_mode: str = "max",
        top_k: int = 5,
        lr_multipliers: Mapping[str, float] | None = None,
        channels_last: bool = False,
        compile: bool = False,
    ) -> None:
        super().__init__(
            net=net,
            optimizer=optimizer,
            scheduler=scheduler,
            loss=loss or {"_target_": "torch.nn.CrossEntropyLoss"},
            monitor=monitor,
            monitor_mode=monitor_mode,
            lr_multipliers=lr_multipliers,
            channels_last=channels_last,
            compile=compile,
        )
        self.save_hyperparameters({"num_classes": int(num_classes), "top_k": int(top_k)})
        metrics = classification_metrics(int(num_classes), int(top_k))
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")

    @property
    def class_names(self) -> Sequence[str]:
        names = self.data_info.get("class_names")
        return names or [str(i) for i in range(self.hparams.num_classes)]

    def _shared_step(self, batch, stage: str) -> torch.Tensor:
        images, labels = batch
        logits = self(images)
        loss = self.loss_fn(logits, labels)
        metrics = getattr(self, f"{stage}_metrics")
        metrics.update(logits.detach(), labels)
        self.log(
            f"{stage}/loss",
            loss,
            on_step=stage == "train",
            on_epoch=True,
            prog_bar=True,
            batch_size=len(labels),
        )
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=stage != "train")
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(images).softmax(dim=-1)
