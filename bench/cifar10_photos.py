"""Real CIFAR-10 photos as an image folder: lit_vision against the tutorials' loop at equal epochs.

Data: 20,000 real CIFAR-10 training photos (2,000 per class, 32x32 JPEGs) in class folders under
``<data>/cifar10_jpeg/train`` (``<data>``: ``<repo>/../shared/data``, or ``python -m bench --data DIR``),
read with ``data=image_folder`` and its seeded, stratified 0.8 / 0.1 / 0.1 ratio split (16,000 / 2,000 /
2,000); the plain loop lists the same files with the same split and decodes each once with PIL into
memory (timed), as the CIFAR tutorial holds its data in memory.

Recipe, both sides: the small CNN (``model=cnn``: 16/32 maps, 5x5), Adam 1e-3, batch 64, random crop
(padding 4) + horizontal flip for training (per image: in lit_vision's loader workers, in the loop on the
in-memory batch), ImageNet mean/std (``data=image_folder``'s default), ``EPOCHS`` epochs. lit_vision runs with
every default (decoding in DataLoader workers every epoch, ``trainer.precision`` and
``model.channels_last`` resolved for this machine); the loop is the tutorials' (NCHW fp32). Rows: test
accuracy (best-validation weights), training images/s, epoch time, wall time, data-wait share.
``--quick``: 40 photos per class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from bench.plain_loop import crop_flip_per_sample, read_image_folder_splits
from bench.real_data import CIFAR10_PHOTOS, run_on_real_data
from bench.vs_plain import SEED, Comparison, PlainSpec

CASE = "cifar10_photos"
EPOCHS = 8
BATCH_SIZE = 64
RATIOS = [0.8, 0.1, 0.1]
IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
CROP_FLIP = "[{RandomCrop:{size:32,padding:4}},{RandomHorizontalFlip:{p:0.5}}]"
SETTING = (
    "data=image_folder model=cnn on real CIFAR-10 photos (20,000 JPEGs in class folders split 0.8/0.1/0.1; "
    f"--quick: 40 per class): small CNN, Adam 1e-3, batch {BATCH_SIZE}, crop+flip, {EPOCHS} epochs"
)


def comparison(root: Path) -> Comparison:
    """``data=image_folder model=cnn`` and the tutorials' loop on the class folders under ``root``."""
    from lit_vision.nets.cnn import SimpleCNN

    loop = PlainSpec(
        read=lambda: read_image_folder_splits(root, RATIOS, SEED),
        net=lambda: SimpleCNN(in_channels=3, num_classes=10, image_size=32),
        optimizer=lambda params: torch.optim.Adam(params, lr=1e-3),
        batch_size=BATCH_SIZE,
        eval_batch_size=500,
        augment=crop_flip_per_sample(32, 4),
        mean_std=IMAGENET,
    )
    return Comparison(
        case=CASE,
        setting=SETTING,
        overrides=(
            "data=image_folder",
            f"data.root={root}",
            f"data.ratios=[{','.join(str(r) for r in RATIOS)}]",
            "data.image_size=32",
            f"data.batch_size={BATCH_SIZE}",
            "data.eval_batch_size=500",
            f"data.train_transforms={CROP_FLIP}",
            "data.eval_transforms=[]",
            "model=cnn",
            "optim=adam",
            "optim.lr=0.001",
        ),
        plain=loop,
        epochs=EPOCHS,
        rows=("accuracy", "images", "epoch", "wall", "wait"),
    )


def run(quick: bool) -> list[dict[str, Any]]:
    """The loop and ``data=image_folder model=cnn`` on the same real photos (module doc)."""
    return run_on_real_data(CIFAR10_PHOTOS, CASE, SETTING, quick, comparison)
