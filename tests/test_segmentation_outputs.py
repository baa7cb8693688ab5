"""Segmentation outputs: palette masks and 70/30 overlays at the photo's size, labelme2voc, the TensorBoard
grid callback, and `python train.py model=unet data=cats` end to end on the shipped offline cats."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from lit_vision.callbacks.segmentation_images import SegmentationImages
from lit_vision.data.segmentation import SegmentationFolderDataModule
from lit_vision.data.segmentation.labelme import load_labelme_sample
from lit_vision.data.segmentation.labels import IGNORE_INDEX, label_set_from_names
from lit_vision.tools import labelme2voc
from lit_vision.viz.segmentation import (
    blend,
    comparison_panel,
    mask_to_image,
    probs_to_mask,
    write_segmentation_outputs,
)
from tests.fakes.segmentation import make_labelme_dataset
from tests.helpers import run_train_py


def test_palette_png_keeps_class_indices_and_colours():
    mask = np.array([[0, 1], [2, IGNORE_INDEX]], np.uint8)
    image = mask_to_image(mask)
    assert image.mode == "P" and np.array_equal(np.asarray(image), mask)
    assert image.getpalette()[:9] == [0, 0, 0, 128, 0, 0, 0, 128, 0]
    tutorial = mask_to_image(mask, colours=[[0, 0, 0], [0, 128, 0]])
    assert tutorial.getpalette()[3:6] == [0, 128, 0]


def test_outputs_at_the_photos_size_with_a_70_30_blend(tmp_path):
    photo = Image.fromarray(np.full((30, 40, 3), 200, np.uint8))
    mask = np.zeros((6, 8), np.uint8)
    mask[:, 4:] = 1  # right half is the object, at network resolution
    paths = write_segmentation_outputs(photo, mask, tmp_path, "photo")
    saved_mask = Image.open(paths["mask"])
    assert saved_mask.size == (40, 30) and saved_mask.mode == "P"
    values = np.asarray(saved_mask)
    assert (values[:, :20] == 0).all() and (values[:, 20:] == 1).all()
    overlay = np.asarray(Image.open(paths["overlay"]).convert("RGB")).astype(int)
    assert overlay.shape == (30, 40, 3)
    assert overlay[0, 0].tolist() == [140, 140, 140]  # 0.7 * 200 + 0.3 * black
    assert overlay[0, 39].tolist() == [178, 140, 140]  # 0.7 * 200 + 0.3 * (128, 0, 0)
    assert np.array_equal(np.asarray(blend(photo, mask)), overlay.astype(np.uint8))


def test_probabilities_to_mask_with_threshold_and_resize():
    probs = torch.zeros(2, 2, 2)
    probs[1] = torch.tensor([[0.2, 0.45], [0.55, 0.9]])
    probs[0] = 1 - probs[1]
    assert probs_to_mask(probs).tolist() == [[0, 0], [1, 1]]
    assert probs_to_mask(probs, threshold=0.4).tolist() == [[0, 1], [1, 1]]
    assert probs_to_mask(probs, size=(4, 6)).shape == (4, 6)


def test_comparison_panel_layout():
    image = np.zeros((8, 10, 3), np.uint8)
    target = np.ones((8, 10), np.uint8)
    panel = comparison_panel(image, target, np.zeros((8, 10), np.uint8))
    assert panel.shape == (8, 4 * 10 + 3 * 2, 3)
    assert panel[0, 12].tolist() == [128, 0, 0]  # ground-truth tile, class 1 colour


def test_labelme2voc_writes_the_voc_layout_that_training_reads_back(tmp_path, capsys):
    src = make_labelme_dataset(tmp_path / "lm", n=5, classes=("cat", "dog"))
    dst = tmp_path / "voc"
    assert labelme2voc.main([str(src), str(dst), "--labels", str(src / "labels.txt")]) == 0
    assert "5 images" in capsys.readouterr().out
    assert (dst / "class_names.txt").read_text().split() == ["_background_", "cat", "dog"]
    labels = label_set_from_names(["__ignore__", "_background_", "cat", "dog"])
    for name in ("img_000", "img_004"):
        _, expected = load_labelme_sample(src / f"{name}.json", labels)
        png = Image.open(dst / "SegmentationClassPNG" / f"{name}.png")
        assert png.mode == "P" and np.array_equal(np.asarray(png), expected)
        assert np.array_equal(np.load(dst / "SegmentationClass" / f"{name}.npy"), expected.astype(np.int32))
        assert (dst / "JPEGImages" / f"{name}.jpg").is_file()
        assert Image.open(dst / "SegmentationClassVisualization" / f"{name}.jpg").size == png.size
    dm = SegmentationFolderDataModule(root=dst, image_size=[32, 40], val_fraction=0.2, test_fraction=0.2)
    dm.setup()
    assert dm.layout == "voc" and dm.class_names == ["background", "cat", "dog"]
    assert labelme2voc.main([str(src), str(dst)]) == 2  # the output folder exists: clear error, no traceback
    assert "already exists" in capsys.readouterr().err


def test_grid_callback_draws_one_row_per_image():
    class Module:
        data_info = {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "palette": [[0, 0, 0], [0, 128, 0]]}

    callback = SegmentationImages(num_images=2)
    images = torch.rand(2, 3, 16, 12)
    masks = torch.zeros(2, 16, 12, dtype=torch.long)
    masks[:, :, 6:] = 1
    grid, ious = callback.grid(Module(), images, masks, masks)
    assert grid.ndim == 3 and grid.dtype == np.uint8 and grid.shape[1] > grid.shape[0]
    assert ious == [1.0, 1.0]  # one IoU per row: a perfect prediction
    # the truth and prediction tiles use the data's palette (not VOC's default dark red for class 1)
    pixels = grid.reshape(-1, 3)
    assert (pixels == [0, 128, 0]).all(axis=1).any() and not (pixels == [128, 0, 0]).all(axis=1).any()


def test_train_py_model_unet_data_cats_offline(tmp_path):
    """The acceptance command with no data in the default folder: the shipped real cat photos are trained on
    (named in the first lines), and the run folder holds metrics.json with val/test IoU and Dice,
    checkpoints and the TensorBoard segmentation images."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from lit_vision.data.segmentation.offline_cats import SHIPPED_IDS, shipped_cats_root

    run = tmp_path / "run"
    proc = run_train_py(
        [
            "model=unet",
            "data=cats",
            f"paths.data_dir={tmp_path / 'data'}",
            "data.image_size=32",
            "model.net.init_features=4",
            "trainer.max_epochs=2",
            # two 0.1 s epochs: the 2 % time budget would rightly skip the second grid
            "callbacks.segmentation_images.max_overhead=null",
            f"hydra.run.dir={run}",
        ]
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "offline sample" in proc.stdout + proc.stderr
    assert f"Data: {shipped_cats_root()} (images_masks layout): {len(SHIPPED_IDS)} annotated images" in (
        proc.stdout + proc.stderr
    )
    assert not (tmp_path / "data" / "cats").exists()
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("val/iou", "val/dice", "test/iou", "test/dice", "test/iou_cat", "test/pixel_acc"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["best_model_path"] and (run / "checkpoints" / "last.ckpt").is_file()
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0}).Reload()
    tags = events.Tags()["images"]
    assert "segmentation/val" in tags and "segmentation/test" in tags
    assert len(events.Images("segmentation/val")) == 2
    assert sorted(p.name for p in (run / "segmentation").iterdir()) == [
        "test.png",
        "val_epoch000.png",
        "val_epoch001.png",
    ]


@pytest.mark.slow
def test_cats_unet_learns_the_sample(tmp_path):
    """A short real training run of the default recipe on the chelsea sample reaches a useful IoU."""
    from lit_vision.data.segmentation.sample import write_cats_sample

    run = tmp_path / "run"
    proc = run_train_py(
        [
            "experiment=cats_unet",
            f"data.root={write_cats_sample(tmp_path / 'cats')}",
            "data.image_size=64",
            "trainer.max_epochs=30",
            f"hydra.run.dir={run}",
        ],
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test/iou"] > 0.75
