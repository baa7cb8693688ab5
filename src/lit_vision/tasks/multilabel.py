"""Multi-label image classification: BCE with logits, torchmetrics multilabel metrics, per-label thresholds.

Batches are ``(images, float multi-hot targets (N, labels))``; the net returns one logit per label. Metrics per
stage (``train/``, ``val/``, ``test/``): ``map`` (macro ``MultilabelAveragePrecision``), ``f1_macro`` (the
mean of the per-label F1), ``f1/<name>`` and ``ap/<name>`` per label (up to ``per_class_limit`` labels).

Each label has its own decision threshold (``p >= threshold``), held in the ``thresholds`` buffer (so it is in
every checkpoint's state dict, loadable with ``weights_only=True``). After every validation epoch of a fit
the threshold of each label becomes the one of a 101-step grid (0, 0.01, ..., 1) with the highest F1 on the
validation split (ties: the one nearest 0.5; a label with no positive image keeps its threshold). The F1
values are read from torchmetrics' binned ``MultilabelPrecisionRecallCurve`` on that same grid, so
``val/f1_*`` are the F1 at the thresholds just chosen (optimistic: chosen on that split), and ``test/f1_*`` at
the thresholds of the tested checkpoint (chosen on validation only).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from lightning.pytorch.trainer.states import TrainerFn
from torchmetrics import MetricCollection
from torchmetrics.classification import MultilabelAveragePrecision, MultilabelPrecisionRecallCurve

from lit_vision.tasks.base import BaseTask, to_plain

#: thresholds of the binned precision-recall curve the per-label thresholds are chosen from
THRESHOLD_STEPS = 101


def multilabel_metrics(num_labels: int) -> MetricCollection:
    """Macro and per-label average precision (exact) and the binned precision-recall curve per label."""
    common: dict[str, Any] = {"num_labels": num_labels, "validate_args": False}
    metrics = {
        "map": MultilabelAveragePrecision(average="macro", thresholds=None, **common),
        "ap": MultilabelAveragePrecision(average=None, thresholds=None, **common),
        "curve": MultilabelPrecisionRecallCurve(thresholds=THRESHOLD_STEPS, **common),
    }
    return MetricCollection(metrics, compute_groups=[["map", "ap"], ["curve"]])


def f1_table(precision: torch.Tensor, recall: torch.Tensor) -> torch.Tensor:
    """F1 per label and threshold ``(labels, steps)`` from the curve's precision and recall (0 where both are 0)."""
    total = precision + recall
    return torch.where(total > 0, 2 * precision * recall / total.clamp_min(1e-12), torch.zeros_like(total))


def best_thresholds(
    f1: torch.Tensor, grid: torch.Tensor, has_positive: torch.Tensor, current: torch.Tensor
) -> torch.Tensor:
    """Per label, the grid threshold with the highest F1 (ties: nearest 0.5); ``current`` where the label
    has no positive sample (every F1 is 0 there and no threshold is better than another)."""
    best = f1.max(dim=1, keepdim=True).values
    distance = (grid - 0.5).abs().expand_as(f1)
    candidates = torch.where(f1 >= best - 1e-9, distance, torch.full_like(distance, float("inf")))
    chosen = grid[candidates.argmin(dim=1)]
    return torch.where(has_positive, chosen, current)


def grid_index(thresholds: torch.Tensor, steps: int = THRESHOLD_STEPS) -> torch.Tensor:
    """Index of the grid point nearest each threshold."""
    return (thresholds.clamp(0, 1) * (steps - 1)).round().long()


