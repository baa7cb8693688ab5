"""``data=segmentation_folder`` and ``data=cats``: a folder of labelme annotations, images/ + masks/, or a
VOC layout."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

from lit_vision.data.segmentation.base import SegmentationDataModule
from lit_vision.data.segmentation.dataset import SampleLoader
from lit_vision.data.segmentation.folder import (
    SPLIT_DIR,
    SegmentationItem,
    check_item,
    find_label_set,
    load_item,
    scan_folder,
    split_lists,
)
from lit_vision.data.segmentation.labelme import read_labelme
from lit_vision.data.segmentation.labels import LabelSet
from lit_vision.data.segmentation.masks import parse_mask_threshold
from lit_vision.data.splits import split_indices
from lit_vision.data.validation import BadFileError, SkippedFiles, converted_modes_note
from lit_vision.errors import UserError

log = logging.getLogger("lit_vision")

# data.split: None = train/val/test from split lists or fractions; "test" = the whole folder is the test set.
SPLIT_CHOICES = (None, "test")


def _load(
    items: list[SegmentationItem], label_set: LabelSet, source: str, mask_threshold: str | int, index: int
):
    return load_item(items[index], label_set, source, mask_threshold)


def check_split(value: str | None) -> str | None:
    """``data.split`` as None or ``"test"``; UserError for anything else."""
    if value not in SPLIT_CHOICES:
        raise UserError(
            f"data.split is {value!r}; use null (train / val / test from split lists or data.val_fraction and "
            "data.test_fraction) or test (every image of the folder is the test set, e.g. to evaluate a "
            "checkpoint on a whole folder)."
        )
    return value


class SegmentationFolderDataModule(SegmentationDataModule):
    """Images with labelme JSON annotations, images/ + masks/ folders, or the VOC layout (see
    ``lit_vision.data.segmentation.folder``); masks are read under ``mask_threshold``
    (``lit_vision.data.segmentation.masks``: auto, off, or a grey level).

    Splits come from ``ImageSets/Segmentation/{train,val,test}.txt`` when present (test defaults to val),
    otherwise from a seeded shuffle by ``val_fraction`` / ``test_fraction`` (0 test: test on val); with
    ``split="test"`` every annotated image is in the test split (no train or val split).
    Every annotation is checked (labels, point counts, complete image files, image and mask sizes) before
    training starts; with ``on_bad_sample=skip`` pairs with an unreadable file are left out (logged).
    """

    # Class names for masks when the folder has no class list and the mask values fit them (subclasses).
    fallback_class_names: tuple[str, ...] | None = None

    def __init__(
        self,
        root: str | Path,
        layout: str = "auto",
        labels: str | Path | None = None,
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        mask_threshold: str | int = "auto",
        split: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.root = Path(root).expanduser()
        self.layout = layout
        self.labels = labels
        self.val_fraction = float(val_fraction)
        self.test_fraction = float(test_fraction)
        self.mask_threshold = parse_mask_threshold(mask_threshold)
        self.split = check_split(split)
        self.items: list[SegmentationItem] = []
        self.label_source = ""
        self.skipped = SkippedFiles(log, "annotated image")

    def prepare_root(self) -> None:
        """Hook for subclasses that can provide data (the cats sample); the folder itself must exist."""

    def discover(self) -> None:
        if self.label_set is not None:
            return
        self.prepare_root()
        self.layout, self.items = scan_folder(
            self.root, self.layout, on_missing_mask=self.on_bad_sample, whole=self.split == "test"
        )
        if self.on_bad_sample == "skip" and self.layout == "labelme":
            self.items = [item for item in self.items if self._readable_annotation(item)]
        label_set, self.label_source = find_label_set(
            self.root,
            self.layout,
            self.items,
            self.labels,
            self.class_names,
            self.mask_threshold,
            self.fallback_class_names,
        )
        self._apply_label_set(label_set)
        log.info(
            "Data: %s (%s layout): %d annotated images; classes %s (from %s)%s",
            self.root,
            self.layout,
            len(self.items),
            self.class_names,
            self.label_source,
            "; data.split=test: all of them are the test set" if self.split == "test" else "",
        )

    def _readable_annotation(self, item: SegmentationItem) -> bool:
        try:
            read_labelme(item.annotation)
        except BadFileError as err:
            self.skipped.add(item.annotation, err.reason or str(err))
            return False
        return True

    def _check_items(self) -> list:
        """Check every item before training (see ``check_item``); with ``on_bad_sample=skip`` items with
        an unreadable file are dropped. Returns the items' ``(H, W, mode)``."""
        assert self.label_set is not None
        total = len(self.items) + len(self.skipped)
        infos, kept = [], []
        for item in self.items:
            try:
                infos.append(check_item(item, self.label_set, self.label_source))
            except BadFileError as err:
                if self.on_bad_sample == "error":
                    raise
                self.skipped.add(err.path or item.annotation, err.reason or str(err))
                continue
            kept.append(item)
        self.items = kept
        self.skipped.log_count(total, str(self.root))
        if not self.items:
            raise UserError(
                f"{self.root}: no readable annotated image is left after skipping unreadable files."
            )
        note = converted_modes_note([info.mode for info in infos if info.mode is not None], 3)
        if note:
            log.info("%s", note)
        return infos

    def build_splits(self) -> dict[str, tuple[SampleLoader, list[int], list[str], float]]:
        sizes = self._check_items()
        parts = self.split_positions()
        load = partial(_load, self.items, self.label_set, self.label_source, self.mask_threshold)
        out = {}
        for stage, positions in parts.items():
            mb = sum(sizes[i][0] * sizes[i][1] * 4 for i in positions) / 2**20
            out[stage] = (load, positions, [self.items[i].name for i in positions], mb)
        return out

    def split_positions(self) -> dict[str, list[int]]:
        """Item positions of train, val and test (split lists first, else the seeded ratio split); with
        ``split="test"`` only ``{"test": every item}``."""
        if self.split == "test":
            return {"test": list(range(len(self.items)))}
        lists = split_lists(self.root)
        by_name = {item.name: i for i, item in enumerate(self.items)}
        by_stem = {Path(item.name).name: i for i, item in enumerate(self.items)}

        skipped_names = {Path(path).with_suffix("").name for path in self.skipped.reasons}

        def positions(split: str) -> list[int]:
            out = []
            for name in lists[split]:
                index = by_name.get(name, by_stem.get(name))
                if index is None and Path(name).name in skipped_names:
                    continue  # left out by on_bad_sample=skip (logged)
                if index is None:
                    raise UserError(
                        f"{self.root / SPLIT_DIR / (split + '.txt')}: image id {name!r} has no annotation in "
                        f"{self.root}. Remove the line or annotate the image."
                    )
                out.append(index)
            return out

        if "train" in lists and "val" in lists:
            parts = {"train": positions("train"), "val": positions("val")}
            parts["test"] = positions("test") if "test" in lists else parts["val"]
            if "test" not in lists:
                log.info("No %s/test.txt: the test stage evaluates the val split.", SPLIT_DIR)
            source = f"split lists in {self.root / SPLIT_DIR}"
        else:
            pool = positions("trainval") if "trainval" in lists else list(range(len(self.items)))
            with_test = "test" not in lists and self.test_fraction > 0
            test = self.test_fraction if with_test else 0.0
            fractions = [1.0 - self.val_fraction - test, self.val_fraction, test]
            if min(fractions[:2]) <= 0:
                raise UserError(
                    f"data.val_fraction={self.val_fraction} and data.test_fraction={self.test_fraction} leave "
                    "no training images; choose fractions that sum to less than 1."
                )
            train, val, rest = split_indices(len(pool), fractions, self.split_seed)
            parts = {"train": [pool[i] for i in train], "val": [pool[i] for i in val]}
            if "test" in lists:
                parts["test"] = positions("test")
            elif with_test:
                parts["test"] = [pool[i] for i in rest]
            else:
                parts["test"] = parts["val"]
            source = f"a seeded split (seed {self.split_seed})"
        for stage in ("train", "val", "test"):
            if not parts[stage]:
                raise UserError(
                    f"{self.root}: the {stage} split is empty ({len(self.items)} annotated images, {source}). "
                    "Annotate more images, or change data.val_fraction / data.test_fraction or the split lists."
                )
        return parts
