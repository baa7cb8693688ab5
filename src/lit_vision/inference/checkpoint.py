"""Loading any task checkpoint for inference: the task class, weights and ``data_info`` come from the file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L

from lit_vision.errors import UserError

TASK_KINDS = ("classification", "segmentation", "regression")


@dataclass
class LoadedModel:
    """A task rebuilt from a checkpoint, in eval mode on the CPU, with what inference needs to know."""

    task: L.LightningModule
    data_info: dict[str, Any]
    kind: str
    path: Path

    @property
    def task_class(self) -> str:
        """Dotted path of the task class (as stored in the checkpoint)."""
        return f"{type(self.task).__module__}.{type(self.task).__qualname__}"

    @property
    def class_names(self) -> list[str]:
        """Display names of the classes (``"0"``, ``"1"``... when the data gave none)."""
        names = self.data_info.get("class_names")
        count = int(self.task.hparams.get("num_classes") or len(names or []))
        if names and len(names) == count:
            return [str(n) for n in names]
        return [str(i) for i in range(count)]


def task_kind(task: L.LightningModule) -> str:
    """``classification``, ``segmentation`` or ``regression`` for a lit_vision task (UserError otherwise)."""
    from lit_vision.tasks.classification import ClassificationTask
    from lit_vision.tasks.segmentation import SegmentationTask

    if isinstance(task, ClassificationTask):
        return "classification"
    if isinstance(task, SegmentationTask):
        return "segmentation"
    try:
        from lit_vision.tasks.regression import RegressionTask
    except ImportError:  # pragma: no cover - a checkout without the regression task
        RegressionTask = None
    if RegressionTask is not None and isinstance(task, RegressionTask):
        return "regression"
    raise UserError(
        f"{type(task).__name__} is not a lit_vision classification, segmentation or regression task, so "
        "predict/export do not know what its outputs mean."
    )


def load_model(ckpt_path: str | Path) -> LoadedModel:
    """Rebuild the task saved in ``ckpt_path`` (no config file needed) and put it in eval mode.

    Raises UserError for a missing or unreadable file, or a checkpoint that does not name its task.
    """
    from lit_vision.run import load_task_from_checkpoint

    path = Path(ckpt_path).expanduser()
    if not path.is_file():
        raise UserError(f"ckpt={ckpt_path}: no such checkpoint file ({path.absolute()}).")
    task = load_task_from_checkpoint(path, None)
    task.eval()
    data_info = dict(getattr(task, "data_info", None) or {})
    return LoadedModel(task=task, data_info=data_info, kind=task_kind(task), path=path.absolute())


def require_keys(model: LoadedModel, keys: tuple[str, ...], why: str) -> None:
    """UserError when the checkpoint's ``data_info`` lacks one of ``keys`` (needed for ``why``)."""
    missing = [k for k in keys if model.data_info.get(k) is None]
    if missing:
        raise UserError(
            f"{model.path} does not record {', '.join(missing)} in its data_info, which {why} needs. It was "
            "saved without a lit_vision DataModule (data_info() is stored by the task's setup); retrain or "
            "re-save it through `python train.py`, or add checkpoint['data_info'] with those keys."
        )
