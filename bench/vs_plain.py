"""The one harness behind every "lit_vision against a plain PyTorch loop" case.

A case module declares a :class:`Comparison`: the lit_vision recipe (Hydra overrides, data root included),
the plain loop's side (:class:`PlainSpec`: how it reads the same files into the same split, its net,
optimizer, batch, augmentation and compute settings), the epochs, and which rows it reports.
:func:`compare` then runs, in one process and in this order:

1. an optional untimed warm-up (oneDNN kernels, the allocator) so neither side pays it;
2. the plain loop (``bench.plain_loop.PlainLoop``), timed from reading its files;
3. ``lit_vision.runs.run.train`` for the recipe with every default (``defaults``), timed by
   ``bench.clocks`` callbacks;
4. with ``overhead=True``, the same recipe at the plain loop's compute settings (``plain settings``:
   NCHW, fp32, no fused optimizer step): the framework's own cost.

With ``target`` set both sides evaluate the test split every ``probe_every`` steps (0: never) and at each
epoch end, off the clock, so the rows can give the seconds to that test accuracy; ``stop_at_target`` ends
each side's training there (lit_vision then skips its final test). Python start-up and imports are outside
every timing. :func:`comparison_rows` turns the measurements into rows (see :data:`ROWS`).
"""

from __future__ import annotations

import itertools
import json
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import open_dict
from torch import nn

from bench.clocks import (
    AccuracyProbe,
    EpochClock,
    StepClock,
    first_reaching,
    step_summary,
    train_images_per_s,
)
from bench.compose import compose_train_config
from bench.plain_loop import PlainLoop, Splits
from bench.report import device_name, make_row

SEED = 42
# lit_vision at the tutorials' compute settings: what Lightning + lit_vision's defaults cost on their own.
PLAIN_SETTINGS = ("model.channels_last=false", "trainer.precision=32-true", "optim.fused=false")


@dataclass(frozen=True)
class PlainSpec:
    """The plain loop's side: how it reads the data, its net and optimizer, batch and compute settings."""

    read: Callable[[], Splits]
    net: Callable[[], nn.Module]
    optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
    batch_size: int
    eval_batch_size: int = 1000
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None
    channels_last: bool = False
    bf16: bool = False
    mean_std: tuple[list[float], list[float]] | None = None  # None: from the training split

    @property
    def label(self) -> str:
        """How the loop computes, for the rows: ``tutorial loop (NCHW fp32)`` or its best settings."""
        if not (self.channels_last or self.bf16):
            return "tutorial loop (NCHW fp32)"
        settings = ["in-memory slicing", *(["channels_last"] if self.channels_last else [])]
        return f"best plain loop ({', '.join(settings + (['bf16 autocast'] if self.bf16 else ['fp32']))})"


@dataclass(frozen=True)
class Comparison:
    """One lit_vision recipe against one plain loop on the same data (see the module docstring)."""

    case: str
    setting: str
    overrides: tuple[str, ...]
    plain: PlainSpec
    epochs: int
    rows: tuple[str, ...]
    overhead: bool = False
    warmup: Callable[[Path], None] | None = None
    target: float | None = None
    probe_every: int = 0
    stop_at_target: bool = False


@dataclass
class Measured:
    """What one side's run measured (the same fields for the plain loop and lit_vision)."""

    test_acc: float | None
    seconds: float
    epochs: list[float]  # training + validation of each epoch, probes excluded
    train_images_per_s: float
    wait_fraction: float
    precision: str
    probes: list[list[float]] = field(default_factory=list)  # [clock, step, accuracy]
    start: float = 0.0  # perf_counter at the start of the run (probe clocks are relative to it)
    startup: float | None = None  # lit_vision: seconds from the start of the run to the first step


def steady(durations: list[float]) -> float:
    """Median epoch time without the first epoch (start-up, first figures), when there are others."""
    return statistics.median(durations[1:] or durations)


# ------------------------------------------------------------------------------------------ the runs
def run_plain(spec: Comparison, workdir: Path) -> Measured:
    """The plain loop on its own reading of the data; timed from reading the files."""
    plain = spec.plain
    start = time.perf_counter()
    L.seed_everything(SEED, verbose=False)
    splits = plain.read()
    net = plain.net()
    loop = PlainLoop(
        net,
        plain.optimizer(net.parameters()),
        splits,
        plain.batch_size,
        plain.eval_batch_size,
        augment=plain.augment,
        channels_last=plain.channels_last,
        seed=SEED,
        bf16=plain.bf16,
        mean_std=plain.mean_std,
    )
    probe_every = spec.probe_every if spec.target is not None else None
    stop_at = spec.target if spec.stop_at_target else None
    result = loop.fit(
        spec.epochs,
        workdir / "plain_best.pt",
        probe_every=probe_every,
        stop_at=stop_at,
        start=start,
    )
    return Measured(
        test_acc=result.test_acc,
        seconds=result.seconds,
        epochs=result.epochs,
        train_images_per_s=result.train_images_per_s,
        wait_fraction=result.wait_fraction,
        precision="bf16 autocast" if plain.bf16 else "32-true",
        probes=result.probes,
        start=start,
    )


