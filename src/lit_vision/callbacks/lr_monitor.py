"""Lightning's LearningRateMonitor, made safe for runs without a logger (``logger=none``), its curves under
``train/`` (``train/lr-SGD/base``) so TensorBoard shows them with the training curves, after the losses."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import LearningRateMonitor as LightningLearningRateMonitor
from lightning.pytorch.utilities import rank_zero_warn


class LearningRateMonitor(LightningLearningRateMonitor):
    """Logs ``train/lr-<Optimizer>/<param group>`` (Lightning's names under ``train/``); with no logger
    configured it warns once and stays idle instead of stopping the run with an error."""

    prefix = "train/"

    def _extract_stats(self, trainer: L.Trainer, interval: str) -> dict[str, float]:
        return {
            f"{self.prefix}{name}": value for name, value in super()._extract_stats(trainer, interval).items()
        }

    _idle = False

    def on_train_start(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        self._idle = not trainer.loggers
        if self._idle:
            rank_zero_warn("LearningRateMonitor has no logger to write to (logger=none); it stays idle.")
            return
        super().on_train_start(trainer, *args, **kwargs)

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if not self._idle:
            super().on_train_batch_start(trainer, *args, **kwargs)

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if not self._idle:
            super().on_train_epoch_start(trainer, *args, **kwargs)
