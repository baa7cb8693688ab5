"""The shared LightningDataModule of segmentation datasets: transforms, loaders, device-side normalisation.

Batches are ``(images, masks)``: images float ``(N, C, H, W)`` standardised with ``mean``/``std`` on the
training device, masks int64 ``(N, H, W)`` with IGNORE_INDEX (255) for pixels that count for nothing.
"""

from __future__ import annotations

import copy
import logging
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from lit_vision.data.contract import DataInfo
from lit_vision.data.resumable import EpochSampler, ResumableDataLoader
from lit_vision.data.segmentation.auto_augment import for_masks
from lit_vision.data.segmentation.dataset import SampleLoader, SegmentationDataset
from lit_vision.data.segmentation.labels import IGNORE_INDEX, LabelSet, voc_colormap
from lit_vision.data.splits import check_folds, fold_indices
from lit_vision.data.transforms import build_transforms
from lit_vision.data.validation import check_on_bad_sample
from lit_vision.errors import UserError

log = logging.getLogger("lit_vision")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
STAGES = ("train", "val", "test")
CACHE_CHOICES = ("auto", True, False)


def as_size(image_size: int | Sequence[int]) -> tuple[int, int]:
    """``256`` or ``[h, w]`` -> ``(h, w)``."""
    if isinstance(image_size, int):
        return (image_size, image_size)
    h, w = (int(v) for v in image_size)
    return (h, w)


def plain_items(items: Sequence[Mapping[str, Any] | str] | None) -> list[Any]:
    """A transform list as plain Python (OmegaConf containers resolved), safe to store in checkpoints."""
    if items is None:
        return []
    if isinstance(items, (DictConfig, ListConfig)):
        return list(OmegaConf.to_container(items, resolve=True))
    return [OmegaConf.to_container(i, resolve=True) if isinstance(i, DictConfig) else i for i in items]


