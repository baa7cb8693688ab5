"""Regression (tabular rows or images -> float targets): MSE/L1/Huber loss, MAE/RMSE/R2 with torchmetrics.

Batches are ``(inputs, targets (N, T) float)`` with targets in their own units. When the DataModule
standardises targets (``target_mean`` / ``target_std`` in its ``data_info``, which the checkpoint keeps),
the net learns standardised values: the loss compares standardised values, while predictions and every
metric are mapped back to the targets' units, so ``val/mae`` is in degrees, dollars, years...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torchmetrics import MetricCollection
from torchmetrics.regression import MeanAbsoluteError, MeanSquaredError, R2Score

from lit_vision.errors import UserError
from lit_vision.tasks.base import BaseTask

# Short loss names accepted by ``model.loss`` (a ``{_target_: ...}`` mapping works too).
LOSSES = {
    "mse": "torch.nn.MSELoss",
    "l1": "torch.nn.L1Loss",
    "mae": "torch.nn.L1Loss",
    "smooth_l1": "torch.nn.SmoothL1Loss",
    "huber": "torch.nn.HuberLoss",
}


def loss_config(loss: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """``"huber"`` -> ``{"_target_": "torch.nn.HuberLoss"}``; a mapping is kept; None -> MSE."""
    if loss is None:
        return {"_target_": LOSSES["mse"]}
    if isinstance(loss, str):
        try:
            return {"_target_": LOSSES[loss.lower()]}
        except KeyError:
            raise UserError(
                f"model.loss={loss!r} is not a regression loss: use one of {sorted(LOSSES)} or a mapping "
                "such as {_target_: torch.nn.HuberLoss, delta: 0.5}."
            ) from None
    return dict(loss)


def regression_metrics() -> MetricCollection:
    """MAE, RMSE and R2 (averaged over targets when there are several)."""
    return MetricCollection(
        {
            "mae": MeanAbsoluteError(),
            "rmse": MeanSquaredError(squared=False, num_outputs=1),
            "r2": R2Score(multioutput="uniform_average"),
        }
    )


class RegressionTask(BaseTask):
    """The net maps inputs to ``num_targets`` values per sample (see the module docstring for scaling).

    Args:
        net: the nn.Module config (``in_features``/``num_outputs`` from the data config).
        num_targets: values predicted per sample.
        loss: ``mse``, ``l1``, ``smooth_l1``, ``huber`` or a ``{_target_: ...}`` mapping (e.g. with ``delta``).
        monitor / monitor_mode: the checkpointing metric (validation MAE, smaller is better).
        Other arguments: see :class:`~lit_vision.tasks.base.BaseTask`.
    """

    progress_bar_metrics = ("mae", "rmse", "r2")

    def __init__(
        self,
        net: Mapping[str, Any],
        num_targets: int = 1,
        loss: str | Mapping[str, Any] | None = "mse",
        monitor: str = "val/mae",
        monitor_mode: str = "min",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            net=net,
            loss=loss_config(loss),
            monitor=monitor,
            monitor_mode=monitor_mode,
            num_targets=int(num_targets),
            **kwargs,
        )
        self._scale: tuple[torch.Tensor, torch.Tensor] | None = None

    def configure_metrics(self) -> MetricCollection:
        return regression_metrics()

    # ------------------------------------------------------------------ target units
    def setup(self, stage: str) -> None:
        super().setup(stage)
        self._scale = None  # data_info (and with it the target scaling) may have changed

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self._scale = None

    @property
    def target_names(self) -> list[str]:
        """Names of the predicted columns (from the data), else ``target``, ``target_1``..."""
        names = self.data_info.target_names if self.data_info is not None else None
        if names:
            return list(names)
        count = self.hparams.num_targets
        return ["target"] if count == 1 else [f"target_{i}" for i in range(count)]

    def target_scaling(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(mean, std)`` of the targets as ``(1, T)`` tensors on ``device``, or None (no scaling)."""
        info = self.data_info
        mean, std = (info.target_mean, info.target_std) if info is not None else (None, None)
        if mean is None or std is None:
            return None
        if self._scale is None or self._scale[0].device != device or self._scale[0].numel() != len(mean):
            self._scale = (
                torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1),
                torch.tensor(std, dtype=torch.float32, device=device).view(1, -1),
            )
        return self._scale

    def to_target_units(self, outputs: torch.Tensor) -> torch.Tensor:
        """Net outputs ``(N, T)`` -> predictions in the targets' units (float32)."""
        outputs = outputs.float().reshape(outputs.shape[0], -1)
        scale = self.target_scaling(outputs.device)
        return outputs if scale is None else outputs * scale[1] + scale[0]

    def to_net_units(self, targets: torch.Tensor) -> torch.Tensor:
        """Targets in their units ``(N, T)`` -> what the net is trained to output."""
        scale = self.target_scaling(targets.device)
        return targets if scale is None else (targets - scale[0]) / scale[1]

    @torch.no_grad()
    def predict_values(self, inputs: torch.Tensor) -> torch.Tensor:
        """Predictions ``(N, T)`` in the targets' units for a batch of prepared inputs."""
        return self.to_target_units(self(inputs))

    # ------------------------------------------------------------------ steps
    def model_step(
        self, batch, stage: str
    ) -> tuple[dict[str, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        inputs, targets = batch
        outputs = self(inputs).float().reshape(len(targets), -1)
        targets = targets.float().reshape(len(targets), -1)
        if outputs.shape != targets.shape:
            raise UserError(
                f"the net predicts {outputs.shape[1]} value(s) per sample but the data has {targets.shape[1]} "
                "target(s): set model.num_targets / the net's output size to data.num_targets."
            )
        loss = self.loss_fn(outputs, self.to_net_units(targets))
        predictions = self.to_target_units(outputs.detach())
        # one target: the metrics take (N,) tensors
        metric_inputs = (
            (predictions.squeeze(1), targets.squeeze(1)) if targets.shape[1] == 1 else (predictions, targets)
        )
        return {"loss": loss, "prediction": predictions, "target": targets}, metric_inputs

    def predict_step(self, batch, batch_idx: int = 0) -> torch.Tensor:
        """Predictions ``(N, T)`` in the targets' units; ``batch`` is inputs or ``(inputs, ...)``."""
        inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.to_target_units(self(inputs))
