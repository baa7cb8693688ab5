"""A folder per class (torchvision's ImageFolder layout), pre-split or split here with seeded ratios.

Two layouts under ``root``:

- ``train/<class>/*``, ``valid/<class>/*`` (or ``val/``), optionally ``test/<class>/*``: used as given
  (no ``valid/``: a stratified part of train; no ``test/``: the validation split is tested);
- ``<class>/*`` only: a seeded, stratified split by ``ratios`` (default 8:1:1).

Classes are the sub-folders of ``train/`` (or of ``root``), sorted by name as ImageFolder sorts them;
``class_map`` names a JSON file mapping folder names to display names (the flowers tutorial's
``cat_to_name.json``). Files inside class folders that are not images are reported like damaged images.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lit_vision.data.contract import DataInfo
from lit_vision.data.image_files import ImageFilesDataModule, Sample
from lit_vision.data.image_io import is_ignored_name
from lit_vision.data.splits import split_indices
from lit_vision.errors import UserError

log = logging.getLogger(__name__)

SPLIT_FOLDERS = {"train": ("train",), "val": ("valid", "val", "validation"), "test": ("test",)}


def normalize_ratios(ratios: Sequence[float]) -> list[float]:
    """``[8, 1, 1]`` or ``[0.8, 0.1, 0.1]`` -> fractions summing to 1 (train, val, test)."""
    values = [float(r) for r in ratios]
    if len(values) != 3 or any(v < 0 for v in values) or values[0] <= 0 or values[1] <= 0:
        raise UserError(
            f"data.ratios must be three non-negative numbers train, val, test with train and val > 0 "
            f"(e.g. [0.8, 0.1, 0.1] or [8, 1, 1]), got {list(ratios)}"
        )
    total = sum(values)
    return [v / total for v in values]


def class_folders(folder: Path) -> list[str]:
    """Sub-folder names of ``folder`` (hidden ones skipped), sorted as torchvision's ImageFolder sorts."""
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not is_ignored_name(e.name))


def files_under(folder: Path) -> list[str]:
    """Every non-hidden file below ``folder`` (recursively), sorted."""
    found = []
    for current, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not is_ignored_name(d))
        found.extend(os.path.join(current, f) for f in sorted(files) if not is_ignored_name(f))
    return found


def read_class_map(path: Path) -> dict[str, str]:
    """Load a JSON object mapping folder names to display names; UserError naming the file otherwise."""
    if not path.is_file():
        raise UserError(
            f"data.class_map file {path} does not exist: give the path of the JSON file mapping folder "
            "names to display names (relative paths are taken from data.root), or null."
        )
    try:
        mapping = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UserError(
            f"{path}:{err.lineno}:{err.colno}: not valid JSON ({err.msg}). The file must be one object "
            'such as {"1": "pink primrose", "2": "hard-leaved pocket orchid"}.'
        ) from None
    if not isinstance(mapping, dict):
        raise UserError(
            f"{path} must hold a JSON object of folder name -> display name, got {type(mapping).__name__}."
        )
    return {str(k): str(v) for k, v in mapping.items()}


