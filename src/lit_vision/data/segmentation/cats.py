"""``data=cats``: cat photos with masks (any layout of ``data=segmentation_folder``), or the shipped offline
cats (60 real photos from cats81, ``lit_vision.data.segmentation.offline_cats``) when the default folder is
missing or empty."""

from __future__ import annotations

import logging
from pathlib import Path

from lit_vision.data.segmentation.folder_datamodule import SegmentationFolderDataModule
from lit_vision.data.segmentation.offline_cats import SHIPPED_IDS, shipped_cats_root
from lit_vision.data.segmentation.sample import is_empty_dir
from lit_vision.errors import UserError

log = logging.getLogger("lit_vision")


class CatsDataModule(SegmentationFolderDataModule):
    """A folder of cat photos with their masks or labelme annotations.

    ``root=None``, or ``root`` equal to ``default_root`` (``data/cats`` in the config) while that folder is
    missing or empty, reads the shipped offline cats in place (with ``sample_if_missing``; nothing is
    written). Any other ``root`` must exist: a mistyped path is an error, never filled with the sample.
    Masks without a class list are named background / cat.
    """

    fallback_class_names = ("_background_", "cat")

    def __init__(
        self,
        root: str | Path | None = None,
        default_root: str | Path | None = None,
        sample_if_missing: bool = True,
        **kwargs,
    ) -> None:
        self.default_root = None if default_root is None else Path(default_root).expanduser()
        folder = root if root is not None else self.default_root
        super().__init__(root=folder if folder is not None else shipped_cats_root(), **kwargs)
        self.uses_default_root = root is None or (
            self.default_root is not None and self.root.resolve() == self.default_root.resolve()
        )
        self.sample_if_missing = bool(sample_if_missing)

    def prepare_root(self) -> None:
        """Switch to the shipped cats when the default folder holds no data (logged in one line)."""
        if not self.uses_default_root and not self.root.exists():
            raise UserError(
                f"data.root={self.root} does not exist. Check the path (the shipped offline sample stands in "
                f"only for the default folder {self.default_root}, never for a folder you name), or leave "
                "data.root out to train on the offline sample."
            )
        if not self.sample_if_missing or not self.uses_default_root:
            return
        shipped = shipped_cats_root()
        if self.root != shipped and self.root.exists() and not is_empty_dir(self.root):
            return
        log.warning(
            "No data in %s: training on the offline sample shipped with lit_vision, %d real cat photos with "
            "masks (cats81 from GitHub ardamavi/Cat-Segmentation, Apache-2.0), read in place from %s. Put your "
            "own photos there (images/ + masks/, labelme or VOC) or set data.root.",
            self.root if self.root != shipped else "the default data folder",
            len(SHIPPED_IDS),
            shipped,
        )
        self.root = shipped
