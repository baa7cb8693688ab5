"""Conversion of Lightning's logged metrics into plain JSON-ready numbers."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch


def to_float_dict(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Return ``{name: float}`` for every scalar metric; tensors with more than one value are skipped."""
    out: dict[str, float] = {}
    for name, value in metrics.items():
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                continue
            value = value.detach().float().cpu().item()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[str(name)] = float(value) if math.isfinite(float(value)) else float("nan")
    return out
