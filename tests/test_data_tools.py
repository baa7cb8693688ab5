"""The data tools: make_index, stats and digits_as_mnist (called in-process through their main())."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lit_vision.data.image_list import ImageListDataModule
from lit_vision.data.in_memory import channel_stats
from lit_vision.tools import digits_as_mnist, make_index, stats
from tests.fakes import make_cifar10, make_image_folder


def test_make_index_splits_class_folders_with_a_seed(tmp_path, capsys):
    make_image_folder(tmp_path / "images", per_class=10)
    (tmp_path / "images" / "rose" / "notes.txt").write_text("x")
    out = tmp_path / "index"
    assert (
        make_index.main(
            [str(tmp_path / "images"), "--out", str(out), "--ratios", "8", "1", "1", "--seed", "3"]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "skipped 1 files" in printed and f"data.train_index={out / 'train.txt'}" in printed
    lines = {name: (out / f"{name}.txt").read_text().splitlines() for name in ("train", "valid", "test")}
    assert [len(v) for v in lines.values()] == [24, 3, 3]
    assert (out / "classes.txt").read_text().split() == ["daisy", "rose", "tulip"]
    for line in lines["valid"]:
        path, label = line.rsplit(" ", 1)
        assert path.split("/")[0] == ["daisy", "rose", "tulip"][int(label)]
    again = tmp_path / "again"
    make_index.main([str(tmp_path / "images"), "--out", str(again), "--seed", "3"])
    assert (again / "valid.txt").read_text() == (out / "valid.txt").read_text()
    dm = ImageListDataModule(
        root=str(tmp_path / "images"),
        train_index=str(out / "train.txt"),
        val_index=str(out / "valid.txt"),
        test_index=str(out / "test.txt"),
        num_workers=0,
        image_size=32,
    )
    dm.setup()
    assert dm.class_names == ["daisy", "rose", "tulip"] and len(dm.datasets["train"]) == 24


def test_make_index_keeps_existing_train_valid_folders(tmp_path):
    make_image_folder(tmp_path, per_class={"train": 3, "valid": 2})
    assert make_index.main([str(tmp_path)]) == 0
    train = (tmp_path / "train.txt").read_text().splitlines()
    assert len(train) == 9 and all(line.startswith("train/") for line in train)
    assert len((tmp_path / "valid.txt").read_text().splitlines()) == 6
    assert not (tmp_path / "test.txt").exists()


def test_make_index_errors_without_class_folders(tmp_path, capsys):
    assert make_index.main([str(tmp_path / "none")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_stats_of_a_folder_match_the_pixels(tmp_path, capsys):
    from tests.fakes import save_image

    save_image(tmp_path / "a.png", np.full((4, 4, 3), [0, 255, 51], np.uint8))
    save_image(tmp_path / "sub" / "b.png", np.full((4, 8, 3), [255, 255, 51], np.uint8))
    assert stats.main([str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    # a has 16 pixels, b 32: red mean = 32/48
    assert result["images"] == 2
    assert result["mean"] == pytest.approx([round(32 / 48, 4), 1.0, 0.2], abs=1e-4)
    assert result["std"][0] == pytest.approx(round(float(np.std([0] * 16 + [1] * 32)), 4), abs=1e-4)


def test_stats_of_a_data_config_use_its_training_split(tmp_path, capsys):
    make_cifar10(tmp_path)
    assert stats.main(["data=cifar10", f"data.root={tmp_path}"]) == 0
    printed = capsys.readouterr().out
    from lit_vision.data.torchvision_sets import CIFAR10DataModule

    dm = CIFAR10DataModule(root=str(tmp_path), split_seed=42)  # train.yaml's seed
    dm.setup()
    mean, _ = channel_stats(dm.splits["train"].images)
    assert f"images: {len(dm.splits['train'])} (training split)" in printed
    assert f"data.mean=[{','.join(str(round(m, 4)) for m in mean)}]" in printed


def test_digits_as_mnist_writes_what_torchvision_and_the_datamodule_read(tmp_path, capsys):
    from torchvision.datasets import MNIST

    from lit_vision.data.torchvision_sets import MNISTDataModule

    assert digits_as_mnist.main([str(tmp_path), "--test-fraction", "0.2"]) == 0
    assert "experiment=mnist_cnn" in capsys.readouterr().out
    raw = tmp_path / "MNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(
        f"{n}{gz}"
        for n in (
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        )
        for gz in ("", ".gz")
    )
    train, test = MNIST(str(tmp_path), train=True), MNIST(str(tmp_path), train=False)
    assert len(train) + len(test) == 1797 and train.data.shape[1:] == (28, 28)
    assert abs(len(test) - 0.2 * 1797) < 10
    assert torch.bincount(test.targets).min() >= 30  # stratified: every digit in the test file
    # digits sit in the centre 20x20 like MNIST's: the 4-pixel frame is black
    assert int(train.data[:, :4].max()) == 0 and int(train.data[:, :, -4:].max()) == 0
    dm = MNISTDataModule(root=str(tmp_path))
    dm.setup()
    assert len(dm.splits["test"]) == len(test)


def test_digits_as_mnist_shifted_copies(tmp_path):
    counts = digits_as_mnist.write_digits_as_mnist(tmp_path, test_fraction=0.2, copies=2, gz=False)
    assert counts["train"] == 3 * (1797 - counts["test"])