class ImageFolderDataModule(ImageFilesDataModule):
    """Classification from class folders of image files (see the module docstring for the layouts)."""

    def __init__(
        self,
        root: str,
        ratios: Sequence[float] = (0.8, 0.1, 0.1),
        class_map: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.root = Path(str(root)).expanduser()
        self.ratios = normalize_ratios(ratios)
        self.class_map = None if class_map in (None, "") else str(class_map)
        self.folder_names: list[str] | None = None
        self.layout: str | None = None

    # ------------------------------------------------------------------ listing
    def find_samples(self) -> dict[str, list[Sample]]:
        root = self._check_root()
        split_dirs = {stage: _first_dir(root, names) for stage, names in SPLIT_FOLDERS.items()}
        if split_dirs["train"] is not None:
            self.layout = "split folders"
            samples = self._split_layout(split_dirs)
        else:
            self.layout = (
                f"class folders split {self.ratios[0]:.2f}/{self.ratios[1]:.2f}/{self.ratios[2]:.2f}"
            )
            self.folder_names = self._classes_of(root)
            pool = self._samples_of(root, self.folder_names, require_all=True)
            samples = self._split(pool, self.ratios)
        self._name_classes()
        return samples

    def _check_root(self) -> Path:
        root = self.root
        if not root.exists():
            raise UserError(
                f"data.root={root} does not exist. Point it at a folder with one sub-folder per class "
                "(or train/ and valid/ folders that each hold the class folders)."
            )
        if not root.is_dir():
            raise UserError(
                f"data.root={root} is a file; it must be the folder that holds the class folders."
            )
        if not any(not is_ignored_name(e.name) for e in os.scandir(root)):
            raise UserError(
                f"data.root={root} is empty. Put one sub-folder per class in it (root/<class>/<image>), or "
                "train/ and valid/ folders that each hold the class folders."
            )
        return root

    def _classes_of(self, folder: Path) -> list[str]:
        classes = class_folders(folder)
        if not classes:
            loose = [f for f in os.listdir(folder) if not is_ignored_name(f)]
            raise UserError(
                f"{folder} has no class sub-folders (found {len(loose)} loose entries such as "
                f"{loose[:3]}). ImageFolder layout: {folder}/<class name>/<image files>."
            )
        return classes

    def _samples_of(self, folder: Path, classes: list[str], require_all: bool) -> list[Sample]:
        """Files of every known class folder under ``folder``; unknown class folders are an error."""
        present = class_folders(folder)
        unknown = sorted(set(present) - set(classes))
        if unknown:
            raise UserError(
                f"{folder} has class folders that train/ does not have: {unknown[:5]}. Every class needs "
                "training images: add them to train/ or remove these folders."
            )
        loose = [e.name for e in os.scandir(folder) if e.is_file() and not is_ignored_name(e.name)]
        if loose and folder != self.root:  # files next to the class folders of root (a JSON map...) are fine
            log.warning(
                "%d files directly in %s are not in a class folder and are ignored (e.g. %s)",
                len(loose),
                folder,
                loose[0],
            )
        samples = []
        for label, name in enumerate(classes):
            class_dir = folder / name
            files = files_under(class_dir) if class_dir.is_dir() else []
            if require_all and not files:
                raise UserError(
                    f"class folder {class_dir} has no files. Add its images or remove the folder "
                    "(every class needs training images)."
                )
            samples.extend(Sample(path, label, str(class_dir)) for path in files)
        return samples

    def _split_layout(self, split_dirs: dict[str, Path | None]) -> dict[str, list[Sample]]:
        self.folder_names = self._classes_of(split_dirs["train"])
        train = self._samples_of(split_dirs["train"], self.folder_names, require_all=True)
        samples = {"train": train}
        if split_dirs["val"] is None:
            val_part = self.ratios[1] / (self.ratios[0] + self.ratios[1])
            log.info("No valid/ or val/ folder: %.0f%% of train/ is the validation split.", 100 * val_part)
            parts = self._split(train, [1.0 - val_part, val_part, 0.0])
            samples.update(train=parts["train"], val=parts["val"])
        else:
            samples["val"] = self._samples_of(split_dirs["val"], self.folder_names, require_all=False)
        if split_dirs["test"] is not None:
            samples["test"] = self._samples_of(split_dirs["test"], self.folder_names, require_all=False)
        return samples

    def _split(self, pool: list[Sample], fractions: list[float]) -> dict[str, list[Sample]]:
        labels = np.array([s.label for s in pool])
        parts = split_indices(len(pool), fractions, self.split_seed, labels=labels)
        return {
            stage: [pool[i] for i in idx] for stage, idx in zip(("train", "val", "test"), parts, strict=True)
        }

    def _name_classes(self) -> None:
        if self.class_names is not None:
            return
        names = list(self.folder_names or [])
        if self.class_map:
            path = Path(self.class_map).expanduser()
            mapping = read_class_map(path if path.is_absolute() else self.root / path)
            unnamed = [n for n in names if n not in mapping]
            if unnamed:
                log.warning(
                    "%d class folders have no entry in %s and keep their folder name (e.g. %s)",
                    len(unnamed),
                    self.class_map,
                    unnamed[:5],
                )
            names = [mapping.get(n, n) for n in names]
        self.class_names = names

    def _check_labels(self, samples) -> None:
        found = len(self.folder_names or [])
        if self.num_classes is not None and self.num_classes != found:
            raise UserError(
                f"data.num_classes={self.num_classes} but {self.root} has {found} class folders "
                f"({', '.join((self.folder_names or [])[:5])}...). Set data.num_classes={found} or null."
            )
        self.num_classes = found
        super()._check_labels(samples)

    def _empty_split_hint(self, stage: str) -> str:
        return (
            f"With the seeded per-class split (data.ratios={[round(r, 3) for r in self.ratios]}) a class needs "
            f"enough images for every split to get at least one: add images, raise the {stage} ratio, or "
            "provide train/ and valid/ folders."
        )

    def data_info(self) -> DataInfo:
        return super().data_info().replace(folder_names=self.folder_names)


def _first_dir(root: Path, names: Sequence[str]) -> Path | None:
    for name in names:
        if (root / name).is_dir():
            return root / name
    return None
