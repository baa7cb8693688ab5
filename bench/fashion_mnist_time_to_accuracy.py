"""Headline on real data: time to a test accuracy on real Fashion-MNIST, lit_vision's defaults against the
best plain loop, in one run; per-epoch ratio and time-to-accuracy ratio.

Data: the real Fashion-MNIST (``<data>/FashionMNIST/raw``; ``<data>``: ``<repo>/../shared/data`` or
``python -m bench --data DIR``), the same seeded 10% validation split on both sides, the 10,000 test
images as the probe.

- lit_vision: ``data=fashion_mnist data.root=<data>`` and nothing else: the default model (the small CNN,
  16/32 maps), Adam 1e-3, batch 64, ``trainer.precision`` and ``model.channels_last`` resolved for this
  machine, every default callback, validation each epoch;
- the best plain loop a careful engineer writes: the same net, optimizer and batch, batches sliced from a
  shuffled in-memory tensor, channels_last, and bf16 autocast where the CPU computes bf16 natively
  (``lit_vision.utils.hardware.cpu_has_native_bf16``; fp32 elsewhere).

Both train ``EPOCHS`` epochs (no early stop, so the epoch times are comparable) and evaluate the test split
every ``PROBE_EVERY`` steps and after each epoch, off the clock. Rows: seconds from the start of the run
to ``TARGET`` test accuracy (config, reading the files, building the model and the sanity check included),
median epoch time (epochs 2..), final test accuracy. ``--quick``: 2,000 + 500 of the real images and a
lower target (``QUICK_TARGET``).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import torch

from bench.plain_loop import read_torchvision_splits
from bench.real_data import FASHION_MNIST, run_on_real_data
from bench.vs_plain import SEED, Comparison, PlainSpec

CASE = "fashion_mnist_time_to_accuracy"
EPOCHS = 3
TARGET, PROBE_EVERY = 0.88, 100
QUICK_TARGET, QUICK_PROBE_EVERY = 0.6, 10
SETTING = (
    f"data=fashion_mnist (all defaults: small CNN, Adam 1e-3, batch 64) on real Fashion-MNIST "
    f"(60,000 train incl. 10% val, 10,000 test; --quick: 2,000 / 500), {EPOCHS} epochs"
)


def comparison(root: Path, target: float, probe_every: int) -> Comparison:
    """lit_vision's defaults and the best plain loop on the files under ``root``."""
    from lit_vision.nets.cnn import SimpleCNN
    from lit_vision.utils.hardware import cpu_has_native_bf16

    loop = PlainSpec(
        read=lambda: read_torchvision_splits("FashionMNIST", root, 0.1, SEED),
        net=lambda: SimpleCNN(in_channels=1, num_classes=10, image_size=28),
        optimizer=lambda params: torch.optim.Adam(params, lr=1e-3),
        batch_size=64,
        channels_last=True,
        bf16=cpu_has_native_bf16(),
    )
    return Comparison(
        case=CASE,
        setting=SETTING,
        overrides=("data=fashion_mnist", f"data.root={root}"),
        plain=loop,
        epochs=EPOCHS,
        rows=("time_to_accuracy", "epoch", "accuracy"),
        target=target,
        probe_every=probe_every,
    )


def run(quick: bool) -> list[dict[str, Any]]:
    """lit_vision's defaults and the best plain loop on the same real files (module doc)."""
    target, every = (QUICK_TARGET, QUICK_PROBE_EVERY) if quick else (TARGET, PROBE_EVERY)
    build = partial(comparison, target=target, probe_every=every)
    return run_on_real_data(FASHION_MNIST, CASE, SETTING, quick, build)
