"""The classification task's confusion matrices as Markdown tables in TensorBoard's TEXT tab.

The task computes one matrix per stage and epoch with its metrics (``task.confusion_matrices``); this
callback writes each new one as ``confusion_matrix/train``, ``confusion_matrix/val`` and
``confusion_matrix/test`` at the epoch it belongs to. Tasks without ``confusion_matrices`` are skipped.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch

from lit_vision.callbacks.base import MonitorCallback
from lit_vision.callbacks.outputs import class_names_of


def markdown_table(counts: torch.Tensor, class_names: Sequence[str]) -> str:
    """A confusion matrix (rows: true class, columns: predicted) as a Markdown table."""
    header = "| true \\ predicted | " + " | ".join(class_names) + " |"
    rule = "|---" * (len(class_names) + 1) + "|"
    rows = [
        f"| {name} | " + " | ".join(str(int(v)) for v in row) + " |"
        for name, row in zip(class_names, counts.tolist(), strict=True)
    ]
    return "\n".join([header, rule, *rows])


class ConfusionMatrixText(MonitorCallback):
    """Writes every stage's confusion matrix as a text table, up to ``max_classes`` classes.

    The task computes its train matrix in its own ``on_train_epoch_end``, which Lightning calls after the
    callbacks' hook of that name, so the train table is written when the next epoch starts (or training
    ends); validation and test tables at the end of their loop.

    Args:
        max_classes: write tables only for up to this many classes (wider tables are unreadable).
    """

    def __init__(self, max_classes: int = 20) -> None:
        super().__init__()
        self.max_classes = int(max_classes)
        self._handled: dict[str, torch.Tensor] = {}  # stage -> the last matrix seen

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write(trainer, pl_module, "train", trainer.current_epoch - 1)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write(trainer, pl_module, "train", trainer.current_epoch - 1)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write(trainer, pl_module, "val", trainer.current_epoch)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write(trainer, pl_module, "test", trainer.current_epoch)

    def _write(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str, epoch: int) -> None:
        counts = (getattr(pl_module, "confusion_matrices", None) or {}).get(stage)
        if counts is None or self._handled.get(stage) is counts:
            return
        self._handled[stage] = counts  # the sanity check's matrix is seen here and never written
        if not self.enabled(trainer) or len(counts) > self.max_classes:
            return
        writer = self.writer(trainer)
        if writer is not None:
            table = markdown_table(counts, class_names_of(pl_module, len(counts)))
            writer.add_text(f"confusion_matrix/{stage}", table, max(epoch, 0))