class MultiLabelTask(BaseTask):
    """Multi-label classification (see the module docstring).

    Args:
        net, optimizer, scheduler, monitor, monitor_mode, lr_multipliers, channels_last, compile, init,
            pretrained_path: see :class:`~lit_vision.tasks.base.BaseTask`.
        num_classes: number of labels (the net's outputs).
        loss: loss config; default ``torch.nn.BCEWithLogitsLoss``.
        pos_weight: one weight per label for the positives in the loss (rare labels), or null.
        threshold: the starting threshold of every label (before the first validation chooses them).
        per_class_limit: log ``f1/<name>`` and ``ap/<name>`` only up to this many labels.
        metric_chunk: samples collected on the device before the metrics are updated with them at once.
    """

    progress_bar_metrics = ("map", "f1_macro")

    def __init__(
        self,
        net: Mapping[str, Any],
        num_classes: int,
        loss: Mapping[str, Any] | None = None,
        monitor: str = "val/map",
        monitor_mode: str = "max",
        pos_weight: list[float] | None = None,
        threshold: float = 0.5,
        per_class_limit: int = 20,
        metric_chunk: int = 4096,
        **kwargs: Any,
    ) -> None:
        if not 0.0 < float(threshold) < 1.0:
            raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
        pos_weight = to_plain(pos_weight)
        super().__init__(
            net=net,
            loss=dict(to_plain(loss) or {"_target_": "torch.nn.BCEWithLogitsLoss"}),
            monitor=monitor,
            monitor_mode=monitor_mode,
            num_classes=int(num_classes),
            pos_weight=None if pos_weight is None else [float(w) for w in pos_weight],
            threshold=float(threshold),
            per_class_limit=int(per_class_limit),
            metric_chunk=int(metric_chunk),
            **kwargs,
        )
        self.register_buffer("thresholds", torch.full((int(num_classes),), float(threshold)))

    def configure_losses(self) -> torch.nn.Module:
        """The configured loss, with ``pos_weight`` as its buffer."""
        loss_fn = super().configure_losses()
        weights = self.hparams.pos_weight
        if weights is not None:
            if len(weights) != self.hparams.num_classes:
                raise ValueError(
                    f"pos_weight has {len(weights)} values for {self.hparams.num_classes} labels"
                )
            loss_fn.register_buffer("pos_weight", torch.tensor(weights, dtype=torch.float32))
        return loss_fn

    def configure_metrics(self) -> MetricCollection:
        return multilabel_metrics(self.hparams.num_classes)

    # ------------------------------------------------------------------ steps
    def model_step(
        self, batch, stage: str
    ) -> tuple[dict[str, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        images, targets = batch
        logits = self(images)
        loss = self.loss_fn(logits.float(), targets.float())
        # No "logits"/"target" for the monitoring callbacks: their confusion matrices are single-label.
        return {"loss": loss}, (logits.detach().float().sigmoid(), targets.long())

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        """Per-label probabilities ``(N, labels)`` (compare with ``thresholds`` for the label sets)."""
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(images).float().sigmoid()

    def predict_labels(self, probs: torch.Tensor) -> torch.Tensor:
        """Boolean ``(N, labels)``: which labels each image has under the per-label thresholds."""
        return probs >= self.thresholds.to(probs.device)

    # ------------------------------------------------------------------ epoch values
    def _choosing_thresholds(self, stage: str) -> bool:
        if stage != "val" or self._trainer is None:
            return False
        trainer = self.trainer
        return trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking

    def epoch_values(self, stage: str, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``map``, ``f1_macro`` and per-label ``f1/<name>``, ``ap/<name>``; in a fit's validation the
        per-label thresholds are chosen first (see the module docstring)."""
        precision, recall, grid = values.pop("curve")
        steps = len(grid)
        f1 = f1_table(precision[:, :steps], recall[:, :steps])
        if self._choosing_thresholds(stage):
            has_positive = recall[:, 0] > 0  # at threshold 0 every positive is found
            chosen = best_thresholds(f1, grid, has_positive, self.thresholds.to(grid.device))
            self.thresholds.copy_(chosen.to(self.thresholds.device))
        index = grid_index(self.thresholds.to(f1.device), steps)
        per_label = f1.gather(1, index.unsqueeze(1)).squeeze(1)
        values["f1_macro"] = per_label.mean()
        ap = values.pop("ap")
        names = list(self.class_names)
        if len(names) == len(per_label) <= self.hparams.per_class_limit:
            for i, name in enumerate(names):
                values[f"f1/{name}"] = per_label[i]
                values[f"ap/{name}"] = ap[i]
        return values
