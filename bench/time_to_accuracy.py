"""Seconds from start to a test accuracy: the default experiment to 95% on the digits, the MNIST-style CNN
to 98% on real digits in MNIST's layout; lit_vision against the plain loop on the same data.

- ``default``: ``python train.py`` with no overrides (scikit-learn's 1,797 digits, 8x8, the small CNN,
  Adam 1e-3, batch 64); the DataModule's seeded 15% test split (270 digits) is evaluated after every epoch.
- ``mnist_cnn``: ``experiment=mnist_cnn`` on the digits written by ``digits_as_mnist --shifted-copies 33``
  (48,892 training digits incl. validation, 359 test digits; the real MNIST is not available offline); the
  test file is evaluated every 50 steps and after every epoch.

Both through ``bench.vs_plain`` with ``stop_at_target``: the clock starts before
``lit_vision.runs.run.train`` (config, reading the files, building the model, the sanity check and
validation are inside) and stops at the first evaluation that reaches the target; the evaluations' own time
is taken off (``bench.clocks.AccuracyProbe``), and training stops there (no final test). The plain loop
(``bench.plain_loop``: same split, net, batch, optimizer) is timed the same way from reading its files.
Python imports are outside both. The real-data headline is ``fashion_mnist_time_to_accuracy``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch

from bench.plain_loop import Splits, read_torchvision_splits
from bench.vs_plain import SEED, Comparison, PlainSpec, run_comparison


def digits_splits() -> Splits:
    """The default experiment's digits split (the DataModule's own seeded split)."""
    from lit_vision.data.digits import DigitsDataModule

    dm = DigitsDataModule(batch_size=64, split_seed=SEED)
    dm.setup("fit")
    parts = {k: (v.images, v.labels) for k, v in dm.splits.items()}
    return Splits(*parts["train"], *parts["val"], *parts["test"])


def tutorial_cnn_loop(read: Any, image_size: int) -> PlainSpec:
    """The tutorials' loop for the small CNN (Adam 1e-3, batch 64) on the splits ``read`` returns."""
    from lit_vision.nets.cnn import SimpleCNN

    return PlainSpec(
        read=read,
        net=lambda: SimpleCNN(1, 10, image_size),
        optimizer=lambda params: torch.optim.Adam(params, lr=1e-3),
        batch_size=64,
    )


def run(quick: bool) -> list[dict[str, Any]]:
    from lit_vision.tools.digits_as_mnist import write_digits_as_mnist

    rows = []
    with tempfile.TemporaryDirectory(prefix="lv-bench-tta-") as tmp:
        tmp = Path(tmp)
        default = Comparison(
            case="time_to_accuracy",
            setting="default experiment (digits CNN, batch 64, Adam 1e-3)",
            overrides=(),
            plain=tutorial_cnn_loop(digits_splits, 8),
            epochs=30,
            rows=("time_to_accuracy",),
            target=0.95,
            stop_at_target=True,
        )
        rows += run_comparison(default, tmp / "default")

        copies, every = (0, 5) if quick else (33, 50)
        counts = write_digits_as_mnist(tmp / "mnist", test_fraction=0.2, seed=0, copies=copies, gz=False)
        mnist = Comparison(
            case="time_to_accuracy",
            setting=f"mnist_cnn on digits as MNIST ({counts['train']} train incl. val, {counts['test']} test)",
            overrides=("experiment=mnist_cnn", f"data.root={tmp / 'mnist'}"),
            plain=tutorial_cnn_loop(lambda: read_torchvision_splits("MNIST", tmp / "mnist", 0.1, SEED), 28),
            epochs=3,
            rows=("time_to_accuracy",),
            target=0.98,
            probe_every=every,
            stop_at_target=True,
        )
        rows += run_comparison(mnist, tmp / "mnist_cnn")
    return rows
