"""Multi-label image classification: every image has a set of labels (possibly empty), read from label files.

Two formats, told apart by the file's suffix:

- ``.csv``: a header row, then one row per image with a path column (``path_column``, default ``path``) and a
  labels column (``labels_column``, default ``labels``) holding the labels separated by ``label_delimiter``
  (default ``;``), e.g. ``images/0001.png,cat;dog``. An empty labels cell means "none of the labels".
- anything else (``.txt``): index lines ``relative/path.png label label ...`` (whitespace separated; the path
  is the first field, so it holds no spaces there). Blank lines and lines starting with ``#`` are skipped.

Labels are class names (or numbers). ``class_names`` fixes the classes and their order (a label outside it is
an error naming the file and line); null takes the sorted set of labels found in the files. Paths are relative
to ``root``. Without ``val_file`` a seeded ``val_fraction`` of the training file validates; without
``test_file`` the validation split is tested. Targets are float multi-hot vectors ``(N, num_classes)``.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lit_vision.data.contract import DataInfo
from lit_vision.data.image_files import ImageFilesDataModule, Sample
from lit_vision.data.image_regression import collate_regression
from lit_vision.data.splits import split_indices
from lit_vision.errors import UserError

log = logging.getLogger(__name__)

MAX_REPORTED = 5

# (image path, label names, origin "file:line") as read from a label file
Row = tuple[str, list[str], str]


def read_label_file(
    path: Path, root: Path, delimiter: str = ";", path_column: str = "path", labels_column: str = "labels"
) -> list[Row]:
    """The rows of one label file (CSV or index lines, see the module docstring); every malformed line or
    missing image is collected, then reported at once in a UserError naming the file and lines."""
    if not path.is_file():
        raise UserError(
            f"label file {path} does not exist. Give the path (relative paths are taken from data.root)."
        )
    problems: list[str] = []
    if path.suffix.lower() == ".csv":
        rows = _csv_rows(path, delimiter, path_column, labels_column, problems)
    else:
        rows = _index_rows(path, problems)
    checked = []
    for relative, labels, origin in rows:
        image = relative if os.path.isabs(relative) else os.path.join(root, relative)
        if not os.path.isfile(image):
            problems.append(f"{origin}: {relative} does not exist (looked for {image})")
            continue
        checked.append((image, labels, origin))
    if problems:
        more = f" (and {len(problems) - MAX_REPORTED} more)" if len(problems) > MAX_REPORTED else ""
        raise UserError(
            f"{len(problems)} bad line(s) in the label file {path}: {'; '.join(problems[:MAX_REPORTED])}{more}. "
            f"Each line must name an image relative to data.root={root} and its labels; fix those lines."
        )
    if not checked:
        raise UserError(f"label file {path} lists no images: add one line per image with its labels.")
    return checked


def _csv_rows(
    path: Path, delimiter: str, path_column: str, labels_column: str, problems: list[str]
) -> list[Row]:
    rows = []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        missing = [c for c in (path_column, labels_column) if c not in columns]
        if missing:
            raise UserError(
                f"label file {path} has no column(s) {', '.join(missing)} (its header: {', '.join(columns) or 'none'}). "
                "Name them in the first row, or set data.path_column / data.labels_column to the header's names."
            )
        for record in reader:
            origin = f"{path}:{reader.line_num}"
            relative = (record.get(path_column) or "").strip()
            if not relative:
                problems.append(f"{origin}: the {path_column} cell is empty")
                continue
            cell = record.get(labels_column) or ""
            rows.append((relative, [t.strip() for t in cell.split(delimiter) if t.strip()], origin))
    return rows


def _index_rows(path: Path, problems: list[str]) -> list[Row]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, raw in enumerate(f, start=1):
            line = raw.strip()
            if line and not line.startswith("#"):
                relative, *labels = line.split()
                rows.append((relative, labels, f"{path}:{number}"))
    return rows


def label_names(rows: Sequence[Row]) -> list[str]:
    """The sorted set of labels in ``rows`` (numerically when every label is a number)."""
    found = {label for _, labels, _ in rows for label in labels}
    if found and all(label.isdigit() for label in found):
        return sorted(found, key=int)
    return sorted(found)


def multi_hot(rows: Sequence[Row], class_names: Sequence[str]) -> list[Sample]:
    """Samples whose ``label`` is the tuple of 0.0/1.0 per class; a label not in ``class_names`` is an error."""
    index = {name: i for i, name in enumerate(class_names)}
    samples, problems = [], []
    for image, labels, origin in rows:
        unknown = [label for label in labels if label not in index]
        if unknown:
            problems.append(f"{origin}: unknown label(s) {', '.join(map(repr, unknown))}")
            continue
        vector = [0.0] * len(class_names)
        for label in labels:
            vector[index[label]] = 1.0
        samples.append(Sample(image, tuple(vector), origin))  # type: ignore[arg-type]
    if problems:
        more = f" (and {len(problems) - MAX_REPORTED} more)" if len(problems) > MAX_REPORTED else ""
        raise UserError(
            f"{'; '.join(problems[:MAX_REPORTED])}{more}. The labels must be among data.class_names "
            f"({', '.join(class_names)}): fix the lines, or add the names (null: every label found is a class)."
        )
    return samples


class MultiLabelDataModule(ImageFilesDataModule):
    """Images with a set of labels each, listed in label files (see the module docstring).

    Args:
        root: the folder image paths (and relative label-file paths) are relative to.
        train_file, val_file, test_file: label files (CSV or index lines); ``val_file``/``test_file`` may be
            null (a seeded ``val_fraction`` of the training file validates; the validation split tests).
        label_delimiter: what separates labels in a CSV labels cell.
        path_column, labels_column: the CSV columns.
        Other arguments: see :class:`~lit_vision.data.image_files.ImageFilesDataModule` (transforms,
        mean/std, in_channels, image_size, class_names, batch sizes, workers, bad-file handling).
    """

    collate = staticmethod(collate_regression)  # images and float (N, num_classes) targets
    stratify_folds = False  # a sample has several labels: folds are plain seeded splits

    def __init__(
        self,
        root: str,
        train_file: str = "train.csv",
        val_file: str | None = "val.csv",
        test_file: str | None = None,
        val_fraction: float = 0.1,
        label_delimiter: str = ";",
        path_column: str = "path",
        labels_column: str = "labels",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            **kwargs
        )  # refuses data.sampler=balanced (stratify_folds is False: not one class each)
        if not label_delimiter:
            raise UserError("data.label_delimiter is empty: give the character between labels, e.g. ';'.")
        self.root = Path(str(root)).expanduser()
        self.train_file = str(train_file)
        self.val_file = val_file or None
        self.test_file = test_file or None
        self.val_fraction = float(val_fraction)
        self.label_delimiter = str(label_delimiter)
        self.path_column = str(path_column)
        self.labels_column = str(labels_column)

    def _read(self, name: str) -> list[Row]:
        path = Path(name).expanduser()
        path = path if path.is_absolute() else self.root / path
        return read_label_file(path, self.root, self.label_delimiter, self.path_column, self.labels_column)

    def find_samples(self) -> dict[str, list[Sample]]:
        if not self.root.is_dir():
            raise UserError(
                f"data.root={self.root} is not a folder: set it to the folder image paths are relative to."
            )
        rows = {"train": self._read(self.train_file)}
        for stage, name in (("val", self.val_file), ("test", self.test_file)):
            if name is not None:
                rows[stage] = self._read(name)
        if self.val_file is None:
            train, val = split_indices(
                len(rows["train"]), [1.0 - self.val_fraction, self.val_fraction], self.split_seed
            )
            pool = rows["train"]
            rows["train"], rows["val"] = [pool[i] for i in train], [pool[i] for i in val]
        if self.class_names is None:
            self.class_names = label_names([row for part in rows.values() for row in part])
            if not self.class_names:
                raise UserError(
                    f"the label files under data.root={self.root} name no label at all: add labels."
                )
        return {stage: multi_hot(part, self.class_names) for stage, part in rows.items()}

    def _check_labels(self, samples) -> None:
        count = len(self.class_names or [])
        if self.num_classes is not None and self.num_classes != count:
            raise UserError(
                f"data.num_classes={self.num_classes} but the data has {count} labels ({', '.join(self.class_names or [])}): "
                "make them agree, or set data.num_classes=null."
            )
        self.num_classes = count

    def _empty_split_hint(self, stage: str) -> str:
        return "Add lines to its label file (or raise data.val_fraction)."

    def _targets_summary(self) -> str:
        train = (self.samples or {}).get("train", [])
        mean = sum(sum(s.label) for s in train) / max(1, len(train))  # type: ignore[arg-type]
        return f"{self.num_classes} labels, {mean:.2f} per training image"

    def data_info(self) -> DataInfo:
        """The image pipeline (see the base class), marked as multi-label data."""
        return super().data_info().replace(kind="multilabel")