class SegmentationDataModule(L.LightningDataModule):
    """Base for segmentation data: subclasses implement :meth:`discover` and :meth:`build_splits`.

    ``train_transforms`` / ``eval_transforms`` are lists of torchvision.transforms.v2 items (see
    ``lit_vision.data.transforms``) applied to image and mask together; a final resize to ``image_size``
    is added to both, so every batch has one size. Masks are always resampled nearest (v2 does this for
    ``tv_tensors.Mask``) and colour transforms touch only the image.

    ``on_bad_sample``: ``error`` stops at the first unreadable image, mask or annotation file (named,
    before training where the checks can see it); ``skip`` leaves such samples out, logging each file once
    and the count.
    """

    # lit_vision.data.contract.DiscoversData: every discoverable key applies
    not_applicable_keys: tuple[str, ...] = ()

    def __init__(
        self,
        image_size: int | Sequence[int] = 256,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        train_transforms: Sequence[Mapping[str, Any] | str] | None = None,
        eval_transforms: Sequence[Mapping[str, Any] | str] | None = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        num_workers: int = 0,
        pin_memory: bool = False,
        cache: bool | str = "auto",
        cache_max_mb: float = 2048,
        train_repeats: int = 1,
        num_classes: int | None = None,
        in_channels: int | None = 3,
        class_names: Sequence[str] | None = None,
        split_seed: int = 0,
        on_bad_sample: str = "error",
        num_folds: int | None = None,
        fold: int = 0,
    ) -> None:
        super().__init__()
        self.num_folds, self.fold = check_folds(num_folds, fold)
        self.on_bad_sample = check_on_bad_sample(on_bad_sample)
        if cache not in CACHE_CHOICES:
            raise UserError(f"data.cache must be auto, true or false, got {cache!r}.")
        self.size = as_size(image_size)
        self.image_size = self.size[0] if self.size[0] == self.size[1] else list(self.size)
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.train_transform_items = plain_items(train_transforms)
        self.eval_transform_items = plain_items(eval_transforms)
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]
        self.num_workers = int(num_workers)
        self.pin_memory = bool(pin_memory)
        self.cache = cache
        self.cache_max_mb = float(cache_max_mb)
        self.train_repeats = max(1, int(train_repeats))
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.class_names = None if class_names is None else [str(c) for c in class_names]
        self.split_seed = int(split_seed)
        self.label_set: LabelSet | None = None
        self.datasets: dict[str, SegmentationDataset] = {}
        self._norm: tuple[torch.Tensor, torch.Tensor] | None = None
        self.test_batch_size: int | None = None  # keep_test_size(): one image per batch

    # ----------------------------------------------------------------- to implement
    @abstractmethod
    def discover(self) -> None:
        """Find the class list (cheap: no pixel decoding where avoidable); sets ``label_set``."""

    @abstractmethod
    def build_splits(self) -> dict[str, tuple[SampleLoader, list[int], list[str], float]]:
        """``{stage: (loader, indices, names, estimated MiB when decoded)}`` for train, val and test."""

    # ----------------------------------------------------------------- discovery
    def _apply_label_set(self, label_set: LabelSet) -> None:
        self.label_set = label_set
        if self.num_classes is not None and int(self.num_classes) != label_set.num_classes:
            raise UserError(
                f"data.num_classes is {self.num_classes} but the class list has {label_set.num_classes} classes "
                f"{list(label_set.names)}; set data.num_classes=null to take it from the data."
            )
        self.num_classes = label_set.num_classes
        self.class_names = label_set.display_names()
        self.in_channels = self.in_channels or 3

    # ----------------------------------------------------------------- Lightning hooks
    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        if self.label_set is None:
            self.discover()
        splits = self._folded(self.build_splits())
        train_tf, eval_tf = self.build_pipelines()
        val_part = splits.get("val")
        total_mb = sum(
            part[3]
            for name, part in splits.items()
            if name != "test" or val_part is None or part[:2] != val_part[:2]
        )
        cache = self.cache if self.cache != "auto" else total_mb <= self.cache_max_mb
        for name, (load, indices, names, _) in splits.items():
            val = splits.get("val")
            if name == "test" and "val" in self.datasets and val is not None and (load, indices) == val[:2]:
                self.datasets[name] = self.datasets["val"]  # test evaluates the val split: share it
                continue
            transform = train_tf if name == "train" else eval_tf
            dataset = SegmentationDataset(
                load, indices, transform, cache=bool(cache), names=names, on_bad_sample=self.on_bad_sample
            )
            if cache:
                dataset.fill_cache()
                dataset.skipped.log_count(len(indices), f"the {name} split")
                if not len(dataset):
                    raise UserError(
                        f"No readable sample is left in the {name} split after skipping unreadable files."
                    )
            self.datasets[name] = dataset
        sizes = ", ".join(f"{k} {len(v)}" for k, v in self.datasets.items())
        log.info(
            "Segmentation data: %s images; classes %s; %s",
            sizes,
            self.class_names,
            f"decoded once and cached in memory (~{total_mb:.0f} MiB)" if cache else "decoded every epoch",
        )

    def _folded(
        self, splits: dict[str, tuple[SampleLoader, list[int], list[str], float]]
    ) -> dict[str, tuple[SampleLoader, list[int], list[str], float]]:
        """With ``num_folds``: train and val re-cut from their union, fold ``fold`` validating; a test
        split that was the val split follows the fold's val part, any other test split stays as it is."""
        if self.num_folds is None or "train" not in splits:
            return splits
        (load, train_idx, train_names, train_mb), (val_load, val_idx, val_names, val_mb) = (
            splits["train"],
            splits["val"],
        )
        if val_load is not load:
            raise UserError(
                f"{type(self).__name__}: train and val come from different sources, so data.num_folds cannot "
                "re-cut them; leave data.num_folds null."
            )
        test_is_val = "test" in splits and splits["test"][:2] == splits["val"][:2]
        indices, names = [*train_idx, *val_idx], [*train_names, *val_names]
        mb_each = (train_mb + val_mb) / max(1, len(indices))
        out = dict(splits)
        parts = fold_indices(len(indices), self.num_folds, self.fold, self.split_seed, what="images")
        for stage, positions in zip(("train", "val"), parts, strict=True):
            out[stage] = (
                load,
                [indices[i] for i in positions],
                [names[i] for i in positions],
                mb_each * len(positions),
            )
        if test_is_val:
            out["test"] = out["val"]
        return out

    def build_pipelines(self) -> tuple[v2.Compose, v2.Compose]:
        """Train and eval v2 pipelines, each ending with a resize to ``image_size``."""
        final = {"Resize": {"size": list(self.size), "antialias": True}}
        # RandAugment & co. in their mask-aware form (torchvision's refuse masks)
        train = build_transforms([*for_masks(self.train_transform_items), final])
        evaluate = build_transforms([*self.eval_transform_items, final])
        return train, evaluate

    def train_dataloader(self) -> DataLoader:
        dataset = self._dataset("train")
        if self.train_repeats > 1:
            dataset = torch.utils.data.ConcatDataset([dataset] * self.train_repeats)
        return self._loader(dataset, self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self._dataset("val"), self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(
            self._dataset("test"), self.test_batch_size or self.eval_batch_size, shuffle=False
        )

    def keep_test_size(self) -> None:
        """Test images and masks at their own size (the eval pipeline without the final resize to
        ``image_size``), one per batch: scores at the photos' resolution (lit-evaluate tiling=true)."""
        self.setup("test")
        dataset = copy.copy(self._dataset("test"))  # the val split may be the same object: leave it as it is
        dataset.transform = build_transforms(self.eval_transform_items)
        self.datasets["test"] = dataset
        self.test_batch_size = 1

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        images, masks = batch
        return self.normalize(images), masks

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 -> float in [0, 1] -> per-channel standardisation, on the batch's device."""
        if self._norm is None or self._norm[0].device != images.device:
            mean = torch.tensor(self.mean, device=images.device).view(1, -1, 1, 1)
            std = torch.tensor(self.std, device=images.device).view(1, -1, 1, 1)
            self._norm = (mean, std)
        mean, std = self._norm
        return (images.float().div_(255.0) - mean) / std

    def data_info(self) -> DataInfo:
        """What inference needs (stored in checkpoints): classes, palette, input size, normalisation."""
        if self.label_set is None:
            self.discover()
        return DataInfo.create(
            "segmentation",
            num_classes=self.num_classes,
            in_channels=self.in_channels,
            image_size=list(self.size),
            # the eval pipeline before the final resize to image_size (which inference appends too)
            eval_transforms=self.eval_transform_items,
            mean=self.mean,
            std=self.std,
            class_names=self.class_names,
            ignore_index=IGNORE_INDEX,
            palette=voc_colormap(self.num_classes or 0).tolist(),
        )

    # ----------------------------------------------------------------- internals
    def _dataset(self, stage: str) -> SegmentationDataset:
        if stage not in self.datasets:
            self.setup(stage)
        if stage not in self.datasets:
            raise UserError(
                f"this data has no {stage} split: with data.split={getattr(self, 'split', None)} every image "
                f"is in the test split ({', '.join(self.datasets)}). Use it to evaluate a checkpoint, or set "
                "data.split=null to train (train / val / test by split lists or fractions)."
            )
        return self.datasets[stage]

    def _loader(self, dataset, batch_size: int, shuffle: bool) -> DataLoader:
        # The order depends only on (split_seed, epoch) and the position is checkpointed, so a run resumed
        # mid-epoch sees the batches an uninterrupted one would have seen (as the classification modules).
        return ResumableDataLoader(
            dataset,
            batch_size=batch_size,
            sampler=EpochSampler(len(dataset), shuffle=shuffle, seed=self.split_seed),
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )
