"""Segmentation pictures a user can read (issue 17, point 15): a visible overlay with an outline, titled
columns, each row's IoU, PNGs in the run folder, and confusion matrices that say what they count."""

from __future__ import annotations

import math

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lit_vision.callbacks.confusion_matrix import ConfusionMatrixCallback
from lit_vision.callbacks.segmentation_images import SegmentationImages, image_iou
from lit_vision.viz.segmentation import (
    CONTOUR_COLOUR,
    boundaries,
    comparison_grid,
    comparison_panel,
    comparison_tiles,
    contour_overlay,
)

IGNORE = 255


def square_mask(size: int = 12, low: int = 3, high: int = 9) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    mask[low:high, low:high] = 1
    return mask


def test_the_overlay_is_outlined_and_at_least_half_colour_on_a_dark_photo():
    photo = np.full((12, 12, 3), 40, np.uint8)
    mask = square_mask()
    overlay = contour_overlay(photo, mask)
    edge = boundaries(mask)
    assert edge[3, 3] and edge[3, 8] and not edge[5, 5] and not edge[0, 0]
    assert overlay[3, 5].tolist() == list(CONTOUR_COLOUR)  # the square's outline
    # inside: half the photo, half a vivid red (VOC's dark red 128,0,0 scaled to 255,0,0)
    assert overlay[5, 5].tolist() == [148, 20, 20]
    assert overlay[0, 0].tolist() == [40, 40, 40]  # background keeps the photo
    # the row's fourth tile is that overlay
    panel = comparison_panel(photo, mask, mask)
    assert panel[5, 3 * 12 + 3 * 2 + 5].tolist() == [148, 20, 20]
    assert panel[3, 3 * 12 + 3 * 2 + 5].tolist() == list(CONTOUR_COLOUR)


def test_the_grid_titles_its_columns_and_labels_each_row_with_its_iou():
    photo = np.zeros((12, 12, 3), np.uint8)
    rows = [comparison_tiles(photo, square_mask(), square_mask()) for _ in range(2)]
    titled = comparison_grid(rows, ["IoU 1.00", "IoU 0.25"], title="val, epoch 3", min_tile=48, gap=4)
    assert titled.dtype == np.uint8
    label_w = titled.shape[1] - (4 * 48 + 3 * 4 + 4)
    assert label_w > 20  # room on the left for the row labels
    header = titled[: titled.shape[0] - (2 * 48 + 4 + 4)]
    assert header.shape[0] > 30  # the title line and the column titles
    column_titles = header[-18:]
    for c in range(4):  # dark text above each of the four columns
        x = label_w + c * (48 + 4)
        assert (column_titles[:, x : x + 48] < 128).any(), c
    rows_top = header.shape[0]
    for r in range(2):  # each row's label, left of its tiles
        band = titled[rows_top + r * 52 : rows_top + r * 52 + 48, :label_w]
        assert (band < 128).any(), r
    plain = comparison_grid(rows, None, titles=("", "", "", ""), min_tile=48, gap=4)
    assert plain.shape[1] == 4 * 48 + 3 * 4 + 4  # no label column without labels
    assert not (plain[: plain.shape[0] - (2 * 48 + 4 + 4)] < 128).any()  # and an empty header
    # the tiles themselves are enlarged copies: the outline of the square sits in the overlay tile
    overlay_x = label_w + 3 * 52
    tile = titled[rows_top : rows_top + 48, overlay_x : overlay_x + 48]
    assert tile[4 * 3 + 1, 4 * 5].tolist() == list(CONTOUR_COLOUR)


