"""Per-class precision-recall curves of the test set (TensorBoard's PR CURVES tab)."""

from __future__ import annotations

from typing import Any

import lightning as L
from torchmetrics.aggregation import CatMetric

from lit_vision.callbacks.base import MonitorCallback
from lit_vision.callbacks.outputs import class_names_of, class_probabilities, scores_and_target


class PRCurves(MonitorCallback):
    """One ``pr_curve/<class name>`` per class, one-vs-rest on the softmax probabilities of test images.

    Args:
        max_samples: test images kept per rank (the rest are not used; the curves need no more).
        num_thresholds: points on each curve.
    """

    def __init__(self, max_samples: int = 20_000, num_thresholds: int = 127) -> None:
        super().__init__(every_n_epochs=1, max_overhead=None)
        self.max_samples = int(max_samples)
        self.num_thresholds = int(num_thresholds)
        self._probabilities: CatMetric | None = None
        self._targets: CatMetric | None = None
        self._seen = 0
        self._collecting = False

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._collecting = not trainer.fast_dev_run
        self._seen = 0
        self._probabilities = CatMetric().to(pl_module.device)
        self._targets = CatMetric().to(pl_module.device)

    def on_test_batch_end(self, trainer, pl_module, outputs: Any, batch, batch_idx, dataloader_idx=0) -> None:
        if not self._collecting or self._seen >= self.max_samples:
            return
        pair = scores_and_target(pl_module, outputs, batch)
        if pair is None or pair[0].ndim != 2:
            self._collecting = False  # not image classification
            return
        logits, target = pair
        room = self.max_samples - self._seen
        self._probabilities.update(class_probabilities(logits[:room]))
        self._targets.update(target[:room].float())
        self._seen += min(room, len(target))

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._collecting or self._seen == 0:
            return
        self._collecting = False
        probabilities = self._probabilities.compute().cpu()  # gathered from every rank
        targets = self._targets.compute().cpu().long()
        if not trainer.is_global_zero:
            return
        writer = self.writer(trainer)
        if writer is None:
            return
        names = class_names_of(pl_module, probabilities.shape[1])
        for index, name in enumerate(names):
            writer.add_pr_curve(
                f"pr_curve/{name}",
                targets == index,
                probabilities[:, index],
                global_step=trainer.global_step,
                num_thresholds=self.num_thresholds,
            )
