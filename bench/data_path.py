"""Images per second of each image DataModule against the raw decode rate of the same files, and the share
of a training step spent waiting for data.

DataModules (each built from its ``conf/data`` file with the defaults a run gets: workers from the CPU
count, persistent workers, the default training pipeline):

- ``in-memory``: ``data=cifar10`` on CIFAR-10 python pickles (uint8 tensor in memory, batches sliced, crop +
  flip per batch on the device), batch 128;
- ``PNG folder``: ``data=image_list`` on the CIFAR-to-PNG tutorial's layout (32x32 PNGs + train.txt; Resize
  + RandomCrop(padding 4) in workers), batch 128;
- ``JPEG folder with resize``: ``data=image_folder`` on 500x375 JPEG photos in class folders
  (RandomResizedCrop 224, flip, rotation, colour jitter in workers), batch 32;
- ``segmentation pairs``: ``data=segmentation_folder`` on a VOC layout (320x256 image + palette mask PNG
  pairs; RandomResizedCrop 256, flip, colour jitter on image and mask; decoded pairs cached in memory),
  batch 8.

Per DataModule:

1. loader images/s: Lightning trains a one-parameter model on the DataModule for two epochs (so the
   loader, the transfer and ``on_after_batch_transfer`` run as in a real run, and nothing else costs
   time); the second epoch's images per second is reported (workers already started);
2. raw decode images/s of the same files in one process, no transforms: ``decode_image_file`` per file
   (pairs: image and mask), or torchvision's CIFAR10 reading the pickles; ratio = 1 means the pipeline
   (transforms included) keeps pace with bare decoding in one process, more than 1 that workers or the
   cache beat it;
3. data wait share: the family's model trains a few steps on the DataModule through ``lit_vision.runs.run``
   (``bench.clocks.StepClock``): time between steps (loader, transfer, batch transforms, loop bookkeeping)
   over the training time (an epoch's first batch is left out). ResNet-18 (CIFAR stem) for the PNG folder,
   ResNet-18 at 224 for the JPEG folder, the UNet (16 base features, as ``cats_unet``) for the pairs; the
   in-memory case is measured by ``mnist_vs_plain`` and ``resnet_vs_plain``. The loader's workers share
   the CPU with training, as in a real run.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch

from bench.clocks import train_steps_with_clock
from bench.report import device_name, make_row

SEED = 42


class NullTask(L.LightningModule):
    """One scalar parameter and a trivial loss on each batch: trains on a DataModule so that only the data
    path (loader, transfer, batch transforms, Lightning's loop) costs time. Records images per epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.epochs: list[tuple[int, float]] = []
        self._images = 0
        self._start = 0.0

    def on_train_epoch_start(self) -> None:
        self._images, self._start = 0, time.perf_counter()

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        images = batch[0]
        self._images += images.shape[0]
        return self.weight * images.flatten()[:1].float().sum()

    def on_train_epoch_end(self) -> None:
        self.epochs.append((self._images, time.perf_counter() - self._start))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


@dataclass
class Source:
    """A DataModule to measure: its data overrides, the files to decode, and the model for the wait share."""

    name: str
    description: str
    data: list[str]
    decode: Callable[[], int]  # decodes every training file once; returns the number of images
    model: list[str] | None  # overrides of the model run (None: measured elsewhere)
    steps: int = 5


def loader_rate(data_overrides: list[str], workdir: Path) -> tuple[float, int, int]:
    """(images/s of the second epoch, workers, images per epoch) with the null task."""
    from hydra.utils import instantiate

    from bench.compose import compose_train_config
    from lit_vision.runs.run import fill_discovered_data_keys

    cfg = compose_train_config([*data_overrides, f"seed={SEED}"], workdir)
    datamodule = instantiate(cfg.data)
    fill_discovered_data_keys(cfg, datamodule)
    task = NullTask()
    trainer = L.Trainer(
        accelerator="auto",
        devices=1,
        max_epochs=2,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(workdir),
    )
    trainer.fit(task, datamodule=datamodule)
    images, seconds = task.epochs[-1]
    return images / seconds, int(getattr(datamodule, "num_workers", 0) or 0), images


def wait_share(data_overrides: list[str], model: list[str], steps: int, workdir: Path) -> dict[str, float]:
    """Train ``model`` on the DataModule for ``steps`` steps; the data-wait share after two warm-up steps."""
    measured = train_steps_with_clock([*data_overrides, *model, f"seed={SEED}"], steps, workdir)
    records = [r for r in measured["steps"][2:] if r[2] == r[2]]
    gaps, busy = sum(r[2] for r in records), sum(r[3] for r in records)
    return {
        "share": gaps / (gaps + busy) if gaps + busy else float("nan"),
        "step": statistics.median(r[3] for r in records) if records else float("nan"),
    }


def timed_decode(decode: Callable[[], int]) -> float:
    """Images per second of one pass of ``decode`` (after a warm-up pass over nothing)."""
    start = time.perf_counter()
    count = decode()
    return count / (time.perf_counter() - start)


def decode_files(paths: list[Path], masks: list[Path] | None = None) -> Callable[[], int]:
    from lit_vision.data.image_io import decode_image_file

    def decode() -> int:
        for path in paths:
            decode_image_file(path, 3)
        for path in masks or []:
            decode_image_file(path, 1, exif_orientation=False)
        return len(paths)

    return decode


def read_cifar(root: Path) -> Callable[[], int]:
    from lit_vision.data.torchvision_sets import CIFAR10DataModule

    def decode() -> int:
        return len(CIFAR10DataModule.dataset_class(str(root), train=True, download=False).data)

    return decode


def prepare_sources(tmp: Path, quick: bool) -> list[Source]:
    """Write the four datasets in their real formats; the sources that measure them."""
    from tests.fakes import make_cifar10, make_image_folder, make_index_dataset
    from tests.fakes.segmentation import make_voc_dataset

    n_cifar, png_per_class, jpg_per_class, pairs = (256, 12, 6, 24) if quick else (5000, 300, 134, 160)
    cifar = make_cifar10(tmp / "cifar", n_train=n_cifar, n_test=20)
    png = make_index_dataset(tmp / "png", per_split={"train": png_per_class, "valid": 1})
    jpg = make_image_folder(tmp / "jpg", per_class=jpg_per_class, size=(375, 500), formats=("jpg",))
    seg = make_voc_dataset(tmp / "seg", n=pairs, size=(256, 320), num_classes=3)
    png_files = [
        png / line.split()[0] for line in (png / "train.txt").read_text().splitlines() if line.strip()
    ]
    jpg_files = sorted(jpg.rglob("*.jpg"))
    seg_images = sorted((seg / "JPEGImages").glob("*.png"))
    seg_masks = sorted((seg / "SegmentationClassPNG").glob("*.png"))
    resnet_cifar = ["model=resnet", "model.net.cifar_stem=true", "optim=sgd"]
    small = ["data.batch_size=16"] if quick else []
    return [
        Source(
            "in-memory",
            f"data=cifar10, {n_cifar} CIFAR-10 images (pickles), batch 128, crop+flip on the device",
            ["data=cifar10", f"data.root={cifar}"],
            read_cifar(cifar),
            None,
        ),
        Source(
            "PNG folder",
            f"data=image_list, {len(png_files)} 32x32 PNGs + train.txt, batch 128, Resize + RandomCrop(pad 4)",
            ["data=image_list", f"data.root={png}", "data.test_index=null", *small],
            decode_files(png_files),
            resnet_cifar,
        ),
        Source(
            "JPEG folder with resize",
            f"data=image_folder, {len(jpg_files)} 500x375 JPEGs, batch 32, RandomResizedCrop 224 + flip + "
            "rotation + jitter",
            ["data=image_folder", f"data.root={jpg}", *small],
            decode_files(jpg_files),
            ["model=resnet", "model.net.depth=18", "optim=sgd"],
            steps=4,
        ),
        Source(
            "segmentation pairs",
            f"data=segmentation_folder (VOC), {len(seg_images)} 320x256 PNG image + mask pairs, batch 8, "
            "RandomResizedCrop 256 + flip + jitter, decoded pairs cached",
            ["data=segmentation_folder", f"data.root={seg}", "data.layout=voc"],
            decode_files(seg_images, seg_masks),
            ["model=unet", "model.net.init_features=16"],
            steps=4,
        ),
    ]


def run(quick: bool) -> list[dict[str, Any]]:
    device = device_name()
    rows = []
    with tempfile.TemporaryDirectory(prefix="lv-bench-data-") as tmp:
        tmp = Path(tmp)
        for source in prepare_sources(tmp, quick):
            workdir = tmp / "runs" / source.name.replace(" ", "_")
            workdir.mkdir(parents=True)
            raw = timed_decode(source.decode)
            rate, workers, images = loader_rate(source.data, workdir / "loader")
            rows.append(
                make_row(
                    "data_path",
                    f"{source.name}: {source.description}",
                    device,
                    "loader images/s (vs raw decode images/s)",
                    rate,
                    raw,
                    f"{workers} workers; {images} images per epoch, 2nd epoch; raw: one process, no transforms",
                )
            )
            if source.model is None:
                continue
            steps = 3 if quick else source.steps
            measured = wait_share(source.data, source.model, steps, workdir / "model")
            model = " ".join(o for o in source.model if o.startswith("model="))
            rows.append(
                make_row(
                    "data_path",
                    f"{source.name}: {source.description}; {model}",
                    device,
                    "data wait share of train time",
                    measured["share"],
                    None,
                    f"median step {measured['step']:.3f} s; {steps} steps, first 2 left out; target < 0.1",
                )
            )
    return rows