def test_image_iou_is_the_tasks_iou_without_background_and_ignored_pixels():
    target = torch.from_numpy(square_mask()).long()  # 36 foreground pixels
    prediction = torch.zeros_like(target)
    prediction[3:9, 3:6] = 1  # 18 of them
    assert math.isclose(image_iou(target, prediction, 2, IGNORE, exclude_background=True), 0.5)
    target[3:9, 6:9] = IGNORE  # the missed half is ignored: a perfect prediction
    assert math.isclose(image_iou(target, prediction, 2, IGNORE, exclude_background=True), 1.0)
    assert math.isnan(image_iou(torch.zeros_like(target), torch.zeros_like(target), 2, IGNORE, True))


class ToySegmentation(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.save_hyperparameters({"num_classes": 3, "ignore_index": IGNORE})
        self.net = nn.Conv2d(3, 3, 1)
        self.data_info = {"class_names": ["background", "cat", "dog"]}

    def forward(self, x):
        return self.net(x)

    def predict_masks(self, logits):
        return logits.argmax(dim=1)

    def training_step(self, batch, batch_idx):
        return F.cross_entropy(self(batch[0]), batch[1], ignore_index=IGNORE)

    def validation_step(self, batch, batch_idx):
        return {"preds": self(batch[0]).argmax(dim=1), "target": batch[1]}

    def test_step(self, batch, batch_idx):
        return {"preds": self(batch[0]).argmax(dim=1)}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def loader() -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(6, 3, 16, 16, generator=generator)
    masks = torch.randint(0, 3, (6, 16, 16), generator=generator)
    return DataLoader(TensorDataset(images, masks), batch_size=3)


def test_val_and_test_grids_are_saved_as_pngs_in_the_run_folder_without_tensorboard(tmp_path):
    pictures = SegmentationImages(num_images=2)
    confusion = ConfusionMatrixCallback(max_overhead=None)
    trainer = L.Trainer(
        max_epochs=2,
        logger=False,
        callbacks=[pictures, confusion],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(tmp_path),
        accelerator="cpu",
    )
    module = ToySegmentation()
    trainer.fit(module, loader(), loader())
    trainer.test(module, loader())
    folder = tmp_path / "segmentation"
    assert sorted(p.name for p in folder.iterdir()) == ["test.png", "val_epoch000.png", "val_epoch001.png"]
    width, height = Image.open(folder / "test.png").size
    assert width > height > 0  # four columns, two rows
    assert len(pictures.last_ious["test"]) == 2
    images, masks = next(iter(loader()))
    with torch.no_grad():
        preds = module(images[:2]).argmax(dim=1)
    expected = [image_iou(masks[i], preds[i], 3, IGNORE, True) for i in range(2)]
    assert pictures.last_ious["test"] == expected


def tick_rotations(figure) -> tuple[list[float], list[float]]:
    ax = figure.axes[0]
    return [t.get_rotation() for t in ax.get_xticklabels()], [t.get_rotation() for t in ax.get_yticklabels()]


def test_a_segmentation_confusion_matrix_counts_pixels_and_keeps_short_names_level():
    callback = ConfusionMatrixCallback(max_overhead=None)
    counts = torch.tensor([[40000, 152], [1000, 8000]])
    figure = callback.figure(counts, ["background", "cat"], "test", unit="pixels")
    assert figure.axes[0].get_title() == "pixel counts (49,152 pixels in all)"
    x_rotations, y_rotations = tick_rotations(figure)
    assert set(x_rotations) == {0.0} and set(y_rotations) == {0.0}
    figure = callback.figure(counts[:, :], ["a very long class name indeed", "cat"], "test", unit="images")
    assert figure.axes[0].get_title() == "image counts (49,152 images in all)"
    assert set(tick_rotations(figure)[0]) == {45.0}


def test_the_callback_counts_pixels_for_masks_and_images_for_labels(tmp_path):
    callback = ConfusionMatrixCallback(max_overhead=None)
    trainer = L.Trainer(
        max_epochs=1,
        logger=False,
        callbacks=[callback],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(tmp_path),
        accelerator="cpu",
    )
    trainer.fit(ToySegmentation(), loader(), loader())
    assert callback._unit == "pixels"
