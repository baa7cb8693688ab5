"""Confusion matrices (counts and row-normalised) for validation epochs and the test, as figures.

Each figure goes to the loggers that take images (TensorBoard, MLflow, W&B: ``confusion_matrix/val``,
``confusion_matrix/test``) and to a PNG in the run folder (``<run>/confusion_matrix/val_epoch003.png``, ``test.png``). Classification counts images;
segmentation counts pixels (ignored pixels left out). Predictions come from the step outputs, see
:mod:`lit_vision.callbacks.outputs`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from torch import Tensor
from torchmetrics.classification import MulticlassConfusionMatrix

from lit_vision.callbacks.base import STAGES, StagedMonitorCallback
from lit_vision.callbacks.outputs import class_names_of, ignore_index_of, predictions_and_target
from lit_vision.viz.images import figure_to_array, save_png

# Width of one character of a tick label (10 pt) in inches: decides whether names fit under their column.
TICK_CHAR_INCHES = 0.085


class ConfusionMatrixCallback(StagedMonitorCallback):
    """Accumulates a torchmetrics ``MulticlassConfusionMatrix`` and draws it with its ``.plot()``.

    Args:
        stages: which of ``val`` (every due epoch) and ``test`` (once, at the end) to draw.
        every_n_epochs / max_overhead: when a validation figure is due (see ``EpochSchedule``).
        save_dir: folder for the PNGs; default ``<trainer.default_root_dir>/confusion_matrix``.
        max_text_classes: write the value in each cell up to this many classes.
        max_label_classes: put class names on the axes up to this many classes.
        dpi: resolution of the figure.
    """

    def __init__(
        self,
        stages: Sequence[str] = STAGES,
        every_n_epochs: int = 1,
        max_overhead: float | None = 0.05,
        save_dir: str | None = None,
        max_text_classes: int = 30,
        max_label_classes: int = 60,
        dpi: int = 80,
    ) -> None:
        super().__init__(stages, every_n_epochs, max_overhead)
        self.save_dir = save_dir
        self.max_text_classes = int(max_text_classes)
        self.max_label_classes = int(max_label_classes)
        self.dpi = int(dpi)
        self._metric: MulticlassConfusionMatrix | None = None
        # The last matrix drawn per stage ("val", "test"), for anyone who wants the numbers.
        self.last_counts: dict[str, Tensor] = {}
        self._collecting = False
        self._unit = "images"  # what a cell counts: images (classification) or pixels (segmentation)

    # ----------------------------------------------------------------- collecting
    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        due = (
            "val" in self.stages
            and not trainer.sanity_checking
            and not trainer.fast_dev_run
            and self.schedule.due(trainer.current_epoch)
        )
        # Every rank must agree: computing the matrix gathers it from all ranks.
        self._start_collecting(bool(trainer.strategy.broadcast(due, src=0)))

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start_collecting("test" in self.stages and not trainer.fast_dev_run)

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        if self._collecting:
            with self.schedule.timed():
                self._update(pl_module, outputs, batch)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self._collecting:
            self._update(pl_module, outputs, batch)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._collecting:
            with self.schedule.timed():
                self._finish(trainer, pl_module, "val", f"val_epoch{trainer.current_epoch:03d}.png")

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._collecting:
            self._finish(trainer, pl_module, "test", "test.png")

    def _start_collecting(self, collecting: bool) -> None:
        self._collecting = collecting
        if self._metric is not None:
            self._metric.reset()

    def _update(self, pl_module: L.LightningModule, outputs: Any, batch: Any) -> None:
        found = predictions_and_target(pl_module, outputs, batch)
        if found is None:
            self._collecting = False  # no class labels (regression): nothing to count, by design
            return
        preds, target, num_classes = found
        self._unit = "pixels" if target.ndim >= 2 else "images"
        if self._metric is None or self._metric.num_classes != num_classes:
            self._metric = MulticlassConfusionMatrix(
                num_classes, ignore_index=ignore_index_of(pl_module, target), validate_args=False
            )
        if self._metric.device != preds.device:
            self._metric = self._metric.to(preds.device)
        self._metric.update(preds, target)

    def _finish(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str, filename: str) -> None:
        self._collecting = False
        if self._metric is None or not self._metric.update_called:
            return
        counts = self._metric.compute().cpu()  # a collective: every rank computes
        self.last_counts[stage] = counts
        if not trainer.is_global_zero:
            return
        names = class_names_of(pl_module, counts.shape[0])
        title = f"{stage}, epoch {trainer.current_epoch}" if stage == "val" else "test"
        image = figure_to_array(self.figure(counts, names, title, self._unit))
        self.log_image(trainer, f"confusion_matrix/{stage}", image, name=Path(filename).stem)
        folder = Path(self.save_dir) if self.save_dir else Path(trainer.default_root_dir) / "confusion_matrix"
        save_png(image, folder / filename)

    # ----------------------------------------------------------------- drawing
    def figure(self, counts: Tensor, class_names: Sequence[str], title: str, unit: str = "images"):
        """Counts of ``unit`` (left) and the row-normalised matrix (right), drawn by torchmetrics' ``plot``.

        Class names on the x axis stay horizontal when they fit their column (rotated 45 degrees otherwise);
        on the y axis they are always horizontal.
        """
        from matplotlib.figure import Figure

        n = counts.shape[0]
        add_text = n <= self.max_text_classes
        digits = len(str(int(counts.max()))) if counts.numel() else 1
        cell = max(0.6, 0.13 * digits + 0.25) if add_text else min(0.45, 10.0 / n)
        side = max(4.6, n * cell + 1.8)  # room for the panel titles with few classes
        figure = Figure(figsize=(2 * side + 1.0, side + 0.9), dpi=self.dpi, layout="constrained")
        ax_counts, ax_rows = figure.subplots(1, 2)
        labels = list(class_names) if n <= self.max_label_classes else None
        plotter = MulticlassConfusionMatrix(n, validate_args=False)
        rows = counts.double() / counts.sum(dim=1, keepdim=True).clamp_min(1).double()
        with warnings.catch_warnings():
            # torchmetrics hands a tensor to imshow; numpy 2 complains about its __array__ signature
            warnings.simplefilter("ignore", DeprecationWarning)
            plotter.plot(val=counts.long(), ax=ax_counts, add_text=add_text, labels=labels, cmap="Blues")
            plotter.plot(val=rows.float(), ax=ax_rows, add_text=add_text, labels=labels, cmap="Blues")
        total = int(counts.sum())
        ax_counts.set_title(f"{unit[:-1]} counts ({total:,} {unit} in all)", fontsize=14)
        if labels is not None:
            fits = max((len(str(name)) for name in labels), default=0) * TICK_CHAR_INCHES <= cell
            for ax in (ax_counts, ax_rows):
                ax.set_xticks(range(n))
                ax.set_xticklabels(labels, rotation=0 if fits else 45, ha="center" if fits else "right")
                ax.set_yticks(range(n))
                ax.set_yticklabels(labels, rotation=0)
        ax_rows.set_title("row-normalised (recall per true class)", fontsize=14)
        if labels is None:
            for ax in (ax_counts, ax_rows):
                ax.set_xticks(np.linspace(0, n - 1, min(n, 10)).round())
                ax.set_yticks(np.linspace(0, n - 1, min(n, 10)).round())
                ax.set_xticklabels([str(int(t)) for t in ax.get_xticks()])
                ax.set_yticklabels([str(int(t)) for t in ax.get_yticks()])
        figure.suptitle(f"Confusion matrix: {title}", fontsize=16)
        return figure
