"""Cost of watching a run: epoch time of the default experiment with every monitoring callback on
(``callbacks=all``) against checkpointing alone (``callbacks=[model_checkpoint]``), same TensorBoard logger.

The epoch time is measured from one ``on_train_epoch_start`` to the next (training, validation, every
callback hook, checkpoint writing); the first epoch (start-up, graph tracing, first figures) is left out
and the median taken. The mean over the same epochs is reported too (it includes the epochs on which the
budgeted figures are drawn), and so is the extra test-time work done once (PR curves, projector, test
confusion matrix and prediction grid). Runs alternate between the two settings to share machine noise.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from omegaconf import open_dict

from bench.clocks import EpochClock
from bench.compose import compose_train_config
from bench.report import device_name

SETTINGS = {
    "checkpoint only": ["callbacks=[model_checkpoint]"],
    "all callbacks": ["callbacks=all"],
}
BASELINE = "checkpoint only"


def run_setting(overrides: list[str], epochs: int, workdir: Path) -> tuple[list[float], float, int]:
    """Train the default experiment once; return (epoch durations, test seconds, validation confusion
    matrices drawn)."""
    from lit_vision.runs.run import train

    clock_file = workdir / "epochs.json"
    cfg = compose_train_config([*overrides, f"trainer.max_epochs={epochs}"], workdir)
    with open_dict(cfg):
        cfg.callbacks["epoch_clock"] = {
            "_target_": f"{EpochClock.__module__}.EpochClock",
            "path": str(clock_file),
        }
    metrics, _ = train(cfg)
    drawn = len(list(workdir.glob("confusion_matrix/val_epoch*.png")))
    return json.loads(clock_file.read_text()), float(metrics.get("test_seconds", 0.0)), drawn


def run(quick: bool) -> list[dict[str, Any]]:
    """Both settings, alternated ``rounds`` times; rows with median and mean epoch time and test extras."""
    epochs, rounds = (5, 1) if quick else (30, 2)
    epoch_times: dict[str, list[float]] = {name: [] for name in SETTINGS}
    test_times: dict[str, list[float]] = {name: [] for name in SETTINGS}
    figures: list[int] = []
    with tempfile.TemporaryDirectory(prefix="lv-bench-monitoring-") as tmp:
        for round_index in range(rounds):
            for name, overrides in SETTINGS.items():
                workdir = Path(tmp) / f"{round_index}-{name.replace(' ', '_')}"
                workdir.mkdir()
                durations, test_seconds, drawn = run_setting(overrides, epochs, workdir)
                epoch_times[name] += durations[1:]  # the first epoch carries start-up work
                test_times[name].append(test_seconds)
                if name != BASELINE:
                    figures.append(drawn)

    device = device_name()
    setting = f"default experiment (digits CNN), {epochs} epochs x {rounds} runs"
    base_median = statistics.median(epoch_times[BASELINE])
    base_mean = statistics.fmean(epoch_times[BASELINE])
    rows = []
    for name in SETTINGS:
        median = statistics.median(epoch_times[name])
        mean = statistics.fmean(epoch_times[name])
        rows.append(
            row(f"{setting}, {name}", device, "median epoch s", median, base_median, "epochs 2.. of each run")
        )
        rows.append(
            row(
                f"{setting}, {name}",
                device,
                "mean epoch s",
                mean,
                base_mean,
                "includes budgeted figure epochs",
            )
        )
    extra = statistics.fmean(test_times["all callbacks"]) - statistics.fmean(test_times[BASELINE])
    rows.append(
        row(
            f"{setting}, all callbacks",
            device,
            "test-time extras s",
            extra,
            None,
            "once per run: test confusion matrix + grid, PR curves, projector",
        )
    )
    rows.append(
        row(
            f"{setting}, all callbacks",
            device,
            "val confusion matrices per run",
            statistics.fmean(figures),
            None,
            f"of {epochs} epochs: figures wait while they would exceed 5% of the training time",
        )
    )
    return rows


def row(setting: str, device: str, metric: str, value: float, baseline: float | None, note: str) -> dict:
    return {
        "case": "monitoring",
        "setting": setting,
        "device": device,
        "metric": metric,
        "value": round(value, 4),
        "baseline": None if baseline is None else round(baseline, 4),
        "ratio": None if baseline is None else round(value / baseline, 3),
        "note": note,
    }
