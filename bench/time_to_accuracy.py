"""Seconds from start to a test accuracy: the default experiment to 95% on the digits, the MNIST-style CNN
to 98% on real digits in MNIST's layout; lit_vision against the plain loop on the same data.

- ``default``: ``python train.py`` with no overrides (scikit-learn's 1,797 digits, 8x8, the small CNN,
  Adam 1e-3, batch 64); the DataModule's seeded 15% test split (270 digits) is evaluated after every epoch.
- ``mnist_cnn``: ``experiment=mnist_cnn`` on the digits written by ``digits_as_mnist --shifted-copies 33``
  (48,892 training digits incl. validation, 359 test digits; the real MNIST is not available offline); the
  test file is evaluated every 50 steps and after every epoch.

The clock starts before ``lit_vision.runs.run.train`` (config, reading the files, building the model, the sanity
check and validation are inside) and stops at the first evaluation that reaches the target; the
evaluations' own time is taken off (``bench.clocks.AccuracyProbe``), and training stops there
(``trainer.min_epochs=0``, no final test). The plain loop (``bench.plain_loop``: same split, net, batch,
optimizer) is timed the same way from reading its files. Python imports are outside both.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import open_dict

from bench.clocks import AccuracyProbe, first_reaching
from bench.plain_loop import PlainLoop, Splits, read_torchvision_splits
from bench.report import device_name, make_row

SEED = 42


def lit_time_to(overrides: list[str], target: float, every_n_steps: int, workdir: Path) -> dict[str, Any]:
    """Train with ``overrides`` until the probe reaches ``target``; seconds from the start of the run."""
    from bench.compose import compose_train_config
    from lit_vision.runs.run import train

    probe_file = workdir / "probe.json"
    cfg = compose_train_config([*overrides, f"seed={SEED}", "test=false", "trainer.min_epochs=0"], workdir)
    with open_dict(cfg):
        cfg.callbacks = cfg.get("callbacks") or {}
        cfg.callbacks["bench_accuracy_probe"] = {
            "_target_": f"{AccuracyProbe.__module__}.AccuracyProbe",
            "path": str(probe_file),
            "split": "test",
            "every_n_steps": every_n_steps,
            "stop_at": target,
        }
    start = time.perf_counter()
    train(cfg)
    probe = json.loads(probe_file.read_text())
    outcome = _outcome(probe["records"], target, start, str(cfg.trainer.precision))
    outcome["startup"] = probe["train_start"] - start  # config, data, model, sanity check
    return outcome


def plain_time_to(
    read: Any, net: torch.nn.Module, batch_size: int, epochs: int, target: float, every: int, workdir: Path
) -> dict[str, Any]:
    """The plain loop until its test accuracy reaches ``target``; seconds from reading the data."""
    start = time.perf_counter()
    L.seed_everything(SEED, verbose=False)
    splits = read()
    loop = PlainLoop(net, torch.optim.Adam(net.parameters(), lr=1e-3), splits, batch_size, seed=SEED)
    result = loop.fit(epochs, workdir / "plain.pt", probe_every=every, stop_at=target, start=start)
    return _outcome(result.probes, target, start, "32-true")


def _outcome(records: list[list[float]], target: float, start: float, precision: str) -> dict[str, Any]:
    hit = first_reaching(records, target)
    best = max((r[2] for r in records), default=float("nan"))
    return {
        "seconds": None if hit is None else hit[0] - start,
        "steps": None if hit is None else int(hit[1]),
        "best": best,
        "precision": precision,
    }


def digits_splits() -> Splits:
    """The default experiment's digits split (the DataModule's own seeded split)."""
    from lit_vision.data.digits import DigitsDataModule

    dm = DigitsDataModule(batch_size=64, split_seed=SEED)
    dm.setup("fit")
    parts = {k: (v.images, v.labels) for k, v in dm.splits.items()}
    return Splits(*parts["train"], *parts["val"], *parts["test"])


def run(quick: bool) -> list[dict[str, Any]]:
    from lit_vision.nets.cnn import SimpleCNN
    from lit_vision.tools.digits_as_mnist import write_digits_as_mnist

    device = device_name()
    rows = []
    with tempfile.TemporaryDirectory(prefix="lv-bench-tta-") as tmp:
        tmp = Path(tmp)
        # --- the default experiment, 95% on the digits' test split
        target, epochs = 0.95, 30
        torch.manual_seed(SEED)
        plain = plain_time_to(digits_splits, SimpleCNN(1, 10, 8), 64, epochs, target, 0, tmp)
        (tmp / "default").mkdir()
        lit = lit_time_to([], target, 0, tmp / "default")
        rows.append(
            _row("default experiment (digits CNN, batch 64, Adam 1e-3)", device, target, lit, plain, epochs)
        )

        # --- the MNIST-style CNN, 98% on the digits-as-MNIST test file
        copies, every = (0, 5) if quick else (33, 50)
        counts = write_digits_as_mnist(tmp / "mnist", test_fraction=0.2, seed=0, copies=copies, gz=False)
        target, epochs = 0.98, 3

        def read_mnist() -> Splits:
            return read_torchvision_splits("MNIST", tmp / "mnist", 0.1, SEED)

        torch.manual_seed(SEED)
        plain = plain_time_to(read_mnist, SimpleCNN(1, 10, 28), 64, epochs, target, every, tmp)
        (tmp / "mnist_cnn").mkdir()
        lit = lit_time_to(
            ["experiment=mnist_cnn", f"data.root={tmp / 'mnist'}"], target, every, tmp / "mnist_cnn"
        )
        setting = f"mnist_cnn on digits as MNIST ({counts['train']} train incl. val, {counts['test']} test)"
        rows.append(_row(setting, device, target, lit, plain, epochs))
    return rows


def _row(setting: str, device: str, target: float, lit: dict, plain: dict, epochs: int) -> dict[str, Any]:
    def describe(outcome: dict) -> str:
        if outcome["seconds"] is None:
            return f"not reached in {epochs} epochs (best {outcome['best']:.4f})"
        startup = f", {outcome['startup']:.1f} s of it before the first step" if "startup" in outcome else ""
        return f"step {outcome['steps']}{startup}"

    return make_row(
        "time_to_accuracy",
        f"{setting}; lit_vision defaults (precision {lit['precision']}) vs plain loop",
        device,
        f"seconds to {target:.0%} test accuracy",
        lit["seconds"],
        plain["seconds"],
        f"lit_vision: {describe(lit)}; plain: {describe(plain)}; from the start of the run, evaluations excluded",
    )
