"""Image regression from a CSV of ``path,value`` rows (image paths relative to ``root``).

Images are decoded and transformed in DataLoader workers exactly as for file-based classification
(:class:`~lit_vision.data.image_files.ImageFilesDataModule`: torchvision.transforms.v2 pipelines from the
config lists, uint8 batches normalised on the device); targets are float ``(N, T)`` in their own units.
Splits: separate ``val_csv`` / ``test_csv`` files, else seeded random fractions of ``csv_path``.
The targets' training-split mean/std go into ``data_info`` so the task can train on standardised values.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lit_vision.data.contract import DataInfo
from lit_vision.data.image_files import ImageFilesDataModule, Sample
from lit_vision.data.splits import split_indices
from lit_vision.data.tabular.csv_io import as_list, describe_rows, numeric_column, read_csv, require_columns
from lit_vision.errors import UserError

log = logging.getLogger(__name__)


def collate_regression(
    batch: list[tuple[torch.Tensor, Sequence[float]]], transforms_key: str = "train_transforms"
):
    """Stack images (same size required) and float targets ``(N, T)``."""
    images = [item[0] for item in batch]
    for image in images[1:]:
        if image.shape != images[0].shape:
            raise UserError(
                f"data.{transforms_key} produces images of different sizes ({tuple(images[0].shape)} and "
                f"{tuple(image.shape)}), which cannot be batched: end the list with a fixed-size step such as "
                "Resize: {size: [64, 64]}."
            )
    targets = torch.tensor([list(item[1]) for item in batch], dtype=torch.float32)
    return torch.stack(images), targets


class ImageRegressionDataModule(ImageFilesDataModule):
    """Images with float targets listed in CSV files (see the module docstring).

    Args:
        root: the folder image paths (and relative CSV paths) are relative to.
        csv_path: the table of images and targets (all splits unless ``val_csv``/``test_csv`` are given).
        path_column: the column holding image paths.
        target: the target column(s).
        val_csv / test_csv: separate tables for validation / test (same columns).
        val_fraction / test_fraction: seeded random fractions of ``csv_path`` for missing split files.
        standardize_target: record the training targets' mean/std so the task learns standardised values.
        num_targets: targets per image; null: the number of target columns (checked when given).
        Other arguments: see :class:`~lit_vision.data.image_files.ImageFilesDataModule` (transforms,
        mean/std, in_channels, image_size, batch sizes, workers, bad-file handling).
    """

    collate = staticmethod(collate_regression)

    # Targets are values, not classes: `run.fill_discovered_data_keys` leaves data.num_classes null.
    not_applicable_keys = ("num_classes",)
    stratify_folds = False  # targets are numbers, not classes

    def __init__(
        self,
        root: str,
        csv_path: str = "labels.csv",
        path_column: str = "path",
        target: str | Sequence[str] = "value",
        val_csv: str | None = None,
        test_csv: str | None = None,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        standardize_target: bool = True,
        num_targets: int | None = None,
        num_classes: None = None,
        **kwargs: Any,
    ) -> None:
        if num_classes is not None:
            raise UserError(
                f"data.num_classes={num_classes!r}: regression targets have no classes; leave it null."
            )
        super().__init__(**kwargs)
        if self.mix_settings is not None:
            raise UserError(
                "data.mix (MixUp/CutMix) mixes class labels and applies to classification only: "
                "remove data.mix from the image_regression data config."
            )
        self.root = Path(str(root)).expanduser()
        self.csv_path = str(csv_path)
        self.path_column = str(path_column)
        self.targets = as_list(target)
        if not self.targets:
            raise UserError("data.target is empty: name the column(s) to predict.")
        self.val_csv = val_csv or None
        self.test_csv = test_csv or None
        self.val_fraction = float(val_fraction)
        self.test_fraction = float(test_fraction)
        self.standardize_target = bool(standardize_target)
        if num_targets is not None and int(num_targets) != len(self.targets):
            raise UserError(
                f"data.num_targets={num_targets} but data.target names {len(self.targets)} column(s) "
                f"{self.targets}: make them agree (or set data.num_targets=null)."
            )
        self.num_targets = len(self.targets)
        self.target_mean: list[float] | None = None
        self.target_std: list[float] | None = None

    # ------------------------------------------------------------------ reading the tables
    def _resolve(self, name: str) -> Path:
        path = Path(name).expanduser()
        return path if path.is_absolute() else self.root / path

    def read_table(self, name: str, key: str) -> list[Sample]:
        """Rows of one CSV as samples whose ``label`` is the tuple of float targets."""
        path = self._resolve(name)
        frame = read_csv(path, key)
        source = str(path)
        require_columns(frame, [self.path_column], source, "data.path_column")
        require_columns(frame, self.targets, source, "data.target")
        values = np.column_stack([numeric_column(frame, c, source).to_numpy() for c in self.targets])
        empty = np.isnan(values).any(axis=1) | frame[self.path_column].isna().to_numpy()
        if empty.any():
            raise UserError(
                f"{source}: missing image path or target at {describe_rows(frame, empty)}. Fill in or remove those rows."
            )
        files = [
            p if os.path.isabs(p) else os.path.join(self.root, p)
            for p in frame[self.path_column].astype(str).str.strip()
        ]
        absent = np.array([not os.path.isfile(f) for f in files])
        if absent.any():
            first = files[int(np.flatnonzero(absent)[0])]
            raise UserError(
                f"{source}: {int(absent.sum())} image(s) do not exist, at {describe_rows(frame, absent)} "
                f"(e.g. {first}). Paths are relative to data.root={self.root}."
            )
        return [
            Sample(file, tuple(float(v) for v in row), f"{path}:{i + 2}")  # type: ignore[arg-type]
            for i, (file, row) in enumerate(zip(files, values, strict=True))
        ]

    def find_samples(self) -> dict[str, list[Sample]]:
        if not self.root.is_dir():
            raise UserError(
                f"data.root={self.root} is not a folder: set it to the folder the image paths are relative to."
            )
        main = self.read_table(self.csv_path, "data.csv_path")
        samples: dict[str, list[Sample]] = {"train": main}
        given = {"val": self.val_csv, "test": self.test_csv}
        for stage, name in given.items():
            if name is not None:
                samples[stage] = self.read_table(name, f"data.{stage}_csv")
        fractions = {
            s: f for s, f in (("val", self.val_fraction), ("test", self.test_fraction)) if given[s] is None
        }
        if fractions:
            parts = split_indices(
                len(main), [1.0 - sum(fractions.values()), *fractions.values()], self.split_seed
            )
            samples["train"] = [main[i] for i in parts[0]]
            for stage, index in zip(fractions, parts[1:], strict=True):
                samples[stage] = [main[i] for i in index]
        return samples

    def _check_labels(self, samples) -> None:
        """Targets were checked when the tables were read; there are no classes to count."""

    def _empty_split_hint(self, stage: str) -> str:
        return f"Add rows to data.csv_path or raise data.{stage}_fraction (or give data.{stage}_csv)."

    # ------------------------------------------------------------------ Lightning hooks
    def _fit_targets(self, train: list[Sample]) -> None:
        values = np.asarray([s.label for s in train], dtype=float)
        if self.standardize_target:
            std = values.std(axis=0)
            self.target_mean = values.mean(axis=0).tolist()
            self.target_std = np.where(std > 0, std, 1.0).tolist()

    def _targets_summary(self) -> str:
        return f"target {', '.join(self.targets)}"

    def data_info(self) -> DataInfo:
        """The image pipeline (see the base class) plus the target names and scaling."""
        return (
            super()
            .data_info()
            .replace(
                kind="image_regression",
                num_classes=None,
                class_names=None,
                target_names=list(self.targets),
                target_mean=self.target_mean,
                target_std=self.target_std,
            )
        )
