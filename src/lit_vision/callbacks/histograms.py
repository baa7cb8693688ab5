"""Histograms of every parameter and of its gradient (TensorBoard's HISTOGRAMS / DISTRIBUTIONS tabs).

The tutorials' weight/grad monitoring: vanishing gradients show up as collapsing gradient histograms in the
first layers, exploding ones as widening tails, a dead output bias as a class with poor recall.
"""

from __future__ import annotations

import math

import lightning as L
import torch
from torch.optim import Optimizer

from lit_vision.callbacks.base import MonitorCallback


class ParameterHistograms(MonitorCallback):
    """Logs ``weights/<name>`` at the end of every due epoch and ``gradients/<name>`` of that epoch's last
    optimizer step (read in ``on_before_optimizer_step``: after backward and AMP unscaling, before the
    step and before the gradients are zeroed).

    Args:
        every_n_epochs / max_overhead: when histograms are due (see ``EpochSchedule``).
        log_weights / log_gradients: which of the two to log.
    """

    def __init__(
        self,
        every_n_epochs: int = 5,
        max_overhead: float | None = 0.05,
        log_weights: bool = True,
        log_gradients: bool = True,
    ) -> None:
        super().__init__(every_n_epochs, max_overhead)
        self.log_weights = bool(log_weights)
        self.log_gradients = bool(log_gradients)
        self._epoch_due = False
        self._capture_next_step = False

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_due = self.epoch_due(trainer) and self.writer(trainer) is not None
        self._capture_next_step = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if self._epoch_due and self.log_gradients:
            total = trainer.num_training_batches
            last = total - 1 if math.isfinite(total) else 0
            self._capture_next_step = self._capture_next_step or batch_idx >= last

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Optimizer
    ) -> None:
        if not self._capture_next_step:
            return
        self._capture_next_step = False
        writer = self.writer(trainer)
        with self.schedule.timed():
            for name, param in pl_module.named_parameters():
                if param.grad is not None:
                    writer.add_histogram(f"gradients/{name}", _as_cpu(param.grad), trainer.global_step)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not (self._epoch_due and self.log_weights):
            return
        writer = self.writer(trainer)
        with self.schedule.timed():
            for name, param in pl_module.named_parameters():
                writer.add_histogram(f"weights/{name}", _as_cpu(param), trainer.global_step)


def _as_cpu(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().float().cpu()
