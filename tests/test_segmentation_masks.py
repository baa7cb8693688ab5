"""Mask files as users have them (0/255 PNGs, noisy JPEGs, palette and index PNGs, 16-bit, bad ones), the
images/ + masks/ layout paired by file name, and data.split=test."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from lit_vision.data.segmentation import IGNORE_INDEX, SegmentationFolderDataModule
from lit_vision.data.segmentation.masks import parse_mask_threshold, read_mask
from lit_vision.errors import UserError
from lit_vision.viz.segmentation import mask_to_image
from tests.fakes.segmentation import (
    disc_mask,
    make_images_masks_dataset,
    make_labelme_dataset,
    make_voc_dataset,
    paint,
    write_jpeg_mask,
)

SIZE = (48, 64)


def away_from_edges(truth: np.ndarray, margin: int = 2) -> np.ndarray:
    """Pixels whose (2 * margin + 1)-square neighbourhood holds one class only (JPEG noise sits at edges)."""
    padded = np.pad(truth, margin, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (2 * margin + 1, 2 * margin + 1))
    return windows.min(axis=(2, 3)) == windows.max(axis=(2, 3))


# ----------------------------------------------------------------------------- data.mask_threshold
@pytest.mark.parametrize(
    ("value", "parsed"),
    [("auto", "auto"), ("AUTO", "auto"), ("off", "off"), (False, "off"), (None, "off"), (128, 128), ("7", 7)],
)
def test_mask_threshold_values(value, parsed):
    assert parse_mask_threshold(value) == parsed


@pytest.mark.parametrize("value", [0, -3, 70000, 1.5, True, "half", "12x"])
def test_bad_mask_threshold_names_the_key(value):
    with pytest.raises(UserError, match=r"data.mask_threshold is .*auto.*off.*128"):
        parse_mask_threshold(value)


def test_png_0_255_mask_is_binary_not_ignore(tmp_path):
    truth = disc_mask()
    Image.fromarray(truth * 255).save(tmp_path / "m.png")
    assert np.array_equal(read_mask(tmp_path / "m.png"), truth)
    # as before, without the threshold rule: 255 is the ignore index
    off = read_mask(tmp_path / "m.png", "off")
    assert set(np.unique(off).tolist()) == {0, IGNORE_INDEX}


def test_noisy_jpeg_masks_grey_and_rgb_are_thresholded(tmp_path):
    truth = disc_mask()
    for name, rgb in (("grey.jpg", False), ("rgb.jpg", True)):
        stored = write_jpeg_mask(tmp_path / name, truth, quality=70, rgb=rgb)
        noisy = (stored > 0) & (stored < 255)
        assert noisy.sum() > 20, "the JPEG should carry compression noise for this test to mean anything"
        mask = read_mask(tmp_path / name)
        assert set(np.unique(mask).tolist()) <= {0, 1}
        assert np.array_equal(mask[away_from_edges(truth)], truth[away_from_edges(truth)]), name
        assert (mask != truth).mean() < 0.01, name


def test_one_bit_sixteen_bit_and_palette_0_255_masks_are_binary(tmp_path):
    truth = disc_mask()
    Image.fromarray(truth.astype(bool)).save(tmp_path / "bits.png")
    Image.fromarray(truth.astype(np.uint16) * 65535).save(tmp_path / "deep.png")
    palette = Image.fromarray(truth * 255, mode="L").convert("P")
    palette.save(tmp_path / "palette.png")
    modes = {name: Image.open(tmp_path / name).mode for name in ("bits.png", "deep.png", "palette.png")}
    assert modes["bits.png"] == "1" and modes["deep.png"].startswith("I") and modes["palette.png"] == "P"
    for name in ("bits.png", "deep.png", "palette.png"):
        assert np.array_equal(read_mask(tmp_path / name), truth), name


def test_index_masks_keep_their_values(tmp_path):
    index = np.zeros(SIZE, np.uint8)
    index[5:20, 5:30] = 1
    index[25:40, 30:60] = 2
    index[:2] = IGNORE_INDEX
    mask_to_image(index).save(tmp_path / "palette.png")  # VOC / labelme2voc palette PNG
    Image.fromarray(index).save(tmp_path / "grey.png")  # grey PNG of class indices
    Image.fromarray(disc_mask()).save(tmp_path / "zero_one.png")  # a 0/1 binary mask is an index mask too
    for name in ("palette.png", "grey.png"):
        assert np.array_equal(read_mask(tmp_path / name), index), name
    assert np.array_equal(read_mask(tmp_path / "zero_one.png"), disc_mask())


def test_explicit_threshold_binarises_any_grey_level(tmp_path):
    levels = np.zeros(SIZE, np.uint8)
    levels[:, 20:40] = 100
    levels[:, 40:] = 200
    Image.fromarray(levels).save(tmp_path / "levels.png")
    assert np.array_equal(read_mask(tmp_path / "levels.png", 150), (levels == 200).astype(np.uint8))
    assert np.array_equal(read_mask(tmp_path / "levels.png", "50"), (levels > 0).astype(np.uint8))


def test_mask_whose_values_fit_no_rule_is_named_with_the_fix(tmp_path):
    ramp = np.tile(np.linspace(0, 255, SIZE[1]).astype(np.uint8), (SIZE[0], 1))  # a grey picture, not a mask
    Image.fromarray(ramp).save(tmp_path / "photo_as_mask.png")
    with pytest.raises(
        UserError, match=r"photo_as_mask.png: its values fit no rule .*data.mask_threshold=128"
    ):
        read_mask(tmp_path / "photo_as_mask.png")
    assert read_mask(tmp_path / "photo_as_mask.png", 128).mean() == pytest.approx(0.5, abs=0.05)


# ----------------------------------------------------------------------------- images/ + masks/
def all_raw(dm: SegmentationFolderDataModule) -> dict[str, tuple]:
    """``{name: (image uint8 (3, H, W), mask (H, W))}`` of every split, untransformed."""
    out = {}
    for dataset in dm.datasets.values():
        for position, name in enumerate(dataset.names):
            out[name] = dataset.raw(position)
    return out


def test_images_and_masks_pair_by_name_whatever_the_extensions(tmp_path):
    truths = make_images_masks_dataset(tmp_path)
    dm = SegmentationFolderDataModule(root=tmp_path, split="test", image_size=32, num_workers=0)
    dm.setup()
    assert dm.layout == "images_masks" and dm.class_names == ["background", "class_1"]
    samples = all_raw(dm)
    assert sorted(samples) == sorted(truths)
    for name, truth in truths.items():
        image, mask = samples[name]
        mask = mask.numpy()
        keep = away_from_edges(truth)
        assert np.array_equal(mask[keep], truth[keep]), name
        # the image is the one painted from this mask (red where the class is), not another pair's
        red = image[0].numpy().astype(int) - image[2].numpy().astype(int)
        assert red[keep & (truth == 1)].mean() > 150 and red[keep & (truth == 0)].mean() < 30, name


def test_image_without_mask_is_named(tmp_path, caplog):
    make_images_masks_dataset(tmp_path)
    Image.fromarray(paint(disc_mask())).save(tmp_path / "images" / "cat.77.jpg")
    with pytest.raises(UserError, match=r"images/cat.77.jpg: no mask in .*masks.*masks/cat.77.png"):
        SegmentationFolderDataModule(root=tmp_path, image_size=32).discover()
    dm = SegmentationFolderDataModule(root=tmp_path, image_size=32, on_bad_sample="skip")
    with caplog.at_level(logging.WARNING, logger="lit_vision"):
        dm.discover()
    assert "cat.77.jpg" in caplog.text and "cat.77" not in [item.name for item in dm.items]
    assert len(dm.items) == 5


def test_mask_without_image_is_named_and_unused(tmp_path, caplog):
    make_images_masks_dataset(tmp_path)
    Image.fromarray(disc_mask() * 255).save(tmp_path / "masks" / "stray.png")
    dm = SegmentationFolderDataModule(root=tmp_path, image_size=32)
    with caplog.at_level(logging.WARNING, logger="lit_vision"):
        dm.discover()
    assert "stray.png" in caplog.text and len(dm.items) == 5


def test_two_images_with_one_name_are_ambiguous(tmp_path):
    make_images_masks_dataset(tmp_path)
    Image.fromarray(paint(disc_mask())).save(tmp_path / "images" / "dog.png")
    with pytest.raises(UserError, match=r"dog.png and .*dog.webp have the same name but for the extension"):
        SegmentationFolderDataModule(root=tmp_path).discover()


def test_folder_with_a_bad_mask_fails_before_training_naming_it(tmp_path):
    make_images_masks_dataset(tmp_path)
    ramp = np.tile(np.linspace(0, 255, SIZE[1]).astype(np.uint8), (SIZE[0], 1))
    Image.fromarray(ramp).save(tmp_path / "masks" / "cat.2.jpg")
    with pytest.raises(UserError, match=r"masks/cat.2.jpg: its values fit no rule"):
        SegmentationFolderDataModule(
            root=tmp_path, image_size=32, val_fraction=0.2, test_fraction=0.2
        ).setup()


def test_index_masks_in_the_images_masks_layout_find_their_classes(tmp_path):
    for i in range(5):
        index = np.zeros(SIZE, np.uint8)
        index[5 + i : 20, 5:30] = 1
        index[25:40, 30 + i : 60] = 2
        (tmp_path / "images").mkdir(exist_ok=True)
        (tmp_path / "masks").mkdir(exist_ok=True)
        Image.fromarray(paint(index, i)).save(tmp_path / "images" / f"{i}.png")
        Image.fromarray(index).save(tmp_path / "masks" / f"{i}.png")
    dm = SegmentationFolderDataModule(root=tmp_path, image_size=32, split="test")
    dm.setup()
    assert dm.num_classes == 3 and dm.class_names == ["background", "class_1", "class_2"]
    _, mask = dm.datasets["test"].raw(0)
    assert set(np.unique(mask.numpy()).tolist()) == {0, 1, 2}


# ----------------------------------------------------------------------------- data.split=test
@pytest.mark.parametrize("layout", ["images_masks", "voc", "voc_with_lists", "labelme"])
def test_split_test_puts_every_sample_in_the_test_split(tmp_path, layout):
    if layout == "images_masks":
        root, count = tmp_path, len(make_images_masks_dataset(tmp_path))
    elif layout == "labelme":
        root, count = make_labelme_dataset(tmp_path / "lm", n=7), 7
    else:
        lists = {"train": [0, 1, 2], "val": [3], "test": [4]} if layout == "voc_with_lists" else None
        root, count = make_voc_dataset(tmp_path / "voc", n=6, split_lists=lists), 6
    dm = SegmentationFolderDataModule(root=root, split="test", image_size=32, num_workers=0)
    dm.setup("test")
    assert list(dm.datasets) == ["test"] and len(dm.datasets["test"]) == count
    assert sum(len(masks) for _, masks in dm.test_dataloader()) == count
    with pytest.raises(UserError, match=r"no train split: with data.split=test"):
        dm.train_dataloader()
    normal = SegmentationFolderDataModule(root=root, image_size=32)
    normal.setup()
    assert len(normal.datasets["train"]) < count  # without split=test the folder is split


def test_unknown_split_value_is_refused():
    with pytest.raises(UserError, match=r"data.split is 'all'.*null.*test"):
        SegmentationFolderDataModule(root="anywhere", split="all")
