"""Semantic segmentation data: labelme, VOC and images/ + masks/ folders, Oxford-IIIT Pet, the shipped cats.

Batches are ``(images float (N, C, H, W), masks int64 (N, H, W))`` with 255 marking ignored pixels.
"""

from lit_vision.data.segmentation.base import SegmentationDataModule
from lit_vision.data.segmentation.cats import CatsDataModule
from lit_vision.data.segmentation.folder_datamodule import SegmentationFolderDataModule
from lit_vision.data.segmentation.labels import IGNORE_INDEX, LabelSet
from lit_vision.data.segmentation.oxford_pets import OxfordPetsDataModule

__all__ = [
    "IGNORE_INDEX",
    "CatsDataModule",
    "LabelSet",
    "OxfordPetsDataModule",
    "SegmentationDataModule",
    "SegmentationFolderDataModule",
]
