"""``experiment=mnist_cnn`` through lit_vision against a plain PyTorch loop: same digits, net, batch, optimizer.

The data are scikit-learn's real handwritten digits written in torchvision's ``MNIST/raw`` layout by
``lit_vision.tools.digits_as_mnist`` (1,438 training + 359 test digits; the full run adds 33 shifted copies
of every training digit, 48,892 training images, about MNIST's size). Both sides hold out the same
seeded 10% validation split, normalise with the training split's mean/std, train the tutorial CNN (16/32
maps, 5x5) with Adam 1e-3 and batch 64 for 3 epochs, evaluate the validation split after every epoch,
keep the best epoch's weights (written to disk) and report the test accuracy of those.

Three runs, in this order:

- plain loop (``bench.plain_loop``): the tutorials' loop, NCHW float32: reading the same files with
  ``torchvision.datasets.MNIST``, the same split, tensors sliced per batch, the train-accuracy count,
  per-epoch validation, ``torch.save`` of the best weights, the test pass;
- lit_vision defaults: ``lit_vision.runs.run.train(cfg)`` for ``experiment=mnist_cnn data.root=DIR`` with every
  default (reading the IDX files, config tree print and save, TensorBoard logger, checkpoints, LR monitor,
  progress bar, model summary, the default monitoring callbacks, the sanity check, validation each epoch,
  testing the best checkpoint reloaded from disk, metrics.json) and the speed defaults resolved for this
  machine (``model.channels_last=auto``, ``trainer.precision`` from the hardware);
- lit_vision at the plain loop's compute settings (``model.channels_last=false trainer.precision=32-true optim.fused=false``,
  every other default kept): the framework's own overhead.

Rows: test accuracy; wall time of the whole run; the median epoch time (epochs 2..: training + validation
+ every hook) of each lit_vision run against the plain loop's; the share of the training time lit_vision's
loop waits for data (``bench.clocks.StepClock``). Python start-up and imports are outside the timings; an
untimed warm-up epoch on a small copy runs first. Threads: torch's default for the machine.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

from bench.clocks import EpochClock, train_with_clocks
from bench.plain_loop import PlainLoop, read_torchvision_splits
from bench.report import device_name, make_row

__all__ = ["EpochClock", "run", "run_framework", "run_plain", "write_digits"]

EPOCHS = 3
BATCH_SIZE = 64
EVAL_BATCH_SIZE = 1000
LR = 1e-3
VAL_FRACTION = 0.1
SEED = 42
FULL_COPIES = 33  # 1,438 x 34 = 48,892 training digits
# The framework's own overhead: lit_vision with the plain loop's compute settings.
PLAIN_SETTINGS = ("model.channels_last=false", "trainer.precision=32-true", "optim.fused=false")


# ------------------------------------------------------------------------------------------ lit_vision
def run_framework(
    data_root: Path, workdir: Path, epochs: int = EPOCHS, overrides: tuple[str, ...] = ()
) -> dict[str, Any]:
    """``experiment=mnist_cnn`` as ``python train.py`` runs it (plus ``overrides``); returns test accuracy,
    timings and the step clock's summary."""
    from bench.compose import compose_train_config

    cfg = compose_train_config(
        [
            "experiment=mnist_cnn",
            f"data.root={data_root}",
            f"trainer.max_epochs={epochs}",
            f"seed={SEED}",
            *overrides,
        ],
        workdir,
    )
    return train_with_clocks(cfg, workdir)


# ------------------------------------------------------------------------------------------ plain loop
def run_plain(
    data_root: Path, workdir: Path, epochs: int = EPOCHS, channels_last: bool = False
) -> dict[str, Any]:
    """The tutorials' loop on the same files and split; returns test accuracy and timings."""
    from lit_vision.nets.cnn import SimpleCNN

    start = time.perf_counter()
    L.seed_everything(SEED, verbose=False)
    splits = read_torchvision_splits("MNIST", data_root, VAL_FRACTION, SEED)
    net = SimpleCNN(in_channels=1, num_classes=10, image_size=28)
    optimizer = torch.optim.Adam(net.parameters(), lr=LR)
    loop = PlainLoop(
        net, optimizer, splits, BATCH_SIZE, EVAL_BATCH_SIZE, channels_last=channels_last, seed=SEED
    )
    result = loop.fit(epochs, workdir / "plain_best.pt", start=start)
    return {
        "test_acc": result.test_acc,
        "seconds": result.seconds,
        "epochs": result.epochs,
        "wait_fraction": result.wait_fraction,
    }