def run_lit_vision(spec: Comparison, workdir: Path, extra: tuple[str, ...] = ()) -> Measured:
    """``lit_vision.runs.run.train`` for the recipe (plus ``extra``) with the bench clocks added."""
    from lit_vision.runs.run import train

    workdir.mkdir(parents=True, exist_ok=True)
    files = {name: workdir / f"{name}.json" for name in ("epochs", "steps", "probe")}
    stop = ("test=false", "trainer.min_epochs=0") if spec.stop_at_target else ()
    cfg = compose_train_config(
        [*spec.overrides, f"trainer.max_epochs={spec.epochs}", f"seed={SEED}", *stop, *extra], workdir
    )
    with open_dict(cfg):
        cfg.callbacks = cfg.get("callbacks") or {}
        cfg.callbacks["bench_epoch_clock"] = _target(EpochClock, path=str(files["epochs"]))
        cfg.callbacks["bench_step_clock"] = _target(StepClock, path=str(files["steps"]))
        if spec.target is not None:
            cfg.callbacks["bench_accuracy_probe"] = _target(
                AccuracyProbe,
                path=str(files["probe"]),
                split="test",
                every_n_steps=spec.probe_every,
                stop_at=spec.target if spec.stop_at_target else None,
            )
    start = time.perf_counter()
    metrics, _ = train(cfg)
    seconds = time.perf_counter() - start
    steps = json.loads(files["steps"].read_text())
    epochs = json.loads(files["epochs"].read_text())
    probe: dict[str, Any] = {"records": [], "train_start": None, "paused": 0.0}
    if spec.target is not None:
        probe = json.loads(files["probe"].read_text())
        # epochs without the probes' own time: from one epoch end (after validation) to the next
        ends = [probe["train_start"], *probe["epoch_ends"]]
        epochs = [b - a for a, b in itertools.pairwise(ends)]
    return Measured(
        test_acc=float(metrics["test/acc"]) if "test/acc" in metrics else None,
        seconds=seconds - probe["paused"],
        epochs=epochs,
        train_images_per_s=train_images_per_s(steps["train_epochs"]),
        wait_fraction=step_summary(steps["steps"])["wait_fraction"],
        precision=str(cfg.trainer.precision),
        probes=probe["records"],
        start=start,
        startup=None if probe["train_start"] is None else probe["train_start"] - start,
    )


def _target(cls: type, **kwargs: Any) -> dict[str, Any]:
    return {"_target_": f"{cls.__module__}.{cls.__name__}", **kwargs}


def compare(spec: Comparison, workdir: Path) -> dict[str, Measured]:
    """Warm-up, plain loop, lit_vision defaults (and at the loop's settings): their measurements."""
    from lit_vision.utils.hardware import drop_failing_nvml_check

    workdir.mkdir(parents=True, exist_ok=True)
    # lit_vision's run drops Lightning's failing NVML check (~1 ms per optimizer step without NVML); the plain
    # loop runs in the same process first and must not pay it either.
    drop_failing_nvml_check()
    if spec.warmup is not None:
        spec.warmup(workdir / "warmup")
    runs = {"plain": run_plain(spec, workdir)}
    runs["defaults"] = run_lit_vision(spec, workdir / "defaults")
    if spec.overhead:
        runs["plain settings"] = run_lit_vision(spec, workdir / "plain_settings", PLAIN_SETTINGS)
    return runs


# ------------------------------------------------------------------------------------------ the rows
def _accuracy(spec: Comparison, runs: dict[str, Measured]) -> list[dict[str, Any]]:
    lit, plain = runs["defaults"], runs["plain"]
    note = f"lit_vision defaults (best checkpoint) vs {spec.plain.label} (best-validation weights)"
    return [_row(spec, spec.setting, "test accuracy", lit.test_acc, plain.test_acc, note)]


def _wall(spec: Comparison, runs: dict[str, Measured]) -> list[dict[str, Any]]:
    lit, plain = runs["defaults"], runs["plain"]
    note = "run.train (all defaults, test of best ckpt) vs plain loop incl. file reading; imports excluded"
    return [_row(spec, spec.setting, "wall s (whole run)", lit.seconds, plain.seconds, note)]


