"""The regression tutorial's "actual vs predicted" picture, for validation epochs and the test.

With dates (the DataModule's ``split_dates(stage)``, e.g. the temperature table's year/month/day) it is the
tutorial's plot: the actual values as a line over the dates and the predictions as red dots. Without dates
it is a scatter of predicted against actual values with the identity line (points on it are exact).
Figures go to the loggers that take images (TensorBoard, MLflow, W&B: ``actual_vs_predicted/val``,
``actual_vs_predicted/test``) and to PNGs in the run folder (``<run>/actual_vs_predicted/val_epoch003.png``, ``test.png``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from lit_vision.callbacks.base import STAGES, StagedMonitorCallback
from lit_vision.viz.images import figure_to_array, save_png

MAX_TARGETS_DRAWN = 4


class ActualVsPredictedFigure(StagedMonitorCallback):
    """Collects a regression task's predictions and targets and draws them (see the module docstring).

    Reads the ``prediction`` / ``target`` entries of the dict ``validation_step`` / ``test_step`` return
    (:class:`~lit_vision.tasks.regression.RegressionTask` does), in the targets' units.

    Args:
        stages: which of ``val`` (every due epoch) and ``test`` (once) to draw.
        every_n_epochs / max_overhead: when a validation figure is due (see ``EpochSchedule``).
        save_dir: folder for the PNGs; default ``<trainer.default_root_dir>/actual_vs_predicted``.
        use_dates: draw over dates when the DataModule provides them.
        dpi: resolution of the figure.
    """

    def __init__(
        self,
        stages: Sequence[str] = STAGES,
        every_n_epochs: int = 1,
        max_overhead: float | None = None,
        save_dir: str | None = None,
        use_dates: bool = True,
        dpi: int = 80,
    ) -> None:
        super().__init__(stages, every_n_epochs, max_overhead)
        self.save_dir = save_dir
        self.use_dates = bool(use_dates)
        self.dpi = int(dpi)
        self._predictions: list[torch.Tensor] = []
        self._targets: list[torch.Tensor] = []
        self._collecting = False
        # What was drawn last per stage: "dates" or "scatter" (and the file), for whoever wants to know.
        self.last_drawn: dict[str, dict[str, Any]] = {}

    # ----------------------------------------------------------------- collecting
    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start(self.stage_due(trainer, "val"))

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start(self.stage_due(trainer, "test"))

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        if self._collecting:
            with self.schedule.timed():
                self._collect(outputs)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self._collecting:
            self._collect(outputs)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._collecting:
            with self.schedule.timed():
                self._draw(trainer, pl_module, "val", f"val_epoch{trainer.current_epoch:03d}.png")

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._collecting:
            self._draw(trainer, pl_module, "test", "test.png")

    def _start(self, collecting: bool) -> None:
        self._collecting = collecting
        self._predictions, self._targets = [], []

    def _collect(self, outputs: Any) -> None:
        if not (isinstance(outputs, Mapping) and "prediction" in outputs and "target" in outputs):
            self._collecting = False  # not a regression task: nothing to draw
            return
        self._predictions.append(
            outputs["prediction"].detach().float().cpu().reshape(len(outputs["target"]), -1)
        )
        self._targets.append(outputs["target"].detach().float().cpu().reshape(len(outputs["target"]), -1))

    # ----------------------------------------------------------------- drawing
    def _draw(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str, filename: str) -> None:
        self._collecting = False
        if not self._predictions:
            return
        predicted = torch.cat(self._predictions).numpy()
        actual = torch.cat(self._targets).numpy()
        dates = self._dates(trainer, stage, len(actual)) if self.use_dates else None
        names = list(getattr(pl_module, "target_names", None) or [])
        title = f"{stage}, epoch {trainer.current_epoch}" if stage == "val" else "test"
        figure = self.figure(actual, predicted, names, title, dates)
        image = figure_to_array(figure)
        self.log_image(trainer, f"actual_vs_predicted/{stage}", image, name=Path(filename).stem)
        folder = (
            Path(self.save_dir) if self.save_dir else Path(trainer.default_root_dir) / "actual_vs_predicted"
        )
        path = save_png(image, folder / filename)
        self.last_drawn[stage] = {"kind": "dates" if dates is not None else "scatter", "path": str(path)}

    @staticmethod
    def _dates(trainer: L.Trainer, stage: str, count: int) -> np.ndarray | None:
        """The rows' dates in loader order, when the DataModule has them for every drawn row."""
        datamodule = getattr(trainer, "datamodule", None)
        getter = getattr(datamodule, "split_dates", None)
        if getter is None:
            return None
        dates = getter(stage)
        # Several devices each see part of the rows, and then the order is not the file's.
        if dates is None or len(dates) != count or trainer.world_size > 1:
            return None
        return np.asarray(dates)

    def figure(
        self,
        actual: np.ndarray,
        predicted: np.ndarray,
        names: Sequence[str],
        title: str,
        dates: np.ndarray | None = None,
    ):
        """One panel per target (at most four): over dates (line + dots), or a scatter with y = x."""
        from matplotlib.figure import Figure

        count = min(actual.shape[1], MAX_TARGETS_DRAWN)
        figure = Figure(figsize=(7.5 if dates is not None else 5.0, 4.2 * count), dpi=self.dpi)
        axes = figure.subplots(count, 1, squeeze=False)[:, 0]
        for column, ax in enumerate(axes):
            name = names[column] if column < len(names) else f"target {column}"
            if dates is not None:
                order = np.argsort(dates, kind="stable")
                ax.plot(dates[order], actual[order, column], "b-", linewidth=1.0, label="actual")
                ax.plot(dates[order], predicted[order, column], "ro", markersize=2.5, label="prediction")
                ax.set_xlabel("date")
                ax.set_ylabel(name)
                for label in ax.get_xticklabels():
                    label.set_rotation(60)
            else:
                ax.scatter(actual[:, column], predicted[:, column], s=9, alpha=0.6, label="samples")
                low = float(min(actual[:, column].min(), predicted[:, column].min()))
                high = float(max(actual[:, column].max(), predicted[:, column].max()))
                ax.plot([low, high], [low, high], "k--", linewidth=1.0, label="prediction = actual")
                ax.set_xlabel(f"actual {name}")
                ax.set_ylabel(f"predicted {name}")
            mae = float(np.abs(actual[:, column] - predicted[:, column]).mean())
            ax.set_title(f"Actual and predicted {name} ({title}; MAE {mae:.3g})", fontsize=10)
            ax.legend(loc="best", fontsize=8)
            ax.grid(alpha=0.3)
        figure.tight_layout()
        return figure
