"""Semantic segmentation: logits from the net, smp losses, IoU / Dice / pixel accuracy per split.

Two heads: binary (one logit channel, sigmoid, threshold) for "one class vs background", and multi-class
(one channel per class, softmax). ``binary: null`` picks binary exactly when there are two classes. The
net's ``out_channels`` is filled in from the head when the config leaves it null.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from hydra.utils import instantiate

from lit_vision.errors import UserError
from lit_vision.tasks.base import BaseTask, to_plain
from lit_vision.tasks.segmentation_losses import SegmentationLoss
from lit_vision.tasks.segmentation_metrics import confusion_matrix_metric, scores_from_confusion


def head_channels(num_classes: int, binary: bool) -> int:
    """Output channels of the net: 1 for a binary head, else one per class."""
    return 1 if binary else int(num_classes)


def with_out_channels(net: Mapping[str, Any], channels: int) -> dict[str, Any]:
    """The net config with ``out_channels`` set to ``channels`` (checked when the config gives one)."""
    net = dict(to_plain(net))
    given = net.get("out_channels")
    if given is not None and int(given) != channels:
        raise UserError(
            f"model.net.out_channels={given} but the segmentation head needs {channels} channel(s) "
            "(1 for a binary head, else one per class); set it to null to have it filled in."
        )
    net["out_channels"] = channels
    return net


class SegmentationTask(BaseTask):
    """Batches are ``(images (N, C, H, W), masks int64 (N, H, W))`` with ``ignore_index`` for ignored pixels."""

    def __init__(
        self,
        net: Mapping[str, Any],
        num_classes: int,
        loss: Mapping[str, Any] | None = None,
        optimizer: Mapping[str, Any] | None = None,
        scheduler: Mapping[str, Any] | None = None,
        monitor: str = "val/iou",
        monitor_mode: str = "max",
        binary: bool | None = None,
        threshold: float = 0.5,
        ignore_index: int = 255,
        miou_exclude_background: bool = True,
        lr_multipliers: Mapping[str, float] | None = None,
        channels_last: bool | str = False,
        compile: bool = False,
    ) -> None:
        num_classes = int(num_classes)
        if num_classes < 2:
            raise UserError(f"segmentation needs at least 2 classes (background + one), got {num_classes}.")
        binary = num_classes == 2 if binary is None else bool(binary)
        if binary and num_classes != 2:
            raise UserError(f"model.binary=true needs exactly 2 classes, the data has {num_classes}.")
        super().__init__(
            net=with_out_channels(net, head_channels(num_classes, binary)),
            optimizer=optimizer,
            scheduler=scheduler,
            loss=None,
            monitor=monitor,
            monitor_mode=monitor_mode,
            lr_multipliers=lr_multipliers,
            channels_last=channels_last,
            compile=compile,
        )
        loss = to_plain(loss) or {"name": "dice"}
        self.save_hyperparameters(
            {
                "num_classes": num_classes,
                "loss": loss,
                "binary": binary,
                "threshold": float(threshold),
                "ignore_index": int(ignore_index),
                "miou_exclude_background": bool(miou_exclude_background),
            }
        )
        self.loss_fn = self.build_loss(loss)
        # One pixel confusion matrix per stage; every score of the epoch is derived from it.
        self.train_confusion = confusion_matrix_metric(num_classes, int(ignore_index))
        self.val_confusion = confusion_matrix_metric(num_classes, int(ignore_index))
        self.test_confusion = confusion_matrix_metric(num_classes, int(ignore_index))

    def build_loss(self, config: Mapping[str, Any]) -> torch.nn.Module:
        """A SegmentationLoss from ``{name: ..., options}``, or any loss class given by ``_target_``."""
        config = dict(config)
        mode = "binary" if self.hparams.binary else "multiclass"
        if "_target_" in config:
            return instantiate(config)
        return SegmentationLoss(**config, mode=mode, ignore_index=self.hparams.ignore_index)

    @property
    def class_names(self) -> Sequence[str]:
        names = self.data_info.get("class_names")
        return names or [str(i) for i in range(self.hparams.num_classes)]

    # ------------------------------------------------------------------ outputs
    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Per-class probabilities ``(N, num_classes, H, W)`` (binary: background = 1 - p)."""
        logits = logits.float()
        if self.hparams.binary:
            p = logits.sigmoid()
            return torch.cat([1 - p, p], dim=1)
        return logits.softmax(dim=1)

    def predict_masks(self, logits: torch.Tensor) -> torch.Tensor:
        """Class-index masks ``(N, H, W)``: threshold on the sigmoid (binary) or argmax."""
        if self.hparams.binary:
            return (logits[:, 0].float().sigmoid() > self.hparams.threshold).long()
        return logits.argmax(dim=1)

    # ------------------------------------------------------------------ steps
    def _shared_step(self, batch, stage: str) -> dict[str, torch.Tensor]:
        images, masks = batch
        logits = self(images)
        loss = self.loss_fn(logits, masks)
        preds = self.predict_masks(logits.detach())
        getattr(self, f"{stage}_confusion").update(preds, masks)
        self.log(
            f"{stage}/loss",
            loss,
            on_step=stage == "train",
            on_epoch=True,
            prog_bar=True,
            batch_size=len(images),
            sync_dist=True,  # under DDP: the mean over every process's batches (no-op on one device)
        )
        return {"loss": loss, "preds": preds}

    def training_step(self, batch, batch_idx: int) -> dict[str, torch.Tensor]:
        return self._shared_step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> dict[str, torch.Tensor]:
        return self._shared_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> dict[str, torch.Tensor]:
        return self._shared_step(batch, "test")

    def predict_step(self, batch, batch_idx: int) -> dict[str, torch.Tensor]:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        logits = self(images)
        return {"probs": self.probabilities(logits), "masks": self.predict_masks(logits)}

    # ------------------------------------------------------------------ epoch scores
    def _log_scores(self, stage: str) -> None:
        metric = getattr(self, f"{stage}_confusion")
        if not metric.update_called:
            return
        scores = scores_from_confusion(
            metric.compute(), self.class_names, exclude_background=self.hparams.miou_exclude_background
        )
        metric.reset()
        main = {"iou", "dice", "pixel_acc"}
        self.log_dict({f"{stage}/{k}": v for k, v in scores.items() if k in main}, prog_bar=stage != "train")
        self.log_dict({f"{stage}/{k}": v for k, v in scores.items() if k not in main})

    def on_train_epoch_end(self) -> None:
        self._log_scores("train")

    def on_validation_epoch_end(self) -> None:
        self._log_scores("val")

    def on_test_epoch_end(self) -> None:
        self._log_scores("test")
