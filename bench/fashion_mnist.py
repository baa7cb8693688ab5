"""Real Fashion-MNIST with the FashionMNIST tutorial's recipe: lit_vision against the tutorial's loop.

Data: the real Fashion-MNIST in torchvision's IDX layout (60,000 training images, 10% held out for
validation by both sides with the same seeded split, 10,000 test images) under
``<data>/FashionMNIST/raw`` (``<data>``: ``<repo>/../shared/data``, or ``python -m bench --data DIR``).

Recipe (``experiment=fashion_mnist_lenet``, the tutorial's): LeNet (6 and 16 maps, 120-84-10), SGD lr 1e-3
momentum 0.9, batch 4, normalised with 0.5 / 0.5, for ``EPOCHS`` epochs on both sides (the tutorial trains
5; ``EPOCHS`` says why one fits the suite). The plain loop is the tutorial's (NCHW fp32, batches sliced
from the in-memory tensor); lit_vision runs with every default (``trainer.precision`` and
``model.channels_last`` resolved for this machine). Rows: test accuracy of the best-validation weights,
training images/s, epoch time and whole-run wall time. ``--quick``: 2,000 + 500 of the real images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from bench.plain_loop import read_torchvision_splits
from bench.real_data import FASHION_MNIST, run_on_real_data
from bench.vs_plain import SEED, Comparison, PlainSpec

CASE = "fashion_mnist"
# The tutorial's 5 epochs at batch 4 are 67,500 steps per side; lit_vision's epoch alone takes about 3
# minutes on 2 shared cores. One epoch keeps the case near 5 minutes; both sides train the same one.
EPOCHS = 1
SETTING = (
    f"experiment=fashion_mnist_lenet on real Fashion-MNIST (60,000 train incl. 10% val, 10,000 test; "
    f"--quick: 2,000 / 500): LeNet, SGD 1e-3 m0.9, batch 4, 0.5/0.5, {EPOCHS} epoch{'s' if EPOCHS > 1 else ''} (the tutorial trains 5)"
)


def comparison(root: Path) -> Comparison:
    """``experiment=fashion_mnist_lenet`` and the tutorial's loop on the files under ``root``."""
    from lit_vision.nets.lenet import LeNet

    loop = PlainSpec(
        read=lambda: read_torchvision_splits("FashionMNIST", root, 0.1, SEED),
        net=lambda: LeNet(in_channels=1, num_classes=10, image_size=28),
        optimizer=lambda params: torch.optim.SGD(params, lr=1e-3, momentum=0.9),
        batch_size=4,
        mean_std=([0.5], [0.5]),
    )
    return Comparison(
        case=CASE,
        setting=SETTING,
        overrides=("experiment=fashion_mnist_lenet", f"data.root={root}", "data.val_fraction=0.1"),
        plain=loop,
        epochs=EPOCHS,
        rows=("accuracy", "images", "epoch", "wall"),
    )


def run(quick: bool) -> list[dict[str, Any]]:
    """The tutorial's loop and ``experiment=fashion_mnist_lenet`` on the same real files (module doc)."""
    return run_on_real_data(FASHION_MNIST, CASE, SETTING, quick, comparison)
