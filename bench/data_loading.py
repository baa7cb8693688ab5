"""Do the file-based loaders keep up with a small model, and what does batch augmentation cost?

- ``image_list`` (the CIFAR-to-PNG tutorial: 32x32 PNGs, Resize + RandomCrop(padding 4)) and
  ``image_folder`` (photo-sized 500x375 JPEGs through the flowers training pipeline to 224x224): one
  training epoch of the tutorial CNN fed by the DataModule's loader (decoding in its default number of
  workers, normalised per batch) against the same epoch fed from the same batches already in memory.
  ratio = loader epoch / in-memory epoch; 1.0 means decoding is completely hidden behind training.
- in-memory CIFAR-10 batches: per-sample RandomCrop(padding 4) + flip on a batch of 128, against one
  training step of the same CNN on that batch (ratio = the augmentation's share of a step).

Generated data in the real formats (tests.fakes); torch's default thread count; the loader's
workers share the same cores as the training loop, as in a real run.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.report import device_name
from lit_vision.nets.cnn import SimpleCNN


def _train_step(model: nn.Module, optimizer: torch.optim.Optimizer, images, labels) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.step()


def _epoch_seconds(datamodule, image_size: int, num_classes: int) -> tuple[float, float, int]:
    """(epoch through the loader, epoch through pre-loaded batches, images) for a fresh CNN each."""
    loader = datamodule.train_dataloader()
    next(iter(loader))  # start the persistent workers outside the timing
    torch.manual_seed(0)
    model = SimpleCNN(3, num_classes, image_size)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    batches, start = [], time.perf_counter()
    for images, labels in loader:
        images = datamodule.normalize(images)
        _train_step(model, optimizer, images, labels)
        batches.append((images, labels))
    from_files = time.perf_counter() - start
    torch.manual_seed(0)
    model = SimpleCNN(3, num_classes, image_size)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    start = time.perf_counter()
    for images, labels in batches:
        _train_step(model, optimizer, images, labels)
    in_memory = time.perf_counter() - start
    return from_files, in_memory, sum(len(b[1]) for b in batches)


def _loader_row(name: str, setting: str, datamodule, image_size: int, num_classes: int) -> dict[str, Any]:
    datamodule.setup("fit")
    files, memory, count = _epoch_seconds(datamodule, image_size, num_classes)
    return {
        "case": "data_loading",
        "setting": f"{name}: {setting}, {datamodule.num_workers} workers, {count} images",
        "device": device_name(),
        "metric": "epoch s (loader / in-memory)",
        "value": round(files, 2),
        "baseline": round(memory, 2),
        "ratio": round(files / memory, 3),
        "note": "1.0 = decoding fully hidden behind the training step",
    }


def _augment_row(root: Path, quick: bool) -> dict[str, Any]:
    from lit_vision.data.torchvision_sets import CIFAR10DataModule
    from tests.fakes import make_cifar10

    make_cifar10(root, n_train=1000, n_test=100)
    dm = CIFAR10DataModule(
        root=str(root), batch_size=128, augment=[{"RandomCrop": {"padding": 4}}, "RandomHorizontalFlip"]
    )
    dm.setup("fit")
    images, labels = next(iter(dm.train_dataloader()))
    images = dm.normalize(images)
    model = SimpleCNN(3, 10, 32)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    repeats = 10 if quick else 50
    aug_times, step_times = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        dm.augment(images)
        aug_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        _train_step(model, optimizer, images, labels)
        step_times.append(time.perf_counter() - start)
    aug, step = statistics.median(aug_times) * 1e3, statistics.median(step_times) * 1e3
    return {
        "case": "data_loading",
        "setting": "cifar10 in memory: RandomCrop(pad 4) + flip per sample, batch 128",
        "device": device_name(),
        "metric": "ms per batch (augment / train step)",
        "value": round(aug, 3),
        "baseline": round(step, 3),
        "ratio": round(aug / step, 4),
        "note": "augmentation's share of a CNN training step",
    }


def run(quick: bool = False) -> list[dict[str, Any]]:
    from lit_vision.data.image_folder import ImageFolderDataModule
    from lit_vision.data.image_list import ImageListDataModule
    from tests.fakes import make_image_folder, make_index_dataset

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        per_class = 20 if quick else 400
        make_index_dataset(tmp / "png", per_split={"train": per_class, "valid": 2})
        png = ImageListDataModule(
            root=str(tmp / "png"),
            batch_size=128,
            image_size=32,
            test_index=None,
            train_transforms=[
                {"Resize": {"size": [32, 32], "antialias": True}},
                {"RandomCrop": {"size": 32, "padding": 4}},
            ],
        )
        rows.append(
            _loader_row("image_list", "32x32 PNG, Resize + RandomCrop(pad 4), batch 128", png, 32, 10)
        )
        per_class = 8 if quick else 100
        make_image_folder(
            tmp / "jpg", per_class={"train": per_class, "valid": 2}, size=(375, 500), formats=("jpg",)
        )
        jpg = ImageFolderDataModule(
            root=str(tmp / "jpg"),
            batch_size=32,
            image_size=224,
            train_transforms=[
                {"RandomRotation": {"degrees": 45}},
                {"CenterCrop": {"size": 224}},
                {"RandomHorizontalFlip": {"p": 0.5}},
                {"RandomVerticalFlip": {"p": 0.5}},
                {"ColorJitter": {"brightness": 0.2, "contrast": 0.1, "saturation": 0.1, "hue": 0.1}},
                {"RandomGrayscale": {"p": 0.025}},
            ],
        )
        rows.append(
            _loader_row("image_folder", "500x375 JPEG, flowers pipeline to 224, batch 32", jpg, 224, 3)
        )
        rows.append(_augment_row(tmp / "cifar", quick))
    return rows
