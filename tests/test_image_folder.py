"""image_folder: layouts, seeded splits, class names, image modes, damaged files, crops and batching."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from lit_vision.data.image_folder import ImageFolderDataModule
from lit_vision.errors import UserError
from tests.fakes import (
    make_cat_to_name,
    make_image_folder,
    save_image,
    write_exif_rotated_jpeg,
    write_garbage_image,
    write_text_file,
    write_truncated_copy,
)

SMALL = {
    "image_size": 32,
    "num_workers": 0,
    "train_transforms": [{"RandomResizedCrop": {"size": 32, "antialias": True}}],
    "eval_transforms": [{"Resize": {"size": 36, "antialias": True}}, {"CenterCrop": {"size": 32}}],
}


def folder_dm(root, **kwargs) -> ImageFolderDataModule:
    return ImageFolderDataModule(root=str(root), **{**SMALL, **kwargs})


def test_class_folders_split_8_1_1_stratified_and_seeded(tmp_path):
    make_image_folder(tmp_path, per_class=20)
    dm = folder_dm(tmp_path, num_classes=None, split_seed=3)
    dm.setup()
    sizes = {k: len(v) for k, v in dm.datasets.items()}
    assert sizes == {"train": 48, "val": 6, "test": 6}
    for stage in ("val", "test"):
        labels = [label for _, label in dm.datasets[stage].samples]
        assert np.bincount(labels).tolist() == [2, 2, 2]  # every class in every split
    assert dm.num_classes == 3 and dm.class_names == ["daisy", "rose", "tulip"]
    again = folder_dm(tmp_path, split_seed=3)
    again.setup()
    other = folder_dm(tmp_path, split_seed=4)
    other.setup()
    assert again.datasets["val"].samples == dm.datasets["val"].samples
    assert other.datasets["val"].samples != dm.datasets["val"].samples
    images, labels = next(iter(dm.train_dataloader()))
    assert images.dtype == torch.uint8 and images.shape == (32, 3, 32, 32) and labels.dtype == torch.int64
    normalised = dm.on_after_batch_transfer((images, labels), 0)[0]
    assert normalised.dtype == torch.float32 and abs(float(normalised.mean())) < 2


def test_ratios_may_be_given_as_parts(tmp_path):
    make_image_folder(tmp_path, per_class=10)
    dm = folder_dm(tmp_path, ratios=[6, 2, 2])
    dm.setup()
    assert {k: len(v) for k, v in dm.datasets.items()} == {"train": 18, "val": 6, "test": 6}


def test_train_valid_test_folders_are_used_as_given_and_val_is_accepted(tmp_path):
    make_image_folder(tmp_path / "a", per_class={"train": 4, "valid": 2, "test": 1}, formats=("jpg",))
    dm = folder_dm(tmp_path / "a")
    dm.setup()
    assert {k: len(v) for k, v in dm.datasets.items()} == {"train": 12, "val": 6, "test": 3}
    assert all("/valid/" in path for path, _ in dm.datasets["val"].samples)
    make_image_folder(tmp_path / "b", per_class={"train": 4, "val": 2})
    dm = folder_dm(tmp_path / "b")
    dm.setup()
    # no test/ folder: the validation split is tested
    assert dm.datasets["test"].samples == dm.datasets["val"].samples
    assert all("/val/" in path for path, _ in dm.datasets["val"].samples)


def test_train_folder_without_valid_gets_a_carved_validation_split(tmp_path):
    make_image_folder(tmp_path, per_class={"train": 9, "test": 2})
    dm = folder_dm(tmp_path)
    dm.setup()
    assert len(dm.datasets["val"]) == 3 and len(dm.datasets["train"]) == 24 and len(dm.datasets["test"]) == 6


def test_cat_to_name_json_gives_display_names(tmp_path):
    make_image_folder(tmp_path, classes=("1", "10", "2"), per_class={"train": 2, "valid": 1})
    make_cat_to_name(tmp_path, {"1": "pink primrose", "10": "globe thistle", "2": "hard-leaved orchid"})
    dm = folder_dm(tmp_path, class_map="cat_to_name.json")
    dm.setup()
    # folders sorted as ImageFolder sorts them (as strings), names from the JSON
    assert dm.class_names == ["pink primrose", "globe thistle", "hard-leaved orchid"]
    assert dm.data_info()["folder_names"] == ["1", "10", "2"]
    (tmp_path / "bad.json").write_text('{"1": "x",}')
    with pytest.raises(UserError, match=r"bad.json:1:\d+: not valid JSON"):
        folder_dm(tmp_path, class_map="bad.json").setup()
    with pytest.raises(UserError, match=r"missing\.json does not exist"):
        folder_dm(tmp_path, class_map="missing.json").setup()


def test_num_classes_null_is_discovered_for_the_model_config(tmp_path):
    from omegaconf import OmegaConf

    from lit_vision.runs.run import fill_discovered_data_keys

    make_image_folder(tmp_path, classes=("a", "b", "c", "d"), per_class=10)
    cfg = OmegaConf.create({"data": {"num_classes": None, "image_size": None, "in_channels": 3}})
    dm = folder_dm(tmp_path, num_classes=None, image_size=None)
    fill_discovered_data_keys(cfg, dm)
    assert cfg.data.num_classes == 4 and cfg.data.image_size == 32  # the eval pipeline's output size
    with pytest.raises(UserError, match=r"data.num_classes=7 but .* has 4 class folders"):
        folder_dm(tmp_path, num_classes=7).discover()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: None, "does not exist"),
        (lambda root: root.mkdir(), "is empty"),
        (lambda root: write_text_file(root / "readme.txt"), "has no class sub-folders"),
        (lambda root: (root / "cat").mkdir(parents=True), r"class folder .*cat has no files"),
    ],
    ids=["missing", "empty", "no-class-folders", "empty-class"],
)
def test_root_problems_are_user_errors(tmp_path, make, message):
    root = tmp_path / "root"
    make(root)
    with pytest.raises(UserError, match=message):
        folder_dm(root).setup()


def test_unknown_class_in_valid_is_an_error(tmp_path):
    make_image_folder(tmp_path, per_class={"train": 2, "valid": 1})
    save_image(tmp_path / "valid" / "orchid" / "x.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(UserError, match=r"class folders that train/ does not have: \['orchid'\]"):
        folder_dm(tmp_path).setup()


def damaged_tree(root):
    make_image_folder(root, per_class=10, formats=("png", "jpg"))
    write_truncated_copy(root / "rose" / "rose_001.jpg", root / "rose" / "cut.jpg")
    write_truncated_copy(root / "rose" / "rose_000.png", root / "rose" / "cut.png")
    write_garbage_image(root / "tulip" / "noise.jpg")
    write_text_file(root / "daisy" / "notes.txt")
    return {"cut.jpg", "cut.png", "noise.jpg", "notes.txt"}


def test_damaged_files_are_named_before_training(tmp_path):
    damaged_tree(tmp_path)
    with pytest.raises(UserError) as err:
        folder_dm(tmp_path).setup()
    text = str(err.value)
    assert text.startswith("4 image file(s) cannot be used")
    assert "cut.jpg: truncated JPEG" in text and "cut.png: truncated PNG" in text
    assert "noise.jpg: not an image file" in text and "notes.txt: not an image file" in text
    assert "data.on_bad_sample=skip" in text


def test_skip_leaves_damaged_files_out_and_logs_each_once(tmp_path, caplog):
    bad = damaged_tree(tmp_path)
    dm = folder_dm(tmp_path, on_bad_sample="skip")
    with caplog.at_level(logging.WARNING):
        dm.setup()
    used = {path.rsplit("/", 1)[-1] for ds in dm.datasets.values() for path, _ in ds.samples}
    assert not used & bad
    assert sum(len(ds) for name, ds in dm.datasets.items() if name != "test") + len(dm.datasets["test"]) == 30
    for name in bad:
        assert sum(name in r.getMessage() for r in caplog.records) == 1
    assert "Skipped 4 unreadable image file(s) of 34" in caplog.text


def test_damage_inside_the_pixel_data_is_caught_by_full_check_or_at_decoding(tmp_path, caplog):
    make_image_folder(tmp_path, per_class={"train": 4, "valid": 1}, formats=("png",), size=(64, 64))
    path = tmp_path / "train" / "daisy" / "daisy_000.png"
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 50] = b"\x13" * 50  # pixel data damaged; header and IEND intact
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match=r"daisy_000.png: cannot be decoded"):
        folder_dm(tmp_path, check_images="full").setup()
    dm = folder_dm(tmp_path)  # the fast check cannot see it: decoding reports it
    dm.setup()
    dataset = dm.datasets["train"]
    index = [p for p, _ in dataset.samples].index(str(path))
    with pytest.raises(UserError, match=r"daisy_000.png: cannot be decoded"):
        dataset[index]
    dataset.on_bad_sample = "skip"
    with caplog.at_level(logging.WARNING):
        image, label = dataset[index]
        dataset[index]
    assert image.shape == (3, 32, 32) and label == dataset.samples[index + 1][1]
    assert caplog.text.count("Skipping unreadable image") == 1


def test_mixed_modes_become_the_configured_channels_with_one_note(tmp_path, caplog):
    make_image_folder(tmp_path, per_class=10, modes=("RGB", "L", "RGBA", "P", "I;16", "LA"))
    dm = folder_dm(tmp_path, check_images="full")
    with caplog.at_level(logging.INFO):
        dm.setup()
    notes = [r for r in caplog.records if "converted to 3 channel(s)" in r.getMessage()]
    assert len(notes) == 1 and "I;16" in notes[0].getMessage()
    for path, _ in dm.datasets["train"].samples[:12]:
        image, _ = dm.datasets["val"].__class__([(path, 0)], None, 3)[0]
        assert image.dtype == torch.uint8 and image.shape[0] == 3
    grey = folder_dm(tmp_path, in_channels=1, mean=[0.5], std=[0.25])
    grey.setup()
    images, _ = next(iter(grey.train_dataloader()))
    assert images.shape[1] == 1


def test_sixteen_bit_png_keeps_its_brightness(tmp_path):
    rgb = np.full((8, 8, 3), 200, np.uint8)
    save_image(tmp_path / "c" / "x.png", rgb, mode="I;16")
    from lit_vision.data.image_io import decode_image_file

    image = decode_image_file(tmp_path / "c" / "x.png", 3)
    assert image.dtype == torch.uint8 and abs(int(image.float().mean()) - 200) <= 1


def test_exif_orientation_is_applied(tmp_path):
    from lit_vision.data.image_io import decode_image_file

    stored = np.zeros((20, 40, 3), np.uint8)  # wide as stored
    stored[:, :20] = 255
    path = write_exif_rotated_jpeg(tmp_path / "phone.jpg", stored, orientation=6)
    image = decode_image_file(path, 3)
    assert image.shape == (3, 40, 20)  # displayed upright: tall
    assert image[:, :20].float().mean() > 200 and image[:, 20:].float().mean() < 50


def test_ten_crop_batches_are_n_by_crops(tmp_path):
    make_image_folder(tmp_path, per_class={"train": 2, "valid": 2})
    dm = folder_dm(tmp_path, eval_transforms=[{"Resize": {"size": 40}}, {"TenCrop": {"size": 32}}])
    dm.setup()
    images, labels = next(iter(dm.val_dataloader()))
    assert images.shape == (6, 10, 3, 32, 32) and labels.shape == (6,)
    normalised = dm.normalize(images)
    assert normalised.shape == images.shape
    five = folder_dm(tmp_path, eval_transforms=[{"Resize": {"size": 40}}, {"FiveCrop": {"size": 32}}])
    five.setup()
    assert next(iter(five.test_dataloader()))[0].shape == (6, 5, 3, 32, 32)


def test_pipelines_without_a_fixed_size_say_how_to_fix_it(tmp_path):
    make_image_folder(tmp_path, per_class={"train": 2, "valid": 2})
    save_image(tmp_path / "valid" / "rose" / "wide.png", np.zeros((40, 90, 3), np.uint8))
    dm = folder_dm(tmp_path, eval_transforms=[{"Resize": {"size": 36}}])
    dm.setup()
    with pytest.raises(UserError, match=r"data.eval_transforms produces images of different sizes"):
        next(iter(dm.val_dataloader()))


def test_float_steps_in_the_lists_are_refused_with_the_fix():
    with pytest.raises(UserError, match=r"data.train_transforms item 2 is Normalize.*data.mean"):
        ImageFolderDataModule(
            root="x",
            train_transforms=[{"RandomCrop": {"size": 8}}, {"Normalize": {"mean": [0.5], "std": [0.5]}}],
        )
    with pytest.raises(UserError, match=r"data\.eval_transforms: unknown transform 'Resise'"):
        ImageFolderDataModule(root="x", eval_transforms=["Resise"])


def test_workers_decode_in_parallel(tmp_path):
    make_image_folder(tmp_path, per_class=10)
    dm = folder_dm(tmp_path, num_workers=1, batch_size=8)
    dm.setup()
    loader = dm.train_dataloader()
    assert loader.num_workers == 1 and loader.persistent_workers
    assert sum(len(labels) for _, labels in loader) == 24


def test_shuffle_order_depends_only_on_seed_and_epoch(tmp_path):
    make_image_folder(tmp_path, per_class=10)

    def order(epoch: int) -> list[int]:
        torch.manual_seed(epoch + 100)  # the global RNG must not matter
        dm = folder_dm(tmp_path, split_seed=5, batch_size=6)
        dm.setup()
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)
        return [int(v) for _, labels in loader for v in labels]

    assert order(0) == order(0) and order(0) != order(1)
