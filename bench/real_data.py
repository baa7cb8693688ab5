"""The real data sets of the real-data cases, found under :func:`bench.paths.shared_data_dir`.

A full run reads them in place. ``--quick`` copies a small class-balanced subset into a temporary folder
in the same layout (the same readers then run on fewer images), so the wiring is checked in seconds.
A set that is not there gives a "not run" row instead of a failure (:func:`run_on_real_data`).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.paths import shared_data_dir
from bench.vs_plain import Comparison, missing_data_row, run_comparison

FASHION_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
QUICK_FASHION = (2000, 500)  # train, test images of the --quick subset
QUICK_PER_CLASS = 40  # photos per class of the --quick subset


@dataclass(frozen=True)
class RealSet:
    """A real data set: where it lives (what ``data.root`` names), how to tell it is there, its subset."""

    name: str
    relative: str  # the data root below the shared data folder
    expected: str  # what must be there, for the "not run" row
    present: Callable[[Path], bool]
    subset: Callable[[Path, Path], Path]  # (root, target folder) -> the subset's root

    @property
    def root(self) -> Path:
        return shared_data_dir() / self.relative


def has_fashion_mnist(root: Path) -> bool:
    """Whether ``root/FashionMNIST/raw`` holds the four IDX files (plain or gzipped)."""
    raw = root / "FashionMNIST" / "raw"
    return all((raw / name).is_file() or (raw / f"{name}.gz").is_file() for name in FASHION_FILES)


def has_class_folders(root: Path) -> bool:
    """Whether ``root`` holds at least two class folders."""
    return root.is_dir() and sum(1 for p in root.iterdir() if p.is_dir()) >= 2


def fashion_mnist_subset(root: Path, target: Path) -> Path:
    """The first ``QUICK_FASHION`` training / test images of the real files, written as IDX files under
    ``target/FashionMNIST/raw``; returns ``target``."""
    from torchvision import datasets

    from lit_vision.data.writers import write_mnist_layout

    parts = []
    for train, count in zip((True, False), QUICK_FASHION, strict=True):
        dataset = datasets.FashionMNIST(str(root), train=train, download=False)
        parts.append((dataset.data[:count].numpy(), dataset.targets[:count].numpy().astype(np.uint8)))
    write_mnist_layout(target, parts[0], parts[1], name="FashionMNIST")
    return target


def class_folder_subset(root: Path, target: Path) -> Path:
    """The first ``QUICK_PER_CLASS`` files of every class folder of ``root`` copied to ``target``."""
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        (target / folder.name).mkdir(parents=True, exist_ok=True)
        for path in sorted(folder.iterdir())[:QUICK_PER_CLASS]:
            shutil.copy2(path, target / folder.name / path.name)
    return target


FASHION_MNIST = RealSet(
    "Fashion-MNIST", ".", "FashionMNIST/raw with the four IDX files", has_fashion_mnist, fashion_mnist_subset
)
CIFAR10_PHOTOS = RealSet(
    "CIFAR-10 photos",
    "cifar10_jpeg/train",
    "the CIFAR-10 JPEG class folders",
    has_class_folders,
    class_folder_subset,
)


def run_on_real_data(
    data: RealSet, case: str, setting: str, quick: bool, build: Callable[[Path], Comparison]
) -> list[dict[str, Any]]:
    """The rows of the comparison ``build(data root)`` makes; a "not run" row when the data are missing.
    ``quick`` runs it on the set's subset."""
    root = data.root.resolve()
    if not data.present(root):
        return [missing_data_row(case, setting, root, data.expected)]
    with tempfile.TemporaryDirectory(prefix=f"lv-bench-{case}-") as tmp:
        if quick:
            root = data.subset(root, Path(tmp) / "subset")
        return run_comparison(build(root), Path(tmp) / "runs")
