"""Start-up and teardown of a whole ``python train.py`` process: what lit_vision adds beyond the imports.

For the default experiment (digits CNN; ``--quick``: the same with 2 training batches), ``repeats`` times
each and the median kept:

- a bare ``python -c "import lightning, torchvision"``: the floor every Lightning vision script pays;
- ``python train.py trainer.max_epochs=1`` with a :class:`StartupClock` callback that writes wall-clock
  stamps (fit start, first training step, fit end, test start and end) to a JSON file.

Rows: seconds from the process start to the first training step (against the bare import); lit_vision's
own seconds = process wall time - fit - test - the bare import (config, data, model, logger set-up,
checkpoint reload, exit; the issue's target: at most 1 s), the same in CPU seconds (the process's CPU
time from ``getrusage``, fit and test from ``time.process_time`` stamps: robust on a shared machine); and
the teardown, from the test's end to the process exit. Run on a quiet machine: ``python -m bench --case startup``.
"""

from __future__ import annotations

import json
import os
import resource
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
    """Writes ``time.time()`` and the process's CPU seconds at each of :data:`EVENTS` to ``path`` (JSON,
    ``{event: wall stamp, "cpu_" + event: CPU seconds}``), rewritten at every event."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.stamps: dict[str, float] = {}

    def _stamp(self, event: str) -> None:
        if event not in self.stamps:
            self.stamps[event] = time.time()
            self.stamps[f"cpu_{event}"] = time.process_time()
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


def children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bare_import_seconds() -> tuple[float, float]:
    """Wall and CPU seconds of ``python -c "import lightning, torchvision"`` (interpreter start included)."""
    start, cpu = time.time(), children_cpu()
    subprocess.run([sys.executable, "-c", "import lightning, torchvision"], check=True, env=_env(), cwd=ROOT)
    return time.time() - start, children_cpu() - cpu


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
    start, cpu = time.time(), children_cpu()
    subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *overrides],
        check=True,
        env=_env(),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall, total_cpu = time.time() - start, children_cpu() - cpu
    events = json.loads(stamps.read_text())
    missing = [e for e in EVENTS if e not in events]
    if missing:
        raise RuntimeError(f"train.py ran without the events {missing}")
    relative = {name: events[name] - start for name in EVENTS}
    return {"wall": wall, "cpu": total_cpu, **relative, **{f"cpu_{e}": events[f"cpu_{e}"] for e in EVENTS}}


def split(run: dict[str, float], bare: float, bare_cpu: float) -> dict[str, float]:
    """The parts of one run: to the first step, fit, test, teardown, and lit_vision's own remainder, in wall
    seconds, and the own remainder in CPU seconds too (which other jobs on the machine do not stretch)."""
    fit = run["fit_end"] - run["fit_start"]
    test = run["test_end"] - run["test_start"]
    fit_cpu = run["cpu_fit_end"] - run["cpu_fit_start"]
    test_cpu = run["cpu_test_end"] - run["cpu_test_start"]
    return {
        "first_step": run["first_step"],
        "fit": fit,
        "test": test,
        "teardown": run["wall"] - run["test_end"],
        "own": run["wall"] - fit - test - bare,
        "own_cpu": run["cpu"] - fit_cpu - test_cpu - bare_cpu,
    }


def run(quick: bool) -> list[dict[str, Any]]:
    """Bare imports and whole train.py processes, alternated, ``repeats`` times (module doc)."""
    repeats = 1 if quick else 2
    bare_times, bare_cpus, parts = [], [], []
    with tempfile.TemporaryDirectory(prefix="lv-bench-startup-") as tmp:
        bare_import_seconds()  # warm the file cache for both sides
        for i in range(repeats):
            bare, bare_cpu = bare_import_seconds()
            bare_times.append(bare)
            bare_cpus.append(bare_cpu)
            parts.append(split(train_process(Path(tmp) / f"run{i}", quick), bare, bare_cpu))
    bare, bare_cpu = statistics.median(bare_times), statistics.median(bare_cpus)
    median = {key: statistics.median(p[key] for p in parts) for key in parts[0]}
    every = "; ".join(
        f"run {i + 1}: first step {p['first_step']:.2f} s, fit {p['fit']:.2f} s, test {p['test']:.2f} s, "
        f"own {p['own']:.2f} s ({p['own_cpu']:.2f} CPU s), teardown {p['teardown']:.2f} s"
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
        make_row(
            CASE,
            setting,
            device,
            "lit_vision's own CPU seconds (process CPU - fit - test - bare import)",
            median["own_cpu"],
            1.0,
            f"the same in CPU time, which other jobs do not stretch; bare import {bare_cpu:.2f} CPU s",
        ),
        make_row(CASE, setting, device, "teardown seconds (test end to process exit)", median["teardown"]),
    ]
