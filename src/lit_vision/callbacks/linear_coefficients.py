"""Log a linear model's fitted line in the data's own units (the first lesson: does it find y = 2x + 1?).

For a net whose ``linear`` attribute is its only layer (:class:`~lit_vision.nets.regressor.LinearRegressor`)
the weights and bias are mapped back through the input standardisation and the target scaling recorded in
the task's ``data_info``, so they read as "y = weight * x + bias" in the table's units whatever the scaling.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.callbacks import Callback
from torch import nn


def linear_coefficients(task: L.LightningModule) -> dict[str, float] | None:
    """``{"weight" | "weight/<input>": w, "bias": b}`` of the first target in the data's units, or None when
    the task's net is not a single linear layer."""
    net = getattr(task, "net", None)
    layer = getattr(net, "linear", None)
    if not isinstance(layer, nn.Linear) or any(
        isinstance(m, nn.Linear) and m is not layer for m in net.modules()
    ):
        return None
    info: dict[str, Any] = getattr(task, "data_info", {}) or {}
    weights = layer.weight.detach().float().cpu().numpy()[0].astype(float)
    bias = float(layer.bias.detach().float().cpu()[0]) if layer.bias is not None else 0.0
    numeric = list(info.get("numeric_columns") or [])
    mean = np.asarray(info.get("feature_mean") or [0.0] * len(numeric), dtype=float)
    std = np.asarray(info.get("feature_std") or [1.0] * len(numeric), dtype=float)
    # inputs are the numeric columns (standardised) followed by one-hot columns (not scaled)
    scale = np.ones_like(weights)
    shift = np.zeros_like(weights)
    scale[: len(numeric)] = std
    shift[: len(numeric)] = mean
    weights_in_units = weights / scale
    bias_in_units = bias - float((weights_in_units * shift).sum())
    target_mean, target_std = info.get("target_mean"), info.get("target_std")
    if target_mean is not None and target_std is not None:
        weights_in_units = weights_in_units * float(target_std[0])
        bias_in_units = bias_in_units * float(target_std[0]) + float(target_mean[0])
    names = list(info.get("feature_names") or [f"x{i}" for i in range(len(weights))])
    if len(weights) == 1:
        out = {"weight": float(weights_in_units[0])}
    else:
        out = {f"weight/{name}": float(w) for name, w in zip(names, weights_in_units, strict=False)}
    out["bias"] = bias_in_units
    return out


class LinearCoefficients(Callback):
    """Logs ``linear/weight`` (or ``linear/weight/<input>``) and ``linear/bias`` after every validation
    epoch and after the test (the tested checkpoint's line), so they land in TensorBoard and metrics.json."""

    def _log(self, pl_module: L.LightningModule) -> None:
        found = linear_coefficients(pl_module)
        if found is None:
            return
        for name, value in found.items():
            pl_module.log(f"linear/{name}", value, on_step=False, on_epoch=True)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._log(pl_module)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log(pl_module)
