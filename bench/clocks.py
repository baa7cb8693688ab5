"""Callbacks the benchmark cases add to a lit_vision run to time it from the inside.

- :class:`EpochClock`: wall time of every training epoch (training, validation, every hook, checkpoints).
- :class:`StepClock`: per training batch, the step (``on_train_batch_start`` to ``on_train_batch_end``:
  forward, backward, optimizer, the step hooks) and the gap before it (from the previous batch's end: the
  loader's ``next()``, the transfer to the device and the batch transforms of ``on_after_batch_transfer``,
  Lightning's bookkeeping). ``wait_fraction`` = gaps / (gaps + steps): the share of the training time spent
  waiting for data (an upper bound, as it also holds the loop's own bookkeeping).
- :class:`AccuracyProbe`: evaluates a held-out split every ``every_n_steps`` training steps and at each
  epoch end, with its own time taken off the clock, for time-to-accuracy measurements.

Each writes what it measured to a JSON file at the end of training (``path``), because the case that reads
it only has the run's config, not the callback object.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback


class EpochClock(Callback):
    """The wall time of each training epoch: from one ``on_train_epoch_start`` to the next (the last one to
    the end of fit), written as a JSON list to ``path``."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.durations: list[float] = []
        self._start: float | None = None

    def _lap(self) -> None:
        now = time.perf_counter()
        if self._start is not None:
            self.durations.append(now - self._start)
        self._start = now

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._lap()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._lap()
        self.path.write_text(json.dumps(self.durations))


