"""Image classification from files: the shared base of ``image_folder`` and ``image_list``.

Files are decoded in DataLoader workers (torchvision.io, EXIF orientation applied, every mode converted
to ``in_channels``), transformed by torchvision.transforms.v2 pipelines built from the config lists, and
batched as uint8 ``(N, C, H, W)`` (``(N, ncrops, C, H, W)`` after FiveCrop/TenCrop). Conversion to float
and normalisation with ``mean``/``std`` happen per batch on the training device, as for in-memory sets.
Before training, :meth:`setup` checks every file cheaply (header + completeness) so a damaged image is
reported by name up front; ``on_bad_sample: skip`` drops such files instead (each logged once).
"""

from __future__ import annotations

import functools
import logging
import os
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from lit_vision.data.contract import DataInfo, classification_info
from lit_vision.data.image_io import BadImageError, ImageHeader, decode_image_file, inspect_image
from lit_vision.data.mixing import BatchMix, parse_mix
from lit_vision.data.resumable import ResumableDataLoader
from lit_vision.data.sampling import check_sampler_options, train_sampler
from lit_vision.data.split_loaders import SplitDataModule
from lit_vision.data.splits import check_folds, fold_indices
from lit_vision.data.stats import file_channel_stats
from lit_vision.data.transforms import build_transforms
from lit_vision.data.validation import SkippedFiles, check_on_bad_sample, converted_modes_note
from lit_vision.errors import UserError

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
STAGES = ("train", "val", "test")
# Steps that belong to the device-side normalisation, not to the uint8 pipelines.
FLOAT_STEPS = {"ToTensor", "ToDtype", "ConvertImageDtype", "Normalize"}
# Below this many files the pre-training check runs in the main process (no worker start-up cost).
INLINE_CHECK_LIMIT = 2000


@dataclass(frozen=True)
class Sample:
    """One labelled image file; ``origin`` says where it was listed (``train.txt:12``, a folder)."""

    path: str
    label: int
    origin: str


def default_num_workers() -> int:
    """DataLoader workers: one per CPU this process may use, at most 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS / Windows
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))


# ---------------------------------------------------------------------- dataset and collation
class ImageFileDataset(Dataset):
    """``(path, label)`` pairs -> ``(uint8 image tensor, label)``, decoding and transforming per item.

    With ``on_bad_sample="skip"`` an image that fails to decode here (damage the pre-training check could
    not see) is replaced by the next readable one, so batches keep their size; each such file is logged
    once per worker, with the number skipped so far.
    """

    def __init__(
        self,
        samples: Sequence[tuple[str, int]],
        transform: v2.Transform | None,
        channels: int = 3,
        on_bad_sample: str = "error",
    ) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.channels = int(channels)
        self.on_bad_sample = on_bad_sample
        self.skipped = SkippedFiles(log, "image")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        attempts = min(len(self.samples), 16)
        for step in range(attempts):
            path, label = self.samples[(index + step) % len(self.samples)]
            try:
                image = decode_image_file(path, self.channels)
            except BadImageError as err:
                if self.on_bad_sample == "error":
                    raise UserError(bad_image_message([err.path], [err.reason], skip_hint=True)) from None
                self.skipped.add(err.path, err.reason)
                continue
            out = self.transform(tv_tensors.Image(image)) if self.transform is not None else image
            return stack_crops(out), label
        raise UserError(
            f"{attempts} images in a row starting at {self.samples[index][0]} could not be decoded; "
            "the dataset looks broken. Check the files (data.check_images=full lists them all)."
        )


def stack_crops(out: Any) -> torch.Tensor:
    """A pipeline's output as one plain tensor: FiveCrop/TenCrop tuples become ``(ncrops, C, H, W)``."""
    if isinstance(out, (tuple, list)):
        return torch.stack([t.as_subclass(torch.Tensor) for t in out])
    if not isinstance(out, torch.Tensor):
        raise UserError(
            f"a transform pipeline returned {type(out).__name__}, not an image tensor: keep PIL conversions "
            "(ToPILImage) out of data.train_transforms / data.eval_transforms"
        )
    return out.as_subclass(torch.Tensor)


