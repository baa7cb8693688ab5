"""`experiment=temps data.path=<csv>`: the tutorial's temps.csv and its extended version, categories learned
from the training rows, unseen categories named or ignored, byte-order marks, `friend` dropped."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lit_vision.data.tabular import TabularPreprocessor
from lit_vision.data.temps import EMBEDDED_TEST_QUERY, TemperatureDataModule
from lit_vision.errors import UserError
from tests.helpers import ROOT, compose_cfg, without_hydra

# The real files (issue 16): <repo>/../shared/data/temps, or LIT_VISION_TEMPS_DIR (e.g. from a worktree).
REAL_TEMPS = Path(os.environ.get("LIT_VISION_TEMPS_DIR", ROOT.parent / "shared" / "data" / "temps"))
TUTORIAL_DAYS = ("Mon", "Tues", "Wed", "Thurs", "Fri", "Sat", "Sun")


def temps_rows(days: int, weekdays=TUTORIAL_DAYS, start: str = "2016-01-01", seed: int = 0) -> pd.DataFrame:
    """Rows in the tutorial's layout (with its `friend` column): a seasonal curve plus noise."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(start, periods=days + 2, freq="D")
    actual = np.round(
        55 + 20 * np.sin(2 * np.pi * (dates.day_of_year - 110) / 365) + rng.normal(0, 3, days + 2)
    )
    frame = pd.DataFrame(
        {
            "year": dates.year,
            "month": dates.month,
            "day": dates.day,
            "week": [weekdays[d % len(weekdays)] for d in dates.day_of_week],
            "temp_2": np.roll(actual, 2),
            "temp_1": np.roll(actual, 1),
            "average": np.round(55 + 20 * np.sin(2 * np.pi * (dates.day_of_year - 110) / 365), 1),
            "actual": actual,
            "friend": rng.integers(30, 90, days + 2),
        }
    )
    return frame.iloc[2:].reset_index(drop=True)


def extended_rows(days: int) -> pd.DataFrame:
    """The extended layout: `weekday` instead of `week`, plus wind, precipitation and snow depth."""
    frame = temps_rows(days).rename(columns={"week": "weekday"})
    rng = np.random.default_rng(1)
    extra = {"ws_1": rng.uniform(0, 15, days).round(2), "prcp_1": rng.uniform(0, 1, days).round(2)}
    extra["snwd_1"] = np.zeros(days, dtype=int)
    for position, (name, values) in enumerate(extra.items(), start=4):
        frame.insert(position, name, values)
    return frame


def write_csv(frame: pd.DataFrame, path: Path, bom: bool = False) -> Path:
    """``frame`` as CSV; with ``bom`` a UTF-8 byte-order mark and CRLF line ends, as a spreadsheet writes."""
    text = frame.to_csv(index=False, lineterminator="\r\n" if bom else "\n")
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode())
    return path


def temps_module(path: Path, **kwargs) -> TemperatureDataModule:
    kwargs.setdefault("split_seed", 42)
    dm = TemperatureDataModule(path=str(path), **kwargs)
    dm.setup("fit")
    return dm


def test_a_file_is_split_at_random_and_the_embedded_table_on_2015(tmp_path):
    dm = temps_module(write_csv(temps_rows(200), tmp_path / "temps.csv"))
    assert dm.test_query is None
    sizes = {k: len(dm.split_frame(k)) for k in ("train", "val", "test")}
    assert sizes == {"train": 120, "val": 30, "test": 50}  # the tutorial's 25 % test, 15 % validation
    assert set(dm.split_frame("test")["month"]) != {12}  # random rows, not the end of the table
    assert TemperatureDataModule().test_query == EMBEDDED_TEST_QUERY
    assert TemperatureDataModule(test_query="year == 2013").test_query == "year == 2013"


def test_friend_is_dropped_and_tue_is_learned_from_the_training_file(tmp_path):
    weekdays = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
    dm = temps_module(write_csv(temps_rows(140, weekdays), tmp_path / "temps.csv"))
    info = dm.data_info()
    assert "friend" not in info["feature_names"]
    assert info["numeric_columns"] == ["year", "month", "day", "temp_2", "temp_1", "average"]
    assert info["categorical"] == {"week": sorted(weekdays)}
    assert dm.num_features == 13


def test_the_experiment_trains_on_a_tue_spelling_without_configuration(tmp_path):
    from lit_vision.runs.run import train

    weekdays = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
    csv = write_csv(temps_rows(120, weekdays), tmp_path / "temps.csv")
    cfg = compose_cfg(
        ["experiment=temps", f"data.path={csv}", "trainer.max_epochs=1", "logger=none", "callbacks=none"],
        output_dir=tmp_path / "run",
    )
    metrics, _ = train(without_hydra(cfg))
    assert metrics["status"] == "completed" and np.isfinite(metrics["test/mae"])


