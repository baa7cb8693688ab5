"""A grid of sample images titled with the predicted label and its probability over the true label.

Green titles are right, red ones wrong (the FashionMNIST tutorial's "predictions vs. actuals" figure).
The same images (the start of the first validation batch) are shown every time, so the grids of
successive epochs can be compared; the test stage gets one grid of its own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import lightning as L
import torch
from torch import Tensor

from lit_vision.callbacks.base import STAGES, FirstBatchPicture
from lit_vision.callbacks.outputs import class_names_of, class_probabilities
from lit_vision.viz.images import figure_to_array, single_view, unnormalize


class ClassificationPredictionGrid(FirstBatchPicture):
    """Logs ``predictions/val`` (every due epoch) and ``predictions/test`` figures to TensorBoard.

    Args:
        num_images: how many images of the first evaluated batch to show.
        columns: images per row.
        stages: ``val`` and/or ``test``.
        every_n_epochs / max_overhead: when a validation grid is due (see ``EpochSchedule``).
        dpi: resolution of the figure.
    """

    def __init__(
        self,
        num_images: int = 16,
        columns: int = 8,
        stages: Sequence[str] = STAGES,
        every_n_epochs: int = 1,
        max_overhead: float | None = 0.05,
        dpi: int = 80,
    ) -> None:
        super().__init__(stages, every_n_epochs, max_overhead)
        if num_images < 1 or columns < 1:
            raise ValueError("num_images and columns must be >= 1")
        self.num_images = int(num_images)
        self.columns = int(columns)
        self.dpi = int(dpi)

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, stage: str) -> None:
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            return
        images, labels = single_view(batch[0][: self.num_images]), batch[1][: self.num_images]
        if labels.ndim != 1 or labels.is_floating_point():
            return  # not per-image class labels (segmentation and regression draw their own figures)
        if not self.takes_images(trainer):
            return  # nowhere to show it: skip the drawing
        if isinstance(outputs, dict) and isinstance(outputs.get("logits"), Tensor):
            logits = outputs["logits"][: self.num_images]  # what the task scored (e.g. the mean of crops)
        else:
            with torch.no_grad():
                logits = pl_module(images)
        if logits.ndim != 2:
            return
        probabilities = class_probabilities(logits).cpu()
        confidence, predicted = probabilities.max(dim=1)
        names = class_names_of(pl_module, probabilities.shape[1])
        figure = self.figure(
            unnormalize(images, getattr(pl_module, "data_info", None)),
            predicted.tolist(),
            confidence.tolist(),
            labels.cpu().tolist(),
            names,
        )
        self.log_image(trainer, f"predictions/{stage}", figure_to_array(figure))

    def figure(
        self,
        images: Tensor,
        predicted: Sequence[int],
        confidence: Sequence[float],
        truth: Sequence[int],
        class_names: Sequence[str],
    ):
        """One tile per image: ``"<predicted>, <p>%"`` over ``"(<true>)"``, green if right, red if wrong."""
        from matplotlib.figure import Figure

        count = len(images)
        columns = min(self.columns, count)
        rows = math.ceil(count / columns)
        figure = Figure(figsize=(1.7 * columns, 2.0 * rows), dpi=self.dpi, layout="constrained")
        axes = figure.subplots(rows, columns, squeeze=False)
        for index, ax in enumerate(axes.flat):
            ax.set_axis_off()
            if index >= count:
                continue
            picture = images[index].permute(1, 2, 0).numpy()
            if picture.shape[2] == 1:
                ax.imshow(picture[..., 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            else:
                ax.imshow(picture, interpolation="nearest")
            right = predicted[index] == truth[index]
            ax.set_title(
                f"{class_names[predicted[index]]}, {confidence[index]:.0%}\n({class_names[truth[index]]})",
                color="green" if right else "red",
                fontsize=9,
            )
        return figure
