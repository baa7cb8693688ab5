"""Weight averaging on Lightning's :class:`~lightning.pytorch.callbacks.WeightAveraging`: EMA and SWA.

Lightning keeps the average in a :class:`torch.optim.swa_utils.AveragedModel`, swaps it in for validation,
writes it as the checkpoint's ``state_dict`` (the raw weights under ``current_model_state``, both plain
tensors, so checkpoints still load with ``torch.load(weights_only=True)``) and copies it into the model when
training ends. What these subclasses add:

- ``trainer.test(ckpt_path=best)`` after a fit tests the averaged weights: Lightning's own hook would put the
  raw weights (``current_model_state``) back into the model in every stage, not only when resuming a fit.
- Before the first update (a warm-up not over yet) the average is only a copy of the initial weights: until
  then validation, checkpoints and the end of training use the raw weights, as if there were no averaging.
- The epoch of the last update is part of the callback state, so a resume restores it with the average.
- :class:`EMA` warms its decay up by default (``min(decay, (1 + n) / (10 + n))`` at the n-th update, the
  schedule of TensorFlow's ``ExponentialMovingAverage(num_updates=...)`` and timm's EMA), so a run shorter
  than the decay's memory still ends with an average of its recent weights, not of its random start.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging, WeightAveraging
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from lightning.pytorch.utilities.types import STEP_OUTPUT
from torch import Tensor


class _AveragingFixes(WeightAveraging):
    """The behaviour shared by :class:`EMA` and :class:`SWA` (see the module docstring)."""

    _current_epoch = 0  # the epoch of the last training batch; should_update() of the subclasses reads it

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: STEP_OUTPUT,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Note the epoch, then let Lightning update the average after the optimizer step."""
        self._current_epoch = trainer.current_epoch
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    _average_model: Any

    @property
    def n_averaged(self) -> int:
        """How many times the average has been updated (0: it holds no average yet)."""
        if self._average_model is None:
            return 0
        return int(self._average_model.n_averaged.item())

    def _has_average(self) -> bool:
        return self.n_averaged > 0

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Validate the averaged weights (once there is an average)."""
        self._swapped = self._has_average()
        if self._swapped:
            self._swap_models(pl_module)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Put the raw weights back for training."""
        if getattr(self, "_swapped", False):
            self._swap_models(pl_module)
        self._swapped = False

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Leave the averaged weights in the model (the raw ones when no update happened)."""
        if self._has_average():
            self._copy_average_to_current(pl_module)
        else:
            rank_zero_warn(
                f"{type(self).__name__}: training ended before the first averaging update (warm-up or start "
                "epoch not reached); the model keeps its raw weights."
            )

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """The average as ``state_dict`` (raw weights in ``current_model_state``) once there is one."""
        if self._has_average():
            super().on_save_checkpoint(trainer, pl_module, checkpoint)

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Resuming a fit restores the average and the raw weights; other stages keep the average loaded."""
        if trainer.state.fn != TrainerFn.FITTING or self._average_model is None:
            return  # test/validate/predict: the checkpoint's state_dict (the average) is what is evaluated
        if "current_model_state" in checkpoint and "averaging_state" in checkpoint:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
        # otherwise the checkpoint holds no average yet (or comes from a run without averaging): the fresh
        # AveragedModel (a copy of the loaded weights, n_averaged 0) starts averaging at the next update

    def state_dict(self) -> dict[str, Any]:
        """The update counters (the average itself travels in the checkpoint's ``state_dict``)."""
        return {
            "latest_update_step": self._latest_update_step,
            "latest_update_epoch": self._latest_update_epoch,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the update counters."""
        self._latest_update_step = int(state_dict.get("latest_update_step", 0))
        self._latest_update_epoch = int(state_dict.get("latest_update_epoch", -1))


class WarmedUpEMAUpdate:
    """The EMA update ``average += (1 - d) * (weights - average)`` with ``d = decay``, or with the warm-up,
    ``d = min(decay, (1 + n) / (10 + n))`` after ``n`` earlier updates (an ``avg_fn`` of ``AveragedModel``)."""

    def __init__(self, decay: float, warmup: bool) -> None:
        self.decay = float(decay)
        self.warmup = bool(warmup)

    def decay_at(self, num_averaged: Tensor | int) -> Tensor | float:
        """The decay of the update that follows ``num_averaged`` earlier ones (a tensor stays a tensor: no
        device synchronisation)."""
        if not self.warmup:
            return self.decay
        if isinstance(num_averaged, Tensor):
            return torch.clamp((1.0 + num_averaged) / (10.0 + num_averaged), max=self.decay)
        return min(self.decay, (1.0 + num_averaged) / (10.0 + num_averaged))

    def __call__(self, averaged: Tensor, current: Tensor, num_averaged: Tensor) -> Tensor:
        return averaged + (current - averaged) * (1.0 - self.decay_at(num_averaged))


class EMA(_AveragingFixes, EMAWeightAveraging):
    """Exponential moving average of the weights (and buffers), on Lightning's ``EMAWeightAveraging``.

    Args:
        decay: weight of the old average at each update (0.999: a memory of about 1000 updates).
        decay_warmup: grow the decay from 2/11 towards ``decay`` as ``(1 + n) / (10 + n)`` over the first
            updates, so short runs average their recent weights instead of keeping the initial ones.
        update_every_n_steps: update after every n-th optimizer step.
        warmup_steps: start averaging after this many optimizer steps (the weights of step ``warmup_steps``
            start the average); until then the raw weights are validated and saved.
        warmup_epochs: or start at this epoch (updates then follow every step); null: not by epoch.
        use_buffers: average the buffers (BatchNorm statistics) too; false keeps the raw buffers.
        device: where the average lives (null: the model's device; ``cpu`` saves accelerator memory).
    """

    def __init__(
        self,
        decay: float = 0.999,
        decay_warmup: bool = True,
        update_every_n_steps: int = 1,
        warmup_steps: int = 0,
        warmup_epochs: int | None = None,
        use_buffers: bool = True,
        device: str | None = None,
    ) -> None:
        if not 0.0 < float(decay) < 1.0:
            raise ValueError(f"callbacks.ema.decay must be between 0 and 1 (exclusive), got {decay}")
        if int(update_every_n_steps) < 1:
            raise ValueError(f"callbacks.ema.update_every_n_steps must be >= 1, got {update_every_n_steps}")
        super().__init__(
            device=device,
            use_buffers=use_buffers,
            decay=float(decay),
            update_every_n_steps=int(update_every_n_steps),
            update_starting_at_step=int(warmup_steps) if warmup_steps else None,
            update_starting_at_epoch=None,
        )
        self.decay = float(decay)
        self.update = WarmedUpEMAUpdate(self.decay, decay_warmup)
        self._kwargs["avg_fn"] = self.update  # Lightning's own avg_fn is the plain, un-warmed EMA
        self.warmup_epochs = None if warmup_epochs is None else int(warmup_epochs)
        self._current_epoch = 0

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Warn when the run is too short for ``decay``: the average would still be mostly the start."""
        left = starting_weight_left(self.update, trainer.estimated_stepping_batches, self)
        if left is not None and left > SLOW_DECAY_LEFT:
            updates = _planned_updates(trainer.estimated_stepping_batches, self)
            rank_zero_warn(
                f"EMA: after this run's ~{updates} averaging updates the average still holds {left:.0%} of "
                f"the starting weights (callbacks.ema.decay={self.decay}, decay_warmup=false), so "
                "validation, the checkpoints, test and export would see a model close to the initial one. Set "
                f"callbacks.ema.decay to at most {suggested_decay(updates):.4g} or train longer "
                "(docs/monitoring.md, Weight averaging)."
            )

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        """Step updates only: every ``update_every_n_steps`` once the warm-up is over."""
        if step_idx is None:
            return False
        if self.warmup_epochs is not None and self._current_epoch < self.warmup_epochs:
            return False
        return super().should_update(step_idx=step_idx)


# Above this share of the starting weights left in the average at the end of a fit, EMA warns.
SLOW_DECAY_LEFT = 0.1


def _planned_updates(total_steps: float, ema: EMA) -> int | None:
    if total_steps is None or total_steps == float("inf"):
        return None
    warmup = int(ema.update_starting_at_step or 0)
    return max(0, int(total_steps) - warmup) // max(1, int(ema.update_every_n_steps))


def starting_weight_left(update: WarmedUpEMAUpdate, total_steps: float, ema: EMA) -> float | None:
    """The share of the first averaged weights still in the average after the run's planned updates
    (None when the run length is unknown); warm-up by epoch is not counted."""
    updates = _planned_updates(total_steps, ema)
    if not updates:
        return None
    if not update.warmup:
        return update.decay**updates
    left = 1.0
    for n in range(1, updates):  # the first update copies the weights; each later one keeps decay_at(n)
        left *= update.decay_at(n)
        if left < 1e-12:
            break
    return left


def suggested_decay(updates: int) -> float:
    """A decay that leaves under 1% of the starting weights after ``updates`` updates (decay^n = e^-5)."""
    return max(0.0, 1.0 - 5.0 / max(updates, 1))


class SWA(_AveragingFixes):
    """Stochastic weight averaging: the equal-weight average of the weights from ``swa_epoch_start`` on.

    The average is updated after every ``update_every_n_steps`` optimizer steps of the averaging epochs (an
    average of the iterates, Lightning's ``WeightAveraging`` default), so the validation of each epoch and
    its checkpoint already include that epoch. The learning rate follows the ``scheduler`` group: SWA works
    best with a constant or cyclic rate over the averaging epochs (``scheduler=none``).

    Args:
        swa_epoch_start: first averaged epoch (int, 0-based), or a fraction of ``trainer.max_epochs`` (float
            in (0, 1), as in Lightning's ``StochasticWeightAveraging``).
        update_every_n_steps: update after every n-th optimizer step.
        use_buffers: average the buffers (BatchNorm statistics) too.
        device: where the average lives (null: the model's device).
    """

    def __init__(
        self,
        swa_epoch_start: int | float = 0.8,
        update_every_n_steps: int = 1,
        use_buffers: bool = True,
        device: str | None = None,
    ) -> None:
        start_is_fraction = isinstance(swa_epoch_start, float) and 0.0 < swa_epoch_start < 1.0
        if not start_is_fraction and not (float(swa_epoch_start).is_integer() and swa_epoch_start >= 0):
            raise ValueError(
                f"callbacks.swa.swa_epoch_start must be an epoch index >= 0 or a fraction in (0, 1) of "
                f"max_epochs, got {swa_epoch_start}"
            )
        if int(update_every_n_steps) < 1:
            raise ValueError(f"callbacks.swa.update_every_n_steps must be >= 1, got {update_every_n_steps}")
        super().__init__(device=device, use_buffers=use_buffers)
        self.swa_epoch_start = swa_epoch_start
        self.update_every_n_steps = int(update_every_n_steps)
        self._start_epoch = 0 if start_is_fraction else int(swa_epoch_start)
        self._current_epoch = 0

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Resolve a fractional start against ``max_epochs`` and create the average."""
        if isinstance(self.swa_epoch_start, float) and 0.0 < self.swa_epoch_start < 1.0:
            max_epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else 1
            self._start_epoch = int(self.swa_epoch_start * max_epochs)
        super().setup(trainer, pl_module, stage)

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        """Every ``update_every_n_steps`` optimizer steps from epoch ``swa_epoch_start``."""
        if step_idx is None or self._current_epoch < self._start_epoch:
            return False
        return step_idx % self.update_every_n_steps == 0
