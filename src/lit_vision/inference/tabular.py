"""Predictions of a tabular regression checkpoint for new CSV rows (the API behind ``lit_vision.cli.predict``).

    from lit_vision.inference.tabular import write_predictions_csv
    write_predictions_csv("outputs/.../checkpoints/last.ckpt", "new_days.csv", "predictions.csv")

The rows are prepared with the preprocessing stored in the checkpoint (training split's means, standard
deviations and categories; :class:`~lit_vision.data.tabular.TabularPreprocessor`), so nothing but the
checkpoint is needed. The output is the input table with one prediction column per target (``prediction``
for a single target, ``prediction_<target>`` for several), in the targets' units.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from lit_vision.data.tabular import TabularPreprocessor, read_csv
from lit_vision.errors import UserError
from lit_vision.inference.checkpoint import load_task_from_checkpoint
from lit_vision.tasks.regression import RegressionTask
from lit_vision.utils.io import atomic_write_text
from lit_vision.utils.paths import require_checkpoint_file


def load_regression_task(checkpoint: str | Path, trust: bool = False) -> RegressionTask:
    """A :class:`RegressionTask` from a lit_vision checkpoint, on the CPU in eval mode (``trust``: see
    :mod:`lit_vision.inference.trust`)."""
    path = require_checkpoint_file(checkpoint, key="checkpoint")
    task = load_task_from_checkpoint(path, None, trust)
    if not isinstance(task, RegressionTask):
        raise UserError(
            f"{path} holds a {type(task).__name__}, not a regression task: predict tables with a regression checkpoint."
        )
    return task.eval()


def prediction_columns(target_names: list[str]) -> list[str]:
    """``["prediction"]`` for one target, ``["prediction_<name>", ...]`` for several."""
    if len(target_names) == 1:
        return ["prediction"]
    return [f"prediction_{name}" for name in target_names]


@torch.no_grad()
def predict_table(
    task: RegressionTask, frame: pd.DataFrame, source: str = "the table", batch_size: int = 4096
) -> pd.DataFrame:
    """``frame`` with the task's prediction column(s) appended (targets' units).

    Raises :class:`~lit_vision.errors.UserError` naming the column or line when a row cannot be prepared
    (a missing input column, a non-number, an empty cell, an unseen category).
    """
    preprocessor = TabularPreprocessor.from_info(task.data_info or {})
    inputs = torch.from_numpy(preprocessor.transform(frame, source))
    device = next(task.parameters()).device
    chunks = [
        task.predict_step(inputs[start : start + batch_size].to(device)).cpu()
        for start in range(0, len(inputs), batch_size)
    ]
    values = torch.cat(chunks).numpy() if chunks else inputs.new_zeros((0, len(task.target_names))).numpy()
    out = frame.copy()
    for column, name in enumerate(prediction_columns(task.target_names)):
        out[name] = values[:, column]
    return out


def write_predictions_csv(
    checkpoint: str | Path | RegressionTask,
    input_csv: str | Path,
    output_csv: str | Path,
    batch_size: int = 4096,
) -> Path:
    """Read ``input_csv``, predict every row with ``checkpoint`` (a path or a loaded task), write
    ``output_csv`` (the input columns plus the prediction column(s)); return its path."""
    task = checkpoint if isinstance(checkpoint, RegressionTask) else load_regression_task(checkpoint)
    frame = read_csv(input_csv, "input")
    table = predict_table(task, frame, source=str(input_csv), batch_size=batch_size)
    return atomic_write_text(output_csv, table.to_csv(index=False))
