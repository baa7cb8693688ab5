"""One plain line per epoch in ``train.log`` (and on stdout when it is not a terminal), then the test metrics
and the best checkpoint: what a run redirected to a file (a cluster job, ``nohup``) has to show.

On a terminal the progress bar shows the same numbers live, so there the lines go only to the run's log
files; redirected, the bar leaves next to nothing behind, so the lines are printed as well.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

import lightning as L
from lightning.pytorch.callbacks import Callback

from lit_vision.utils.metrics import to_float_dict
from lit_vision.utils.reporting import log_to_files

# Metric name prefixes shown per epoch, in this order.
EPOCH_PREFIXES = ("train/", "val/")


def format_metrics(metrics: Mapping[str, float], prefixes: tuple[str, ...]) -> str:
    """``name value`` pairs of the epoch-level metrics under ``prefixes``: the loss first, per-step curves
    and per-class breakdowns (``val/acc_class/3``) left out."""
    parts = []
    for prefix in prefixes:
        names = [k for k in metrics if k.startswith(prefix) and "/" not in k[len(prefix) :]]
        # per-step curves out; a metric logged both as ``x`` and ``x_epoch`` is shown once
        names = [
            k for k in names if not k.endswith("_step") and not (k.endswith("_epoch") and k[:-6] in metrics)
        ]
        for name in sorted(names, key=lambda k: (not k.removesuffix("_epoch").endswith("/loss"), k)):
            shown = name.removesuffix("_epoch")
            value = metrics[name]
            parts.append(f"{shown} {value:.4g}" if math.isfinite(value) else f"{shown} {value}")
    return "  ".join(parts)


class EpochLog(Callback):
    """Write a line per training epoch (epoch, train loss, validation metrics, seconds), the best checkpoint
    at the end of fitting and the test metrics: to the run's log files always, to ``stream`` (stdout by
    default) when it is not a terminal or when ``to_stream`` is true. Global rank 0 only.

    Args:
        to_stream: ``auto`` (print when ``stream`` is not a terminal), ``true`` or ``false``.
        stream: where the lines are printed (default ``sys.stdout``, looked up when a line is written).
    """

    def __init__(self, to_stream: bool | str = "auto", stream: TextIO | None = None) -> None:
        if to_stream not in ("auto", True, False):
            raise ValueError(f"to_stream must be auto, true or false, got {to_stream!r}")
        self.to_stream = to_stream
        self.stream = stream
        self._epoch_start = time.perf_counter()
        self._pending: tuple[int, float] | None = None  # (epoch, seconds) of a finished epoch not yet written

    # -------------------------------------------------------------- output
    def _write(self, trainer: L.Trainer, text: str) -> None:
        if not trainer.is_global_zero:
            return
        log_to_files(logging.INFO, text)
        stream = self.stream or sys.stdout
        if self.to_stream is True or (self.to_stream == "auto" and not _is_terminal(stream)):
            stream.write(text + "\n")
            stream.flush()

    # -------------------------------------------------------------- hooks
    # A module computes its epoch metrics in its own on_train_epoch_end, which runs after the callbacks'
    # hook; so an epoch's line is written when the next epoch starts, or when fitting ends.
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._flush_epoch(trainer)
        self._epoch_start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._pending = (trainer.current_epoch, time.perf_counter() - self._epoch_start)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._flush_epoch(trainer)

    def _flush_epoch(self, trainer: L.Trainer) -> None:
        if self._pending is None:
            return
        epoch, seconds = self._pending
        self._pending = None
        metrics = to_float_dict(trainer.callback_metrics)
        total = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        shown = format_metrics(metrics, EPOCH_PREFIXES)
        self._write(trainer, f"epoch {epoch + 1}{total}  {shown}{'  ' if shown else ''}{seconds:.1f}s")

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._flush_epoch(trainer)
        best = trainer.checkpoint_callback
        path = getattr(best, "best_model_path", "") if best is not None else ""
        if not path:
            return
        score = getattr(best, "best_model_score", None)
        monitor = getattr(best, "monitor", None)
        scored = f" ({monitor} {float(score):.4g})" if score is not None and monitor else ""
        self._write(trainer, f"best checkpoint: {path}{scored}")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        shown = format_metrics(to_float_dict(trainer.callback_metrics), ("test/",))
        if shown:
            self._write(trainer, f"test  {shown}")


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
