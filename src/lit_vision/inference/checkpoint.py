"""Checkpoints in one place: reading a file, rebuilding its task, and checking it against the data.

Used by training (``ckpt_path=`` resume and ``train=false`` evaluation), predict and export: the task class,
its weights and ``data_info`` come from the file alone. Files are opened with ``weights_only=True`` and the
task's ``_target_`` entries are checked (:mod:`lit_vision.inference.trust`) unless ``trust`` is set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import get_class
from omegaconf import DictConfig

from lit_vision.data.contract import DataInfo, DescribesData
from lit_vision.errors import UserError
from lit_vision.inference.trust import (
    check_targets,
    check_task_class,
    safe_globals,
    torch_load,
)
from lit_vision.tasks.classification import ClassificationTask
from lit_vision.tasks.multilabel import MultiLabelTask
from lit_vision.tasks.regression import RegressionTask
from lit_vision.tasks.segmentation import SegmentationTask
from lit_vision.utils.paths import require_checkpoint_file

TASK_CLASSES: dict[str, type[L.LightningModule]] = {
    "classification": ClassificationTask,
    "multilabel": MultiLabelTask,
    "segmentation": SegmentationTask,
    "regression": RegressionTask,
}
TASK_KINDS = tuple(TASK_CLASSES)


@dataclass
class LoadedModel:
    """A task rebuilt from a checkpoint, in eval mode on the CPU, with what inference needs to know."""

    task: L.LightningModule
    data_info: DataInfo
    kind: str
    path: Path

    @property
    def task_class(self) -> str:
        """Dotted path of the task class (as stored in the checkpoint)."""
        return f"{type(self.task).__module__}.{type(self.task).__qualname__}"

    @property
    def class_names(self) -> list[str]:
        """Display names of the classes (``"0"``, ``"1"``... when the data gave none)."""
        names = self.data_info.class_names
        count = int(self.task.hparams.get("num_classes") or len(names or []))
        if names and len(names) == count:
            return [str(n) for n in names]
        return [str(i) for i in range(count)]


def task_kind(task: L.LightningModule) -> str:
    """``classification``, ``multilabel``, ``segmentation`` or ``regression`` for a lit_vision task (UserError
    otherwise)."""
    for kind, task_class in TASK_CLASSES.items():
        if isinstance(task, task_class):
            return kind
    raise UserError(
        f"{type(task).__name__} is not a lit_vision classification, segmentation or regression task, so "
        "predict/export do not know what its outputs mean."
    )


def load_model(ckpt_path: str | Path, trust: bool = False) -> LoadedModel:
    """Rebuild the task saved in ``ckpt_path`` (no config file needed) and put it in eval mode.

    Raises UserError for a missing or unreadable file, a checkpoint that does not name its task, or (without
    ``trust``) one that refers to types or targets lit_vision's own checkpoints never hold.
    """
    path = require_checkpoint_file(ckpt_path)
    task = load_task_from_checkpoint(path, None, trust)
    task.eval()
    kind = task_kind(task)
    # a checkpoint saved without a DataModule records nothing: an empty DataInfo of the task's kind
    data_info = task.data_info or DataInfo(kind="image_regression" if kind == "regression" else kind)
    return LoadedModel(task=task, data_info=data_info, kind=kind, path=path.absolute())


def require_keys(model: LoadedModel, keys: tuple[str, ...], why: str) -> None:
    """UserError when the checkpoint's ``data_info`` lacks one of ``keys`` (DataInfo field names, needed
    for ``why``)."""
    missing = [k for k in keys if getattr(model.data_info, k) is None]
    if missing:
        raise UserError(
            f"{model.path} does not record {', '.join(missing)} in its data_info, which {why} needs. It was "
            "saved without a lit_vision DataModule (data_info() is stored by the task's setup); retrain or "
            "re-save it through `python train.py`, or add checkpoint['data_info'] with those keys."
        )


def load_task_from_checkpoint(
    ckpt_path: str | Path, model_cfg: DictConfig | None, trust: bool = False
) -> L.LightningModule:
    """Rebuild the task stored in ``ckpt_path`` (class recorded in the checkpoint, else ``model._target_``).

    Without ``trust`` the recorded class must be a lit_vision task and every ``_target_`` of its
    hyperparameters one :func:`~lit_vision.inference.trust.check_targets` accepts.
    """
    checkpoint = read_checkpoint(ckpt_path, trust)
    recorded = checkpoint.get("task_class")
    if not trust:
        if recorded:
            check_task_class(str(recorded), ckpt_path)
        check_targets(checkpoint.get("hyper_parameters") or {}, ckpt_path)
    class_path = recorded or (model_cfg or {}).get("_target_")
    if not class_path:
        raise UserError(
            f"{ckpt_path} does not say which task it holds (no task_class: it was not written by lit_vision's "
            "train.py). To evaluate it, add model=<the model it was trained with>; predict and export need a "
            "checkpoint of a lit_vision run (its checkpoints/*.ckpt)."
        )
    task_cls = get_class(str(class_path))
    try:
        with safe_globals():
            return task_cls.load_from_checkpoint(str(ckpt_path), map_location="cpu", weights_only=not trust)
    except (RuntimeError, TypeError, KeyError) as exc:
        raise UserError(f"{ckpt_path} cannot be loaded as {class_path}: {exc}") from exc


def read_checkpoint(ckpt_path: str | Path, trust: bool = False) -> dict[str, Any]:
    """``torch.load`` a Lightning checkpoint (memory-mapped; ``weights_only`` unless ``trust``), with a clear
    error for unreadable and untrusted files."""
    try:
        checkpoint = torch_load(ckpt_path, trust)
    except UserError:
        raise
    except Exception as exc:
        raise UserError(
            f"{ckpt_path} is not a readable checkpoint ({type(exc).__name__}: {exc}); it may be truncated or "
            "not a .ckpt file. Use another checkpoint, e.g. the run's checkpoints/last.ckpt."
        ) from exc
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UserError(f"{ckpt_path} is not a Lightning checkpoint (no state_dict in it).")
    return checkpoint


def check_checkpoint_matches(task: L.LightningModule, ckpt_path: str | Path, trust: bool = False) -> None:
    """Raise UserError naming the weights whose names or shapes differ between ``task`` and the checkpoint
    (and, without ``trust``, when the file holds types lit_vision's checkpoints never hold)."""
    saved = read_checkpoint(ckpt_path, trust)["state_dict"]
    current = task.state_dict()
    missing = [k for k in current if k not in saved]
    unexpected = [k for k in saved if k not in current]
    shapes = [
        f"{k} {tuple(saved[k].shape)} in the checkpoint vs {tuple(v.shape)} now"
        for k, v in current.items()
        if k in saved and hasattr(saved[k], "shape") and tuple(saved[k].shape) != tuple(v.shape)
    ]
    if not (missing or unexpected or shapes):
        return
    parts = []
    if shapes:
        parts.append("different shapes: " + "; ".join(shapes[:5]) + (" ..." if len(shapes) > 5 else ""))
    if missing:
        parts.append(
            "missing from the checkpoint: " + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        )
    if unexpected:
        parts.append(
            "not in this model: " + ", ".join(unexpected[:5]) + (" ..." if len(unexpected) > 5 else "")
        )
    raise UserError(
        f"ckpt_path={ckpt_path} was saved from another model or task than the configured one ({'; '.join(parts)}). "
        "Resume with the model and data options of the run that wrote it (a checkpoint inside its run folder "
        "brings them along), or start a new run without ckpt_path."
    )


# ---------------------------------------------------------------------- a checkpoint against the data
def data_kind(info: DataInfo | Mapping[str, Any]) -> str | None:
    """``classification``, ``segmentation`` or ``regression`` from a ``data_info`` (None: unknown)."""
    if isinstance(info, DataInfo):
        return info.task
    if info.get("task") == "segmentation":
        return "segmentation"
    if info.get("kind") == "multilabel":
        return "multilabel"
    if info.get("kind") in ("tabular", "image_regression") or "target_names" in info:
        return "regression"
    if info.get("num_classes") is not None:
        return "classification"
    return None


def checkpoint_data_mismatches(
    task_kind: str | None,
    saved: Mapping[str, Any],
    current: Mapping[str, Any],
    net: Mapping[str, Any] | None = None,
) -> list[str]:
    """What differs between the data a checkpoint was trained on and the configured data, as
    ``"key: X in the checkpoint vs Y now"`` phrases (empty when they fit)."""
    problems = []
    now_kind = data_kind(current)
    if task_kind and now_kind and task_kind != now_kind:
        problems.append(f"task: a {task_kind} model vs {now_kind} data now")
    for key in ("num_classes", "in_channels"):
        before, after = saved.get(key), current.get(key)
        if before is not None and after is not None and int(before) != int(after):
            problems.append(f"{key}: {before} in the checkpoint vs {after} now")
    for key, label in (("feature_names", "input columns"), ("target_names", "targets")):
        before, after = saved.get(key), current.get(key)
        if before is not None and after is not None and list(before) != list(after):
            problems.append(f"{label} ({key}): {_short(before)} in the checkpoint vs {_short(after)} now")
    declared = (net or {}).get("image_size")
    size = current.get("image_size")
    if declared is not None and size is not None and _side(declared) != _side(size):
        problems.append(f"image_size: the net takes {declared} pixel inputs vs {size} now")
    return problems


def check_data_fits_task(task: Any, datamodule: Any, ckpt_path: str | Path) -> None:
    """UserError naming what differs when a checkpoint's task cannot run on the configured data
    (another kind of task, other classes, channels, input columns or input size)."""
    if not isinstance(datamodule, DescribesData):
        return
    try:
        kind = task_kind(task)
    except UserError:
        kind = None
    hparams = dict(getattr(task, "hparams", {}) or {})
    info = getattr(task, "data_info", None)  # a model._target_ task need not be a lit_vision one
    saved = dict(info) if info is not None else {}
    if hparams.get("num_classes") is not None:
        saved.setdefault("num_classes", hparams["num_classes"])
    problems = checkpoint_data_mismatches(kind, saved, datamodule.data_info(), hparams.get("net"))
    if problems:
        raise UserError(
            f"ckpt_path={ckpt_path} does not fit the configured data ({'; '.join(problems)}). Evaluate it on "
            "the data it was trained with (from inside its run folder, the run's own data options come "
            "along), or choose the data options that match it (data=..., data.num_classes=...)."
        )


def _short(names: Any, limit: int = 6) -> str:
    names = [str(n) for n in names]
    return "[" + ", ".join(names[:limit]) + (", ..." if len(names) > limit else "") + "]"


def _side(size: Any) -> tuple[int, int]:
    if isinstance(size, (list, tuple)):
        return (int(size[0]), int(size[-1]))
    return (int(size), int(size))
