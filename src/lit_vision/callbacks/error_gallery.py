"""The worst test mistakes, as pictures: where a model fails, worst first.

- classification: the ``k`` misclassified test images with the highest confidence in their wrong class
  (calibrated by the task's temperature when it has one), titled ``predicted p% / (true)``;
- segmentation: the ``k`` test images with the lowest IoU, as image | truth | prediction | overlay rows.

The gallery goes to TensorBoard (``errors/test``) and to ``<run>/errors/test.png``; ``test.json`` beside it
names the images in the same order (file name where the data has files, else ``test #<index>``, the
position in the test split) with their labels, confidence or IoU. With ``grad_cam`` a classifier's
mistakes also get Grad-CAM maps for the predicted and the true class (``grad_cam/test``,
``<run>/errors/grad_cam_test.png``). Single-device runs (names follow the test loader's order).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torch.utils.data import ConcatDataset, Subset

from lit_vision.callbacks.base import MonitorCallback
from lit_vision.callbacks.outputs import class_names_of, ignore_index_of
from lit_vision.callbacks.segmentation_images import image_iou
from lit_vision.utils.io import write_json
from lit_vision.viz.images import figure_to_array, save_png, single_view, unnormalize
from lit_vision.viz.segmentation import OVERLAY_ALPHA, comparison_grid, comparison_tiles


@dataclass(order=True)
class Mistake:
    """One candidate: ``badness`` orders them (confidence of a wrong class, or ``1 - IoU``)."""

    badness: float
    index: int
    image: Tensor = field(compare=False)
    details: dict[str, Any] = field(compare=False)


def sample_name(dataset: Any, index: int) -> str:
    """A readable name of ``dataset[index]``: its file (``samples[i].path``, ``names[i]``), looking through
    ``Subset`` and ``ConcatDataset``; else ``test #<index>``."""
    position, current = index, dataset
    while True:
        if isinstance(current, Subset):
            position, current = int(current.indices[position]), current.dataset
        elif isinstance(current, ConcatDataset):
            part = int(np.searchsorted(current.cumulative_sizes, position, side="right"))
            position -= current.cumulative_sizes[part - 1] if part else 0
            current = current.datasets[part]
        else:
            break
    samples = getattr(current, "samples", None)
    if isinstance(samples, Sequence) and position < len(samples):
        item = samples[position]
        return str(getattr(item, "path", item[0] if isinstance(item, (tuple, list)) else item))
    names = getattr(current, "names", None)
    if isinstance(names, Sequence) and position < len(names):
        return str(names[position])
    return f"test #{index}"


