"""Segmentation data: labelme rasterisation pixel by pixel, VOC reading, splits, transforms, the cats sample,
Oxford-IIIT Pet in its on-disk format, and the errors a user sees for bad data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from lit_vision.data.segmentation import (
    IGNORE_INDEX,
    CatsDataModule,
    OxfordPetsDataModule,
    SegmentationFolderDataModule,
)
from lit_vision.data.segmentation.labelme import LabelmeShape, load_labelme_sample, rasterize_shapes
from lit_vision.data.segmentation.labels import label_set_from_names, parse_labels_txt, voc_colormap
from lit_vision.data.segmentation.sample import (
    SAMPLE_VARIANTS,
    Variant,
    clip_polygon,
    render_variant,
    write_cats_sample,
)
from lit_vision.errors import UserError
from tests.fakes.segmentation import (
    make_labelme_dataset,
    make_oxford_pets,
    make_voc_dataset,
    shape,
    write_labelme_image,
)

LABELS = label_set_from_names(["__ignore__", "_background_", "cat", "dog"])


def folder_dm(root, **kwargs) -> SegmentationFolderDataModule:
    kwargs.setdefault("image_size", 32)
    kwargs.setdefault("batch_size", 4)
    return SegmentationFolderDataModule(root=root, **kwargs)


# ----------------------------------------------------------------------------- labels and rasterising
def test_labels_txt_ignore_and_background_convention(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("__ignore__\n_background_\ncat\n\n")
    labels = parse_labels_txt(path)
    assert labels.names == ("_background_", "cat")
    assert (
        labels.index("__ignore__") == IGNORE_INDEX
        and labels.index("cat") == 1
        and labels.index("dog") is None
    )
    path.write_text("__ignore__\ncat\n_background_\n")
    with pytest.raises(UserError, match="first class must be '_background_'"):
        parse_labels_txt(path)


def test_voc_colormap_matches_the_voc_palette():
    cmap = voc_colormap(256)
    assert (
        cmap[0].tolist() == [0, 0, 0] and cmap[1].tolist() == [128, 0, 0] and cmap[2].tolist() == [0, 128, 0]
    )
    assert cmap[15].tolist() == [192, 128, 128] and cmap[255].tolist() == [224, 224, 192]


def test_rasterise_rectangle_circle_polygon_ignore_in_drawing_order():
    shapes = [
        LabelmeShape("cat", "rectangle", [(12.0, 9.0), (2.0, 3.0)]),  # corners in any order
        LabelmeShape("dog", "circle", [(25.0, 15.0), (28.0, 15.0)]),  # centre + rim point: radius 3
        LabelmeShape("dog", "polygon", [(2.0, 15.0), (8.0, 15.0), (2.0, 19.0)]),
        LabelmeShape("__ignore__", "rectangle", [(4.0, 4.0), (6.0, 6.0)]),  # painted last: covers the cat
    ]
    mask = rasterize_shapes(shapes, 20, 32, LABELS)
    assert mask.dtype == np.uint8 and mask.shape == (20, 32)
    # rectangles include both corners (labelme's convention); the ignore square covers the cat
    expected = np.zeros((12, 32), np.uint8)
    expected[3:10, 2:13] = 1
    expected[4:7, 4:7] = IGNORE_INDEX
    assert np.array_equal(mask[:12], expected)
    # circle: every pixel within 2 px of the centre is dog, none beyond 4 px
    yy, xx = np.mgrid[:20, :32]
    distance = np.hypot(xx - 25, yy - 15)
    assert (mask[distance <= 2] == 2).all() and (mask[(distance >= 4) & (xx > 16)] == 0).all()
    # the triangle (2,15) (8,15) (2,19), filled with its outline as PIL (and so labelme) draws it
    triangle_rows = {15: range(2, 9), 16: range(2, 7), 17: range(2, 6), 18: range(2, 4), 19: range(2, 3)}
    for y, columns in triangle_rows.items():
        row = mask[y, :16]
        assert (row[list(columns)] == 2).all() and (np.delete(row, list(columns)) == 0).all(), y


def test_line_point_and_mask_shapes(tmp_path):
    import base64
    import io

    bitmap = np.zeros((3, 4), np.uint8)
    bitmap[1, :] = 255
    buffer = io.BytesIO()
    Image.fromarray(bitmap).convert("1").save(buffer, format="PNG")
    shapes = [
        shape("cat", [(0, 30), (39, 30)], "line"),
        shape("dog", [(20, 10)], "point"),
        {**shape("cat", [(2, 2), (5, 4)], "mask"), "mask": base64.b64encode(buffer.getvalue()).decode()},
    ]
    json_path = write_labelme_image(tmp_path, "a", shapes, (40, 40), LABELS)
    _, mask = load_labelme_sample(json_path, LABELS)
    assert (mask[26:35, 5] == 1).all() and mask[20, 5] == 0  # 10 px wide line around y = 30
    assert mask[10, 20] == 2 and mask[10, 24] == 2 and mask[10, 27] == 0  # disc of radius 5
    assert mask[3, 2:6].tolist() == [1, 1, 1, 1] and mask[2, 2:6].sum() == 0  # bitmap row 1 at y = 2 + 1


def test_labelme_with_embedded_image_data(tmp_path):
    json_path = write_labelme_image(
        tmp_path, "embedded", [shape("cat", [(1, 1), (6, 4)], "rectangle")], (8, 10), LABELS, embed_image=True
    )
    assert not (tmp_path / "embedded.png").exists()
    image, mask = load_labelme_sample(json_path, LABELS)
    assert image.shape == (8, 10, 3) and mask[2, 3] == 1 and mask[6, 8] == 0


# ----------------------------------------------------------------------------- folder datamodules
def test_labelme_folder_batches_and_masks_match_the_polygons(tmp_path):
    root = tmp_path / "lm"
    write_labelme_image(root, "a", [shape("cat", [(0, 0), (15, 0), (15, 31), (0, 31)])], (32, 32), LABELS)
    write_labelme_image(root, "b", [shape("dog", [(16, 0), (31, 0), (31, 31), (16, 31)])], (32, 32), LABELS)
    write_labelme_image(root, "c", [shape("__ignore__", [(0, 0), (31, 15)], "rectangle")], (32, 32), LABELS)
    (root / "labels.txt").write_text(LABELS.to_labels_txt())
    dm = folder_dm(root, val_fraction=0.34, test_fraction=0.0, split_seed=0)
    dm.discover()
    assert dm.num_classes == 3 and dm.class_names == ["background", "cat", "dog"]
    dm.setup()
    every = {name: dm.datasets[s][i] for s in ("train", "val") for i, name in enumerate(dm.datasets[s].names)}
    assert sorted(every) == ["a", "b", "c"]
    assert dm.datasets["test"] is dm.datasets["val"]
    image, mask = every["a"]
    assert image.dtype == torch.uint8 and image.shape == (3, 32, 32) and mask.dtype == torch.int64
    assert (mask[:, :16] == 1).all() and (mask[:, 17:] == 0).all()
    assert (every["b"][1][:, 16:] == 2).all() and (every["b"][1][:, :15] == 0).all()
    assert (every["c"][1][:16] == IGNORE_INDEX).all() and (every["c"][1][17:] == 0).all()
    images, masks = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert images.dtype == torch.float32 and images.shape[1:] == (3, 32, 32) and masks.shape[1:] == (32, 32)


def test_train_order_depends_on_seed_and_epoch_and_resumes_mid_epoch(tmp_path):
    root = make_labelme_dataset(tmp_path / "d", n=12, classes=("cat",))

    def masks_of(loader) -> list[torch.Tensor]:
        return [masks for _, masks in loader]

    def loader(epoch: int, seed: int = 5, resume: dict | None = None):
        dm = folder_dm(root, batch_size=2, val_fraction=0.25, test_fraction=0.0, split_seed=seed)
        dm.setup("fit")
        train = dm.train_dataloader()
        if resume is not None:
            train.load_state_dict(resume)
        train.sampler.set_epoch(epoch)
        return train

    full = masks_of(loader(2))
    assert len(full) == 5  # 9 training images in batches of 2
    assert all(
        torch.equal(a, b) for a, b in zip(masks_of(loader(2)), full, strict=True)
    )  # a new loader, same order
    assert not all(
        torch.equal(a, b) for a, b in zip(masks_of(loader(3)), full, strict=True)
    )  # the epoch reshuffles
    resumed = masks_of(loader(2, resume={"epoch": 2, "batches": 3}))
    assert len(resumed) == 2 and all(torch.equal(a, b) for a, b in zip(resumed, full[3:], strict=True))


def test_labels_are_discovered_without_labels_txt(tmp_path):
    root = make_labelme_dataset(tmp_path / "d", n=5, classes=("zebra", "ant"), labels_txt=False)
    dm = folder_dm(root)
    dm.discover()
    assert dm.class_names == ["background", "ant", "zebra"]


def test_voc_layout_with_split_lists_and_pixel_exact_masks(tmp_path):
    root = make_voc_dataset(
        tmp_path / "voc", n=6, num_classes=3, split_lists={"train": [0, 1, 2, 3], "val": [4, 5]}
    )
    dm = folder_dm(root, image_size=[32, 40])
    dm.setup()
    assert dm.layout == "voc" and dm.class_names == ["background", "class1", "class2"]
    assert dm.datasets["train"].names == ["0000", "0001", "0002", "0003"]
    assert dm.datasets["test"].names == ["0004", "0005"]  # no test.txt: test = val
    _, mask = dm.datasets["val"][0]
    expected = np.asarray(Image.open(root / "SegmentationClassPNG" / "0004.png"))
    assert np.array_equal(mask.numpy(), expected) and (mask[:2] == IGNORE_INDEX).all()


def test_voc_segmentation_class_folder_with_npy_masks(tmp_path):
    root = make_voc_dataset(
        tmp_path / "voc", n=6, num_classes=2, mask_dir="SegmentationClass", class_names=False
    )
    dm = folder_dm(root, image_size=[32, 40], cache=False, val_fraction=0.34, test_fraction=0.0)
    dm.setup()
    assert dm.num_classes == 2  # discovered from the mask values
    names = dm.datasets["train"].names + dm.datasets["val"].names
    for i, name in enumerate(dm.datasets["train"].names):
        _, mask = dm.datasets["train"][i]
        source = np.load(root / "SegmentationClass" / f"{name}.npy") if int(name) % 2 else None
        if source is not None:
            assert np.array_equal(mask.numpy(), np.where(source < 0, IGNORE_INDEX, source))
    assert sorted(names) == [f"{i:04d}" for i in range(6)]


def test_seeded_ratio_split_is_reproducible_and_disjoint(tmp_path):
    root = make_labelme_dataset(tmp_path / "d", n=10)
    splits = []
    for _ in range(2):
        dm = folder_dm(root, split_seed=3, val_fraction=0.2, test_fraction=0.2)
        dm.discover()
        splits.append(dm.split_positions())
    assert splits[0] == splits[1]
    parts = splits[0]
    assert [len(parts[k]) for k in ("train", "val", "test")] == [6, 2, 2]
    assert len(set(parts["train"]) | set(parts["val"]) | set(parts["test"])) == 10


def test_joint_augmentation_keeps_masks_nearest_and_colour_on_image_only(tmp_path):
    root = make_labelme_dataset(tmp_path / "d", n=4, size=(40, 40), classes=("cat", "dog"))
    transforms = [
        {"RandomResizedCrop": {"size": 24, "scale": [0.3, 1.0], "antialias": True}},
        {"RandomRotation": {"degrees": 30}},
        {"RandomHorizontalFlip": {"p": 0.5}},
        {"ColorJitter": {"brightness": 0.5, "hue": 0.1}},
    ]
    dm = folder_dm(root, image_size=24, train_transforms=transforms, val_fraction=0.25, test_fraction=0.25)
    dm.setup()
    torch.manual_seed(0)
    for _ in range(5):
        image, mask = dm.datasets["train"][0]
        assert image.shape == (3, 24, 24) and mask.shape == (24, 24)
        assert set(mask.unique().tolist()) <= {0, 1, 2}


def test_cache_keeps_decoded_samples(tmp_path):
    root = make_labelme_dataset(tmp_path / "d", n=5)
    cached = folder_dm(root, cache=True)
    cached.setup()
    assert len(cached.datasets["train"]._cached) == len(cached.datasets["train"])
    uncached = folder_dm(root, cache=False)
    uncached.setup()
    assert not uncached.datasets["train"]._cached
    a, b = cached.datasets["val"][0], uncached.datasets["val"][0]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


# ----------------------------------------------------------------------------- the cats sample
def test_clip_polygon_to_the_crop():
    square = [(-5.0, -5.0), (5.0, -5.0), (5.0, 5.0), (-5.0, 5.0)]
    clipped = clip_polygon(square, 10, 10)
    assert sorted(clipped) == sorted([(0.0, 0.0), (5.0, 0.0), (5.0, 5.0), (0.0, 5.0)])


def test_sample_variant_moves_the_polygon_with_the_pixels():
    image = Image.new("RGB", (100, 60))
    shapes = [shape("cat", [(10, 10), (50, 10), (50, 50), (10, 50)])]
    out, moved = render_variant(image, shapes, Variant("v", (20, 0, 100, 60), scale=0.5, hflip=True))
    assert out.size == (40, 30)
    xs = sorted({p[0] for p in moved[0]["points"]})
    ys = sorted({p[1] for p in moved[0]["points"]})
    # crop x 20..100 keeps 20..50 -> 0..30 -> scaled 0..15 -> flipped in a 40 px wide image: 25..40
    assert xs == [25.0, 40.0] and ys == [5.0, 25.0]


def test_chelsea_sample_is_a_labelme_folder_that_data_cats_reads(tmp_path):
    """The chelsea sample (fast tests train on it) is written on request only, and data=cats reads it."""
    root = write_cats_sample(tmp_path / "chelsea")
    assert len(list(root.glob("*.json"))) == len(SAMPLE_VARIANTS) >= 12
    assert (root / "labels.txt").read_text().splitlines() == ["__ignore__", "_background_", "cat"]
    doc = json.loads((root / "chelsea_00.json").read_text())
    assert doc["imageData"] is None and len(doc["shapes"][0]["points"]) >= 40
    dm = CatsDataModule(root=root, default_root=tmp_path / "cats", image_size=32, batch_size=4, split_seed=0)
    dm.setup()
    assert dm.layout == "labelme" and dm.root == root
    assert {k: len(v) for k, v in dm.datasets.items()} == {"train": 10, "val": 3, "test": 3}
    _, mask = dm.datasets["train"][0]
    assert 0.4 < mask.float().mean() < 0.95  # the cat covers most but not all of the frame
    assert not (tmp_path / "cats").exists()


def test_cats_without_sample_needs_data(tmp_path):
    dm = CatsDataModule(root=tmp_path / "missing", default_root=tmp_path / "missing", sample_if_missing=False)
    with pytest.raises(UserError, match="does not exist"):
        dm.discover()


# ----------------------------------------------------------------------------- Oxford-IIIT Pet
@pytest.mark.parametrize(
    ("species", "mask_mode", "names", "train_val"),
    [
        ("cat", "binary", ["background", "cat"], 4),
        ("dog", "trimap", ["background", "dog", "border"], 4),
        ("all", "binary", ["background", "pet"], 8),
    ],
)
def test_oxford_pets_species_filter_and_mask_modes(tmp_path, species, mask_mode, names, train_val):
    root = make_oxford_pets(tmp_path, n_cats=4, n_dogs=4, n_test=2)
    dm = OxfordPetsDataModule(
        root=root,
        species=species,
        mask_mode=mask_mode,
        image_size=32,
        val_fraction=0.25,
        cache=False,
        num_classes=None,
    )
    dm.setup()
    assert dm.class_names == names
    train, val, test = (dm.datasets[s] for s in ("train", "val", "test"))
    assert len(train) + len(val) == train_val and len(test) == (4 if species == "all" else 2)
    every_name = train.names + val.names + test.names
    if species == "cat":
        assert all(n[0].isupper() for n in every_name)
    if species == "dog":
        assert all(n[0].islower() for n in every_name)
    _, mask = train[0]
    values = set(mask.unique().tolist())
    assert values <= ({0, 1, 2} if mask_mode == "trimap" else {0, 1, IGNORE_INDEX}) and 1 in values
    assert (IGNORE_INDEX in values) == (mask_mode == "binary")


def test_oxford_pets_offline_error_names_the_expected_files(tmp_path):
    dm = OxfordPetsDataModule(root=tmp_path, download=False)
    with pytest.raises(UserError, match=r"oxford-iiit-pet/annotations/trimaps.*download=true"):
        dm.setup()


# ----------------------------------------------------------------------------- bad input
def test_missing_and_empty_roots(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        folder_dm(tmp_path / "nope").discover()
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="neither labelme annotations"):
        folder_dm(tmp_path / "empty").discover()


def test_mask_with_another_size_than_its_image(tmp_path):
    root = make_voc_dataset(tmp_path / "voc", n=4)
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(root / "SegmentationClassPNG" / "0002.png")
    with pytest.raises(UserError, match=r"0002.png: the mask is 10 x 10 .* is 32 x 40"):
        folder_dm(root).setup()


def test_mask_value_outside_the_label_set(tmp_path):
    root = make_voc_dataset(tmp_path / "voc", n=4, num_classes=3)
    bad = np.zeros((32, 40), np.uint8)
    bad[5, 5] = 7
    Image.fromarray(bad).save(root / "SegmentationClassPNG" / "0001.png")
    with pytest.raises(UserError, match=r"0001.png: mask value\(s\) \[7\] are not classes"):
        folder_dm(root).setup()


def test_unknown_label_and_short_polygon(tmp_path):
    root = make_labelme_dataset(tmp_path / "d", n=4)
    write_labelme_image(root, "zz", [shape("cat", [(1, 1), (9, 9)], "rectangle")], (32, 40), LABELS)
    doc = json.loads((root / "zz.json").read_text())
    doc["shapes"][0]["label"] = "horse"
    (root / "zz.json").write_text(json.dumps(doc))
    with pytest.raises(UserError, match=r"zz.json: shape 0 has label 'horse', which is not in .*labels.txt"):
        folder_dm(root).setup()
    doc["shapes"] = [shape("cat", [(1, 1), (5, 5)])]
    (root / "zz.json").write_text(json.dumps(doc))
    with pytest.raises(UserError, match=r"zz.json: shape 0 \(label 'cat'\) is a polygon with 2 point\(s\)"):
        folder_dm(root).setup()


def test_unreadable_image_and_broken_json(tmp_path):
    root = make_labelme_dataset(tmp_path / "d", n=4)
    (root / "img_001.png").write_bytes(b"not an image")
    with pytest.raises(UserError, match=r"img_001.png: cannot read the image"):
        folder_dm(root).setup()
    root2 = make_labelme_dataset(tmp_path / "e", n=4)
    (root2 / "img_002.json").write_text('{"shapes": [ }')
    with pytest.raises(UserError, match=r"img_002.json: not valid JSON \(line 1, column"):
        folder_dm(root2).setup()


def test_too_few_images_for_the_split(tmp_path):
    root = make_labelme_dataset(tmp_path / "d", n=2)
    with pytest.raises(UserError, match="split is empty"):
        folder_dm(root, val_fraction=0.2, test_fraction=0.2).setup()
