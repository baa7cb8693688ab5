"""``experiment=temps`` against two baselines on the same rows: test MAE (degrees F) on 2015.

- persistence: tomorrow is like today (``actual = temp_1``);
- scikit-learn ``LinearRegression`` on exactly the inputs the net gets (the DataModule's one-hot week and
  standardised columns, fitted on the training split), fitted once on the training split and once on
  training + validation rows (it needs no validation data, so the second is the stronger baseline);
- lit_vision: ``lit_vision.runs.run.train`` for ``experiment=temps`` (its final weights, ``test_ckpt=last``,
  tested on 2015) for several seeds; the row reports the mean test MAE, with the spread in the note.

All three see the same split (``data.split_seed`` fixed, so the seed only changes the net's
initialisation and batch order). Quality, not speed: the numbers do not depend on the machine's load.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.report import device_name, make_row

SPLIT_SEED = 42
SEEDS = (0, 1, 2, 3, 4)


def temps_datamodule(data_dir: Path, split_seed: int = SPLIT_SEED, overrides: Sequence[str] = ()):
    """The ``data=temps`` DataModule as the experiment configures it (embedded table under ``data_dir``),
    with ``overrides`` (e.g. another ``data.path`` / ``data.test_query``), set up for fitting."""
    from hydra.utils import instantiate

    from bench.compose import compose_train_config

    cfg = compose_train_config(
        ["experiment=temps", f"paths.data_dir={data_dir}", f"data.split_seed={split_seed}", *overrides],
        data_dir / "unused",
    )
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    return datamodule


def mae_row(
    case: str, setting: str, device: str, metric: str, value: float, baseline: float | None, note: str
) -> dict[str, Any]:
    """A result row of MAEs in degrees F (3 decimals), the ratio to ``baseline`` when there is one."""
    ratio = round(value / baseline, 3) if baseline else None
    rounded = None if baseline is None else round(baseline, 3)
    return make_row(case, setting, device, metric, round(value, 3), rounded, note, ratio=ratio)


def baselines(datamodule) -> dict[str, float]:
    """Test MAE of persistence and of LinearRegression (train / train+val) on the DataModule's split."""
    from sklearn.linear_model import LinearRegression

    x = {k: datamodule.splits[k].images.numpy() for k in ("train", "val", "test")}
    y = {k: datamodule.splits[k].labels.numpy()[:, 0] for k in ("train", "val", "test")}
    test_frame = datamodule.split_frame("test")
    persistence = float(np.abs(test_frame["temp_1"].to_numpy() - y["test"]).mean())
    on_train = LinearRegression().fit(x["train"], y["train"])
    on_train_val = LinearRegression().fit(
        np.concatenate([x["train"], x["val"]]), np.concatenate([y["train"], y["val"]])
    )
    return {
        "persistence": persistence,
        "linear_regression": float(np.abs(on_train.predict(x["test"]) - y["test"]).mean()),
        "linear_regression_train_val": float(np.abs(on_train_val.predict(x["test"]) - y["test"]).mean()),
        "rows": {k: len(v) for k, v in y.items()},
    }


def train_temps(workdir: Path, data_dir: Path, seed: int, overrides: tuple[str, ...] = ()) -> dict[str, Any]:
    """``python train.py experiment=temps seed=SEED`` in this process; its metrics."""
    from bench.compose import compose_train_config
    from lit_vision.runs.run import train

    cfg = compose_train_config(
        [
            "experiment=temps",
            f"seed={seed}",
            f"data.split_seed={SPLIT_SEED}",
            f"paths.data_dir={data_dir}",
            "~callbacks.progress_bar",
            "~callbacks.model_summary",
            *overrides,
        ],
        workdir,
    )
    metrics, _ = train(cfg)
    return metrics


def run(quick: bool) -> list[dict[str, Any]]:
    """Rows: persistence, LinearRegression (two fits) and lit_vision's mean test MAE over the seeds."""
    seeds = SEEDS[:1] if quick else SEEDS
    overrides = ("trainer.max_epochs=3",) if quick else ()
    device = device_name()
    with tempfile.TemporaryDirectory(prefix="lv-bench-temps-") as tmp:
        data_dir = Path(tmp) / "data"
        base = baselines(temps_datamodule(data_dir))
        maes = []
        for seed in seeds:
            metrics = train_temps(Path(tmp) / f"seed{seed}", data_dir, seed, overrides)
            maes.append(float(metrics["test/mae"]))
    mean = statistics.fmean(maes)
    spread = f"min {min(maes):.3f}, max {max(maes):.3f}" + (
        f", std {statistics.stdev(maes):.3f}" if len(maes) > 1 else ""
    )
    rows_note = ", ".join(f"{k} {v}" for k, v in base["rows"].items())
    setting = "2015 test year" + (" (quick: 3 epochs)" if quick else "")
    persistence, linear = base["persistence"], base["linear_regression_train_val"]

    def row(metric: str, value: float, baseline: float | None, note: str) -> dict[str, Any]:
        return mae_row("regression_temps", setting, device, f"test MAE (F), {metric}", value, baseline, note)

    rows = [
        row("persistence (actual = temp_1)", persistence, None, f"rows: {rows_note}"),
        row(
            "sklearn LinearRegression (train)",
            base["linear_regression"],
            persistence,
            "same inputs as the net; fitted on the training split",
        ),
        row(
            "sklearn LinearRegression (train+val)",
            linear,
            persistence,
            "same inputs; fitted on training + validation rows",
        ),
        row(
            f"lit_vision experiment=temps (mean of {len(maes)} seeds)",
            mean,
            linear,
            f"final weights (test_ckpt=last); vs LinearRegression (train+val); seeds {list(seeds)}: {spread}",
        ),
    ]
    return rows
