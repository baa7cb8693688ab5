"""``data=cats``: the tutorial's cat segmentation data, or an offline sample when the folder is empty."""

from __future__ import annotations

import logging
from pathlib import Path

from lit_vision.data.segmentation.folder_datamodule import SegmentationFolderDataModule
from lit_vision.data.segmentation.sample import SAMPLE_VARIANTS, is_empty_dir, write_cats_sample

log = logging.getLogger("lit_vision")


class CatsDataModule(SegmentationFolderDataModule):
    """A labelme (or VOC) folder of cat photos; with ``sample_if_missing`` and no data at ``root`` it
    first writes the chelsea sample there (see ``lit_vision.data.segmentation.sample``) and trains on it."""

    def __init__(self, root: str | Path, sample_if_missing: bool = True, **kwargs) -> None:
        super().__init__(root=root, **kwargs)
        self.sample_if_missing = bool(sample_if_missing)

    def prepare_root(self) -> None:
        if self.sample_if_missing and (not self.root.exists() or is_empty_dir(self.root)):
            write_cats_sample(self.root)
            log.warning(
                "No data in %s: wrote the offline sample there (%d labelme image+JSON pairs cut from "
                "scikit-image's CC0 'chelsea' photo with a hand-traced cat polygon) and training on it.",
                self.root,
                len(SAMPLE_VARIANTS),
            )
