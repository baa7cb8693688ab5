"""``data=oxford_pets``: torchvision's Oxford-IIIT Pet with its segmentation trimaps.

Trimaps mark each pixel 1 = pet, 2 = background, 3 = border (the uncertain outline). ``mask_mode``
"binary" gives background 0 / pet 1 with the border ignored (or counted as pet/background, see
``border``); "trimap" gives three classes background 0, pet 1, border 2. ``species`` keeps cats, dogs
or both, using the species column of the official ``trainval.txt`` / ``test.txt`` lists.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import numpy as np

from lit_vision.data.segmentation.base import SegmentationDataModule
from lit_vision.data.segmentation.dataset import SampleLoader
from lit_vision.data.segmentation.images import image_size, read_index_mask, read_rgb
from lit_vision.data.segmentation.labels import IGNORE_INDEX, LabelSet
from lit_vision.data.splits import split_indices
from lit_vision.data.validation import BadFileError, SkippedFiles
from lit_vision.errors import UserError

log = logging.getLogger("lit_vision")

SPECIES = {"cat": 0, "dog": 1}  # torchvision's binary-category values
MASK_MODES = ("binary", "trimap")
BORDER_CHOICES = ("ignore", "foreground", "background")
# Average decoded size of one Oxford pet image + mask (about 500 x 375 pixels), for the cache estimate.
MEAN_MB_PER_IMAGE = 500 * 375 * 4 / 2**20


def trimap_lookup(mask_mode: str, border: str = "ignore") -> np.ndarray:
    """A 256-entry table from trimap values (1 pet, 2 background, 3 border) to class indices."""
    table = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    if mask_mode == "trimap":
        table[1], table[2], table[3] = 1, 0, 2
    else:
        table[1], table[2] = 1, 0
        table[3] = {"ignore": IGNORE_INDEX, "foreground": 1, "background": 0}[border]
    return table


def _load_pet(images: list[Path], trimaps: list[Path], lookup: np.ndarray, index: int):
    image = read_rgb(images[index], exif_orientation=False)  # the trimaps match the pixels as stored
    mask = lookup[read_index_mask(trimaps[index])]
    if mask.shape != image.shape[:2]:
        raise UserError(
            f"{trimaps[index]}: the trimap is {mask.shape} but {images[index]} is {image.shape[:2]}; the "
            "download is damaged: delete the oxford-iiit-pet folder and download it again."
        )
    return image, mask


class OxfordPetsDataModule(SegmentationDataModule):
    """Oxford-IIIT Pet segmentation: ``trainval`` split into train/val (seeded), official ``test``."""

    def __init__(
        self,
        root: str | Path,
        species: str = "all",
        mask_mode: str = "binary",
        border: str = "ignore",
        download: bool = False,
        val_fraction: float = 0.1,
        **kwargs,
    ) -> None:
        kwargs.setdefault("cache", False)
        super().__init__(**kwargs)
        if species not in ("cat", "dog", "all"):
            raise UserError(f"data.species must be cat, dog or all, got {species!r}.")
        if mask_mode not in MASK_MODES:
            raise UserError(f"data.mask_mode must be one of {list(MASK_MODES)}, got {mask_mode!r}.")
        if border not in BORDER_CHOICES:
            raise UserError(f"data.border must be one of {list(BORDER_CHOICES)}, got {border!r}.")
        self.root = Path(root).expanduser()
        self.species = species
        self.mask_mode = mask_mode
        self.border = border
        self.download = bool(download)
        self.val_fraction = float(val_fraction)

    def label_names(self) -> tuple[str, ...]:
        pet = {"cat": "cat", "dog": "dog", "all": "pet"}[self.species]
        names = ("_background_", pet)
        return (*names, "border") if self.mask_mode == "trimap" else names

    def discover(self) -> None:
        if self.label_set is None:
            self._apply_label_set(LabelSet(self.label_names()))

    def prepare_data(self) -> None:
        if self.download:
            self._torchvision_dataset("trainval")

    def _torchvision_dataset(self, split: str):
        from torchvision.datasets import OxfordIIITPet

        base = self.root / "oxford-iiit-pet"
        try:
            return OxfordIIITPet(
                self.root,
                split=split,
                target_types=["binary-category", "segmentation"],
                download=self.download,
            )
        except (RuntimeError, FileNotFoundError) as exc:
            raise UserError(
                f"Oxford-IIIT Pet is not in {base} ({exc}). Expected {base}/images/<name>.jpg, "
                f"{base}/annotations/trimaps/<name>.png and the lists {base}/annotations/trainval.txt and "
                f"test.txt. Set data.download=true on a machine with internet access (about 800 MB), or "
                "unpack images.tar.gz and annotations.tar.gz from https://www.robots.ox.ac.uk/~vgg/data/pets/ "
                f"into {base}."
            ) from exc

    def _selected(self, split: str) -> tuple[list[Path], list[Path]]:
        dataset = self._torchvision_dataset(split)
        keep = range(len(dataset))
        if self.species != "all":
            wanted = SPECIES[self.species]
            keep = [i for i, label in enumerate(dataset._bin_labels) if label == wanted]
        return self._checked([dataset._images[i] for i in keep], [dataset._segs[i] for i in keep])

    def _checked(self, images: list[Path], trimaps: list[Path]) -> tuple[list[Path], list[Path]]:
        """Check every photo and trimap from their headers before training (complete files, equal sizes);
        with ``on_bad_sample=skip`` pairs with an unreadable file are left out (logged with the count)."""
        skipped = SkippedFiles(log, "pet image pair")
        kept_images, kept_trimaps = [], []
        for image, trimap in zip(images, trimaps, strict=True):
            try:
                image_hw = image_size(image, exif_orientation=False)
                trimap_hw = image_size(trimap, exif_orientation=False)
            except BadFileError as err:
                if self.on_bad_sample == "error":
                    raise
                skipped.add(err.path or image, err.reason or str(err))
                continue
            if image_hw != trimap_hw:
                raise UserError(
                    f"{trimap}: the trimap is {trimap_hw[0]} x {trimap_hw[1]} but {image} is {image_hw[0]} x "
                    f"{image_hw[1]}; the download is damaged: delete the oxford-iiit-pet folder and download it again."
                )
            kept_images.append(image)
            kept_trimaps.append(trimap)
        skipped.log_count(len(images))
        return kept_images, kept_trimaps

    def build_splits(self) -> dict[str, tuple[SampleLoader, list[int], list[str], float]]:
        lookup = trimap_lookup(self.mask_mode, self.border)
        images, trimaps = self._selected("trainval")
        test_images, test_trimaps = self._selected("test")
        train, val = split_indices(len(images), [1 - self.val_fraction, self.val_fraction], self.split_seed)
        trainval_load = partial(_load_pet, images, trimaps, lookup)
        test_load = partial(_load_pet, test_images, test_trimaps, lookup)

        def part(load, idx, paths):
            idx = [int(i) for i in idx]
            return (load, idx, [paths[i].stem for i in idx], len(idx) * MEAN_MB_PER_IMAGE)

        return {
            "train": part(trainval_load, train, images),
            "val": part(trainval_load, val, images),
            "test": part(test_load, range(len(test_images)), test_images),
        }
