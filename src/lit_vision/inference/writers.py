"""Lightning prediction writers: each batch's results go to disk as soon as they are computed.

- classification: ``predictions.csv`` (file, then index / label / display name / probability of the top k
  classes) and ``predictions_grid.png`` (the first images as the model saw them, titled with the top class);
- segmentation: ``masks/<name>.png`` (palette PNG of class indices) and ``overlays/<name>.png`` (the photo
  blended 70/30 with the coloured mask), both at the photo's own size, and ``predictions.csv`` (file, mask,
  overlay, size and each class's share of the pixels).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from PIL import Image, ImageDraw, ImageFont

from lit_vision.data.image_io import decode_image_file
from lit_vision.inference.inputs import InputImage
from lit_vision.inference.tabular import prediction_columns
from lit_vision.utils.io import atomic_write_text
from lit_vision.viz.images import single_view, unnormalize
from lit_vision.viz.segmentation import DEFAULT_ALPHA, blend, mask_to_image, probs_to_mask

CSV_NAME = "predictions.csv"
GRID_NAME = "predictions_grid.png"


def output_stem(name: str) -> PurePosixPath:
    """Where ``name``'s outputs go under a folder: its relative path without suffix (absolute paths and
    ``..`` parts are reduced to the file name, so nothing is written outside the output folder)."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts:
        path = PurePosixPath(path.name)
    return path.with_suffix("")


