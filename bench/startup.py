"""Start-up and teardown of a whole ``python train.py`` process: what lit_vision adds beyond the imports.

For the default experiment (digits CNN; ``--quick``: the same with 2 training batches), ``repeats`` times
each and the median kept:

- a bare ``python -c "import lightning, torchvision"``: the floor every Lightning vision script pays;
- ``python train.py trainer.max_epochs=1`` with a :class:`StartupClock` callback that writes wall-clock
  stamps (fit start, first training step, fit end, test start and end) to a JSON file.

Rows: seconds from the process start to the first training step (against the bare import); lit_vision's
own seconds = process wall time - fit - test - the bare import (config, data, model, logger set-up,
checkpoint reload, exit; the issue's target: at most 1 s); and the teardown, from the test's end to the
process exit. Run on a quiet machine: ``python -m bench --case startup``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from bench.paths import ROOT
from bench.report import device_name, make_row

CASE = "startup"
EVENTS = ("fit_start", "first_step", "fit_end", "test_start", "test_end")


class StartupClock(Callback):
    """Writes ``time.time()`` at each of :data:`EVENTS` to ``path`` (JSON), rewritten at every event."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.stamps: dict[str, float] = {}

    def _stamp(self, event: str) -> None:
        if event not in self.stamps:
            self.stamps[event] = time.time()
            self.path.write_text(json.dumps(self.stamps))

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stamp("fit_start")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self._stamp("first_step")

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stamp("fit_end")

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stamp("test_start")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stamp("test_end")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}


def bare_import_seconds() -> float:
    """Wall seconds of ``python -c "import lightning, torchvision"`` (interpreter start included)."""
    start = time.time()
    subprocess.run([sys.executable, "-c", "import lightning, torchvision"], check=True, env=_env(), cwd=ROOT)
    return time.time() - start


def train_process(folder: Path, quick: bool) -> dict[str, float]:
    """One ``python train.py`` of the default experiment; the stamps relative to the process start."""
    stamps = folder / "stamps.json"
    overrides = [
        "trainer.max_epochs=1",
        f"hydra.run.dir={folder / 'run'}",
        f"+callbacks.startup_clock._target_={StartupClock.__module__}.{StartupClock.__name__}",
        f"+callbacks.startup_clock.path={stamps}",
        *(["trainer.limit_train_batches=2"] if quick else []),
    ]
    start = time.time()
    subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *overrides],
        check=True,
        env=_env(),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    end = time.time()
    events = json.loads(stamps.read_text())
    missing = [e for e in EVENTS if e not in events]
    if missing:
        raise RuntimeError(f"train.py ran without the events {missing}")
    return {
        "wall": end - start,
        **{name: stamp - start for name, stamp in events.items()},
        "end": end - start,
    }


def split(run: dict[str, float], bare: float) -> dict[str, float]:
    """The parts of one run: to the first step, fit, test, teardown, and lit_vision's own remainder."""
    fit = run["fit_end"] - run["fit_start"]
    test = run["test_end"] - run["test_start"]
    return {
        "first_step": run["first_step"],
        "fit": fit,
        "test": test,
        "teardown": run["wall"] - run["test_end"],
        "own": run["wall"] - fit - test - bare,
    }


def run(quick: bool) -> list[dict[str, Any]]:
    """Bare imports and whole train.py processes, alternated, ``repeats`` times (module doc)."""
    repeats = 1 if quick else 3
    bare_times, parts = [], []
    with tempfile.TemporaryDirectory(prefix="lv-bench-startup-") as tmp:
        bare_import_seconds()  # warm the file cache for both sides
        for i in range(repeats):
            bare = bare_import_seconds()
            bare_times.append(bare)
            parts.append(split(train_process(Path(tmp) / f"run{i}", quick), bare))
    bare = statistics.median(bare_times)
    median = {key: statistics.median(p[key] for p in parts) for key in parts[0]}
    every = "; ".join(
        f"run {i + 1}: first step {p['first_step']:.2f} s, fit {p['fit']:.2f} s, test {p['test']:.2f} s, "
        f"own {p['own']:.2f} s, teardown {p['teardown']:.2f} s"
        for i, p in enumerate(parts)
    )
    setting = (
        f"python train.py trainer.max_epochs=1 (default experiment: digits CNN{', 2 batches' if quick else ''}), "
        f"whole process; baseline python -c 'import lightning, torchvision'; median of {repeats}"
    )
    device = device_name()
    return [
        make_row(
            CASE,
            setting,
            device,
            "seconds from process start to the first training step",
            median["first_step"],
            bare,
            f"baseline: the bare import; {every}",
        ),
        make_row(
            CASE,
            setting,
            device,
            "lit_vision's own seconds (wall - fit - test - bare import)",
            median["own"],
            1.0,
            "target <= 1 s (baseline column); config, data, model, loggers, checkpoint reload, exit",
        ),
        make_row(CASE, setting, device, "teardown seconds (test end to process exit)", median["teardown"]),
    ]