class StepClock(Callback):
    """Step and data-wait time of every training batch, written to ``path`` as
    ``{"steps": [[epoch, batch, gap_s, step_s], ...], "train_epochs": [[images, s], ...], "settings": {...}}``
    (the first batch of each epoch has no gap; ``train_epochs``: the images of each epoch and the seconds
    from its start to the end of its last training batch, the first batch's wait included; ``settings``:
    the precision, layout and thread count the run used)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.records: list[list[float]] = []
        self.settings: dict[str, Any] = {}
        self.train_epochs: list[list[float]] = []
        self._batch_start = 0.0
        self._epoch_start = 0.0
        self._last_end: float | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # what the speed defaults resolved to (model.channels_last: auto, trainer.precision)
        self.settings = {
            "precision": str(trainer.precision),
            "channels_last": bool(getattr(pl_module, "channels_last", False)),
            "threads": torch.get_num_threads(),
        }

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_end = None  # the gap before an epoch's first batch holds the epoch change, not data
        self._epoch_start = time.perf_counter()
        self.train_epochs.append([0, 0.0])

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._batch_start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        end = time.perf_counter()
        gap = float("nan") if self._last_end is None else self._batch_start - self._last_end
        self.records.append([trainer.current_epoch, batch_idx, gap, end - self._batch_start])
        self._last_end = end
        self.train_epochs[-1][0] += len(batch[0]) if isinstance(batch, (tuple, list)) else len(batch)
        self.train_epochs[-1][1] = end - self._epoch_start

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        payload = {"steps": self.records, "train_epochs": self.train_epochs, "settings": self.settings}
        self.path.write_text(json.dumps(payload))


def step_summary(records: list[list[float]], skip_first_epoch: bool = True) -> dict[str, float]:
    """Median step seconds and the data-wait fraction of ``StepClock`` records (first epoch left out when
    there are others: it holds the warm-up)."""
    epochs = {int(r[0]) for r in records}
    if skip_first_epoch and len(epochs) > 1:
        records = [r for r in records if int(r[0]) != min(epochs)]
    with_gap = [r for r in records if r[2] == r[2]]  # not NaN
    gaps = sum(r[2] for r in with_gap)
    steps = sum(r[3] for r in with_gap)
    return {
        "median_step_s": statistics.median(r[3] for r in records) if records else float("nan"),
        "wait_fraction": gaps / (gaps + steps) if gaps + steps > 0 else float("nan"),
        "batches": len(records),
    }


def train_images_per_s(train_epochs: list[list[float]]) -> float:
    """Median images per second of ``StepClock``'s ``train_epochs`` (the first left out when there are
    others: it holds the warm-up)."""
    rates = [images / seconds for images, seconds in train_epochs if seconds > 0]
    return statistics.median(rates[1:] or rates)


class AccuracyProbe(Callback):
    """Top-1 accuracy on a held-out split during training, off the clock.

    Every ``every_n_steps`` training steps (0: only at epoch ends) and at the end of every training epoch
    the DataModule's ``split`` (an in-memory DataModule's ``splits[split]``) is evaluated (eval mode, no
    gradients, the DataModule's ``normalize``); the seconds this takes are added up and taken off the clock,
    so ``records`` hold ``[clock, global_step, accuracy]`` where ``clock`` is ``time.perf_counter()`` minus
    the probe's own time so far. With ``stop_at`` the run stops once the accuracy reaches it.
    """

    def __init__(
        self, path: str, split: str = "test", every_n_steps: int = 0, stop_at: float | None = None
    ) -> None:
        self.path = Path(path)
        self.split = split
        self.every_n_steps = int(every_n_steps)
        self.stop_at = stop_at
        self.records: list[list[float]] = []
        self.epoch_ends: list[float] = []  # the clock (probes taken off) at each training epoch's end
        self.paused = 0.0
        self.train_start: float | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.train_start = time.perf_counter()

    def _data(self, trainer: L.Trainer) -> tuple[torch.Tensor, torch.Tensor]:
        dataset = trainer.datamodule.splits[self.split]
        return dataset.images, dataset.labels

    @torch.inference_mode()
    def _accuracy(self, trainer: L.Trainer, pl_module: L.LightningModule) -> float:
        images, labels = self._data(trainer)
        normalize = trainer.datamodule.normalize
        was_training = pl_module.training
        pl_module.eval()
        correct = 0
        for start in range(0, len(labels), 1000):
            x = normalize(images[start : start + 1000].to(pl_module.device))
            with trainer.precision_plugin.forward_context():
                logits = pl_module(x)
            correct += int((logits.argmax(1).cpu() == labels[start : start + 1000]).sum())
        pl_module.train(was_training)
        return correct / len(labels)

    def _probe(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        begin = time.perf_counter()
        accuracy = self._accuracy(trainer, pl_module)
        self.records.append([begin - self.paused, trainer.global_step, accuracy])
        self.paused += time.perf_counter() - begin
        if self.stop_at is not None and accuracy >= self.stop_at:
            trainer.should_stop = True

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            self._probe(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning calls this after the epoch's validation: the clock spans training and validation
        self.epoch_ends.append(time.perf_counter() - self.paused)
        self._probe(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        payload = {
            "records": self.records,
            "epoch_ends": self.epoch_ends,
            "paused": self.paused,
            "train_start": self.train_start,
        }
        self.path.write_text(json.dumps(payload))


def first_reaching(records: list[list[float]], target: float) -> list[float] | None:
    """The first ``[clock, step, accuracy]`` record with accuracy >= ``target``, or None."""
    return next((r for r in records if r[2] >= target), None)


# A run that only trains: no callbacks, logger, progress bar, summary, sanity check, validation or test.
TRAIN_ONLY = (
    "callbacks=none",
    "logger=none",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.num_sanity_val_steps=0",
    "trainer.limit_val_batches=0",
    "trainer.max_epochs=-1",
    "test=false",
)


def train_steps_with_clock(overrides: list[str], steps: int, workdir: Path) -> dict[str, Any]:
    """Train ``steps`` steps of the recipe ``overrides`` as a :data:`TRAIN_ONLY` run with a
    :class:`StepClock` as its one callback; returns the clock's payload."""
    from omegaconf import open_dict

    from bench.compose import compose_train_config
    from lit_vision.runs.run import train

    cfg = compose_train_config([*overrides, *TRAIN_ONLY, f"trainer.max_steps={steps}"], workdir)
    clock = workdir / "steps.json"
    with open_dict(cfg):
        cfg.callbacks = {"bench_step_clock": {"_target_": f"{__name__}.StepClock", "path": str(clock)}}
    train(cfg)
    return json.loads(clock.read_text())