def collate_images(
    batch: list[tuple[torch.Tensor, int]],
    transforms_key: str = "train_transforms",
    mix: BatchMix | None = None,
):
    """Stack images and labels; images of different sizes give a UserError naming the config list.

    With ``mix`` (training batches under ``data.mix``) the batch is mixed here, in the worker, and becomes
    ``(images, labels, soft targets)``."""
    images = [item[0] for item in batch]
    first = images[0].shape
    for image in images[1:]:
        if image.shape != first:
            raise UserError(
                f"data.{transforms_key} produces images of different sizes ({tuple(first)} and "
                f"{tuple(image.shape)}), which cannot be batched: end the list with a fixed-size step such "
                "as CenterCrop: {size: 224} or Resize: {size: [224, 224]}."
            )
    labels = torch.tensor([item[1] for item in batch], dtype=torch.long)
    if mix is not None:
        return mix(torch.stack(images), labels)
    return torch.stack(images), labels


def bad_image_message(paths: Sequence[str], reasons: Sequence[str], skip_hint: bool) -> str:
    """One paragraph naming the damaged files (the first few) and the fixes."""
    shown = "; ".join(f"{p}: {r}" for p, r in list(zip(paths, reasons, strict=True))[:5])
    more = f" (and {len(paths) - 5} more)" if len(paths) > 5 else ""
    text = f"{len(paths)} image file(s) cannot be used: {shown}{more}. Replace or delete them"
    if skip_hint:
        text += ", or set data.on_bad_sample=skip to leave them out (each is logged)"
    return text + "."


# ---------------------------------------------------------------------- checking files before training
class _CheckDataset(Dataset):
    """Inspects (or fully decodes) one file per item; used to check many files in parallel workers."""

    def __init__(self, paths: Sequence[str], full: bool, channels: int) -> None:
        self.paths = list(paths)
        self.full = full
        self.channels = channels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, ImageHeader | None, str | None]:
        try:
            header = inspect_image(self.paths[index])
            if self.full:
                decode_image_file(self.paths[index], self.channels)
            return index, header, None
        except BadImageError as err:
            return index, None, err.reason


def check_image_files(
    paths: Sequence[str], full: bool = False, channels: int = 3, num_workers: int = 0
) -> tuple[dict[str, ImageHeader], dict[str, str]]:
    """Check files before training: ``(headers of the good ones, {bad path: reason})``.

    ``full=False`` parses headers and checks completeness (fast); ``full=True`` also decodes every file.
    """
    dataset = _CheckDataset(paths, full, channels)
    if num_workers > 0 and (len(paths) > INLINE_CHECK_LIMIT or full):
        loader = DataLoader(dataset, batch_size=64, num_workers=num_workers, collate_fn=list)
        results = (item for batch in loader for item in batch)
    else:
        results = (dataset[i] for i in range(len(dataset)))
    headers, bad = {}, {}
    for index, header, reason in results:
        if reason is None:
            headers[paths[index]] = header
        else:
            bad[paths[index]] = reason
    return headers, bad


