"""``experiment=mnist_cnn`` through lit_vision against a plain PyTorch loop: same digits, net, batch, optimizer.

The data are scikit-learn's real handwritten digits written in torchvision's ``MNIST/raw`` layout by
``lit_vision.tools.digits_as_mnist`` (1,438 training + 359 test digits; the full run adds 33 shifted copies
of every training digit, 48,892 training images, about MNIST's size). Both sides hold out the same
seeded 10% validation split, normalise with the training split's mean/std, train the tutorial CNN (16/32
maps, 5x5) with Adam 1e-3 and batch 64 for 3 epochs, evaluate the validation split after every epoch,
keep the best epoch's weights (written to disk) and report the test accuracy of those.

Runs (``bench.vs_plain``): the tutorials' plain loop (NCHW fp32), lit_vision with every default, and
lit_vision at the loop's compute settings (the framework's own overhead); an untimed warm-up epoch on a
small copy first. Rows: test accuracy, whole-run wall time, median epoch time of each lit_vision run
against the loop's, data-wait share.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch

from bench.plain_loop import read_torchvision_splits
from bench.vs_plain import SEED, Comparison, PlainSpec, run_comparison, run_plain

EPOCHS = 3
BATCH_SIZE = 64
VAL_FRACTION = 0.1
FULL_COPIES = 33  # 1,438 x 34 = 48,892 training digits


def write_digits(root: Path, copies: int) -> dict[str, int]:
    """Real digits as MNIST IDX files under ``root/MNIST/raw``."""
    from lit_vision.tools.digits_as_mnist import write_digits_as_mnist

    return write_digits_as_mnist(root, test_fraction=0.2, seed=0, copies=copies, gz=False)


def mnist_cnn_loop(root: Path, channels_last: bool = False, bf16: bool = False) -> PlainSpec:
    """A plain loop for the tutorial CNN on the IDX files under ``root``: the tutorials' (NCHW, fp32) by
    default; ``channels_last``/``bf16`` give the best plain loop's settings."""
    from lit_vision.nets.cnn import SimpleCNN

    return PlainSpec(
        read=lambda: read_torchvision_splits("MNIST", root, VAL_FRACTION, SEED),
        net=lambda: SimpleCNN(in_channels=1, num_classes=10, image_size=28),
        optimizer=lambda params: torch.optim.Adam(params, lr=1e-3),
        batch_size=BATCH_SIZE,
        channels_last=channels_last,
        bf16=bf16,
    )


def warm_up(folder: Path) -> None:
    """One untimed plain epoch on the un-copied digits (oneDNN kernels, the allocator)."""
    write_digits(folder, 0)
    spec = Comparison("warm-up", "", (), mnist_cnn_loop(folder), epochs=1, rows=())
    run_plain(spec, folder)


def run(quick: bool) -> list[dict[str, Any]]:
    """Plain loop, lit_vision defaults, lit_vision at plain settings on the same files (module doc)."""
    with tempfile.TemporaryDirectory(prefix="lv-bench-mnist-") as tmp:
        root = Path(tmp) / "digits"
        counts = write_digits(root, 0 if quick else FULL_COPIES)
        spec = Comparison(
            case="mnist_vs_plain",
            setting=(
                f"mnist_cnn on real digits as MNIST ({counts['train']} train incl. val, {counts['test']} test), "
                f"{EPOCHS} epochs, batch {BATCH_SIZE}, Adam 0.001"
            ),
            overrides=("experiment=mnist_cnn", f"data.root={root}"),
            plain=mnist_cnn_loop(root),
            epochs=EPOCHS,
            rows=("accuracy", "wall", "epoch", "wait"),
            overhead=True,
            warmup=warm_up,
        )
        return run_comparison(spec, Path(tmp))
