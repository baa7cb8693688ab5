"""Segmentation pictures in TensorBoard: image | ground truth | prediction | blended overlay, one row per image.

The rows are the first images of the first validation batch, so successive epochs show the same photos
(``segmentation/val``, slider = global step); the test stage adds one grid (``segmentation/test``).
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import numpy as np
import torch

from lit_vision.callbacks.base import STAGES, FirstBatchPicture
from lit_vision.viz.images import unnormalize
from lit_vision.viz.segmentation import DEFAULT_ALPHA, comparison_panel


class SegmentationImages(FirstBatchPicture):
    """Logs ``segmentation/<stage>`` grids for segmentation tasks (other tasks are left alone).

    Args:
        num_images: rows per grid (images taken from the start of the first batch).
        alpha: the mask's weight in the overlay (the tutorial's 0.3).
        stages: ``val`` and/or ``test``.
        every_n_epochs / max_overhead: when a validation grid is due (see ``EpochSchedule``).
    """

    def __init__(
        self,
        num_images: int = 4,
        alpha: float = DEFAULT_ALPHA,
        stages: Sequence[str] = STAGES,
        every_n_epochs: int = 1,
        max_overhead: float | None = None,
    ) -> None:
        super().__init__(stages, every_n_epochs, max_overhead)
        if num_images < 1:
            raise ValueError("num_images must be >= 1")
        self.num_images = int(num_images)
        self.alpha = float(alpha)

    def grid(
        self, pl_module: L.LightningModule, images: torch.Tensor, masks: torch.Tensor, preds: torch.Tensor
    ):
        """``(H_total, W_total, 3)`` uint8: one comparison row per image, stacked."""
        info = getattr(pl_module, "data_info", None) or {}
        colours = info.get("palette")
        pictures = (unnormalize(images, info) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        if pictures.shape[-1] == 1:
            pictures = np.repeat(pictures, 3, axis=-1)
        rows = [
            comparison_panel(pictures[i], masks[i].cpu(), preds[i].cpu(), self.alpha, colours)
            for i in range(len(pictures))
        ]
        gap = np.full((2, rows[0].shape[1], 3), 255, dtype=np.uint8)
        stacked: list[np.ndarray] = []
        for row in rows:
            if stacked:
                stacked.append(gap)
            stacked.append(row)
        return np.concatenate(stacked, axis=0)

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, stage: str) -> None:
        if not isinstance(batch, (tuple, list)) or len(batch) < 2 or batch[1].ndim != 3:
            return  # not (images, masks): not a segmentation batch
        writer = self.writer(trainer)
        if writer is None:
            return
        images, masks = batch[0][: self.num_images], batch[1][: self.num_images]
        preds = outputs.get("preds") if isinstance(outputs, dict) else None
        if preds is None:
            with torch.no_grad():
                preds = pl_module.predict_masks(pl_module(images))
        picture = self.grid(pl_module, images, masks, preds[: self.num_images])
        writer.add_image(f"segmentation/{stage}", picture, trainer.global_step, dataformats="HWC")