def _epoch(spec: Comparison, runs: dict[str, Measured]) -> list[dict[str, Any]]:
    lit, plain = runs["defaults"], runs["plain"]
    setting = (
        f"{spec.setting}; lit_vision defaults (channels_last auto, precision {lit.precision}) vs "
        f"{spec.plain.label}"
    )
    note = "training + validation of one epoch; target <= 1.0, < 1 = faster than the plain loop"
    metric = _epoch_metric(spec)
    rows = [_row(spec, setting, metric, steady(lit.epochs), steady(plain.epochs), note)]
    if "plain settings" in runs:
        setting = f"{spec.setting}; framework overhead: lit_vision at the loop's settings (NCHW fp32) vs {spec.plain.label}"
        note = "same compute on both sides: what Lightning + lit_vision's defaults cost"
        matched = runs["plain settings"]
        rows.append(
            _row(
                spec,
                setting,
                metric,
                steady(matched.epochs),
                steady(plain.epochs),
                note,
            )
        )
    return rows


def _epoch_metric(spec: Comparison) -> str:
    return "epoch s (median of epochs 2..)" if spec.epochs > 1 else "epoch s (one epoch, warm-up included)"


def _images(spec: Comparison, runs: dict[str, Measured]) -> list[dict[str, Any]]:
    lit, plain = runs["defaults"], runs["plain"]
    setting = f"{spec.setting}; lit_vision defaults (precision {lit.precision}) vs {spec.plain.label}"
    epochs = "median of epochs 2.." if spec.epochs > 1 else "one epoch, warm-up included"
    note = f"training images / training part of an epoch ({epochs}; validation excluded)"
    return [_row(spec, setting, "train images/s", lit.train_images_per_s, plain.train_images_per_s, note)]


def _wait(spec: Comparison, runs: dict[str, Measured]) -> list[dict[str, Any]]:
    lit, plain = runs["defaults"], runs["plain"]
    note = (
        "StepClock gaps (loader + transfer + batch transforms + loop bookkeeping); baseline: the plain "
        "loop's slicing + normalising (+ augmenting); target < 0.1"
    )
    setting = f"{spec.setting}; lit_vision defaults"
    return [
        _row(
            spec, setting, "data wait share of train time", lit.wait_fraction, plain.wait_fraction, note, None
        )
    ]


def _time_to_accuracy(spec: Comparison, runs: dict[str, Measured]) -> list[dict[str, Any]]:
    lit, plain = runs["defaults"], runs["plain"]
    assert spec.target is not None, "time_to_accuracy rows need Comparison.target"
    outcomes = {name: _reached(run, spec.target) for name, run in (("lit_vision", lit), ("plain", plain))}

    def describe(name: str, run: Measured) -> str:
        seconds, step = outcomes[name]
        if seconds is None:
            best = max((r[2] for r in run.probes), default=float("nan"))
            return f"{name}: not reached in {spec.epochs} epochs (best {best:.4f})"
        startup = f", {run.startup:.1f} s of it before the first step" if run.startup is not None else ""
        return f"{name}: step {step}{startup}"

    setting = f"{spec.setting}; lit_vision defaults (precision {lit.precision}) vs {spec.plain.label}"
    every = f"every {spec.probe_every} steps and " if spec.probe_every else ""
    note = (
        f"{describe('lit_vision', lit)}; {describe('plain', plain)}; from the start of the run (config, "
        f"data, model included), test split probed {every}after each epoch, probes excluded"
    )
    metric = f"seconds to {spec.target:.0%} test accuracy"
    return [_row(spec, setting, metric, outcomes["lit_vision"][0], outcomes["plain"][0], note)]


def _reached(run: Measured, target: float) -> tuple[float | None, int | None]:
    hit = first_reaching(run.probes, target)
    return (None, None) if hit is None else (hit[0] - run.start, int(hit[1]))


def _row(
    spec: Comparison,
    setting: str,
    metric: str,
    value: float | None,
    baseline: float | None,
    note: str,
    ratio: Any = "auto",
) -> dict[str, Any]:
    return make_row(spec.case, setting, device_name(), metric, value, baseline, note, ratio)


ROWS: dict[str, Callable[[Comparison, dict[str, Measured]], list[dict[str, Any]]]] = {
    "accuracy": _accuracy,
    "wall": _wall,
    "epoch": _epoch,
    "images": _images,
    "wait": _wait,
    "time_to_accuracy": _time_to_accuracy,
}


def comparison_rows(spec: Comparison, runs: dict[str, Measured]) -> list[dict[str, Any]]:
    """The rows ``spec.rows`` names, in that order."""
    return [row for name in spec.rows for row in ROWS[name](spec, runs)]


def run_comparison(spec: Comparison, workdir: Path) -> list[dict[str, Any]]:
    """:func:`compare` then :func:`comparison_rows`."""
    return comparison_rows(spec, compare(spec, workdir))


def missing_data_row(case: str, setting: str, root: Path, expected: str) -> dict[str, Any]:
    """The row a case writes instead of failing when its data (``expected`` under ``root``) are not there."""
    note = (
        f"not run: {expected} not found in {root} (the real data sets live in <repo>/../shared/data; "
        "python -m bench --data DIR points at another folder)"
    )
    return make_row(case, setting, device_name(), "not run", None, note=note)
