"""MNIST, FashionMNIST, CIFAR-10 and CIFAR-100 through torchvision's dataset classes, held in memory.

Each set is read once with torchvision (``download`` fetches it when allowed), converted to one uint8 NCHW
tensor, and served in whole-batch slices; the official test split is the test set and a seeded,
stratified part of the official training split (``val_fraction``) is the validation set. Files are
checked before reading so an incomplete or damaged copy gives a message naming the exact file.
"""

from __future__ import annotations

import gzip
import logging
import pickle
import shutil
from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torchvision import datasets

from lit_vision.data.augmented import AugmentedInMemoryDataModule
from lit_vision.data.contract import DataInfo
from lit_vision.data.in_memory import as_uint8_nchw
from lit_vision.errors import UserError

log = logging.getLogger(__name__)


class TorchvisionImageDataModule(AugmentedInMemoryDataModule):
    """Shared logic: locate/verify/download the files, read both official splits, split train into train/val.

    Subclasses name the torchvision class, the folder under ``root`` and the files torchvision reads.
    """

    dataset_class: ClassVar[type]
    #: torchvision's own folder name under ``root`` (e.g. ``MNIST/raw``, ``cifar-10-batches-py``).
    folder: ClassVar[str]
    files: ClassVar[tuple[str, ...]]
    default_class_names: ClassVar[list[str] | None] = None
    #: appended to the "files not found" message (e.g. how to make the files offline)
    offline_hint: ClassVar[str] = ""

    def __init__(
        self,
        root: str = "data",
        download: bool = False,
        val_fraction: float = 0.1,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("class_names", self.default_class_names)
        kwargs.setdefault("test_fraction", 0.0)
        super().__init__(val_fraction=val_fraction, **kwargs)
        self.root = Path(str(root)).expanduser()
        self.download = bool(download)

    # ------------------------------------------------------------------ files
    @property
    def data_dir(self) -> Path:
        """Where torchvision reads the files: ``root/<folder>``."""
        return self._resolved_root() / self.folder

    def _resolved_root(self) -> Path:
        """``root`` as configured, or its ancestor when it already points inside torchvision's layout
        (``.../MNIST`` or ``.../MNIST/raw`` instead of the folder holding ``MNIST/``)."""
        parts = Path(self.folder).parts
        for depth in range(len(parts), 0, -1):
            if tuple(self.root.parts[-depth:]) == parts[:depth] and not (self.root / self.folder).exists():
                return self.root.parents[depth - 1]
        return self.root

    def missing_files(self) -> list[str]:
        """The expected files that are not there (after unpacking any ``.gz`` copies)."""
        folder = self.data_dir
        missing = []
        for name in self.files:
            path = folder / name
            if not path.is_file() and path.with_name(name + ".gz").is_file():
                _gunzip(path.with_name(name + ".gz"), path)
            if not path.is_file():
                missing.append(name)
        return missing

    def _not_found_error(self, missing: list[str]) -> UserError:
        folder = self.data_dir
        listing = "\n".join(f"  {folder / name}" for name in self.files)
        hint = self.offline_hint
        return UserError(
            f"{self.dataset_class.__name__} not found under data.root={self.root}: torchvision reads these "
            f"files\n{listing}\nand {len(missing)} of them are missing ({', '.join(missing)}). "
            f"Set data.download=true to fetch them (needs network), or copy them there "
            f"(or set data.root to the folder that holds {Path(self.folder).parts[0]}/).{hint}"
        )

    def prepare_data(self) -> None:
        """Download both official splits when ``download`` is true and the files are not there yet."""
        if not self.download or not self.missing_files():
            return
        self._resolved_root().mkdir(parents=True, exist_ok=True)
        for train in (True, False):
            try:
                self._torchvision_dataset(train=train, download=True)
            except Exception as err:  # network errors come in many types (URLError, RuntimeError, ...)
                raise UserError(
                    f"Downloading {self.dataset_class.__name__} into {self._resolved_root()} failed: {err}. "
                    "Without network, copy the files there yourself (see the list in the error you get "
                    "with data.download=false)."
                ) from None

    # ------------------------------------------------------------------ reading
    def load_splits(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        if self.download:
            self.prepare_data()
        missing = self.missing_files()
        if missing:
            raise self._not_found_error(missing)
        if self.check_before_reading:
            self.check_files()
        parts = {}
        for train in (True, False):
            try:
                dataset = self._torchvision_dataset(train=train, download=False)
            except Exception as err:
                self.check_files()  # names the damaged file when it can
                raise UserError(
                    f"{self.dataset_class.__name__} in {self.data_dir} could not be read: {err}. "
                    "Delete the damaged files and download them again (data.download=true)."
                ) from None
            parts[train] = self._to_tensors(dataset)
            if len(parts[train][0]) != len(parts[train][1]):
                self.check_files()
                raise UserError(
                    f"{self.dataset_class.__name__} in {self.data_dir}: {len(parts[train][0])} images but "
                    f"{len(parts[train][1])} labels. Replace the files with a complete copy."
                )
            if train:
                self._read_class_names(dataset)
        splits = self.split_train(*parts[True], with_test=False)
        if len(splits["val"][1]) == 0:
            raise UserError(
                f"The validation split is empty: data.val_fraction={self.val_fraction} of "
                f"{len(parts[True][1])} training images rounds to none per class. Raise data.val_fraction."
            )
        splits["test"] = parts[False]
        log.info(
            "%s: %s", self.dataset_class.__name__, ", ".join(f"{k} {len(v[1])}" for k, v in splits.items())
        )
        return splits

    #: run :meth:`check_files` before every read (when it is cheap) rather than only after a failure
    check_before_reading: ClassVar[bool] = False

    def check_files(self) -> None:
        """Check the files' structure; raise a UserError naming the damaged file (no-op if all look fine)."""

    def _torchvision_dataset(self, train: bool, download: bool):
        return self.dataset_class(root=str(self._resolved_root()), train=train, download=download)

    @abstractmethod
    def _to_tensors(self, dataset) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 NCHW images and int64 labels of one torchvision dataset object."""

    def _read_class_names(self, dataset) -> None:
        if self.class_names is None and getattr(dataset, "classes", None):
            self.class_names = [str(c) for c in dataset.classes]

    def data_info(self) -> DataInfo:
        return super().data_info().replace(dataset=self.dataset_class.__name__)


# ---------------------------------------------------------------------- MNIST family
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


class MNISTDataModule(TorchvisionImageDataModule):
    """MNIST: 60,000 + 10,000 handwritten digits, 28x28 grey (torchvision's ``MNIST/raw`` IDX files)."""

    dataset_class = datasets.MNIST
    folder = "MNIST/raw"
    files = IDX_FILES
    default_class_names = [str(i) for i in range(10)]
    check_before_reading = True  # IDX headers: a few bytes per file
    offline_hint = (
        " Offline, `python -m lit_vision.tools.digits_as_mnist DIR` writes scikit-learn's real digits in "
        "this layout (then data.root=DIR)."
    )

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("num_classes", 10)
        kwargs.setdefault("in_channels", 1)
        kwargs.setdefault("image_size", 28)
        super().__init__(**kwargs)

    def check_files(self) -> None:
        counts = {}
        for name in self.files:
            dims = check_idx_file(self.data_dir / name, ndim=3 if "images" in name else 1)
            counts[name] = dims[0]
        for split in ("train", "t10k"):
            images, labels = counts[f"{split}-images-idx3-ubyte"], counts[f"{split}-labels-idx1-ubyte"]
            if images != labels:
                raise UserError(
                    f"{self.data_dir}/{split}-images-idx3-ubyte holds {images} images but "
                    f"{split}-labels-idx1-ubyte holds {labels} labels: the pair comes from different "
                    "downloads. Replace both files."
                )

    def _to_tensors(self, dataset) -> tuple[torch.Tensor, torch.Tensor]:
        return dataset.data.unsqueeze(1).contiguous(), dataset.targets.long()

    def _read_class_names(self, dataset) -> None:
        """MNIST's torchvision names are "0 - zero"...; keep the plain digits."""


class FashionMNISTDataModule(MNISTDataModule):
    """Fashion-MNIST: 70,000 28x28 grey clothing images in 10 classes (``FashionMNIST/raw`` IDX files)."""

    dataset_class = datasets.FashionMNIST
    folder = "FashionMNIST/raw"
    default_class_names = list(datasets.FashionMNIST.classes)
    offline_hint = ""


def check_idx_file(path: Path, ndim: int) -> tuple[int, ...]:
    """Verify an IDX file's magic number, rank and length; return its dimensions."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        header = f.read(4 + 4 * ndim)
    fix = "Replace it with a complete copy (or delete it and set data.download=true)."
    if len(header) < 4 + 4 * ndim or header[:2] != b"\x00\x00":
        raise UserError(f"{path} is not an IDX file (bad header, {size} bytes). {fix}")
    type_code, rank = header[2], header[3]
    if type_code != 0x08 or rank != ndim:
        raise UserError(
            f"{path} is an IDX file of type 0x{type_code:02x} with {rank} dimensions; expected unsigned "
            f"bytes (0x08) with {ndim} ({'images' if ndim == 3 else 'labels'}). {fix}"
        )
    dims = tuple(int.from_bytes(header[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = 4 + 4 * ndim + int(np.prod(dims))
    if size != expected:
        raise UserError(
            f"{path} is truncated or padded: its header announces {dims} ({expected} bytes) but the file "
            f"has {size} bytes. {fix}"
        )
    return dims


# ---------------------------------------------------------------------- CIFAR family
def _without_checksums(cls: type) -> type:
    """torchvision's CIFAR class with the per-file md5 checks reduced to existence checks.

    The downloaded archive is still md5-checked; the unpacked batches are verified structurally instead,
    so a copy in the same format (a subset, a re-pickled batch, test fixtures) loads too.
    """
    return type(
        cls.__name__,
        (cls,),
        {
            "train_list": [[name, None] for name, _ in cls.train_list],
            "test_list": [[name, None] for name, _ in cls.test_list],
            "meta": {**cls.meta, "md5": None},
            "__module__": __name__,
        },
    )


class CIFAR10DataModule(TorchvisionImageDataModule):
    """CIFAR-10: 50,000 + 10,000 32x32 colour images in 10 classes (``cifar-10-batches-py`` pickles)."""

    dataset_class = _without_checksums(datasets.CIFAR10)
    folder = datasets.CIFAR10.base_folder
    files = (
        *(name for name, _ in datasets.CIFAR10.train_list),
        *(name for name, _ in datasets.CIFAR10.test_list),
        datasets.CIFAR10.meta["filename"],
    )
    label_key = "labels"
    names_key = datasets.CIFAR10.meta["key"]

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("num_classes", 10)
        kwargs.setdefault("in_channels", 3)
        kwargs.setdefault("image_size", 32)
        super().__init__(**kwargs)

    def check_files(self) -> None:
        for name in self.files:
            path = self.data_dir / name
            fix = f"Replace {name} with a complete copy (or delete the folder and set data.download=true)."
            try:
                with open(path, "rb") as f:
                    entry = pickle.load(f, encoding="latin1")
            except Exception as err:
                raise UserError(f"{path} is not a readable CIFAR pickle ({err}). {fix}") from None
            keys = (self.names_key,) if name == self.files[-1] else ("data", self.label_key)
            if not isinstance(entry, dict) or any(k not in entry for k in keys):
                found = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
                raise UserError(f"{path} lacks the keys {list(keys)} (found {found}). {fix}")
            if "data" in keys:
                data = np.asarray(entry["data"])
                if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(entry[self.label_key]):
                    raise UserError(
                        f"{path}: 'data' has shape {data.shape} for {len(entry[self.label_key])} labels; "
                        f"expected (N, 3072) uint8 rows (R, G, B planes of 32x32). {fix}"
                    )

    def _to_tensors(self, dataset) -> tuple[torch.Tensor, torch.Tensor]:
        images = as_uint8_nchw(np.asarray(dataset.data, dtype=np.uint8))
        return images, torch.as_tensor(dataset.targets, dtype=torch.long)


class CIFAR100DataModule(CIFAR10DataModule):
    """CIFAR-100: 50,000 + 10,000 32x32 colour images in 100 fine classes (``cifar-100-python`` pickles)."""

    dataset_class = _without_checksums(datasets.CIFAR100)
    folder = datasets.CIFAR100.base_folder
    files = (
        *(name for name, _ in datasets.CIFAR100.train_list),
        *(name for name, _ in datasets.CIFAR100.test_list),
        datasets.CIFAR100.meta["filename"],
    )
    label_key = "fine_labels"
    names_key = datasets.CIFAR100.meta["key"]

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("num_classes", 100)
        super().__init__(**kwargs)


def _gunzip(source: Path, target: Path) -> None:
    """Unpack ``name.gz`` next to itself, as torchvision's download does."""
    log.info("Unpacking %s", source)
    tmp = target.with_name(target.name + ".part")
    try:
        with gzip.open(source, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
    except (OSError, EOFError) as err:
        tmp.unlink(missing_ok=True)
        raise UserError(
            f"{source} is not a complete gzip file ({err}). Replace it with a full copy."
        ) from None
    tmp.replace(target)
