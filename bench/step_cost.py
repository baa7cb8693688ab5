"""CPU time per training step: lit_vision's defaults against the best plain loop, and what the per-step
fixes of issue 20 saved. Process CPU time rather than wall time, so that the figure holds on a shared
machine (other jobs stretch the wall clock, not this process's CPU seconds); one torch thread.

Data and model as ``cnn_vs_best_plain`` (the tutorial CNN on real digits in MNIST's layout, batch 64,
Adam 1e-3; ``COPIES`` shifted copies: 4,314 training digits incl. validation). Four runs in one process:

- the best plain loop (in-memory slicing, channels_last, bf16 autocast where the CPU has it natively),
  without and with Lightning's NVML CUDA check (``PYTORCH_NVML_BASED_CUDA_CHECK=1``, which Lightning sets at
  import and which makes every optimizer step try to load NVML);
- ``experiment=mnist_cnn`` with every default, as it runs now, and as it ran before the fixes (no-op
  callback hooks dispatched on every step, the NVML check left on).

Each side's figure is the CPU seconds from the first step's start to the last step's end of a training
epoch (the loader, transfer, batch transforms, hooks, logging, progress bar and the step itself; validation
excluded), divided by the steps, median of epochs 2..``EPOCHS``.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from omegaconf import open_dict

from bench.compose import compose_train_config
from bench.mnist_vs_plain import BATCH_SIZE, VAL_FRACTION, write_digits
from bench.plain_loop import read_torchvision_splits
from bench.report import device_name, make_row
from bench.vs_plain import SEED

CASE = "step_cost"
EPOCHS = 3
COPIES = 2
NVML_ENV = "PYTORCH_NVML_BASED_CUDA_CHECK"

# The shared CPU clocks of the recorders below: one class attribute, so a run reads them back.
_RECORDED: list[list[float]] = []


class CpuStepCost(Callback):
    """Per training epoch: ``[steps, CPU seconds from the first step's start to the last step's end]``."""

    def __init__(self) -> None:
        self._first: float | None = None
        self._last = 0.0
        self._steps = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._first, self._steps = None, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if self._first is None:
            self._first = time.process_time()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self._last = time.process_time()
        self._steps += 1

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._first is not None and self._steps > 1:
            _RECORDED.append([self._steps, self._last - self._first])


def ms_per_step(epochs: list[list[float]]) -> float:
    """Median CPU ms per step over epochs 2.. (all epochs when there is one)."""
    per_epoch = [1000.0 * seconds / steps for steps, seconds in epochs]
    return statistics.median(per_epoch[1:] or per_epoch)


@contextmanager
def nvml_check(on: bool):
    """``PYTORCH_NVML_BASED_CUDA_CHECK`` set to 1 (``on``) or unset for the block, then restored."""
    before = os.environ.get(NVML_ENV)
    if on:
        os.environ[NVML_ENV] = "1"
    else:
        os.environ.pop(NVML_ENV, None)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(NVML_ENV, None)
        else:
            os.environ[NVML_ENV] = before


def plain_epochs(root: Path, epochs: int) -> list[list[float]]:
    """The best plain loop's training epochs: ``[steps, CPU seconds]`` each (validation left out)."""
    from lit_vision.nets.cnn import SimpleCNN
    from lit_vision.utils.hardware import cpu_has_native_bf16

    L.seed_everything(SEED, verbose=False)
    splits = read_torchvision_splits("MNIST", root, VAL_FRACTION, SEED)
    net = SimpleCNN(in_channels=1, num_classes=10, image_size=28).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    mean, std = splits.train_x.float().mean() / 255, splits.train_x.float().std() / 255
    bf16 = cpu_has_native_bf16()
    out = []
    for _ in range(epochs):
        order = torch.randperm(len(splits.train_y))
        steps, begin = 0, time.process_time()
        for i in range(0, len(order), BATCH_SIZE):
            index = order[i : i + BATCH_SIZE]
            x = ((splits.train_x[index].float() / 255 - mean) / std).contiguous(
                memory_format=torch.channels_last
            )
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(net(x), splits.train_y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
        out.append([steps, time.process_time() - begin])
    return out


def lit_epochs(root: Path, workdir: Path, before_fixes: bool) -> list[list[float]]:
    """``experiment=mnist_cnn`` with every default; ``before_fixes``: as it ran before issue 20's fixes."""
    import lit_vision.runs.run as run_module
    import lit_vision.tasks.base as base_module

    cfg = compose_train_config(
        [
            "experiment=mnist_cnn",
            f"data.root={root}",
            f"trainer.max_epochs={EPOCHS}",
            f"seed={SEED}",
            "test=false",
        ],
        workdir,
    )
    with open_dict(cfg):
        cfg.callbacks["bench_cpu_steps"] = {"_target_": f"{__name__}.CpuStepCost"}
    saved = (base_module.skip_noop_batch_hooks, run_module.drop_failing_nvml_check)
    _RECORDED.clear()
    try:
        if before_fixes:
            base_module.skip_noop_batch_hooks = lambda callbacks: 0
            run_module.drop_failing_nvml_check = lambda: False
        with nvml_check(before_fixes):
            run_module.train(cfg)
    finally:
        base_module.skip_noop_batch_hooks, run_module.drop_failing_nvml_check = saved
    return list(_RECORDED)


def run(quick: bool) -> list[dict[str, Any]]:
    """The four runs (module doc) and their rows."""
    torch.set_num_threads(1)  # the runner restores the thread count after the case
    with tempfile.TemporaryDirectory(prefix="lv-bench-step-cost-") as tmp:
        root = Path(tmp) / "digits"
        counts = write_digits(root, 0 if quick else COPIES)
        with nvml_check(False):
            plain_epochs(root, 1)  # untimed warm-up: oneDNN kernels, the allocator
            plain = ms_per_step(plain_epochs(root, EPOCHS))
        with nvml_check(True):
            plain_nvml = ms_per_step(plain_epochs(root, EPOCHS))
        now = ms_per_step(lit_epochs(root, Path(tmp) / "now", before_fixes=False))
        before = ms_per_step(lit_epochs(root, Path(tmp) / "before", before_fixes=True))
    setting = (
        f"tutorial CNN on real digits as MNIST ({counts['train']} train incl. 10% val), batch {BATCH_SIZE}, "
        f"Adam 0.001, {EPOCHS} epochs; 1 torch thread; CPU time, not wall time"
    )
    device = device_name()
    metric = "CPU ms per training step (median of epochs 2..)"
    return [
        make_row(
            CASE,
            f"{setting}; lit_vision defaults vs the best plain loop",
            device,
            metric,
            now,
            plain,
            "lit_vision: loader, hooks, logging, progress bar and step; loop: slicing, normalising and step",
        ),
        make_row(
            CASE,
            f"{setting}; lit_vision defaults before issue 20's fixes vs now",
            device,
            metric,
            before,
            now,
            "before: every callback's no-op per-batch hooks dispatched, Lightning's NVML check on",
        ),
        make_row(
            CASE,
            f"{setting}; best plain loop with Lightning's NVML check (set by importing lightning) vs without",
            device,
            metric,
            plain_nvml,
            plain,
            "the check tries to load NVML at every optimizer step; where NVML is absent lit_vision unsets it",
        ),
    ]