class ErrorGallery(MonitorCallback):
    """Pictures of the ``k`` worst test mistakes (classification and segmentation; regression is left alone).

    Args:
        k: how many images.
        columns: images per row of the classification gallery.
        grad_cam: add Grad-CAM maps of a classifier's mistakes (pytorch-grad-cam; one backward pass each).
        alpha: the prediction's weight in segmentation overlays.
        save_dir: folder for the PNGs and ``test.json``; default ``<trainer.default_root_dir>/errors``.
        dpi: resolution of the classification figures.
    """

    def __init__(
        self,
        k: int = 16,
        columns: int = 8,
        grad_cam: bool = False,
        alpha: float = OVERLAY_ALPHA,
        save_dir: str | None = None,
        dpi: int = 80,
    ) -> None:
        super().__init__()
        if k < 1 or columns < 1:
            raise ValueError("k and columns must be >= 1")
        self.k = int(k)
        self.columns = int(columns)
        self.grad_cam = bool(grad_cam)
        self.alpha = float(alpha)
        self.save_dir = save_dir
        self.dpi = int(dpi)
        self._worst: list[Mistake] = []
        self._seen = 0
        self._kind: str | None = None
        # The entries of the last test.json written (worst first), for anyone who wants them.
        self.last_entries: list[dict[str, Any]] = []

    # ----------------------------------------------------------------- collecting
    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._worst, self._seen, self._kind = [], 0, None
        if trainer.world_size > 1:
            rank_zero_warn("ErrorGallery draws single-device tests only; skipped under several processes.")

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if not self.enabled(trainer) or trainer.world_size > 1 or dataloader_idx != 0:
            return
        if not isinstance(batch, (tuple, list)) or len(batch) < 2 or not isinstance(outputs, dict):
            return
        images, target = single_view(batch[0]), batch[1]
        start, self._seen = self._seen, self._seen + len(target)
        if target.is_floating_point():
            return  # regression
        logits = outputs.get("logits")
        if target.ndim == 1 and isinstance(logits, Tensor) and logits.ndim == 2:
            self._kind = "classification"
            self._add_classification(pl_module, images, logits, target, start)
        elif target.ndim == 3 and isinstance(outputs.get("preds"), Tensor):
            self._kind = "segmentation"
            self._add_segmentation(pl_module, images, outputs["preds"], target, start)

    def _keep(self, candidates: list[Mistake]) -> None:
        self._worst = sorted([*self._worst, *candidates], key=lambda m: (-m.badness, m.index))[: self.k]

    def _add_classification(
        self, pl_module: L.LightningModule, images: Tensor, logits: Tensor, target: Tensor, start: int
    ) -> None:
        scores = logits.detach().float()
        temperature = getattr(pl_module, "temperature", None)
        if temperature is not None:
            scores = scores / temperature
        confidence, predicted = scores.softmax(dim=1).max(dim=1)
        wrong = (predicted != target).nonzero().flatten()
        if not len(wrong):
            return
        # only the batch's own k most confident mistakes can enter the gallery
        wrong = wrong[confidence[wrong].argsort(descending=True)[: self.k]]
        floor = self._worst[-1].badness if len(self._worst) == self.k else -math.inf
        candidates = []
        for i in wrong.tolist():
            value = float(confidence[i])
            if value <= floor:
                break
            details = {"true": int(target[i]), "predicted": int(predicted[i]), "confidence": value}
            candidates.append(Mistake(value, start + i, images[i].detach().cpu(), details))
        self._keep(candidates)

    def _add_segmentation(
        self, pl_module: L.LightningModule, images: Tensor, preds: Tensor, masks: Tensor, start: int
    ) -> None:
        hparams = getattr(pl_module, "hparams", {}) or {}
        num_classes = int(hparams.get("num_classes") or 2)
        ignore = ignore_index_of(pl_module, masks)
        exclude = bool(hparams.get("miou_exclude_background", True))
        candidates = []
        for i in range(len(masks)):
            mask, pred = masks[i].cpu(), preds[i].cpu()
            iou = image_iou(mask, pred, num_classes, ignore, exclude)
            if math.isfinite(iou):
                details = {"iou": iou, "mask": mask, "prediction": pred}
                candidates.append(Mistake(1.0 - iou, start + i, images[i].detach().cpu(), details))
        self._keep(candidates)

    # ----------------------------------------------------------------- writing
    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.enabled(trainer) or trainer.world_size > 1 or self._kind is None:
            return
        folder = Path(self.save_dir) if self.save_dir else Path(trainer.default_root_dir) / "errors"
        dataset = getattr(_first_loader(trainer.test_dataloaders), "dataset", None)
        info = getattr(pl_module, "data_info", None)
        pictures = unnormalize(torch.stack([m.image for m in self._worst]), info) if self._worst else None
        if self._kind == "classification":
            names = class_names_of(pl_module, int((pl_module.hparams or {}).get("num_classes") or 0))
            entries = [
                {
                    "rank": rank,
                    "name": sample_name(dataset, m.index),
                    "index": m.index,
                    "true": _label(names, m.details["true"]),
                    "predicted": _label(names, m.details["predicted"]),
                    "confidence": m.details["confidence"],
                }
                for rank, m in enumerate(self._worst, start=1)
            ]
            image = (
                None if pictures is None else figure_to_array(self.classification_figure(pictures, entries))
            )
        else:
            entries = [
                {
                    "rank": rank,
                    "name": sample_name(dataset, m.index),
                    "index": m.index,
                    "iou": m.details["iou"],
                }
                for rank, m in enumerate(self._worst, start=1)
            ]
            image = None if pictures is None else self.segmentation_grid(pl_module, pictures, entries)
        self.last_entries = entries
        write_json(folder / "test.json", {"kind": self._kind, "k": self.k, "worst": entries})
        if image is None:
            return  # no mistake at all: the json says so with an empty list
        save_png(image, folder / "test.png")
        self.log_image(trainer, "errors/test", image, name="test")
        if self.grad_cam and self._kind == "classification":
            self._write_grad_cam(trainer, pl_module, entries, pictures, folder)

    def _write_grad_cam(self, trainer, pl_module, entries, pictures, folder) -> None:
        # imported here: the Grad-CAM module loads pytorch-grad-cam and OpenCV on first use
        from lit_vision.callbacks.grad_cam import cam_overlays, grad_cam_maps, last_conv_layer

        net = getattr(pl_module, "net", pl_module)  # the plain nn.Module: no Trainer to copy or hook around
        if last_conv_layer(net) is None:
            rank_zero_warn("ErrorGallery(grad_cam=true): the net has no Conv2d layer; no Grad-CAM maps.")
            return
        images = torch.stack([m.image for m in self._worst]).to(pl_module.device)
        if getattr(pl_module, "channels_last", False):
            images = images.contiguous(memory_format=torch.channels_last)
        predicted = [m.details["predicted"] for m in self._worst]
        true = [m.details["true"] for m in self._worst]
        overlays = [cam_overlays(pictures, grad_cam_maps(net, images, c)) for c in (predicted, true)]
        image = figure_to_array(self.grad_cam_figure(pictures, overlays, entries))
        save_png(image, folder / "grad_cam_test.png")
        self.log_image(trainer, "grad_cam/test", image, name="test")

    # ----------------------------------------------------------------- drawing
    def classification_figure(self, pictures: Tensor, entries: list[dict[str, Any]]):
        """One tile per mistake, worst first: ``#rank predicted p%`` over ``(true)`` in red."""
        from matplotlib.figure import Figure

        count = len(entries)
        columns = min(self.columns, count)
        rows = math.ceil(count / columns)
        figure = Figure(figsize=(1.8 * columns, 2.1 * rows + 0.4), dpi=self.dpi, layout="constrained")
        axes = figure.subplots(rows, columns, squeeze=False)
        for index, ax in enumerate(axes.flat):
            ax.set_axis_off()
            if index < count:
                entry = entries[index]
                _show(ax, pictures[index])
                ax.set_title(
                    f"#{entry['rank']} {entry['predicted']} {entry['confidence']:.0%}\n({entry['true']})",
                    color="red",
                    fontsize=9,
                )
        figure.suptitle("Most confident test mistakes: predicted, confidence (true)")
        return figure

    def grad_cam_figure(self, pictures: Tensor, overlays: list[np.ndarray], entries: list[dict[str, Any]]):
        """Per mistake: the image, Grad-CAM of the predicted class, Grad-CAM of the true class."""
        from matplotlib.figure import Figure

        per_row = 2
        rows = math.ceil(len(entries) / per_row)
        figure = Figure(figsize=(1.7 * 3 * per_row, 1.9 * rows + 0.4), dpi=self.dpi, layout="constrained")
        axes = figure.subplots(rows, 3 * per_row, squeeze=False)
        for ax in axes.flat:
            ax.set_axis_off()
        for i, entry in enumerate(entries):
            row, column = divmod(i, per_row)
            image_ax, pred_ax, true_ax = axes[row, 3 * column : 3 * column + 3]
            _show(image_ax, pictures[i])
            image_ax.set_title(f"#{entry['rank']}", fontsize=9)
            pred_ax.imshow(overlays[0][i], interpolation="nearest")
            pred_ax.set_title(f"why {entry['predicted']}", color="red", fontsize=9)
            true_ax.imshow(overlays[1][i], interpolation="nearest")
            true_ax.set_title(f"why {entry['true']}", color="green", fontsize=9)
        figure.suptitle("Grad-CAM of the most confident mistakes: predicted class | true class")
        return figure

    def segmentation_grid(
        self, pl_module: L.LightningModule, pictures: Tensor, entries: list[dict[str, Any]]
    ) -> np.ndarray:
        """Image | truth | prediction | overlay rows of the lowest-IoU images, labelled ``#rank IoU``."""
        colours = (getattr(pl_module, "data_info", None) or {}).get("palette")
        rgb = (pictures * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        if rgb.shape[-1] == 1:
            rgb = np.repeat(rgb, 3, axis=-1)
        rows = [
            comparison_tiles(rgb[i], m.details["mask"], m.details["prediction"], self.alpha, colours)
            for i, m in enumerate(self._worst)
        ]
        labels = [f"#{e['rank']} IoU {e['iou']:.2f}" for e in entries]
        return comparison_grid(rows, labels, title="Lowest-IoU test images")


def _first_loader(loaders: Any) -> Any:
    return loaders[0] if isinstance(loaders, (list, tuple)) and loaders else loaders


def _label(names: Sequence[str], index: int) -> str:
    return names[index] if 0 <= index < len(names) else str(index)


def _show(ax, picture: Tensor) -> None:
    array = picture.permute(1, 2, 0).numpy()
    if array.shape[2] == 1:
        ax.imshow(array[..., 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(array, interpolation="nearest")
