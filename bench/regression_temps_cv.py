"""How ``experiment=temps`` was chosen without looking at 2015: leave-one-year-out over 2012-2014.

Each fold holds out one training year as its test set (``data.test_query="year == Y"``) on the embedded
table with 2015 removed, and trains on the two other years (15 % of their rows validate). On every fold:
scikit-learn ``LinearRegression`` on the DataModule's own inputs, nonlinear scikit-learn models on the same
inputs (is there anything beyond a linear fit to learn?), and ``experiment=temps`` tested with the best
val/mae checkpoint (``test_ckpt=best``) and with the final weights (``test_ckpt=last``, the recipe's
choice), for two seeds. The rows give the mean test MAE over the folds; the per-year values are in the notes.

A fold's held-out year is not fully unseen: the ``average`` input of the training rows (computed over the
other training years) includes it. That affects every predictor alike. Run it with
``python -m bench --case regression_temps_cv`` (not part of ``make bench``: 3-4 minutes on 2
cores).
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.regression_temps import baselines, mae_row, temps_datamodule, train_temps
from bench.report import device_name

FOLD_YEARS = (2012, 2013, 2014)
SEEDS = (0, 1)
CHOICES = ("best", "last")


def training_years_csv(data_dir: Path) -> Path:
    """The embedded table without 2015, as a CSV next to it."""
    datamodule = temps_datamodule(data_dir)
    frame = pd.read_csv(datamodule.embedded_path())
    path = data_dir / "temps_2012_2014.csv"
    frame[frame["year"] < 2015].to_csv(path, index=False)
    return path


class LinearPlusBoosting:
    """Least squares, plus gradient boosting fitted to its residuals (a nonlinear correction)."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> LinearPlusBoosting:
        from sklearn.ensemble import HistGradientBoostingRegressor
        from sklearn.linear_model import LinearRegression

        self.linear = LinearRegression().fit(x, y)
        self.boost = HistGradientBoostingRegressor(
            max_iter=100, learning_rate=0.03, max_depth=2, random_state=0
        )
        self.boost.fit(x, y - self.linear.predict(x))
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.linear.predict(x) + self.boost.predict(x)


def sklearn_models() -> dict[str, Any]:
    """Unfitted scikit-learn regressors compared with least squares, by row label."""
    from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PolynomialFeatures

    return {
        "sklearn HistGradientBoosting": HistGradientBoostingRegressor(
            max_iter=200, learning_rate=0.05, max_depth=3, random_state=0
        ),
        "sklearn RandomForest (300 trees)": RandomForestRegressor(300, min_samples_leaf=10, random_state=0),
        "sklearn quadratic features + Ridge": make_pipeline(PolynomialFeatures(2), Ridge(10.0)),
        "LinearRegression + boosted residuals": LinearPlusBoosting(),
    }


def sklearn_maes(datamodule) -> dict[str, float]:
    """Test MAE of each of :func:`sklearn_models`, fitted on the training split."""
    x = {k: datamodule.splits[k].images.numpy() for k in ("train", "test")}
    y = {k: datamodule.splits[k].labels.numpy()[:, 0] for k in ("train", "test")}
    return {
        name: float(np.abs(model.fit(x["train"], y["train"]).predict(x["test"]) - y["test"]).mean())
        for name, model in sklearn_models().items()
    }


def fold_overrides(csv: Path, year: int) -> list[str]:
    """Overrides that make ``year`` the test split of the 2012-2014 table."""
    return [f"data.path={csv}", f"data.test_query='year == {year}'"]


def run(quick: bool) -> list[dict[str, Any]]:
    """Rows: the folds' mean test MAE of LinearRegression and of the net with each ``test_ckpt``."""
    years = FOLD_YEARS[-1:] if quick else FOLD_YEARS
    seeds = SEEDS[:1] if quick else SEEDS
    extra = ["trainer.max_epochs=3"] if quick else []
    device = device_name()  # before the runs set their one torch thread
    linear: dict[int, float] = {}
    others: dict[str, dict[int, float]] = {}
    net: dict[str, dict[int, list[float]]] = {choice: {} for choice in CHOICES}
    with tempfile.TemporaryDirectory(prefix="lv-bench-temps-cv-") as tmp:
        data_dir = Path(tmp) / "data"
        csv = training_years_csv(data_dir)
        for year in years:
            overrides = fold_overrides(csv, year)
            datamodule = temps_datamodule(data_dir, overrides=overrides)
            linear[year] = baselines(datamodule)["linear_regression"]
            for name, mae in sklearn_maes(datamodule).items():
                others.setdefault(name, {})[year] = mae
            for choice in CHOICES:
                net[choice][year] = [
                    float(
                        train_temps(
                            Path(tmp) / f"{year}-{choice}-{seed}",
                            data_dir,
                            seed,
                            (*overrides, f"test_ckpt={choice}", *extra),
                        )["test/mae"]
                    )
                    for seed in seeds
                ]
    setting = "leave-one-year-out, 2012-2014" + (" (quick: 2014 only, 3 epochs)" if quick else "")

    def by_year(values: dict[int, float]) -> str:
        return ", ".join(f"{year}: {value:.3f}" for year, value in values.items())

    def row(metric: str, per_year: dict[int, float], baseline: float | None, note: str) -> dict[str, Any]:
        mean = statistics.fmean(per_year.values())
        note = f"{note}; {by_year(per_year)}" if note else by_year(per_year)
        metric = f"held-out year MAE (F), {metric}"
        return mae_row("regression_temps_cv", setting, device, metric, mean, baseline, note)

    linear_mean = statistics.fmean(linear.values())
    rows = [row("sklearn LinearRegression (train)", linear, None, "")]
    rows += [
        row(name, per_year, linear_mean, "vs LinearRegression; same inputs")
        for name, per_year in others.items()
    ]
    for choice in CHOICES:
        per_year = {year: statistics.fmean(maes) for year, maes in net[choice].items()}
        metric = f"experiment=temps test_ckpt={choice} (mean of seeds {list(seeds)})"
        rows.append(row(metric, per_year, linear_mean, "vs LinearRegression"))
    return rows
