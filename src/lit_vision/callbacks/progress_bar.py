"""Lightning's rich progress bar, redrawn a few times per second instead of after every batch."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar


class ThrottledRichProgressBar(RichProgressBar):
    """``RichProgressBar`` whose bars and metrics are updated at most ``refresh_rate`` times per second.

    Lightning's bar updates its counters and reads the progress-bar metrics after every batch (a host sync
    per logged tensor on a GPU) and its drawing thread wakes 100 times per second; with a small model that is
    several percent of the step time on a CPU. Here an update happens when ``1 / refresh_rate`` seconds have
    passed since the last one, and always on a stage's first and last batch, so the bars still end exact.

    Args:
        refresh_rate: updates (and redraws) per second; 0 disables the bar.
        leave, theme, console_kwargs: as for Lightning's ``RichProgressBar``.
    """

    def __init__(self, refresh_rate: int = 10, **kwargs: Any) -> None:
        super().__init__(refresh_rate=refresh_rate, **kwargs)
        self._interval = 1.0 / refresh_rate if refresh_rate > 0 else 0.0
        self._last_update: dict[str, float] = {}

    def _due(self, stage: str, batch_idx: int, total: int | float) -> bool:
        """Whether this batch's update should be drawn (time since the last one, or a first/last batch)."""
        now = time.monotonic()
        if (
            batch_idx == 0
            or batch_idx + 1 >= total
            or now - self._last_update.get(stage, 0.0) >= self._interval
        ):
            self._last_update[stage] = now
            return True
        return False

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # a disabled bar (every rank but 0 under DDP) has no counters to read
        if not self.is_disabled and self._due("train", batch_idx, self.total_train_batches):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not self.is_disabled and self._due(
            "validate", batch_idx, self.total_val_batches_current_dataloader
        ):
            super().on_validation_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)

    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not self.is_disabled and self._due("test", batch_idx, self.total_test_batches_current_dataloader):
            super().on_test_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)

    def on_predict_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not self.is_disabled and self._due(
            "predict", batch_idx, self.total_predict_batches_current_dataloader
        ):
            super().on_predict_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)
