"""MNIST / FashionMNIST / CIFAR-10 / CIFAR-100 from files generated in torchvision's exact layouts."""

from __future__ import annotations

import gzip
import pickle
from urllib.error import URLError

import pytest
import torch

from lit_vision.data.torchvision_sets import (
    CIFAR10DataModule,
    CIFAR100DataModule,
    FashionMNISTDataModule,
    MNISTDataModule,
)
from lit_vision.errors import UserError
from tests.fakes import make_cifar10, make_cifar100, make_fashion_mnist, make_mnist

CASES = [
    (MNISTDataModule, make_mnist, (1, 28), "0"),
    (FashionMNISTDataModule, make_fashion_mnist, (1, 28), "T-shirt/top"),
    (CIFAR10DataModule, make_cifar10, (3, 32), "airplane"),
    (CIFAR100DataModule, lambda root: make_cifar100(root, n_train=1000, n_test=100), (3, 32), "class_00"),
]


@pytest.mark.parametrize(
    ("cls", "make", "shape", "first_name"), CASES, ids=lambda v: getattr(v, "__name__", "")
)
def test_reads_the_official_layout_into_uint8_memory(cls, make, shape, first_name, tmp_path):
    make(tmp_path)
    dm = cls(root=str(tmp_path), batch_size=8, val_fraction=0.1, split_seed=0)
    dm.setup("fit")
    train, val, test = (dm.splits[k] for k in ("train", "val", "test"))
    assert train.images.dtype == torch.uint8 and train.images.shape[1:] == (shape[0], shape[1], shape[1])
    # official test split untouched; val carved from the official train split
    assert len(val) > 0 and len(train) + len(val) in (120, 100, 1000)
    assert len(test) in (40, 100)
    assert dm.class_names[0] == first_name and len(dm.class_names) == dm.num_classes
    assert dm.in_channels == shape[0] and dm.image_size == shape[1]
    assert len(dm.mean) == shape[0]  # computed from the training split when not configured
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (8, shape[0], shape[1], shape[1]) and labels.dtype == torch.int64
    info = dm.data_info()
    assert info["dataset"] and info["class_names"] == dm.class_names


def test_same_seed_same_split_other_seed_other_split(tmp_path):
    make_mnist(tmp_path)
    a, b, c = (MNISTDataModule(root=str(tmp_path), split_seed=s) for s in (1, 1, 2))
    for dm in (a, b, c):
        dm.setup()
    assert torch.equal(a.splits["val"].images, b.splits["val"].images)
    assert not torch.equal(a.splits["val"].images, c.splits["val"].images)


def test_missing_files_name_the_layout_and_the_download_switch(tmp_path):
    with pytest.raises(UserError) as err:
        MNISTDataModule(root=str(tmp_path / "data")).setup()
    text = str(err.value)
    assert str(tmp_path / "data" / "MNIST" / "raw" / "train-images-idx3-ubyte") in text
    assert "t10k-labels-idx1-ubyte" in text and "data.download=true" in text
    assert "digits_as_mnist" in text
    with pytest.raises(UserError, match=r"(?s)cifar-10-batches-py/data_batch_1.*data.download=true"):
        CIFAR10DataModule(root=str(tmp_path)).setup()


def test_gz_only_files_are_unpacked_and_root_may_point_inside_the_layout(tmp_path):
    make_mnist(tmp_path, plain=False, gz=True)
    raw = tmp_path / "MNIST" / "raw"
    assert not (raw / "train-images-idx3-ubyte").exists()
    dm = MNISTDataModule(root=str(raw))  # pointing at MNIST/raw itself works too
    dm.setup()
    assert (raw / "train-images-idx3-ubyte").is_file() and len(dm.splits["test"]) == 40


def test_truncated_idx_file_is_named(tmp_path):
    make_mnist(tmp_path)
    path = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(UserError, match=r"t10k-images-idx3-ubyte is truncated"):
        MNISTDataModule(root=str(tmp_path)).setup()


def test_images_and_labels_from_different_downloads(tmp_path):
    make_mnist(tmp_path)
    other = tmp_path / "other"
    make_mnist(other, n_test=30)
    (tmp_path / "MNIST/raw/t10k-labels-idx1-ubyte").write_bytes(
        (other / "MNIST/raw/t10k-labels-idx1-ubyte").read_bytes()
    )
    with pytest.raises(UserError, match="40 images but t10k-labels-idx1-ubyte holds 30 labels"):
        MNISTDataModule(root=str(tmp_path)).setup()


def test_damaged_cifar_batch_is_named(tmp_path):
    make_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"\x80\x02garbage")
    with pytest.raises(UserError, match=r"data_batch_3 is not a readable CIFAR pickle"):
        CIFAR10DataModule(root=str(tmp_path)).setup()
    make_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    with open(path, "wb") as f:
        pickle.dump({"data": b"", "batch_label": "x"}, f, protocol=2)
    with pytest.raises(UserError, match=r"data_batch_2 lacks the keys \['data', 'labels'\]"):
        CIFAR10DataModule(root=str(tmp_path)).setup()


def test_broken_gzip_is_named(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    make_mnist(tmp_path, plain=False, gz=True)
    gz = raw / "train-labels-idx1-ubyte.gz"
    gz.write_bytes(gzip.compress(b"\x00" * 100)[:20])
    with pytest.raises(UserError, match=r"train-labels-idx1-ubyte\.gz is not a complete gzip file"):
        MNISTDataModule(root=str(tmp_path)).setup()


def test_download_failure_offline_is_a_user_error(tmp_path, monkeypatch):
    def offline(self, train, download):
        raise URLError("no network")

    monkeypatch.setattr(MNISTDataModule, "_torchvision_dataset", offline)
    dm = MNISTDataModule(root=str(tmp_path), download=True)
    with pytest.raises(UserError, match=r"Downloading MNIST into .* failed: <urlopen error no network>"):
        dm.prepare_data()


def test_download_is_skipped_when_the_files_are_there(tmp_path, monkeypatch):
    make_cifar10(tmp_path)
    monkeypatch.setattr(CIFAR10DataModule, "_torchvision_dataset", lambda *a, **k: pytest.fail("download"))
    CIFAR10DataModule(root=str(tmp_path), download=True).prepare_data()


def test_empty_validation_split_is_explained(tmp_path):
    make_cifar100(tmp_path, n_train=200, n_test=100)  # 2 images per class: 10% rounds to none
    with pytest.raises(UserError, match="validation split is empty"):
        CIFAR100DataModule(root=str(tmp_path)).setup()
