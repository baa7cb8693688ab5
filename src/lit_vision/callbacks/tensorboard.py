"""Lightning's TensorBoardLogger with a Scalars tab that opens on the run's own curves.

Lightning adds an ``epoch`` value to every batch of metrics it logs; in TensorBoard that becomes a chart of
its own, among the first ones shown. The epoch is already in ``metrics.csv`` (CSV logger) and every curve
here shares the global-step x axis, so this logger leaves it out.
"""

from __future__ import annotations

from collections.abc import Mapping

from lightning.pytorch.loggers import TensorBoardLogger as LightningTensorBoardLogger

# Keys Lightning adds to logged metrics that are bookkeeping, not curves.
BOOKKEEPING_KEYS = ("epoch",)


class TensorBoardLogger(LightningTensorBoardLogger):
    """``lightning.pytorch.loggers.TensorBoardLogger`` without Lightning's ``epoch`` chart."""

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        kept = {k: v for k, v in metrics.items() if k not in BOOKKEEPING_KEYS}
        if kept:
            super().log_metrics(kept, step)
