"""Segmentation pictures: image | truth | prediction | outlined overlay, one row per image, with each row's IoU.

The rows are the first images of the first validation batch, so successive epochs show the same photos.
Each grid goes to the loggers that take images (TensorBoard, MLflow, W&B: ``segmentation/val``, slider =
global step; ``segmentation/test`` once) and to a PNG in the run folder (``<run>/segmentation/val_epoch003.png``, ``test.png``), as the confusion matrices
do. The columns are titled; a row's label is its IoU, computed as the task computes ``val/iou``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torchmetrics.functional.classification import multiclass_confusion_matrix

from lit_vision.callbacks.base import STAGES, FirstBatchPicture
from lit_vision.callbacks.outputs import ignore_index_of
from lit_vision.tasks.segmentation_metrics import scores_from_confusion
from lit_vision.viz.images import save_png, unnormalize
from lit_vision.viz.segmentation import OVERLAY_ALPHA, comparison_grid, comparison_tiles


def image_iou(
    target: torch.Tensor,
    prediction: torch.Tensor,
    num_classes: int,
    ignore_index: int | None,
    exclude_background: bool,
) -> float:
    """One image's IoU (mean over its classes, background left out like the task's default); nan when no
    class is present in either mask."""
    confusion = multiclass_confusion_matrix(
        prediction.reshape(-1).long().cpu(),
        target.reshape(-1).long().cpu(),
        num_classes,
        ignore_index=ignore_index,
        validate_args=False,
    )
    return float(scores_from_confusion(confusion, exclude_background=exclude_background)["iou"])


class SegmentationImages(FirstBatchPicture):
    """Draws ``segmentation/<stage>`` grids for segmentation tasks (other tasks are left alone).

    Args:
        num_images: rows per grid (images taken from the start of the first batch).
        alpha: the colour's weight inside the predicted regions of the overlay (they are also outlined).
        stages: ``val`` and/or ``test``.
        every_n_epochs / max_overhead: when a validation grid is due (see ``EpochSchedule``).
        save_dir: folder for the PNGs; default ``<trainer.default_root_dir>/segmentation``.
        min_tile: smaller tiles are enlarged to this height (pixels) so the titles fit.
    """

    def __init__(
        self,
        num_images: int = 4,
        alpha: float = OVERLAY_ALPHA,
        stages: Sequence[str] = STAGES,
        every_n_epochs: int = 1,
        max_overhead: float | None = None,
        save_dir: str | None = None,
        min_tile: int = 64,
    ) -> None:
        super().__init__(stages, every_n_epochs, max_overhead)
        if num_images < 1:
            raise ValueError("num_images must be >= 1")
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alpha must be within [0, 1], got {alpha}")
        self.num_images = int(num_images)
        self.alpha = float(alpha)
        self.save_dir = save_dir
        self.min_tile = int(min_tile)
        # The IoU of each row of the last grid drawn per stage (for anyone who wants the numbers).
        self.last_ious: dict[str, list[float]] = {}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_fit_start(trainer, pl_module)
        # the one-time costs (font, colour map) are paid here, not against the first epoch's time budget
        blank = np.zeros((2, 2, 3), np.uint8)
        comparison_grid([comparison_tiles(blank, None, np.zeros((2, 2), np.uint8))], ["IoU"])

    def grid(
        self,
        pl_module: L.LightningModule,
        images: torch.Tensor,
        masks: torch.Tensor,
        preds: torch.Tensor,
        title: str | None = None,
    ) -> tuple[np.ndarray, list[float]]:
        """``((H, W, 3) uint8 picture, IoU per row)``: one titled comparison row per image."""
        info = getattr(pl_module, "data_info", None) or {}
        colours = info.get("palette")
        pictures = (unnormalize(images, info) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        if pictures.shape[-1] == 1:
            pictures = np.repeat(pictures, 3, axis=-1)
        hparams = getattr(pl_module, "hparams", {}) or {}
        num_classes = int(hparams.get("num_classes") or int(max(masks.max(), preds.max())) + 1)
        ignore = ignore_index_of(pl_module, masks)
        exclude = bool(hparams.get("miou_exclude_background", True))
        rows, ious = [], []
        for i in range(len(pictures)):
            target, prediction = masks[i].cpu(), preds[i].cpu()
            rows.append(comparison_tiles(pictures[i], target, prediction, self.alpha, colours))
            ious.append(image_iou(target, prediction, num_classes, ignore, exclude))
        labels = [f"IoU {iou:.2f}" if math.isfinite(iou) else "IoU n/a" for iou in ious]
        return comparison_grid(rows, labels, title=title, min_tile=self.min_tile), ious

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, stage: str) -> None:
        if not isinstance(batch, (tuple, list)) or len(batch) < 2 or batch[1].ndim != 3:
            return  # not (images, masks): not a segmentation batch
        images, masks = batch[0][: self.num_images], batch[1][: self.num_images]
        preds = outputs.get("preds") if isinstance(outputs, dict) else None
        if preds is None:
            with torch.no_grad():
                preds = pl_module.predict_masks(pl_module(images))
        title = f"{stage}, epoch {trainer.current_epoch}" if stage == "val" else "test"
        picture, ious = self.grid(pl_module, images, masks, preds[: self.num_images], title)
        self.last_ious[stage] = ious
        folder = Path(self.save_dir) if self.save_dir else Path(trainer.default_root_dir) / "segmentation"
        filename = f"val_epoch{trainer.current_epoch:03d}.png" if stage == "val" else "test.png"
        # warns once when no logger takes images; the PNG is saved anyway
        self.log_image(trainer, f"segmentation/{stage}", picture, name=Path(filename).stem)
        save_png(picture, folder / filename, compress_level=1)  # fast: it counts against the time budget
