"""Tabular regression data: preprocessing fitted on the training split only, splits, and clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import StandardScaler

from lit_vision.data.linear_toy import LinearToyDataModule
from lit_vision.data.tabular import TabularDataModule, TabularPreprocessor
from lit_vision.data.temps import WEEKDAYS, build_temps_frame, celsius_to_fahrenheit
from lit_vision.errors import UserError


def write_table(
    path, rows: int = 40, seed: int = 0, offset: float = 0.0, colours=("red", "blue")
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "a": rng.normal(10.0, 3.0, rows) + offset,
            "b": rng.uniform(0.0, 100.0, rows) + offset,
            "colour": [colours[i % len(colours)] for i in range(rows)],
            "note": ["x"] * rows,
        }
    )
    frame["y"] = 2.0 * frame["a"] - 0.5 * frame["b"] + (frame["colour"] == colours[0]) * 3.0
    frame.to_csv(path, index=False)
    return frame


def tabular(path, **kwargs) -> TabularDataModule:
    kwargs.setdefault("target", "y")
    kwargs.setdefault("categorical", ["colour"])
    kwargs.setdefault("drop", ["note"])
    return TabularDataModule(path=str(path), **kwargs)


def test_scaling_and_one_hot_are_fitted_on_the_training_rows_only(tmp_path):
    train_csv, test_csv = tmp_path / "train.csv", tmp_path / "test.csv"
    write_table(train_csv, rows=60)
    # the test rows are far away and bring a colour the training rows do not have
    write_table(test_csv, rows=20, seed=1, offset=1000.0, colours=("green", "red"))
    dm = tabular(
        train_csv, test_path=str(test_csv), unknown_category="ignore", val_fraction=0.2, split_seed=3
    )
    dm.setup("fit")

    train = dm.split_frame("train")
    scaler = StandardScaler().fit(train[["a", "b"]].to_numpy())
    info = dm.data_info()
    np.testing.assert_allclose(info["feature_mean"], scaler.mean_, rtol=1e-9)
    np.testing.assert_allclose(info["feature_std"], scaler.scale_, rtol=1e-9)
    assert info["categorical"] == {"colour": ["blue", "red"]}  # no "green": it is only in the test file
    assert info["feature_names"] == ["a", "b", "colour=blue", "colour=red"]
    np.testing.assert_allclose(info["target_mean"], [train["y"].mean()], rtol=1e-9)

    # the training inputs are standardised; the unseen colour is an all-zero one-hot
    train_x = dm.splits["train"].images.numpy()
    np.testing.assert_allclose(train_x[:, :2].mean(axis=0), 0.0, atol=1e-5)
    test_frame = dm.split_frame("test")
    test_x = dm.splits["test"].images.numpy()
    green = (test_frame["colour"] == "green").to_numpy()
    assert green.any() and (test_x[green, 2:] == 0).all()
    # scaled with the training statistics (its own would centre it on 0)
    assert (test_x[:, 0] > 300).all() and (test_x[:, 1] > 25).all()
    # the validation rows come from the main file, disjoint from the training rows
    assert len(dm.split_frame("val")) == 12 and len(train) == 48
    assert not set(dm.split_frame("val").index) & set(train.index)
    # targets stay in their units in the batches
    np.testing.assert_allclose(dm.splits["test"].labels.numpy()[:, 0], test_frame["y"].to_numpy(), rtol=1e-5)


def test_an_unseen_category_is_an_error_naming_the_line_by_default(tmp_path):
    train_csv, test_csv = tmp_path / "train.csv", tmp_path / "test.csv"
    write_table(train_csv, rows=30)
    write_table(test_csv, rows=4, colours=("green",))
    dm = tabular(train_csv, test_path=str(test_csv))
    with pytest.raises(UserError, match=r"'green' at line 2.*data\.categories\.colour"):
        dm.setup("fit")


def test_splits_are_seeded_and_disjoint(tmp_path):
    csv = tmp_path / "t.csv"
    write_table(csv, rows=100)
    first, again, other = (tabular(csv, split_seed=s) for s in (5, 5, 6))
    for dm in (first, again, other):
        dm.setup("fit")
    parts = {k: set(first.split_frame(k).index) for k in ("train", "val", "test")}
    assert [len(parts[k]) for k in ("train", "val", "test")] == [70, 15, 15]
    assert not (parts["train"] & parts["val"]) and not (parts["train"] & parts["test"])
    assert parts["test"] == set(again.split_frame("test").index)
    assert parts["test"] != set(other.split_frame("test").index)


def test_query_and_split_column_choose_the_rows(tmp_path):
    csv = tmp_path / "t.csv"
    frame = write_table(csv, rows=50)
    dm = tabular(csv, test_query="a > 12", val_fraction=0.2)
    dm.setup("fit")
    assert (dm.split_frame("test")["a"] > 12).all() and (dm.split_frame("train")["a"] <= 12).all()

    frame["part"] = ["train"] * 30 + ["valid"] * 10 + ["test"] * 10
    frame.to_csv(csv, index=False)
    dm = tabular(csv, split_column="part")
    dm.setup("fit")
    assert [len(dm.split_frame(k)) for k in ("train", "val", "test")] == [30, 10, 10]
    assert "part" not in dm.data_info()["feature_names"]


def test_missing_values_are_dropped_or_reported_with_their_line(tmp_path):
    csv = tmp_path / "t.csv"
    frame = write_table(csv, rows=30)
    frame.loc[4, "b"] = np.nan
    frame.loc[9, "y"] = np.nan
    frame.to_csv(csv, index=False)

    with pytest.raises(UserError) as err:
        tabular(csv, missing="error").setup("fit")
    message = str(err.value)
    assert str(csv) in message and "line 6" in message and "line 11" in message
    assert "'b'" in message and "'y'" in message and "data.missing=drop" in message

    dm = tabular(csv, missing="drop")
    dm.setup("fit")
    assert sum(len(dm.split_frame(k)) for k in ("train", "val", "test")) == 28


def test_an_unknown_column_name_lists_the_columns(tmp_path):
    csv = tmp_path / "t.csv"
    write_table(csv)
    with pytest.raises(UserError) as err:
        tabular(csv, target="price").setup("fit")
    message = str(err.value)
    assert "'price'" in message and "data.target" in message and str(csv) in message
    assert "a, b, colour, note, y" in message

    with pytest.raises(UserError, match=r"no column 'colr' \(asked for by data\.categorical\)"):
        tabular(csv, categorical=["colr"]).setup("fit")


def test_non_numeric_values_and_missing_files_are_named(tmp_path):
    csv = tmp_path / "t.csv"
    frame = write_table(csv, rows=20)
    frame["a"] = frame["a"].astype(object)
    frame.loc[7, "a"] = "n/a?"
    frame.to_csv(csv, index=False)
    with pytest.raises(UserError, match=r"column 'a' should hold numbers but has 'n/a\?' at line 9"):
        tabular(csv).setup("fit")
    with pytest.raises(UserError, match=r"data\.path=.*nothere\.csv: no such file"):
        tabular(tmp_path / "nothere.csv").setup("fit")
    write_table(csv, rows=20)
    with pytest.raises(UserError, match=r"data\.test_path=.*gone\.csv: no such file"):
        tabular(csv, test_path=str(tmp_path / "gone.csv")).setup("fit")


def test_declared_num_features_is_checked_against_the_file(tmp_path):
    csv = tmp_path / "t.csv"
    write_table(csv)
    with pytest.raises(UserError, match=r"data\.num_features=7, but .* gives 4 inputs"):
        tabular(csv, num_features=7).setup("fit")
    dm = tabular(csv)
    dm.discover()
    assert (dm.num_features, dm.num_targets) == (4, 1)
    assert not hasattr(dm, "num_classes")


def test_preprocessor_round_trips_through_data_info(tmp_path):
    csv = tmp_path / "t.csv"
    frame = write_table(csv)
    dm = tabular(csv)
    dm.setup("fit")
    rebuilt = TabularPreprocessor.from_info(dm.data_info())
    np.testing.assert_allclose(rebuilt.transform(frame), dm.preprocessor.transform(frame))
    with pytest.raises(UserError, match=r"no column 'b'"):
        rebuilt.transform(frame.drop(columns=["b"]), "new.csv")


def test_checkpoints_and_run_configs_from_before_the_tabular_split_still_load(tmp_path):
    """Checkpoints keep the preprocessor as a plain dict (no class path to break), and run folders written
    when ``lit_vision.data.tabular`` was one module name ``lit_vision.data.tabular.TabularDataModule``."""
    import json

    from hydra.utils import get_class

    # the data_info a pre-split checkpoint carries, written out by hand
    old_info = {
        "kind": "tabular",
        "feature_names": ["a", "b", "colour=blue", "colour=red"],
        "numeric_columns": ["a", "b"],
        "categorical": {"colour": ["blue", "red"]},
        "feature_mean": [10.0, 50.0],
        "feature_std": [3.0, 25.0],
        "target_names": ["y"],
        "target_mean": [0.0],
        "target_std": [1.0],
        "unknown_category": "error",
        "date_columns": [],
    }
    rows = pd.DataFrame({"a": [13.0], "b": [0.0], "colour": ["red"]})
    inputs = TabularPreprocessor.from_info(old_info).transform(rows)
    np.testing.assert_allclose(inputs, [[1.0, -2.0, 0.0, 1.0]])
    csv = tmp_path / "t.csv"
    write_table(csv)
    dm = tabular(csv)
    dm.setup("fit")
    info = dm.data_info().to_dict()  # the checkpoint form of the typed DataInfo
    assert json.loads(json.dumps(info)) == info  # nothing pickled by class
    assert get_class("lit_vision.data.tabular.TabularDataModule") is TabularDataModule


def test_linear_toy_is_the_tutorial_line():
    dm = LinearToyDataModule(seed=1)
    dm.setup("fit")
    x, y = dm.splits["train"].images[:, 0], dm.splits["train"].labels[:, 0]
    assert x.tolist() == [float(i) for i in range(11)]
    assert y.tolist() == [2.0 * i + 1.0 for i in range(11)]
    val_x = dm.splits["val"].images[:, 0]
    assert len(val_x) == 20 and float(val_x.min()) >= 0 and float(val_x.max()) <= 10
    assert dm.data_info()["target_mean"] is None  # no scaling: the linear weights are the line's


# ------------------------------------------------------------------------------------------ temps
def weather(years=(2012, 2013, 2014, 2015)) -> pd.DataFrame:
    dates = pd.date_range(f"{years[0]}-01-01", f"{years[-1]}-12-31", freq="D")
    rng = np.random.default_rng(0)
    season = 12 + 10 * np.sin(2 * np.pi * (dates.day_of_year.to_numpy() - 100) / 365)
    temp = season + rng.normal(0, 2, len(dates))
    temp[dates.year == 2015] += 40.0  # a test year that would be obvious in any leaked average
    return pd.DataFrame({"date": dates, "temp_max": np.round(temp, 1)})


def test_temps_schema_and_lags():
    source = weather()
    frame = build_temps_frame(weather=source)
    assert list(frame.columns) == ["year", "month", "day", "week", "temp_2", "temp_1", "average", "actual"]
    assert len(frame) == len(source) - 2
    fahrenheit = np.round(celsius_to_fahrenheit(source["temp_max"].to_numpy()), 1)
    np.testing.assert_allclose(frame["actual"], fahrenheit[2:])
    np.testing.assert_allclose(frame["temp_1"], fahrenheit[1:-1])
    np.testing.assert_allclose(frame["temp_2"], fahrenheit[:-2])
    first = frame.iloc[0]
    assert (first["year"], first["month"], first["day"], first["week"]) == (2012, 1, 3, "Tues")
    assert set(frame["week"]) == set(WEEKDAYS)


def test_temps_average_uses_training_years_only_and_leaves_the_own_year_out():
    source = weather()
    frame = build_temps_frame(weather=source, window_days=0)
    fahrenheit = pd.Series(np.round(celsius_to_fahrenheit(source["temp_max"].to_numpy()), 1))
    dates = pd.to_datetime(source["date"])
    # 2015 is 72 F hotter: a leaked 2015 value would push averages far above the training years' range
    assert frame["average"].max() < fahrenheit[dates.dt.year < 2015].max() + 0.1

    def day(year, month, d):
        return float(
            fahrenheit[(dates.dt.year == year) & (dates.dt.month == month) & (dates.dt.day == d)].iloc[0]
        )

    row_2013 = frame[(frame.year == 2013) & (frame.month == 6) & (frame.day == 1)].iloc[0]
    assert row_2013["average"] == pytest.approx((day(2012, 6, 1) + day(2014, 6, 1)) / 2, abs=0.06)
    row_2015 = frame[(frame.year == 2015) & (frame.month == 6) & (frame.day == 1)].iloc[0]
    expected = (day(2012, 6, 1) + day(2013, 6, 1) + day(2014, 6, 1)) / 3
    assert row_2015["average"] == pytest.approx(expected, abs=0.06)
    # Feb 29 exists only in 2012: its average widens to the neighbouring days of the other years
    leap = frame[(frame.month == 2) & (frame.day == 29)].iloc[0]
    assert np.isfinite(leap["average"])


def test_embedded_temps_is_written_and_split_on_2015(tmp_path):
    from lit_vision.data.temps import TemperatureDataModule

    dm = TemperatureDataModule(
        data_dir=str(tmp_path),
        categories={"week": list(WEEKDAYS)},
        test_query="year == 2015",
        num_features=13,
        split_seed=0,
    )
    dm.setup("fit")
    assert dm.embedded_path().is_file()
    assert set(dm.split_frame("test")["year"]) == {2015}
    assert set(dm.split_frame("train")["year"]) == {2012, 2013, 2014}
    assert len(dm.split_frame("test")) == 365
    info = dm.data_info()
    assert info["feature_names"][:6] == ["year", "month", "day", "temp_2", "temp_1", "average"]
    assert info["date_columns"] == ["year", "month", "day"]
    dates = dm.split_dates("test")
    assert str(dates.min())[:10] == "2015-01-01" and str(dates.max())[:10] == "2015-12-31"


def test_make_temps_tool_writes_the_csv(tmp_path, capsys):
    from lit_vision.tools.make_temps import main

    out = tmp_path / "temps.csv"
    assert main([str(out), "--window-days", "3"]) == 0
    frame = pd.read_csv(out)
    assert list(frame.columns)[:4] == ["year", "month", "day", "week"] and len(frame) == 1459
    assert "wrote 1459 rows" in capsys.readouterr().out