# ---------------------------------------------------------------------- the DataModule base
class ImageFilesDataModule(SplitDataModule):
    """Base for file-based classification sets; subclasses implement :meth:`find_samples`."""

    # Stacks a list of (image, target) samples into a batch; subclasses with other targets replace it.
    collate = staticmethod(collate_images)
    # lit_vision.data.contract.DiscoversData: every discoverable key applies (subclasses narrow this)
    not_applicable_keys: tuple[str, ...] = ()
    # k-fold cross-validation keeps each class's share in every fold (targets that are not classes: False)
    stratify_folds: bool = True

    def __init__(
        self,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int | None = None,
        train_transforms: Sequence[Any] | None = None,
        eval_transforms: Sequence[Any] | None = None,
        mean: Sequence[float] | None = IMAGENET_MEAN,
        std: Sequence[float] | None = IMAGENET_STD,
        num_classes: int | None = None,
        in_channels: int | None = 3,
        image_size: int | None = 224,
        eval_resize: int | None = None,
        class_names: Sequence[str] | None = None,
        on_bad_sample: str = "error",
        check_images: str = "fast",
        split_seed: int = 0,
        pin_memory: bool | None = None,
        persistent_workers: bool | None = None,
        stats_images: int = 500,
        num_folds: int | None = None,
        fold: int = 0,
        mix: Mapping[str, Any] | None = None,
        sampler: str = "shuffle",
        class_weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.num_folds, self.fold = check_folds(num_folds, fold)
        self.sampler = sampler
        self.class_weights = check_sampler_options(sampler, class_weights, has_classes=self.stratify_folds)
        check_on_bad_sample(on_bad_sample)
        self.mix_settings = parse_mix(OmegaConf.to_container(mix) if isinstance(mix, DictConfig) else mix)
        if check_images not in ("fast", "full", "off"):
            raise UserError(f"data.check_images must be fast, full or off, got {check_images!r}")
        if in_channels not in (None, 1, 3):
            raise UserError(f"data.in_channels must be 1 or 3 (or null to detect), got {in_channels!r}")
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or 2 * self.batch_size)
        self.num_workers = default_num_workers() if num_workers is None else int(num_workers)
        self.train_transform_items = _plain_list(train_transforms)
        self.eval_transform_items = _plain_list(eval_transforms)
        self.train_transform = _build_pipeline(self.train_transform_items, "train_transforms")
        self.eval_transform = _build_pipeline(self.eval_transform_items, "eval_transforms")
        self.mean = None if mean is None else [float(m) for m in mean]
        self.std = None if std is None else [float(s) for s in std]
        self.num_classes = None if num_classes is None else int(num_classes)
        self.in_channels = None if in_channels is None else int(in_channels)
        self.image_size = None if image_size is None else int(image_size)
        # Only read by the default eval_transforms (Resize before the centre crop); kept for data_info.
        self.eval_resize = None if eval_resize is None else int(eval_resize)
        self.class_names = None if class_names is None else [str(c) for c in class_names]
        self.on_bad_sample = on_bad_sample
        self.check_images = check_images
        self.split_seed = int(split_seed)
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else bool(pin_memory)
        self.persistent_workers = (
            (self.num_workers > 0) if persistent_workers is None else bool(persistent_workers)
        )
        self.stats_images = int(stats_images)
        self.samples: dict[str, list[Sample]] | None = None
        self.datasets: dict[str, ImageFileDataset] = {}
        self._headers: dict[str, ImageHeader] = {}
        self._norm: tuple[torch.Tensor, torch.Tensor] | None = None

    # ------------------------------------------------------------------ to implement
    @abstractmethod
    def find_samples(self) -> dict[str, list[Sample]]:
        """List the labelled files of each stage (``train``, ``val``, ``test``); no decoding.

        Raise a UserError for a missing root, a malformed listing... Set ``self.class_names`` when the
        source names the classes (folder names, a names file).
        """

    # ------------------------------------------------------------------ discovery
    def discover(self) -> None:
        """Fill ``num_classes``, ``class_names``, ``in_channels`` and ``image_size`` left null in the
        config from the files (listing, a few headers, the eval pipeline's output size)."""
        samples = self._find()
        if self.in_channels is None:
            paths = [s.path for s in samples["train"][:200]]
            headers, _ = check_image_files(paths)
            grey = {"L", "LA", "I", "I;16", "I;16B", "I;16L", "1"}
            modes = [h.mode for h in headers.values()]
            self.in_channels = 1 if modes and all(m in grey for m in modes) else 3
        if self.image_size is None:
            self.image_size = self._probe_output_size(samples["train"][0].path)

    def _probe_output_size(self, path: str) -> int:
        """The height the eval pipeline gives an image the size of ``path`` (its side, if square)."""
        try:
            width, height = inspect_image(path).size
        except BadImageError:
            width = height = 256
        if self.eval_transform is None:
            return int(height)
        blank = tv_tensors.Image(torch.zeros(self.in_channels or 3, height, width, dtype=torch.uint8))
        return int(stack_crops(self.eval_transform(blank)).shape[-2])

    def _find(self) -> dict[str, list[Sample]]:
        if self.samples is None:
            samples = self._folded(self.find_samples())
            for stage in ("train", "val"):
                if not samples.get(stage):
                    raise UserError(
                        f"{type(self).__name__}: the {stage} split is empty. " + self._empty_split_hint(stage)
                    )
            if not samples.get("test"):
                log.info("No test split: testing on the validation split.")
                samples["test"] = samples["val"]
            self._check_labels(samples)
            self.samples = samples
        return self.samples

    def _folded(self, samples: dict[str, list[Sample]]) -> dict[str, list[Sample]]:
        """With ``num_folds``: train and val re-cut from their union, fold ``fold`` validating."""
        if self.num_folds is None:
            return samples
        pool = [*samples.get("train", []), *samples.get("val", [])]
        labels = np.array([s.label for s in pool]) if self.stratify_folds else None
        train, val = fold_indices(
            len(pool), self.num_folds, self.fold, self.split_seed, labels=labels, what="images"
        )
        if not samples.get("test"):
            log.info(
                "No test split: with data.num_folds the test stage evaluates fold %d's validation part.",
                self.fold,
            )
        return {**samples, "train": [pool[i] for i in train], "val": [pool[i] for i in val]}

    def _empty_split_hint(self, stage: str) -> str:
        return "Give it images (or change the split ratios)."

    def _check_labels(self, samples: Mapping[str, list[Sample]]) -> None:
        top = max(s.label for part in samples.values() for s in part)
        if self.num_classes is None:
            self.num_classes = len(self.class_names) if self.class_names else top + 1
        for part in samples.values():
            for sample in part:
                if not 0 <= sample.label < self.num_classes:
                    raise UserError(
                        f"{sample.origin}: label {sample.label} of {sample.path} is outside 0..{self.num_classes - 1} "
                        f"(data.num_classes={self.num_classes}). Fix the label, or set data.num_classes "
                        "to the real number of classes (null counts them)."
                    )
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise UserError(
                f"{len(self.class_names)} class names for data.num_classes={self.num_classes}: give one name "
                "per class (or leave data.num_classes null)."
            )
        if self.class_names is None:
            self.class_names = [str(i) for i in range(self.num_classes)]

    # ------------------------------------------------------------------ Lightning hooks
    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self.discover()
        samples = self._find()
        if self.check_images != "off":
            samples = self._check_files(samples)
        self._validate_normalization()
        if self.mean is None or self.std is None:
            self._compute_normalization(samples["train"])
        self._fit_targets(samples["train"])
        channels = self.in_channels or 3
        for name in STAGES:
            transform = self.train_transform if name == "train" else self.eval_transform
            pairs = [(s.path, s.label) for s in samples[name]]
            self.datasets[name] = ImageFileDataset(pairs, transform, channels, self.on_bad_sample)
        log.info(
            "%s: %s; %s",
            type(self).__name__,
            self._targets_summary(),
            ", ".join(f"{k} {len(v)}" for k, v in self.datasets.items()),
        )

    def _fit_targets(self, train: list[Sample]) -> None:
        """Learn what the targets need from the training samples (class labels need nothing)."""

    def _targets_summary(self) -> str:
        """What the targets are, for the setup log line."""
        return f"{self.num_classes} classes"

    def _check_files(self, samples: dict[str, list[Sample]]) -> dict[str, list[Sample]]:
        paths = sorted({s.path for part in samples.values() for s in part})
        headers, bad = check_image_files(
            paths,
            full=self.check_images == "full",
            channels=self.in_channels or 3,
            num_workers=self.num_workers,
        )
        self._headers = headers
        if bad:
            if self.on_bad_sample == "error":
                raise UserError(bad_image_message(list(bad), list(bad.values()), skip_hint=True))
            skipped = SkippedFiles(log, "image file")
            for path, reason in bad.items():
                skipped.add(path, reason)
            skipped.log_count(len(paths))
            kept = {k: [s for s in v if s.path not in bad] for k, v in samples.items()}
            self._warn_emptied_classes(samples["train"], kept["train"])
            samples = kept
            for stage in ("train", "val"):
                if not samples[stage]:
                    raise UserError(
                        f"No readable image is left in the {stage} split after skipping {len(bad)} files."
                    )
            if not samples["test"]:
                samples["test"] = samples["val"]
            self.samples = samples
        note = converted_modes_note((h.mode for h in headers.values()), self.in_channels or 3)
        if note:
            log.info("%s", note)
        return samples

    def _warn_emptied_classes(self, before: Sequence[Sample], after: Sequence[Sample]) -> None:
        """Warn, naming them, about classes whose every training image was skipped as unreadable."""
        emptied = sorted({s.label for s in before} - {s.label for s in after})
        if not emptied:
            return
        names = self.class_names or []
        shown = ", ".join(repr(names[i]) if i < len(names) else str(i) for i in emptied)
        log.warning(
            "No training image is left of class(es) %s after skipping unreadable files "
            "(data.on_bad_sample=skip): the model cannot learn them. Replace the damaged files, or remove "
            "the class from the data.",
            shown,
        )

    def _validate_normalization(self) -> None:
        channels = self.in_channels or 3
        for key in ("mean", "std"):
            value = getattr(self, key)
            if value is not None and len(value) not in (1, channels):
                raise UserError(
                    f"data.{key} has {len(value)} values but images have {channels} channel(s) "
                    f"(data.in_channels): give {channels} values, or null to compute them from the training split."
                )
        if self.std is not None and any(s <= 0 for s in self.std):
            raise UserError(f"data.std must be positive, got {self.std}")

    def _compute_normalization(self, train: Sequence[Sample]) -> None:
        mean, std = file_channel_stats(
            [s.path for s in train],
            channels=self.in_channels or 3,
            max_images=self.stats_images,
            seed=self.split_seed,
            num_workers=self.num_workers,
        )
        self.mean = self.mean or mean
        self.std = self.std or std
        log.info(
            "Normalisation computed from %d training images: mean=%s std=%s",
            min(len(train), self.stats_images),
            _rounded(self.mean),
            _rounded(self.std),
        )

    def _loader(self, stage: str, shuffle: bool) -> DataLoader:
        if not self.datasets:
            self.setup(stage)
        key = "train_transforms" if stage == "train" else "eval_transforms"
        workers = self.num_workers
        dataset = self.datasets[stage]
        collate = functools.partial(type(self).collate, transforms_key=key)
        if stage == "train" and self.mix_settings is not None:
            collate = functools.partial(collate, mix=self.mix_settings.build(int(self.num_classes)))
        # The order depends only on (split_seed, epoch), and the position is checkpointed: a resumed run
        # sees the batches an uninterrupted one would have seen (the same sampler as in-memory sets).
        return ResumableDataLoader(
            dataset,
            batch_size=self.batch_size if stage == "train" else self.eval_batch_size,
            sampler=train_sampler(
                self.sampler,
                len(dataset),
                shuffle,
                self.split_seed,
                labels=[label for _, label in dataset.samples] if self.stratify_folds else None,
                class_weights=self.class_weights,
            ),
            num_workers=workers,
            collate_fn=collate,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers and workers > 0,
        )

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        images, *targets = batch  # (images, labels) or, mixed, (images, labels, soft targets)
        return (self.normalize(images), *targets)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (or float in [0, 1]) -> per-channel standardised float, on the batch's device.

        Works for ``(N, C, H, W)`` and cropped ``(N, ncrops, C, H, W)`` batches alike.
        """
        if self._norm is None or self._norm[0].device != images.device:
            mean = torch.tensor(self.mean or [0.0], device=images.device).view(-1, 1, 1)
            std = torch.tensor(self.std or [1.0], device=images.device).view(-1, 1, 1)
            self._norm = (mean, std)
        mean, std = self._norm
        images = images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()
        return (images - mean) / std

    def data_info(self) -> DataInfo:
        """What inference needs: decode to ``in_channels``, run ``eval_transforms``, scale to [0, 1],
        normalise with ``mean``/``std``; plus class names."""
        return classification_info(self, eval_transforms=self.eval_transform_items)


def _plain_list(items: Sequence[Any] | None) -> list[Any]:
    if isinstance(items, (DictConfig, ListConfig)):
        items = OmegaConf.to_container(items, resolve=True)
    return list(items or [])


def _item_name(item: Any) -> str:
    if isinstance(item, str):
        return item.rsplit(".", 1)[-1]
    if isinstance(item, Mapping):
        if "_target_" in item:
            return str(item["_target_"]).rsplit(".", 1)[-1]
        if len(item) == 1:
            return str(next(iter(item))).rsplit(".", 1)[-1]
    return ""


def _build_pipeline(items: list[Any], key: str) -> v2.Compose | None:
    """Build a uint8 pipeline; float conversion and Normalize are refused (the device does them)."""
    for position, item in enumerate(items, start=1):
        name = _item_name(item)
        if name in FLOAT_STEPS:
            raise UserError(
                f"data.{key} item {position} is {name}: lit_vision keeps images uint8 through the pipeline "
                "and scales/normalises them per batch on the device with data.mean and data.std. Remove "
                f"{name} from the list (put Normalize's values in data.mean / data.std)."
            )
    try:
        return build_transforms(items)
    except (ValueError, TypeError, ImportError) as err:
        raise UserError(f"data.{key}: {err}") from None


def _rounded(values: Sequence[float] | None) -> list[float] | None:
    return None if values is None else [round(v, 4) for v in values]