class CsvPredictionWriter(BasePredictionWriter):
    """Base writer: one CSV row per input, written batch by batch; subclasses give header and rows."""

    def __init__(self, out_dir: str | Path, images: Sequence[InputImage]) -> None:
        super().__init__(write_interval="batch")
        self.out_dir = Path(out_dir)
        self.images = list(images)
        self.csv_path = self.out_dir / CSV_NAME
        self.written = 0
        self._file = None
        self._csv: Any = None

    def header(self) -> list[str]:
        """CSV column names."""
        raise NotImplementedError

    def rows(self, prediction: dict[str, torch.Tensor], batch: Any) -> list[list[Any]]:
        """CSV rows of one batch (and any files of its own)."""
        raise NotImplementedError

    def finish(self) -> None:
        """Called once after the last batch (figures that need every prediction)."""

    def outputs(self) -> dict[str, str]:
        """The files written, by kind."""
        return {"csv": str(self.csv_path)}

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._file = open(self.csv_path, "w", newline="")  # noqa: SIM115 - closed in on_predict_end
        self._csv = csv.writer(self._file)
        self._csv.writerow(self.header())

    def write_on_batch_end(
        self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0
    ) -> None:
        if len(prediction["index"]) == 0:  # a batch of unreadable files only (skipped)
            return
        rows = self.rows(prediction, batch)
        self._csv.writerows(rows)
        self.written += len(rows)

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close()
        self.finish()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._close()

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class ClassificationWriter(CsvPredictionWriter):
    """``predictions.csv`` with the top-k classes per image and a grid picture of the first images.

    Columns: ``file``, then for k = 1..top_k ``top{k}_index``, ``top{k}_label`` (the label in the training
    data: folder name, else the class index), ``top{k}_name`` (display name, e.g. from cat_to_name.json) and
    ``top{k}_prob``.
    """

    def __init__(
        self,
        out_dir: str | Path,
        images: Sequence[InputImage],
        class_names: Sequence[str],
        labels: Sequence[str] | None = None,
        top_k: int = 5,
        grid: int = 16,
        data_info: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(out_dir, images)
        self.class_names = [str(n) for n in class_names]
        self.labels = [str(v) for v in labels] if labels else [str(i) for i in range(len(self.class_names))]
        self.top_k = max(1, min(int(top_k), len(self.class_names)))
        self.grid = max(0, int(grid))
        self.data_info = data_info or {}
        self.grid_path = self.out_dir / GRID_NAME
        self._tiles: list[torch.Tensor] = []
        self._titles: list[str] = []

    def header(self) -> list[str]:
        columns = ["file"]
        for k in range(1, self.top_k + 1):
            columns += [f"top{k}_index", f"top{k}_label", f"top{k}_name", f"top{k}_prob"]
        return columns

    def rows(self, prediction: dict[str, torch.Tensor], batch: Any) -> list[list[Any]]:
        probs = prediction["scores"]
        top_p, top_i = probs.topk(self.top_k, dim=1)
        rows = []
        for index, p_row, i_row in zip(
            prediction["index"].tolist(), top_p.tolist(), top_i.tolist(), strict=True
        ):
            row: list[Any] = [self.images[index].name]
            for p, i in zip(p_row, i_row, strict=True):
                row += [i, self.labels[i], self.class_names[i], p]
            rows.append(row)
        self._keep_tiles(batch[0], prediction["index"].tolist(), top_p[:, 0].tolist(), top_i[:, 0].tolist())
        return rows

    def _keep_tiles(
        self, inputs: torch.Tensor, indices: list[int], probs: list[float], classes: list[int]
    ) -> None:
        room = self.grid - len(self._tiles)
        if room <= 0:
            return
        pictures = unnormalize(single_view(inputs[:room]), self.data_info)
        for picture, index, p, c in zip(pictures, indices, probs, classes, strict=False):
            self._tiles.append(picture)
            self._titles.append(
                f"{self.class_names[c]} {p:.0%}\n{PurePosixPath(self.images[index].name).name}"
            )

    def finish(self) -> None:
        if self._tiles:
            prediction_grid(self._tiles, self._titles).save(self.grid_path)

    def outputs(self) -> dict[str, str]:
        out = super().outputs()
        if self.grid:
            out["grid"] = str(self.grid_path)
        return out


def prediction_grid(
    tiles: Sequence[torch.Tensor], titles: Sequence[str], columns: int = 8, tile: int = 128
) -> Image.Image:
    """One RGB picture of ``[0, 1]`` image tiles ``(C, H, W)``, each captioned with its lines of ``titles``.

    Drawn with PIL (a matplotlib figure with titles costs seconds); small images are enlarged with nearest
    neighbours so their pixels stay visible.
    """
    font = ImageFont.load_default(size=12)
    line_height, pad = 15, 4
    lines = max(len(t.splitlines()) for t in titles)
    cell_w, cell_h = tile + 2 * pad, tile + 2 * pad + lines * line_height
    columns = min(columns, len(tiles))
    rows = math.ceil(len(tiles) / columns)
    sheet = Image.new("RGB", (columns * cell_w, rows * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    for position, (picture, title) in enumerate(zip(tiles, titles, strict=True)):
        array = (picture.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        image = Image.fromarray(array[..., 0] if array.shape[2] == 1 else array).convert("RGB")
        scale = tile / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        small = max(image.size) < tile // 2
        image = image.resize(size, Image.Resampling.NEAREST if small else Image.Resampling.BILINEAR)
        left, top = (position % columns) * cell_w, (position // columns) * cell_h
        sheet.paste(image, (left + pad + (tile - size[0]) // 2, top + pad + (tile - size[1]) // 2))
        for number, line in enumerate(title.splitlines()):
            while line and draw.textlength(line, font=font) > cell_w - 2 * pad:
                line = line[:-1]
            width = draw.textlength(line, font=font)
            xy = (left + (cell_w - width) / 2, top + 2 * pad + tile + number * line_height)
            draw.text(xy, line, fill="black", font=font)
    return sheet


class SegmentationWriter(CsvPredictionWriter):
    """Palette masks and overlays at each photo's own size, plus ``predictions.csv``.

    Columns: ``file``, ``mask``, ``overlay`` (paths relative to the output folder), ``height``, ``width``
    and ``fraction_<class>`` (share of the photo's pixels predicted as that class).

    Args:
        threshold: binary heads: foreground where p(class 1) > threshold; None: argmax.
        alpha: the mask's share of the overlay (the tutorial's 0.3).
        palette: RGB colour per class (default: the VOC colour map).
    """

    def __init__(
        self,
        out_dir: str | Path,
        images: Sequence[InputImage],
        class_names: Sequence[str],
        threshold: float | None = None,
        alpha: float = DEFAULT_ALPHA,
        palette: Sequence[Sequence[int]] | None = None,
    ) -> None:
        super().__init__(out_dir, images)
        self.class_names = [str(n) for n in class_names]
        self.threshold = threshold
        self.alpha = float(alpha)
        self.palette = palette
        self._stems: set[PurePosixPath] = set()

    def header(self) -> list[str]:
        return ["file", "mask", "overlay", "height", "width", *(f"fraction_{n}" for n in self.class_names)]

    def rows(self, prediction: dict[str, torch.Tensor], batch: Any) -> list[list[Any]]:
        rows = []
        for index, size, probs in zip(
            prediction["index"].tolist(), prediction["size"].tolist(), prediction["scores"], strict=True
        ):
            item = self.images[index]
            mask = probs_to_mask(probs, (int(size[0]), int(size[1])), self.threshold)
            photo = decode_image_file(item.path, 3).permute(1, 2, 0).numpy()
            stem = self._unique_stem(item.name)
            mask_path = Path("masks") / f"{stem}.png"
            overlay_path = Path("overlays") / f"{stem}.png"
            for relative in (mask_path, overlay_path):
                (self.out_dir / relative).parent.mkdir(parents=True, exist_ok=True)
            mask_to_image(mask, self.palette).save(self.out_dir / mask_path)
            blend(photo, mask, self.alpha, self.palette).save(self.out_dir / overlay_path)
            counts = np.bincount(mask.ravel(), minlength=len(self.class_names))[: len(self.class_names)]
            fractions = (counts / max(1, mask.size)).tolist()
            rows.append([item.name, mask_path.as_posix(), overlay_path.as_posix(), *mask.shape, *fractions])
        return rows

    def _unique_stem(self, name: str) -> PurePosixPath:
        stem = output_stem(name)
        if stem in self._stems:  # photo.jpg and photo.png in one folder
            stem = stem.with_name(f"{stem.name}_{PurePosixPath(name).suffix.lstrip('.').lower()}")
        self._stems.add(stem)
        return stem

    def outputs(self) -> dict[str, str]:
        out = super().outputs()
        out.update(masks=str(self.out_dir / "masks"), overlays=str(self.out_dir / "overlays"))
        return out


class ImageRegressionWriter(CsvPredictionWriter):
    """``predictions.csv`` with ``file`` and the predicted value(s) in the targets' units (columns named
    as :func:`lit_vision.inference.tabular.prediction_columns` names them for tables)."""

    def __init__(
        self, out_dir: str | Path, images: Sequence[InputImage], target_names: Sequence[str]
    ) -> None:
        super().__init__(out_dir, images)
        self.columns = prediction_columns(list(target_names))

    def header(self) -> list[str]:
        return ["file", *self.columns]

    def rows(self, prediction: dict[str, torch.Tensor], batch: Any) -> list[list[Any]]:
        values = prediction["scores"].reshape(len(prediction["index"]), -1).tolist()
        return [[self.images[i].name, *v] for i, v in zip(prediction["index"].tolist(), values, strict=True)]


class TableWriter(BasePredictionWriter):
    """The input table with prediction column(s) appended, written as ``predictions.csv`` at the end."""

    def __init__(self, out_dir: str | Path, frame: Any, target_names: Sequence[str]) -> None:
        super().__init__(write_interval="batch")
        self.out_dir = Path(out_dir)
        self.frame = frame
        self.columns = prediction_columns(list(target_names))
        self.csv_path = self.out_dir / CSV_NAME
        self.values = np.full((len(frame), len(self.columns)), np.nan)
        self.written = 0

    def write_on_batch_end(
        self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0
    ) -> None:
        index = prediction["index"].numpy()
        self.values[index] = prediction["scores"].reshape(len(index), -1).numpy()
        self.written += len(index)

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        table = self.frame.copy()
        for position, column in enumerate(self.columns):
            table[column] = self.values[:, position]
        atomic_write_text(self.csv_path, table.to_csv(index=False))

    def outputs(self) -> dict[str, str]:
        """The files written, by kind."""
        return {"csv": str(self.csv_path)}
