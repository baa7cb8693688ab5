"""The tutorial CNN through lit_vision's defaults against the best plain loop: the per-epoch ratio.

The issue's bar: lit_vision's epoch (training + validation) at most as long as that of the best loop a
careful engineer writes on the same machine: batches sliced from the in-memory tensor, channels_last,
bf16 autocast where the CPU computes bf16 natively. Same data (scikit-learn's real digits written in
MNIST's layout by ``lit_vision.tools.digits_as_mnist`` with ``COPIES`` shifted copies: 8,628 training
digits including the 10 % validation split, 359 test digits; ``--quick``: no copies), same net (16/32
maps, 5x5), Adam 1e-3, batch 64, ``EPOCHS`` epochs, run by ``bench.vs_plain`` in one process after an
untimed warm-up. Rows: median epoch time (epochs 2..), training images/s, data-wait share, test accuracy.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from bench.mnist_vs_plain import BATCH_SIZE, mnist_cnn_loop, warm_up, write_digits
from bench.vs_plain import Comparison, PlainSpec, run_comparison

CASE = "cnn_vs_best_plain"
EPOCHS = 4
COPIES = 5  # 1,438 x 6 = 8,628 training digits incl. validation: the 8k-image epoch


def best_loop(root: Path) -> PlainSpec:
    """The best plain loop for the tutorial CNN on the IDX files under ``root``."""
    from lit_vision.utils.hardware import cpu_has_native_bf16

    return mnist_cnn_loop(root, channels_last=True, bf16=cpu_has_native_bf16())


def run(quick: bool) -> list[dict[str, Any]]:
    """Best plain loop and lit_vision's defaults on the same files (module doc)."""
    with tempfile.TemporaryDirectory(prefix="lv-bench-cnn-best-") as tmp:
        root = Path(tmp) / "digits"
        counts = write_digits(root, 0 if quick else COPIES)
        spec = Comparison(
            case=CASE,
            setting=(
                f"experiment=mnist_cnn (tutorial CNN) on real digits as MNIST ({counts['train']} train incl. "
                f"10% val, {counts['test']} test), {EPOCHS} epochs, batch {BATCH_SIZE}, Adam 0.001"
            ),
            overrides=("experiment=mnist_cnn", f"data.root={root}"),
            plain=best_loop(root),
            epochs=EPOCHS,
            rows=("epoch", "images", "wait", "accuracy"),
            warmup=warm_up,
        )
        return run_comparison(spec, Path(tmp))