def test_an_unseen_category_is_named_with_its_column_value_and_line(tmp_path):
    train_csv = write_csv(temps_rows(60), tmp_path / "temps.csv")
    test_rows = temps_rows(10, start="2016-06-01")
    test_rows.loc[3, "week"] = "Tue"
    test_csv = write_csv(test_rows, tmp_path / "test.csv")
    with pytest.raises(UserError, match=r"column 'week' has the category 'Tue' at line 5") as caught:
        temps_module(train_csv, test_path=str(test_csv))
    assert "data.unknown_category=ignore" in str(caught.value)
    # the same at predict time, from the preprocessor a checkpoint carries
    info = temps_module(train_csv).data_info()
    with pytest.raises(UserError, match=r"new\.csv: column 'week' has the category 'Tue'"):
        TabularPreprocessor.from_info(info).transform(test_rows, "new.csv")


def test_ignore_mode_gives_an_unseen_category_an_all_zero_one_hot(tmp_path):
    train_csv = write_csv(temps_rows(60), tmp_path / "temps.csv")
    test_rows = temps_rows(10, start="2016-06-01")
    test_rows.loc[3, "week"] = "Tue"
    dm = temps_module(
        train_csv, test_path=str(write_csv(test_rows, tmp_path / "t.csv")), unknown_category="ignore"
    )
    names = dm.data_info()["feature_names"]
    one_hot = dm.splits["test"].images.numpy()[:, [i for i, n in enumerate(names) if n.startswith("week=")]]
    assert one_hot[3].sum() == 0 and (np.delete(one_hot, 3, axis=0).sum(axis=1) == 1).all()
    restored = TabularPreprocessor.from_info(dm.data_info())
    assert restored.unknown_category == "ignore"
    np.testing.assert_allclose(restored.transform(test_rows), dm.splits["test"].images.numpy())


def test_a_byte_order_mark_and_crlf_lines_are_read(tmp_path):
    frame = temps_rows(80)
    dm = temps_module(write_csv(frame, tmp_path / "bom.csv", bom=True))
    assert dm.data_info()["numeric_columns"][0] == "year"
    plain = temps_module(write_csv(frame, tmp_path / "plain.csv"))
    np.testing.assert_array_equal(dm.splits["train"].images.numpy(), plain.splits["train"].images.numpy())


def test_the_extended_layout_works_by_naming_its_columns(tmp_path):
    csv = write_csv(extended_rows(150), tmp_path / "temps_extended.csv", bom=True)
    with pytest.raises(UserError, match=r"no column 'week' \(asked for by data\.categorical\).*weekday"):
        temps_module(csv)
    dm = temps_module(csv, categorical=["weekday"])
    info = dm.data_info()
    assert info["numeric_columns"] == [
        "year", "month", "day", "ws_1", "prcp_1", "snwd_1", "temp_2", "temp_1", "average"
    ]  # fmt: skip
    assert list(info["categorical"]) == ["weekday"] and dm.num_features == 16
    assert "friend" not in info["feature_names"]


# ------------------------------------------------------------------------------ the real files (issue 16)
needs_real = pytest.mark.skipif(
    not REAL_TEMPS.is_dir(), reason=f"{REAL_TEMPS} (the tutorial's files) is absent"
)


@needs_real
def test_the_tutorials_temps_csv():
    dm = temps_module(REAL_TEMPS / "temps.csv")
    info = dm.data_info()
    assert dm.num_features == 13 and "friend" not in info["feature_names"]
    assert info["categorical"]["week"] == sorted(TUTORIAL_DAYS)
    assert {k: len(dm.split_frame(k)) for k in ("train", "val", "test")} == {
        "train": 209,
        "val": 52,
        "test": 87,
    }


@needs_real
def test_the_tutorials_temps_extended_csv():
    dm = temps_module(REAL_TEMPS / "temps_extended.csv", categorical=["weekday"])
    assert dm.num_features == 16 and dm.data_info()["numeric_columns"][0] == "year"
    assert sum(len(dm.split_frame(k)) for k in ("train", "val", "test")) == 2191


def test_a_duplicate_header_column_is_named(tmp_path):
    from lit_vision.data.tabular import read_csv
    from lit_vision.errors import UserError

    path = tmp_path / "dup.csv"
    path.write_text("year,temp_1, temp_1,actual\n2016,45,46,44\n")
    with pytest.raises(
        UserError, match=r"data.path=.*dup.csv: the header names the column\(s\) 'temp_1' more than once"
    ):
        read_csv(path, "data.path")
