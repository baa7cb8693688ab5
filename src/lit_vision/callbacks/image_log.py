"""One way for a callback to log a picture: to every active logger that takes images.

The figure callbacks (confusion matrix, prediction grid, segmentation overlays, actual vs predicted) call
:func:`log_image` once; it goes to TensorBoard (IMAGES tab), MLflow (an artifact
``<tag>/<name>.png`` of the run) and Weights & Biases (a media panel ``<tag>``), whichever are configured.
Loggers that cannot show images (CSV) are skipped. Lightning's logger classes are checked by type only,
so neither ``mlflow`` nor ``wandb`` is imported unless that logger is in use.
"""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import Logger, MLFlowLogger, TensorBoardLogger, WandbLogger


def as_hwc_uint8(image: np.ndarray | torch.Tensor, dataformats: str = "HWC") -> np.ndarray:
    """``image`` as an ``(H, W, 3)`` (or ``(H, W, 1)``) uint8 array; floats are read as values in [0, 1]."""
    if isinstance(image, torch.Tensor):
        image = image.detach().float().cpu().numpy() if image.is_floating_point() else image.cpu().numpy()
    array = np.asarray(image)
    if dataformats == "CHW":
        array = np.moveaxis(array, 0, -1)
    elif dataformats == "HW":
        array = array[..., None]
    elif dataformats != "HWC":
        raise ValueError(f"dataformats must be HWC, CHW or HW, got {dataformats!r}")
    if array.dtype != np.uint8:
        array = (np.clip(array.astype(np.float64), 0.0, 1.0) * 255).round().astype(np.uint8)
    return array


def _to_tensorboard(logger: Logger, tag: str, image: np.ndarray, step: int, name: str) -> None:
    logger.experiment.add_image(tag, image, step, dataformats="HWC")


def _to_mlflow(logger: Logger, tag: str, image: np.ndarray, step: int, name: str) -> None:
    logger.experiment.log_image(logger.run_id, image, artifact_file=f"{tag}/{name}.png")


def _to_wandb(logger: Logger, tag: str, image: np.ndarray, step: int, name: str) -> None:
    logger.log_image(key=tag, images=[image], step=step, caption=[name])


# Which logger types take images, and how. Subclasses (lit_vision's own loggers) match their base.
IMAGE_SINKS: tuple[tuple[type[Logger], Callable[[Logger, str, np.ndarray, int, str], None]], ...] = (
    (TensorBoardLogger, _to_tensorboard),
    (MLFlowLogger, _to_mlflow),
    (WandbLogger, _to_wandb),
)


def image_loggers(trainer: L.Trainer) -> list[Logger]:
    """The trainer's loggers that take images (TensorBoard, MLflow, W&B), in the trainer's order."""
    return [logger for logger in trainer.loggers if any(isinstance(logger, kind) for kind, _ in IMAGE_SINKS)]


def log_image(
    trainer: L.Trainer,
    tag: str,
    image: np.ndarray | torch.Tensor,
    dataformats: str = "HWC",
    name: str | None = None,
) -> list[str]:
    """Log ``image`` under ``tag`` at the trainer's global step to every logger that takes images.

    ``name`` names the MLflow artifact file (``<tag>/<name>.png``) and the W&B caption; the default is
    ``step<global step>``. Returns the class names of the loggers that got it (empty: none configured).
    """
    step = trainer.global_step
    picture = as_hwc_uint8(image, dataformats)
    name = name or f"step{step:06d}"
    sent = []
    for logger in trainer.loggers:
        for kind, send in IMAGE_SINKS:
            if isinstance(logger, kind):
                send(logger, tag, picture, step, name)
                sent.append(type(logger).__name__)
                break
    return sent
