"""What every monitoring callback shares: finding TensorBoard, staying quiet where it must, and a budget.

Monitoring callbacks draw pictures (matplotlib figures, image grids, histograms) that cost real time on
small experiments. :class:`EpochSchedule` decides when an epoch-level picture is due: every
``every_n_epochs`` epochs, and only while the drawing has taken at most ``max_overhead`` of the time since
training started, so a 0.3 s figure cannot double a 0.25 s epoch, while on a real dataset (minutes per
epoch) it is drawn every time.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.tensorboard import SummaryWriter

from lit_vision.callbacks.image_log import image_loggers, log_image


def tensorboard_writer(trainer: L.Trainer) -> SummaryWriter | None:
    """The SummaryWriter of the trainer's first TensorBoard logger, or None when there is none."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None


class EpochSchedule:
    """When an epoch-level picture is due: every ``every_n_epochs`` epochs (0 never), within a time budget.

    ``max_overhead`` is the largest fraction of the wall time since :meth:`start` that drawing may take
    (``None``: no budget). The first due epoch always draws; later ones wait until the time spent inside
    :meth:`timed` is back under budget.
    """

    def __init__(self, every_n_epochs: int = 1, max_overhead: float | None = None) -> None:
        if every_n_epochs < 0:
            raise ValueError(f"every_n_epochs must be >= 0, got {every_n_epochs}")
        if max_overhead is not None and max_overhead <= 0:
            raise ValueError(f"max_overhead must be > 0 or null, got {max_overhead}")
        self.every_n_epochs = int(every_n_epochs)
        self.max_overhead = max_overhead
        self.start()

    def start(self) -> None:
        """Start the clock (at the beginning of fit)."""
        self._started = time.perf_counter()
        self.spent = 0.0

    def due(self, epoch: int) -> bool:
        """Whether the picture for ``epoch`` should be drawn."""
        if self.every_n_epochs == 0 or epoch % self.every_n_epochs:
            return False
        if self.max_overhead is None or self.spent == 0.0:
            return True
        return self.spent <= self.max_overhead * (time.perf_counter() - self._started)

    @contextmanager
    def timed(self) -> Iterator[None]:
        """Count the time spent in the block against the budget."""
        begin = time.perf_counter()
        try:
            yield
        finally:
            self.spent += time.perf_counter() - begin


class MonitorCallback(Callback):
    """Base of lit_vision's monitoring callbacks.

    - :meth:`writer` returns the TensorBoard SummaryWriter, or None when no TensorBoard logger is
      configured (one warning per run; the callback then skips what needs it);
    - :meth:`log_image` sends a picture to every logger that takes images (TensorBoard, MLflow, W&B; see
      :mod:`lit_vision.callbacks.image_log`), and :meth:`takes_images` says whether there is one;
    - :meth:`enabled` is False on non-zero ranks and under ``fast_dev_run`` (like Lightning's own
      callbacks), so pictures are drawn once per run;
    - ``self.schedule`` (see :class:`EpochSchedule`) says when an epoch-level picture is due.
    """

    # Trainers already told that they have no TensorBoard logger (one warning per run, not per callback).
    _warned_trainers: weakref.WeakSet = weakref.WeakSet()
    # Trainers already told that no logger takes images (TensorBoard, MLflow or W&B).
    _warned_no_images: weakref.WeakSet = weakref.WeakSet()

    def __init__(self, every_n_epochs: int = 1, max_overhead: float | None = None) -> None:
        super().__init__()
        self.schedule = EpochSchedule(every_n_epochs, max_overhead)

    @staticmethod
    def enabled(trainer: L.Trainer) -> bool:
        """True on the rank that draws (global rank 0), outside fast_dev_run and the sanity check."""
        return trainer.is_global_zero and not trainer.fast_dev_run and not trainer.sanity_checking

    def writer(self, trainer: L.Trainer) -> SummaryWriter | None:
        """The TensorBoard writer, or None (warned once per trainer) when the run has no TensorBoard logger."""
        writer = tensorboard_writer(trainer)
        if writer is None and trainer not in MonitorCallback._warned_trainers:
            MonitorCallback._warned_trainers.add(trainer)
            rank_zero_warn(
                f"{type(self).__name__} and the other monitoring callbacks log to TensorBoard, but no "
                "TensorBoard logger is configured (add `logger=tensorboard` or `logger=many`); they skip "
                "their TensorBoard output."
            )
        return writer

    def takes_images(self, trainer: L.Trainer) -> bool:
        """Whether a logger takes images (TensorBoard, MLflow or W&B); warned once per trainer when none."""
        if image_loggers(trainer):
            return True
        if trainer not in MonitorCallback._warned_no_images:
            MonitorCallback._warned_no_images.add(trainer)
            rank_zero_warn(
                f"{type(self).__name__} and the other figure callbacks log images to TensorBoard, MLflow or "
                "W&B, but none of these loggers is configured (add `logger=tensorboard`, `logger=mlflow` or "
                "`logger=wandb`); the figures are only saved as PNG files where the callback writes them."
            )
        return False

    def log_image(
        self,
        trainer: L.Trainer,
        tag: str,
        image: np.ndarray | torch.Tensor,
        dataformats: str = "HWC",
        name: str | None = None,
    ) -> None:
        """Log ``image`` under ``tag`` to every logger that takes images (see :func:`image_log.log_image`)."""
        if self.takes_images(trainer):
            log_image(trainer, tag, image, dataformats, name)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.schedule.start()

    def epoch_due(self, trainer: L.Trainer) -> bool:
        """Whether this epoch's picture is due on this rank."""
        return self.enabled(trainer) and self.schedule.due(trainer.current_epoch)


STAGES = ("val", "test")


class StagedMonitorCallback(MonitorCallback):
    """A monitor drawn for validation epochs (when due) and/or once for the test, as ``stages`` says."""

    def __init__(
        self, stages: Sequence[str] = STAGES, every_n_epochs: int = 1, max_overhead: float | None = None
    ) -> None:
        super().__init__(every_n_epochs, max_overhead)
        unknown = set(stages) - set(STAGES)
        if unknown:
            raise ValueError(f"stages may be {list(STAGES)}, got {sorted(unknown)}")
        self.stages = tuple(stages)

    def stage_due(self, trainer: L.Trainer, stage: str) -> bool:
        """Whether to draw for ``stage`` now: a due validation epoch, or the test (on the drawing rank)."""
        if stage not in self.stages:
            return False
        return self.epoch_due(trainer) if stage == "val" else self.enabled(trainer)


class FirstBatchPicture(StagedMonitorCallback):
    """Draws a picture from the first batch of each due validation epoch and of the test.

    Subclasses implement :meth:`draw`; its time counts against the validation budget.
    """

    _due = False

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._due = self.stage_due(trainer, "val")

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._due = self.stage_due(trainer, "test")

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        if self._due and batch_idx == 0 and dataloader_idx == 0:
            self._due = False
            with self.schedule.timed():
                self.draw(trainer, pl_module, outputs, batch, "val")

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self._due and batch_idx == 0 and dataloader_idx == 0:
            self._due = False
            self.draw(trainer, pl_module, outputs, batch, "test")

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, stage: str) -> None:
        """Draw and log the picture of this batch for ``stage``."""
        raise NotImplementedError