# ------------------------------------------------------------------------------------------ the case
def write_digits(root: Path, copies: int) -> dict[str, int]:
    """Real digits as MNIST IDX files under ``root/MNIST/raw``."""
    from lit_vision.tools.digits_as_mnist import write_digits_as_mnist

    return write_digits_as_mnist(root, test_fraction=0.2, seed=0, copies=copies, gz=False)


def steady(durations: list[float]) -> float:
    """Median epoch time without the first epoch (start-up, first figures), when there are others."""
    return statistics.median(durations[1:] or durations)


def run(quick: bool) -> list[dict[str, Any]]:
    """Plain loop, lit_vision defaults, lit_vision at plain settings on the same files (see module doc)."""
    copies = 0 if quick else FULL_COPIES
    with tempfile.TemporaryDirectory(prefix="lv-bench-mnist-") as tmp:
        root = Path(tmp) / "digits"
        counts = write_digits(root, copies)
        # Warm-up (oneDNN kernels, allocator) so neither side pays it: one untimed plain epoch, small data.
        warm = Path(tmp) / "warm"
        write_digits(warm, 0)
        run_plain(warm, Path(tmp), epochs=1)
        plain = run_plain(root, Path(tmp))
        runs = {}
        for name, overrides in (("defaults", ()), ("plain settings", PLAIN_SETTINGS)):
            workdir = Path(tmp) / name.replace(" ", "_")
            workdir.mkdir()
            runs[name] = run_framework(root, workdir, overrides=overrides)

    device = device_name()
    setting = (
        f"mnist_cnn on real digits as MNIST ({counts['train']} train incl. val, {counts['test']} test), "
        f"{EPOCHS} epochs, batch {BATCH_SIZE}, Adam {LR}"
    )
    defaults, matched = runs["defaults"], runs["plain settings"]
    speed = f"channels_last auto, precision {defaults['precision']}"
    return [
        _row(
            setting,
            device,
            "test accuracy",
            defaults["test_acc"],
            plain["test_acc"],
            "lit_vision defaults vs plain loop",
        ),
        _row(
            setting,
            device,
            "wall s (whole run)",
            defaults["seconds"],
            plain["seconds"],
            "run.train (all defaults, test of best ckpt) vs plain loop incl. file reading; imports excluded",
        ),
        _row(
            f"{setting}; lit_vision defaults ({speed}) vs tutorial loop (NCHW fp32)",
            device,
            "epoch s (median of epochs 2..)",
            steady(defaults["epochs"]),
            steady(plain["epochs"]),
            "training + validation of one epoch; target <= 1.05, < 1 = faster than the plain loop",
        ),
        _row(
            f"{setting}; framework overhead: lit_vision at the loop's settings (NCHW fp32) vs tutorial loop",
            device,
            "epoch s (median of epochs 2..)",
            steady(matched["epochs"]),
            steady(plain["epochs"]),
            "same compute on both sides: what Lightning + lit_vision's defaults cost",
        ),
        _row(
            f"{setting}; lit_vision defaults",
            device,
            "data wait share of train time",
            defaults["steps"]["wait_fraction"],
            plain["wait_fraction"],
            "StepClock gaps (loader + transfer + batch transforms + loop bookkeeping); baseline: plain loop's "
            "slicing + normalising; target < 0.1",
            ratio=None,
        ),
    ]


def _row(
    setting: str, device: str, metric: str, value: float, baseline: float, note: str, ratio: Any = "auto"
) -> dict[str, Any]:
    return make_row("mnist_vs_plain", setting, device, metric, value, baseline, note, ratio)
